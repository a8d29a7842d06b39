# uplink.acks: only an ack authenticated with the validator's ack key, naming this charger,
# the validator of its topic, a kind, a seq and a digest, gets through; then the outbox checks
# that the digest and kind name the bytes it holds. Nothing else deletes anything.
import json

from support.fwtest import raises
from support import acking
from uplink.acks import AckChecker, load_keys
from uplink.outbox import BadAck, Outbox

CP = "CP-A1"


def _box(tmp_path):
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    box.put("receipt", b"OCMF|{\"r\":1}|{}")
    box.put("checkpoint", b"note-1")
    return box


def test_an_authentic_ack_names_seq_kind_and_digest():
    chk = AckChecker(CP, acking.KEYS)
    raw = acking.ack(CP, "v1", "receipt", 1, b"OCMF|{\"r\":1}|{}")
    assert chk.check("v1", raw) == (1, 0, acking.sha_hex(b"OCMF|{\"r\":1}|{}"))
    raw = acking.ack(CP, "v2", "checkpoint", 2, b"note-1")
    assert chk.check("v2", raw) == (2, 1, acking.sha_hex(b"note-1"))


def _tamper(raw, **fields):
    obj = json.loads(raw)
    obj.update(fields)
    return json.dumps(obj).encode()


def test_forged_or_foreign_acks_are_refused():
    chk = AckChecker(CP, acking.KEYS)
    good = acking.ack(CP, "v1", "receipt", 1, b"r")
    bad = [
        ("v1", _tamper(good, mac="0" * 64)),                     # no key
        ("v1", _tamper(good, seq=2)),                            # MAC covers the seq
        ("v1", _tamper(good, k="checkpoint")),                   # ... the kind
        ("v1", _tamper(good, sha256=acking.sha_hex(b"other"))),  # ... the digest
        ("v1", acking.ack(CP, "v1", "receipt", 1, b"r", key_hex="44" * 32)),    # wrong key
        ("v1", acking.ack("CP-OTHER", "v1", "receipt", 1, b"r")),  # another charger's ack
        ("v2", good),                                            # replayed under v2's topic
        ("v2", _tamper(good, v="v2")),                           # ... and relabelled
        ("intruder", acking.ack(CP, "v1", "receipt", 1, b"r")),  # a validator without a key
        ("v1", _tamper(good, kid="k9")),
        ("v1", _tamper(good, sha256=acking.sha_hex(b"r").upper())),   # digest must be lowercase
        ("v1", _tamper(good, sha256="g" + acking.sha_hex(b"r")[1:])),  # ... hex digits only
        ("v1", _tamper(good, mac=" " + "0" * 63)),
        ("v1", _tamper(good, sha256="\u00e9" + acking.sha_hex(b"r")[1:])),   # ... ASCII only
        ("v1", _tamper(good, seq=0)), ("v1", _tamper(good, seq=True)), ("v1", _tamper(good, seq="1")),
        ("v1", _tamper(good, k="telemetry")),
        ("v1", b"not json"), ("v1", b"[1, 2]"), ("v1", b'{"seq": 1}'),
        ("v1", good[:-1] + b' ' * 600 + b'}'),                  # too long
    ]
    for validator, raw in bad:
        raises(BadAck, chk.check, validator, raw)


def test_during_a_rotation_both_key_ids_verify_and_no_third():
    keys = {"v1": {"k1": "11" * 32, "k2": "aa" * 32}}
    chk = AckChecker(CP, keys)
    assert chk.check("v1", acking.ack(CP, "v1", "receipt", 3, b"x", keys=keys))[0] == 3
    assert chk.check("v1", acking.ack(CP, "v1", "receipt", 3, b"x", kid="k2", keys=keys))[0] == 3
    raises(ValueError, load_keys, {"v1": {"k1": "11" * 32, "k2": "22" * 32, "k3": "33" * 32}})
    raises(ValueError, load_keys, {"v1": {"k1": "11" * 31}})
    raises(ValueError, load_keys, {"v1": {"k1": "zz" * 32}})
    raises(ValueError, load_keys, {"v/1": {"k1": "11" * 32}})


def test_an_authentic_ack_for_bytes_the_charger_does_not_hold_deletes_nothing(tmp_path):
    box = _box(tmp_path)
    chk = AckChecker(CP, acking.KEYS)
    for raw in (acking.ack(CP, "v1", "receipt", 1, b"some other receipt"),
                acking.ack(CP, "v1", "checkpoint", 1, b"OCMF|{\"r\":1}|{}"),    # kind differs
                acking.ack(CP, "v1", "receipt", 9, b"OCMF|{\"r\":1}|{}")):      # never written
        seq, tag, digest = chk.check("v1", raw)
        raises(BadAck, box.ack, seq, "v1", digest, tag)
    assert box.acked == 0 and box.pending() == 2
    seq, tag, digest = chk.check("v1", acking.ack(CP, "v1", "receipt", 1, b"OCMF|{\"r\":1}|{}"))
    assert box.ack(seq, "v1", digest, tag) and box.acked == 1
