"""A small certificate authority for a broker's TLS listener (development, tests, the demo).

    ca = make_ca("ChargeProof test CA")
    server = make_server_cert(ca, "127.0.0.1")          # names: IP addresses and/or DNS names
    write_pem(ca, server, "certs/")                      # ca.crt, server.crt, server.key

Production brokers take their certificate from the site's own CA; the charger and the host
clients only need that CA's certificate (PEM for paho, DER for the charger: `ca_der_hex`).
Keys here are P-256 (cheap on the ESP32's mbedTLS) and nothing made here is ever committed.
"""
import datetime
import ipaddress
import pathlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Issued:
    """A certificate and its private key."""
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption())


def _validity(days: int) -> tuple[datetime.datetime, datetime.datetime]:
    # Back-dated a day: a charger whose clock is a little behind still accepts it.
    now = datetime.datetime.now(datetime.timezone.utc)
    return now - datetime.timedelta(days=1), now + datetime.timedelta(days=days)


def make_ca(name: str = "ChargeProof development CA", days: int = 3650) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start, end = _validity(days)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return Issued(cert, key)


def make_server_cert(ca: Issued, *names: str, days: int = 825) -> Issued:
    """A TLS server certificate for the given host names / IP addresses, signed by ca."""
    if not names:
        raise ValueError("a server certificate needs at least one name")
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    start, end = _validity(days)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                           critical=False)
            .sign(ca.key, hashes.SHA256()))
    return Issued(cert, key)


def write_pem(ca: Issued, server: Issued, directory: str | pathlib.Path) -> dict[str, str]:
    """ca.crt, server.crt, server.key (mode 0600) in directory; returns their paths."""
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = {"cafile": d / "ca.crt", "certfile": d / "server.crt", "keyfile": d / "server.key"}
    paths["cafile"].write_bytes(ca.cert_pem())
    paths["certfile"].write_bytes(server.cert_pem())
    paths["keyfile"].write_bytes(server.key_pem())
    paths["keyfile"].chmod(0o600)
    return {k: str(v) for k, v in paths.items()}
