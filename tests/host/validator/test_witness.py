"""Validators as witnesses (host_tools.validator.witness): each cosigns the checkpoints it
accepted (C2SP tlog-cosignature/v1), stores peers' verified cosignatures, and two charger-signed
roots for one tree size seen by two validators become split-view evidence at both. Real
receipts from the firmware's ledger code; a forked charger (its flash copied) equivocates."""
import pytest

from host_tools.sim.charger import SimCharger
from host_tools.validator.service import Validator
from host_tools.validator import witness as wmod
from host_tools.verify import cosignature as cs


@pytest.fixture
def world(tmp_path):
    charger = SimCharger(tmp_path / "cp", "CP-0001", seed=21)
    vals = []
    for name in ("val-a", "val-b"):
        v = Validator(str(tmp_path / (name + ".sqlite")), name, tariffs=[charger.tariff_json()],
                      clock=lambda: charger.now + 5)
        v.enroll(charger.charger_id, charger.pubkey_der(), origin=charger.origin)
        v.cosigner = wmod.load_cosigner(str(tmp_path / (name + ".key")), name)
        vals.append(v)
    for v in vals:
        v.witnessing = wmod.Witnessing(v.db, v.validator_id, v.cosigner,
                                       peers=[o.cosigner.witness for o in vals], clock=lambda: charger.now + 5,
                                       trees=v.registry.tree if hasattr(v, "registry") else v._tree)
    yield charger, vals
    for v in vals:
        v.close()


def _accept(v, msgs):
    out = []
    for topic, payload in msgs:
        r = v.process(topic, payload)
        assert r.status == "accepted", r
        if r.kind == "checkpoint":
            out += v.witnessing.cosign_accepted(r.charger_id, r.index)
    return out


def test_cosigned_checkpoint_is_published_retained_and_verifies(world, tmp_path):
    charger, (a, b) = world
    pubs = _accept(a, charger.charge())
    (topic, payload, retain), = pubs
    assert topic == "cp/CP-0001/cosig/val-a" and retain
    assert cs.verify_quorum(payload, [a.cosigner.witness], 1) == {"val-a": charger.now + 5}
    # the key file is reused: same identity for every worker of val-a
    assert wmod.load_cosigner(str(tmp_path / "val-a.key"), "val-a").vkey() == a.cosigner.vkey()
    # b checks it (signature of the charger under it, a's line) and keeps it; no evidence
    _accept(b, [])
    assert b.witnessing.peer_message(topic, payload) == []
    (row,) = b.db.cosignatures("CP-0001", 1)
    assert row["cosigner"] == "val-a" and row["line"] in payload.decode()


def test_an_older_checkpoint_is_cosigned_but_not_published_over_a_newer_one(world):
    charger, (a, b) = world
    first = charger.charge()
    second = charger.charge()
    _accept(a, [first[0], second[0], second[1]])
    assert _accept(a, [first[1]]) == []                 # size 1 after size 2: stored, not published
    assert [r["size"] for r in a.db.cosignatures("CP-0001")] == [1, 2]


def test_peer_messages_that_do_not_verify_are_dropped(world):
    charger, (a, b) = world
    (topic, payload, _), = _accept(a, charger.charge())
    stranger = cs.Cosigner("val-a")
    forged = cs.add_lines(payload.decode().split("\n\u2014 val-a")[0] + "\n",
                          [stranger.cosign(payload.decode(), 5)]).encode()
    for t, p in ((topic, forged), ("cp/CP-0001/cosig/val-z", payload), (topic, b"junk"),
                 (topic, payload.replace(b"CP-0001\n1\n", b"CP-0001\n2\n")), (topic, b"x" * 5000)):
        assert b.witnessing.peer_message(t, p) == []
    assert b.db.cosignatures("CP-0001") == [] and b.db.evidence() == []
    assert b.witnessing.counts.get("peer_refused", 0) + b.witnessing.counts.get("peer_ignored", 0) == 5


def test_two_roots_for_one_size_become_evidence_at_both_validators(world, tmp_path):
    charger, (a, b) = world
    _accept(a, charger.charge())
    _accept(b, [])
    twin = charger.clone(tmp_path / "twin")          # same key and log state: it can equivocate
    pub_a = _accept(a, charger.charge(energy_wh=5000))
    # b learns the shared first session, then the twin's (other) second session
    first_receipt = a.db.receipt_at("CP-0001", 0)["receipt"]
    first_cp = a.db.checkpoint("CP-0001", 1)["note"]
    _accept(b, [("cp/CP-0001/receipt/1", first_receipt), ("cp/CP-0001/checkpoint/2", first_cp)])
    pub_b = _accept(b, twin.charge(energy_wh=9000))
    # each reads the other's cosigned checkpoint of size 2: different roots
    ev_b = b.witnessing.peer_message(*pub_a[-1][:2])
    ev_a = a.witnessing.peer_message(*pub_b[-1][:2])
    for v, ev in ((a, ev_a), (b, ev_b)):
        (topic, payload, retain), = ev
        assert topic == "cp/CP-0001/evidence/%s" % v.validator_id and not retain
        (row,) = [e for e in v.db.evidence() if e["kind"] == "split-view"]
        assert row["first"] != row["second"] and b"\n2\n" in row["first"] and b"\n2\n" in row["second"]
    # reported once: the same peer message again adds nothing
    assert b.witnessing.peer_message(*pub_a[-1][:2]) == []
    assert len([e for e in b.db.evidence() if e["kind"] == "split-view"]) == 1


def test_proof_bundles_carry_the_cosignatures_a_light_client_counts(world):
    import json
    from host_tools.lightclient import check as lightclient
    from host_tools.validator.service import proof_bundle
    charger, (a, b) = world
    pubs = _accept(a, charger.charge())
    _accept(b, [])
    b.witnessing.peer_message(*pubs[0][:2])             # b holds a's cosignature of size 1
    bundle = proof_bundle(a.db, "CP-0001", seq=1)
    assert bundle["cosignatures"] and all(line.startswith("\u2014 val-a ") for line in bundle["cosignatures"])
    witnesses = [a.cosigner.witness, b.cosigner.witness]
    text = json.dumps(bundle)
    assert "cosigned by val-a" in lightclient.check(text, charger.pubkey_der(), witnesses=witnesses, quorum=1)
    with pytest.raises(lightclient.Invalid) as exc:
        lightclient.check(text, charger.pubkey_der(), witnesses=witnesses, quorum=2)
    assert exc.value.reason == "missing-cosignatures"
    # a validator serving another's cosignature too: b's bundle carries a's line (b never
    # accepted the checkpoint itself here, so its bundle needs its own receipts: none)
    assert [r["cosigner"] for r in b.db.cosignatures("CP-0001", 1)] == ["val-a"]
