"""The operator's side of signed application updates (firmware/app/update.py).

    python -m host_tools.provision.ota_manifest operator.pem 1.2.0 5 3 DIR [--charger CP-1]

prints  <manifest JSON> "|" <hex DER ECDSA-P256-SHA256 signature>  for every .mpy/.py file under
DIR (paths relative to DIR, e.g. app/main.mpy): the same key and scheme as commands.
"""
import argparse
import hashlib
import json
import pathlib
import sys

from host_tools.provision.operator_cmd import load_key, sign_payload


def manifest(version: str, number: int, min_number: int, files: dict[str, bytes],
             charger: str = "*") -> bytes:
    """The manifest's JSON bytes for files (path -> content)."""
    entries = [{"path": p, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
               for p, data in sorted(files.items())]
    obj = {"charger": charger, "version": version, "number": number, "min_number": min_number,
           "files": entries}
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def signed(key, version: str, number: int, min_number: int, files: dict[str, bytes],
           charger: str = "*") -> bytes:
    return sign_payload(key, manifest(version, number, min_number, files, charger))


def files_under(root: pathlib.Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.suffix in (".mpy", ".py") and p.is_file()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("key")
    ap.add_argument("version")
    ap.add_argument("number", type=int)
    ap.add_argument("min_number", type=int)
    ap.add_argument("dir", type=pathlib.Path)
    ap.add_argument("--charger", default="*")
    a = ap.parse_args(argv)
    msg = signed(load_key(a.key), a.version, a.number, a.min_number, files_under(a.dir), a.charger)
    sys.stdout.write(msg.decode() + "\n")


if __name__ == "__main__":
    main()
