"""Bench rows for witness cosignatures (C2SP tlog-cosignature/v1, Ed25519 via cryptography):

  cosign_verify_us   one cosignature line checked as a light client does: parse the line, key
                     lookup, Ed25519 verify over "cosignature/v1\\ntime T\\n" + checkpoint body
  cosign_sign_us     one cosignature made by a validator (message + Ed25519 sign + line)
"""
import base64
import time

from host_tools.verify import cosignature as cs

ROUNDS = 2000


def run():
    note = ("chargeproof.local/CP-0001\n1234\n%s\ntime 1768455000\n\n"
            "\u2014 chargeproof.local/CP-0001 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n"
            % base64.b64encode(bytes(range(32))).decode())
    signer = cs.Cosigner("bench-validator")
    t0 = time.perf_counter()
    lines = [signer.cosign(note, 1768455000 + i) for i in range(ROUNDS)]
    sign_s = time.perf_counter() - t0
    witnesses = [signer.witness]
    t0 = time.perf_counter()
    for line in lines:
        if len(cs.verify_quorum(cs.add_lines(note, [line]), witnesses, 1)) != 1:
            raise RuntimeError("bench cosignature did not verify")
    verify_s = time.perf_counter() - t0
    return {"cosign_verify_us": round(verify_s / ROUNDS * 1e6, 1),
            "cosign_sign_us": round(sign_s / ROUNDS * 1e6, 1)}


if __name__ == "__main__":
    print(run())
