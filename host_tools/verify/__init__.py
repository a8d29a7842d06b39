"""The validators' own implementation of every check: Merkle proofs (RFC 9162), C2SP
checkpoints, OCMF, receipts, tariffs and prices, ECDSA signature checks.

Pure functions, no I/O, and never importing firmware code: this is the deliberately
independent re-implementation that checks what the charger's firmware produced. Where the two
must agree (tariff rounding, Merkle hashing, the receipt layout), agreement tests in
tests/host/verify/ run both on the same inputs.
"""
