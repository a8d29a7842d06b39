"""Checkpoints signed on the device (firmware/ledger/checkpoint.py, real KeyStore) read and
verified on the host as C2SP signed notes; tampered notes, wrong keys and rewritten histories
are told apart."""
import base64
import os

import pytest

from host_tools.verify import checkpoint as host_cp
from host_tools.verify import merkle
from ledger import checkpoint as fw_cp
from ledger.keys import KeyStore

ORIGIN = "chargeproof.example/CP-0001"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("cpkeys")
    return KeyStore(str(d / "a"), urandom=os.urandom), KeyStore(str(d / "b"), urandom=os.urandom)


def test_device_note_is_a_c2sp_checkpoint(keys):
    key = keys[0]
    tree = merkle.Tree([b"a", b"b", b"c"])
    note = fw_cp.build(ORIGIN, 3, tree.root(), 1768455000, key)
    text, sigline = note.split("\n\n")
    assert text == "%s\n3\n%s\ntime 1768455000" % (ORIGIN, base64.b64encode(tree.root()).decode())
    assert sigline.startswith("\u2014 %s " % ORIGIN) and sigline.endswith("\n")
    raw = base64.b64decode(sigline.split(" ")[2])
    assert raw[:4] == host_cp.key_id(key.public_key_der())       # type 0x02: SHA-256(SPKI)[:4]
    cp = host_cp.parse(note)
    assert (cp.origin, cp.size, cp.root, cp.time) == (ORIGIN, 3, tree.root(), 1768455000)
    cp.verify(key.public_key_der())
    # the device's own parser agrees
    assert fw_cp.parse(note)[:4] == (ORIGIN, 3, tree.root(), 1768455000)


def test_tampered_notes_fail_their_signature(keys):
    key = keys[0]
    root = merkle.Tree([b"a", b"b", b"c"]).root()
    note = fw_cp.build(ORIGIN, 3, root, 1768455000, key)
    other_root = base64.b64encode(merkle.Tree([b"a", b"b", b"x"]).root()).decode()
    sig = note.split(" ")[-1].strip()
    raw = base64.b64decode(sig)
    flipped = base64.b64encode(raw[:10] + bytes([raw[10] ^ 1]) + raw[11:]).decode()
    for bad in (note.replace("\n3\n", "\n4\n"),                                  # size
                note.replace(base64.b64encode(root).decode(), other_root),        # root
                note.replace("time 1768455000", "time 1768455001"),               # time
                note.replace(sig, flipped)):                                      # signature
        with pytest.raises(host_cp.BadSignature):
            host_cp.parse(bad).verify(key.public_key_der())
    with pytest.raises(host_cp.WrongKey):
        host_cp.parse(note).verify(keys[1].public_key_der())


def test_malformed_notes_are_rejected_on_both_sides(keys):
    note = fw_cp.build(ORIGIN, 3, bytes(32), 5, keys[0])
    for bad in (note.replace("\n\n", "\n"),                # no signature block
                note.replace("\n3\n", "\n03\n"),           # leading zero
                note.replace("\n3\n", "\n-3\n"),
                note.replace("AAAAAAAA", "AAAA", 1),        # root not 32 bytes
                note.replace("\u2014 ", "- ")):            # not an em dash
        with pytest.raises(host_cp.CheckpointError):
            host_cp.parse(bad)
        with pytest.raises(fw_cp.CheckpointError):
            fw_cp.parse(bad)
    with pytest.raises(fw_cp.CheckpointError):
        fw_cp.body("has space", 1, bytes(32))


def test_consistency_between_checkpoints_and_equivocation(keys):
    key = keys[0]
    pub = key.public_key_der()
    leaves = [b"r%d" % i for i in range(20)]
    tree = merkle.Tree(leaves)
    old = host_cp.parse(fw_cp.build(ORIGIN, 7, tree.root(7), 100, key))
    new = host_cp.parse(fw_cp.build(ORIGIN, 20, tree.root(20), 200, key))
    host_cp.check_extends(old, new, tree.consistency_proof(7, 20), pub)
    # history rewritten: leaf 3 replaced, and the charger signed the new tree
    forked = merkle.Tree(leaves[:3] + [b"rewritten"] + leaves[4:])
    fork = host_cp.parse(fw_cp.build(ORIGIN, 20, forked.root(20), 300, key))
    with pytest.raises(host_cp.Equivocation):
        host_cp.check_extends(old, fork, forked.consistency_proof(7, 20), pub)
    same_size = host_cp.parse(fw_cp.build(ORIGIN, 20, forked.root(20), 301, key))
    with pytest.raises(host_cp.Equivocation):
        host_cp.check_extends(new, same_size, [], pub)
