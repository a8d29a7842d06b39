"""The operator's side of signed application updates (firmware/app/update.py).

    python -m host_tools.provision.ota_manifest operator.pem 1.2.0 5 3 DIR [--charger CP-1]

prints  <manifest JSON> "|" <hex DER ECDSA-P256-SHA256 signature>  for every .mpy/.py file under
DIR (paths relative to DIR, e.g. app/main.mpy): the same key and scheme as commands. Each file
is cut in chunks of `chunk` bytes; the manifest carries the RFC 9162 Merkle root over them, so
the charger checks every chunk (with the proof chunk_message() puts beside it) on arrival.
"""
import argparse
import hashlib
import json
import pathlib
import struct
import sys

from host_tools.provision.operator_cmd import load_key, sign_payload
from host_tools.verify.merkle import Tree

CHUNK = 1024                       # bytes per chunk (firmware: MIN_CHUNK..MAX_CHUNK, 256..4096)
CHUNK_MAGIC = b"CPC1"
CHUNK_HEAD = "<4sIHIB"             # magic, number, file index, offset, proof hashes


def chunks(data: bytes, chunk: int = CHUNK) -> list[bytes]:
    """The file's chunks: at least one (an empty file is one empty chunk)."""
    return [data[o:o + chunk] for o in range(0, max(len(data), 1), chunk)]


def file_tree(data: bytes, chunk: int = CHUNK) -> Tree:
    return Tree(chunks(data, chunk))


def manifest(version: str, number: int, min_number: int, files: dict[str, bytes],
             charger: str = "*", chunk: int = CHUNK) -> bytes:
    """The manifest's JSON bytes for files (path -> content)."""
    entries = [{"path": p, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "root": file_tree(data, chunk).root().hex()}
               for p, data in sorted(files.items())]
    obj = {"charger": charger, "version": version, "number": number, "min_number": min_number,
           "chunk": chunk, "files": entries}
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def signed(key, version: str, number: int, min_number: int, files: dict[str, bytes],
           charger: str = "*", chunk: int = CHUNK) -> bytes:
    return sign_payload(key, manifest(version, number, min_number, files, charger, chunk))


def chunk_message(number: int, index: int, offset: int, data: bytes, tree: Tree,
                  chunk: int = CHUNK) -> bytes:
    """The update server's answer for chunk (index, offset) of update number, data being the
    whole file: header, the chunk's inclusion proof in the file's tree, the chunk's bytes."""
    if offset % chunk or not 0 <= offset < max(len(data), 1):
        raise ValueError("offset %d is not a chunk of a %d-byte file" % (offset, len(data)))
    proof = tree.inclusion_proof(offset // chunk)
    return (struct.pack(CHUNK_HEAD, CHUNK_MAGIC, number, index, offset, len(proof))
            + b"".join(proof) + data[offset:offset + chunk])


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
    ap.add_argument("--chunk", type=int, default=CHUNK)
    a = ap.parse_args(argv)
    msg = signed(load_key(a.key), a.version, a.number, a.min_number, files_under(a.dir),
                 a.charger, a.chunk)
    sys.stdout.write(msg.decode() + "\n")


if __name__ == "__main__":
    main()
