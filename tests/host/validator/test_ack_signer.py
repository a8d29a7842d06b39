"""acks.AckSigner (precomputed HMAC pads and JSON prefix, one per charger key) gives exactly
make_ack's bytes, and the charger's own checker (firmware/uplink/acks.py) accepts them."""
import hashlib
import os

import pytest
from hypothesis import given, settings, strategies as st

from host_tools.validator import acks
from uplink.acks import AckChecker, BadAck

_ids = st.text(min_size=1, max_size=24).filter(lambda s: "/" not in s)


@settings(max_examples=200, deadline=None)
@given(validator=_ids, charger=_ids, kind=st.sampled_from(acks.KINDS), seq=st.integers(1, 2 ** 40),
       kid=st.text(min_size=1, max_size=8), key=st.binary(min_size=1, max_size=100),
       payload=st.binary(max_size=200), pass_digest=st.booleans())
def test_signer_bytes_are_make_ack_bytes(validator, charger, kind, seq, kid, key, payload, pass_digest):
    digest = hashlib.sha256(payload).hexdigest() if pass_digest else None
    want = acks.make_ack(validator, charger, kind, seq, payload, kid, key, digest)
    assert acks.AckSigner(validator, charger, kid, key).ack(kind, seq, payload, digest) == want


def test_signer_falls_back_to_make_ack_rules():
    signer = acks.AckSigner("val-1", "CP-0001", "k1", os.urandom(32))
    with pytest.raises(acks.AckKeyError):
        signer.ack("tariff", 1, b"x")
    assert signer.ack("receipt", 3, b"x", "NOT HEX") == acks.make_ack("val-1", "CP-0001", "receipt", 3, b"x", "k1",
                                                                       signer.key, "NOT HEX")


def test_signed_ack_passes_the_chargers_checker():
    key = os.urandom(32)
    signer = acks.AckSigner("val-1", "CP-0001", "k1", key)
    ack = signer.ack("receipt", 7, b"the receipt")
    checker = AckChecker("CP-0001", {"val-1": {"k1": key.hex()}})
    seq, _, digest = checker.check("val-1", ack)
    assert seq == 7 and digest == hashlib.sha256(b"the receipt").hexdigest()
    tampered = ack.replace(b'"seq":7', b'"seq":8')
    with pytest.raises(BadAck):
        checker.check("val-1", tampered)
