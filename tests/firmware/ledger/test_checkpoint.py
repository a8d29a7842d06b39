# C2SP checkpoint notes on the device: build, parse and verify with the real KeyStore;
# edits to size, root or time, foreign keys and malformed notes are caught.
import os

from support.fwtest import raises
from ledger import checkpoint
from ledger.keys import KeyStore
from ledger.merkle import Frontier

ORIGIN = "chargeproof.example/CP-0001"


def _root(n):
    f = Frontier()
    for i in range(n):
        f.append(b"%d" % i)
    return f.root()


def test_build_parse_verify_round_trip(tmp_path):
    key = KeyStore(tmp_path + "/k", urandom=os.urandom)
    note = checkpoint.build(ORIGIN, 5, _root(5), 1768455000, key)
    origin, size, root, t, text, sigs = checkpoint.parse(note)
    assert (origin, size, root, t) == (ORIGIN, 5, _root(5), 1768455000)
    assert note.startswith(text + "\n\u2014 " + ORIGIN + " ")
    assert sigs[0][0] == ORIGIN and sigs[0][1] == key.key_id()
    assert checkpoint.verify(note, key)


def test_edited_or_foreign_notes_do_not_verify(tmp_path):
    key = KeyStore(tmp_path + "/k", urandom=os.urandom)
    other = KeyStore(tmp_path + "/o", urandom=os.urandom)
    note = checkpoint.build(ORIGIN, 5, _root(5), 1768455000, key)
    assert not checkpoint.verify(note.replace("\n5\n", "\n6\n"), key)
    assert not checkpoint.verify(note.replace("time 1768455000", "time 1768455001"), key)
    forged_root = checkpoint.body(ORIGIN, 5, _root(4), 1768455000)
    assert not checkpoint.verify(forged_root + note[note.index("\n\n") + 1:], key)
    assert not checkpoint.verify(note, other)               # no signature by that key
    # a cosignature by another key is ignored, the charger's still counts
    cosigned = note + checkpoint.sign(checkpoint.parse(note)[4], other, "witness.example/w1").split("\n\n")[1]
    assert checkpoint.verify(cosigned, key) and checkpoint.verify(cosigned, other, "witness.example/w1")


def test_malformed_notes_raise(tmp_path):
    key = KeyStore(tmp_path + "/k", urandom=os.urandom)
    note = checkpoint.build(ORIGIN, 5, _root(5), None, key)
    assert checkpoint.parse(note)[3] is None
    for bad in (note.replace("\n\n", "\n"), note.replace("\n5\n", "\n05\n"),
                note.replace("\n5\n", "\nfive\n"), "x\n1\n", note[:-1],
                note.replace("\u2014", "-")):
        raises(checkpoint.CheckpointError, checkpoint.parse, bad)
    raises(checkpoint.CheckpointError, checkpoint.body, "a b", 1, bytes(32))
    raises(checkpoint.CheckpointError, checkpoint.body, ORIGIN, 1, bytes(31))
