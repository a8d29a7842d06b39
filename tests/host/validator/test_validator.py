"""The validator against real receipts made by the firmware's ledger code (ChargerLog with a real
KeyStore, the firmware tariff), in-process through Validator.process(): what is accepted, what is
rejected with which reason and evidence, what is acknowledged."""
import base64
import hashlib
import json

import pytest

from host_tools.lightclient import check as lightclient
from host_tools.verify import merkle
from host_tools.sim.charger import CARD_ID, SimCharger
from host_tools.validator.service import Validator, proof_bundle
from ledger import receipt as fw_receipt
from uplink import outbox
from uplink.acks import AckChecker


@pytest.fixture
def charger(tmp_path):
    return SimCharger(tmp_path / "cp", "CP-0001", seed=11)


@pytest.fixture
def validator(tmp_path, charger):
    v = Validator(str(tmp_path / "ledger.sqlite"), "val-1", tariffs=[charger.tariff_json()],
                  clock=lambda: charger.now + 5)
    v.enroll(charger.charger_id, charger.pubkey_der(), origin=charger.origin)
    yield v
    v.close()


def feed(v, messages):
    return [v.process(t, p) for t, p in messages]


def reasons(v):
    return [r["reason"] for r in v.db.rejections()]


def evidence_kinds(v):
    return [e["kind"] for e in v.db.evidence()]


def test_valid_sessions_are_accepted_stored_and_acked_in_the_uplinks_format(validator, charger):
    for kw in ({}, {"duration_s": 14 * 3600}, {"energy_wh": 0, "idle_s": 4000}, {"energy_wh": 123456}):
        msgs = charger.charge(**kw)
        results = feed(validator, msgs)
        for (topic, payload), r in zip(msgs, results):
            assert r.status == "accepted", r
            # The ack is what firmware/uplink/acks.py accepts with the provisioned key, names the
            # outbox seq of the topic and the SHA-256 of the exact bytes, and goes to this
            # validator's ack topic.
            seq, tag, digest = _checker(validator).check("val-1", r.ack)
            assert seq == int(topic.rsplit("/", 1)[1])
            assert tag == outbox.kind_tag(topic.split("/")[2])
            assert digest == hashlib.sha256(payload).hexdigest()
            assert r.ack_topic == "cp/CP-0001/ack/val-1"
    rows = validator.db.sessions("CP-0001")
    assert [r["log_index"] for r in rows] == [0, 1, 2, 3]
    assert [r["status"] for r in rows] == ["accepted"] * 4
    assert [r["energy_wh"] for r in rows] == [7400, 7400, 0, 123456]
    assert rows[2]["price_minor"] > 50          # session fee + idle fee, nothing for energy
    assert validator.db.latest_checkpoint("CP-0001")["size"] == 4
    assert validator.db.rejections() == [] and validator.db.evidence() == []


def test_resent_receipt_is_a_duplicate_acked_again_and_counted_once(validator, charger):
    msgs = charger.charge()
    first = feed(validator, msgs)
    again = feed(validator, msgs)
    assert [r.status for r in again] == ["duplicate", "duplicate"]
    assert [r.ack for r in again] != [None, None]
    assert json.loads(again[0].ack)["seq"] == json.loads(first[0].ack)["seq"]
    (total,) = validator.db.totals()
    assert total["sessions"] == 1 and total["energy_wh"] == 7400
    assert validator.db.log_size("CP-0001") == 1


def test_forged_receipt_is_rejected_recorded_bounded_and_never_acked_nor_evidence(validator, charger):
    (topic, payload), _ = charger.charge()
    body, sig = payload.rsplit(b"|", 1)
    forged = body.replace(b'"price":', b'"price":1', 1) + b"|" + sig        # a cheaper session
    r = validator.process(topic, forged)
    assert (r.status, r.reason, r.ack) == ("rejected", "bad-signature", None)
    assert validator.db.log_size("CP-0001") == 0
    # An unauthenticated copy accuses nobody (issue 8): a rejection, kept as hash, size, prefix.
    assert evidence_kinds(validator) == [] and r.evidence is None
    row = validator.db.rejections()[0]
    assert row["sha256"] == hashlib.sha256(forged).hexdigest() and row["size"] == len(forged)
    assert forged.startswith(row["raw"]) and len(row["raw"]) < len(forged)
    # the genuine receipt is still accepted afterwards
    assert validator.process(topic, payload).status == "accepted"


def test_tampered_ocmf_inside_a_resigned_envelope_is_caught(validator, charger):
    (topic, payload), _ = charger.charge()
    body, _ = payload.rsplit(b"|", 1)
    genuine = b'\\"ID\\":\\"%s\\"' % CARD_ID.encode()
    assert genuine in body
    body = body.replace(genuine, b'\\"ID\\":\\"%s\\"' % (b"F" * 32))
    resigned = fw_receipt.sign(body.decode(), charger.keys)    # envelope re-signed (low S, as the charger does), OCMF not
    r = validator.process(topic, resigned)
    assert (r.status, r.reason) == ("rejected", "bad-ocmf-signature")


def test_receipt_signed_by_an_unknown_key_is_told_apart_from_forgery(tmp_path, validator, charger):
    impostor = SimCharger(tmp_path / "impostor", "CP-0001", seed=99)      # same id, its own key
    (topic, payload), (cp_topic, cp_note) = impostor.charge()
    r = validator.process(topic, payload)
    assert (r.status, r.reason, r.ack) == ("rejected", "unknown-key", None)
    assert hashlib.sha256(impostor.pubkey_der()).hexdigest()[:8] in r.detail     # names the key it found
    # a key of its own proves nothing against the enrolled charger: no evidence (issue 8)
    assert validator.db.evidence() == [] and r.evidence is None
    r = validator.process(cp_topic, cp_note)
    assert (r.status, r.reason, r.ack) == ("rejected", "unknown-key", None)
    assert validator.db.log_size("CP-0001") == 0


def test_unknown_charger_and_malformed_messages(validator, tmp_path):
    stranger = SimCharger(tmp_path / "s", "CP-9999", seed=5)
    r = validator.process(*stranger.charge()[0])
    assert (r.status, r.reason, r.ack) == ("rejected", "unknown-charger", None)
    assert evidence_kinds(validator) == []
    for topic, payload in (("cp/CP-0001/receipt/1", b"not a receipt"), ("cp/CP-0001/receipt/x", b"{}|00"), ("cp/CP-0001/receipt/0", b"{}|00"),
                           ("cp/CP-0001/receipt/+7", b"{}|00"),
                           ("cp/CP-0001/checkpoint/2", b"origin\n1\n!!!\n\n"), ("cp/CP-0001/receipt/3", b"")):
        r = validator.process(topic, payload)
        assert (r.status, r.reason, r.ack) == ("rejected", "malformed", None), (topic, r)
    assert validator.process("cp/CP-0001/status", b"online").status == "ignored"
    r = validator.process("cp/CP-0001/receipt/9", b"{" + b" " * 100000)
    assert (r.status, r.reason) == ("rejected", "malformed")
    assert len(validator.db.rejections()[-1]["raw"]) <= 256


def test_gap_is_rejected_as_evidence_then_filled_in_order(tmp_path, charger):
    # With parking off (park_ahead=0) every early record is a gap at once, as it was before
    # parking; the default parks them (the tests below).
    validator = Validator(str(tmp_path / "no-parking.sqlite"), "val-1", tariffs=[charger.tariff_json()],
                          clock=lambda: charger.now + 5, park_ahead=0)
    validator.enroll(charger.charger_id, charger.pubkey_der(), origin=charger.origin)
    first = charger.charge()
    second = charger.charge()
    third = charger.charge()
    r = validator.process(*second[0])
    assert (r.status, r.reason, r.ack) == ("rejected", "gap", None)
    r = validator.process(*first[1])                       # checkpoint of size 1 before its receipt
    assert (r.status, r.reason, r.ack) == ("rejected", "gap", None)
    for msg in second[1:] + third:
        assert validator.process(*msg).reason == "gap"
    assert evidence_kinds(validator) == ["gap"]            # one hole, one piece of evidence
    assert reasons(validator) == ["gap"] * 5               # every refusal is still on record
    # the outbox resends in order: everything lands
    assert [r.status for r in feed(validator, first + second + third)] == ["accepted"] * 6
    assert validator.db.log_size("CP-0001") == 3
    validator.close()


def test_early_records_are_parked_and_stored_in_order_without_a_gap(tmp_path, charger):
    """n+1 before n (a charger resending before the validator resubscribed): n+1 waits, not
    acked and not evidence; n lets it through, both stored in order and acked."""
    now = [charger.now + 5]
    v = Validator(str(tmp_path / "ledger.sqlite"), "val-1", tariffs=[charger.tariff_json()],
                  clock=lambda: now[0])
    v.enroll(charger.charger_id, charger.pubkey_der(), origin=charger.origin)
    first, second, third = charger.charge(), charger.charge(), charger.charge()
    now[0] = charger.now + 5
    for msg in second + [third[1], third[0]]:             # receipts 1, 2 and checkpoints 2, 3 early
        r = v.process(*msg)
        assert (r.status, r.reason, r.ack, r.evidence) == ("parked", "early", None, None), r
    assert v.process(*second[0]).status == "parked"        # a resend of a parked record: held once
    assert len(v.db.parked("CP-0001")) == 4
    r = v.process(*first[0])                               # the predecessor: everything follows
    assert r.status == "accepted"
    assert [(x.kind, x.index, x.status) for x in r.also] == [
        ("receipt", 1, "accepted"), ("receipt", 2, "accepted"), ("checkpoint", 2, "accepted"),
        ("checkpoint", 3, "accepted")]
    assert all(x.ack is not None for x in r.also)
    assert v.process(*first[1]).status == "accepted"
    assert [row["log_index"] for row in v.db.sessions("CP-0001")] == [0, 1, 2]
    assert v.db.rejections() == [] and v.db.evidence() == [] and v.db.parked() == []
    assert v.expire_parked() == []
    v.close()


def test_a_parked_record_whose_predecessor_never_comes_becomes_a_gap_after_the_bound(tmp_path, charger):
    later = [0]
    v = Validator(str(tmp_path / "ledger.sqlite"), "val-1", tariffs=[charger.tariff_json()],
                  clock=lambda: charger.now + 5 + later[0], park_expire_s=300)
    v.enroll(charger.charger_id, charger.pubkey_der(), origin=charger.origin)
    feed(v, charger.charge())
    charger.charge()                                       # index 1: never delivered
    late = charger.charge()
    assert v.process(*late[0]).status == "parked"
    later[0] += 299
    assert v.expire_parked() == [] and v.db.evidence() == []     # within the bound: still waits
    later[0] += 2
    expired = v.expire_parked()
    assert [(r.status, r.reason, r.evidence) for r in expired] == [("rejected", "gap", "gap")]
    assert reasons(v) == ["gap"] and evidence_kinds(v) == ["gap"]
    assert v.db.parked() == [] and v.db.log_size("CP-0001") == 1
    v.close()


def test_parking_is_bounded_per_charger(tmp_path, charger):
    now = [charger.now + 5]
    v = Validator(str(tmp_path / "ledger.sqlite"), "val-1", tariffs=[charger.tariff_json()],
                  clock=lambda: now[0], park_max=2, park_ahead=3)
    v.enroll(charger.charger_id, charger.pubkey_der(), origin=charger.origin)
    msgs = [charger.charge()[0] for _ in range(6)]
    now[0] = charger.now + 5
    assert [v.process(*m).status for m in msgs[1:3]] == ["parked", "parked"]
    assert v.process(*msgs[3]).reason == "gap"             # a third parked record: over park_max
    assert v.process(*msgs[5]).reason == "gap"             # 5 past a log of 0: over park_ahead
    r = v.process(*msgs[0])
    assert [x.status for x in [r] + r.also] == ["accepted", "accepted", "accepted"]
    assert v.db.log_size("CP-0001") == 3 and v.db.parked() == []
    v.close()


def test_fork_and_split_view_are_evidence(tmp_path, validator, charger):
    feed(validator, charger.charge())
    twin = charger.clone(tmp_path / "twin")               # flash copied: same key, same log state
    honest = charger.charge(energy_wh=1000)
    other = twin.charge(energy_wh=9000)                  # same index, different receipt
    assert [r.status for r in feed(validator, honest)] == ["accepted", "accepted"]
    r = validator.process(*other[0])
    assert (r.status, r.reason, r.ack) == ("rejected", "fork", None)
    r = validator.process(*other[1])
    assert (r.status, r.reason, r.ack) == ("rejected", "split-view", None)
    fork, split = validator.db.evidence()
    assert fork["kind"] == "fork" and fork["first"] == honest[0][1] and fork["second"] == other[0][1]
    # two checkpoints, both validly signed by the charger, same size, different roots
    assert split["kind"] == "split-view" and split["first"] == honest[1][1] and split["second"] == other[1][1]
    assert validator.db.log_size("CP-0001") == 2


def test_checkpoint_whose_root_disagrees_with_the_receipts_is_a_fork(tmp_path, validator, charger):
    feed(validator, charger.charge())
    twin = charger.clone(tmp_path / "twin")
    honest_receipt = charger.charge()[0]
    twin_cp = twin.charge(energy_wh=1)[1]
    assert validator.process(*honest_receipt).status == "accepted"
    r = validator.process(*twin_cp)                      # no stored checkpoint of size 2 yet
    assert (r.status, r.reason) == ("rejected", "fork")
    assert evidence_kinds(validator) == ["fork"]


def test_meter_going_backwards_across_sessions_is_disputed_with_evidence(validator, charger):
    feed(validator, charger.charge(energy_wh=5000))
    end = charger.meter_wh
    charger.meter_wh = end - 2000                        # meter swapped back / register rolled back
    msgs = charger.charge(energy_wh=3000)
    r = validator.process(*msgs[0])
    assert (r.status, r.reason) == ("rejected", "meter-backwards")
    assert r.ack is not None and r.status == "rejected"     # final verdict: stored, acked
    row = validator.db.receipt_at("CP-0001", 1)
    assert row["status"] == "disputed" and row["note"].startswith("meter-backwards")
    assert evidence_kinds(validator) == ["meter-backwards"]
    assert validator.process(*msgs[1]).status == "accepted"   # the log itself is intact
    (total,) = validator.db.totals()
    assert total["sessions"] == 1


def test_energy_drawn_between_sessions_is_flagged(validator, charger):
    feed(validator, charger.charge())
    r = validator.process(*charger.charge(gap_wh=321)[0])
    assert r.status == "flagged"
    row = validator.db.receipt_at("CP-0001", 1)
    assert row["status"] == "flagged" and "321 Wh" in row["note"]
    (total,) = validator.db.totals()
    assert total["sessions"] == 2                      # flagged still bills


def test_a_new_meter_starts_its_own_chain(validator, charger):
    feed(validator, charger.charge())
    s = charger.session_dict(meter_serial="SN-NEW", gap_wh=-charger.meter_wh + 10)
    rec, cp, _ = charger.append(s)
    assert validator.process(*charger.message("receipt", rec)).status == "accepted"


def test_price_mismatch_and_unknown_tariff(validator, charger):
    s = charger.session_dict()
    s["net_minor"] += 1
    s["price_minor"] += 1
    rec, cp, _ = charger.append(s)                       # the charger signs a wrong price
    r = validator.process(*charger.message("receipt", rec))
    assert (r.status, r.reason) == ("rejected", "price-mismatch")
    assert "tariff gives" in r.detail
    s = charger.session_dict()
    s["net_minor"] += 1
    s["tax_minor"] -= 1                                  # same total, wrong split: tax is owed to someone
    rec, cp, _ = charger.append(s)
    r = validator.process(*charger.message("receipt", rec))
    assert (r.status, r.reason) == ("rejected", "price-mismatch")
    other = dict(charger.tariff_doc, session_fee_minor=0)
    from session import tariff as fw_tariff
    s = charger.session_dict(tariff=fw_tariff.Tariff(other).hash)
    rec, cp, _ = charger.append(s)
    r = validator.process(*charger.message("receipt", rec))
    assert (r.status, r.reason) == ("rejected", "unknown-tariff")
    assert reasons(validator) == ["price-mismatch", "price-mismatch", "unknown-tariff"]
    assert [x["status"] for x in validator.db.sessions()] == ["disputed"] * 3
    # publishing the tariff does not rewrite history, but bills the next session
    validator.publish_tariff(other)
    s = charger.session_dict(tariff=fw_tariff.Tariff(other).hash)
    s.update(net_minor=0, tax_minor=0, price_minor=0)
    import session.tariff as t
    split = t.EnergySplit(t.Tariff(other), s["begin_time"], s["begin_wh"])
    split.sample(s["charge_end_time"], s["end_wh"])
    split.sample(s["end_time"], s["end_wh"])
    net, tax, total = t.price(t.Tariff(other), split.segments, s["begin_time"], s["charge_end_time"], s["end_time"])
    s.update(segments=split.segments, net_minor=net, tax_minor=tax, price_minor=total)
    rec, cp, _ = charger.append(s)
    assert validator.process(*charger.message("receipt", rec)).status == "accepted"


def test_time_sanity(validator, charger):
    feed(validator, charger.charge())
    r = validator.process(*charger.charge(pause_s=-1800)[0])      # begins before the last one ended
    assert (r.status, r.reason) == ("rejected", "time-overlap")
    s = charger.session_dict(pause_s=86400)
    validator.clock = lambda: s["begin_time"]                        # our clock: the session's begin
    rec, cp, _ = charger.append(s)
    r = validator.process(*charger.message("receipt", rec))
    assert (r.status, r.reason) == ("rejected", "time-future")
    r = validator.process(*charger.message("checkpoint", cp))
    assert (r.status, r.reason) == ("rejected", "time-future")


def test_restart_rebuilds_the_log_from_the_file(tmp_path, charger):
    path = str(tmp_path / "l.sqlite")
    v = Validator(path, "val-1", tariffs=[charger.tariff_json()], clock=lambda: charger.now)
    v.enroll(charger.charger_id, charger.pubkey_der(), origin=charger.origin)
    feed(v, charger.charge() + charger.charge())
    v.close()
    v = Validator(path, "val-1", clock=lambda: charger.now)
    assert [r.status for r in feed(v, charger.charge())] == ["accepted", "accepted"]
    assert v.db.latest_checkpoint("CP-0001")["size"] == 3
    v.close()


def test_backends_reach_the_same_verdicts(tmp_path, charger):
    msgs = []
    for i in range(3):
        msgs += charger.charge()
    (t, p) = msgs[2]
    msgs.append((t, p[:-3] + (b"000" if not p.endswith(b"000") else b"111")))   # broken signature
    verdicts = {}
    for backend in ("fast", "reference", "both"):
        v = Validator(str(tmp_path / (backend + ".sqlite")), "v", tariffs=[charger.tariff_json()],
                      backend=backend, clock=lambda: charger.now)
        v.enroll(charger.charger_id, charger.pubkey_der(), origin=charger.origin)
        verdicts[backend] = [(r.status, r.reason) for r in feed(v, msgs)]
        v.close()
    assert verdicts["fast"] == verdicts["reference"] == verdicts["both"]
    assert verdicts["fast"][-1][0] in ("rejected", "duplicate")


def test_proof_bundle_proves_inclusion_and_consistency(validator, charger):
    for _ in range(5):
        feed(validator, charger.charge())
    b = proof_bundle(validator.db, "CP-0001", seq=2, old_size=3)
    assert b["tree_size"] == 5 and b["index"] == 1
    proof = [base64.b64decode(h) for h in b["inclusion_proof"]]
    cp = validator.db.latest_checkpoint("CP-0001")
    assert b["checkpoint"].encode() == cp["note"]
    merkle.verify_inclusion(merkle.leaf_hash(b["receipt"].encode()), b["index"], b["tree_size"], proof, cp["root"])
    old = validator.db.checkpoint("CP-0001", 3)
    merkle.verify_consistency(3, 5, old["root"], cp["root"], [base64.b64decode(h) for h in b["consistency"]["proof"]])
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(merkle.leaf_hash(b["receipt"].encode() + b" "), b["index"], b["tree_size"],
                                proof, cp["root"])
    assert lightclient.check(json.dumps(b), charger.pubkey_der()).startswith("receipt")


def _lying_receipt(charger, index, pg=None, edit=None):
    """A receipt a buggy or lying firmware could sign: its own key over both the OCMF record and
    an envelope that says something else (composed from the firmware's own builders)."""
    from ledger import ocmf as fw_ocmf, receipt as fw_receipt
    s = charger.session_dict()
    charger.now, charger.meter_wh = s["end_time"] + 1, s["end_wh"]
    record = fw_ocmf.sign(fw_ocmf.payload(s, pg or index + 1), charger.keys)
    body = fw_receipt.body(charger.charger_id, index + 1, index, s, record)
    if edit:
        body = edit(body, s)
    return charger.message("receipt", fw_receipt.sign(body, charger.keys))


def test_an_envelope_that_contradicts_its_own_ocmf_record_is_disputed_with_evidence(validator, charger):
    def energy(body, s):
        e = s["end_wh"] - s["begin_wh"]
        return body.replace('"energy_wh":%d' % e, '"energy_wh":%d' % (e + 1)).replace(
            '"segments":[[%d,%d]' % (s["begin_time"], e), '"segments":[[%d,%d]' % (s["begin_time"], e + 1))
    cases = [("energy-mismatch", None, energy),
             ("pagination-mismatch", 9, None),
             ("time-mismatch", None, lambda b, s: b.replace('"end":%d' % s["end_time"], '"end":%d' % (s["end_time"] + 60))),
             ("inconsistent", None, lambda b, s: b.replace('"net":%d' % s["net_minor"], '"net":%d' % (s["net_minor"] + 1)))]
    for index, (reason, pg, edit) in enumerate(cases):
        r = validator.process(*_lying_receipt(charger, index, pg, edit))
        assert (r.status, r.reason) == ("rejected", reason), r
        assert r.ack is not None                    # signed by the charger: stored, a final verdict
        assert validator.db.receipt_at("CP-0001", index)["status"] == "disputed"
    assert evidence_kinds(validator) == ["self-contradiction"] * 4
    assert validator.db.totals() == []              # nothing of it bills


def test_a_skipped_sequence_number_is_a_pagination_gap(validator, charger):
    feed(validator, charger.charge())
    charger.log.seq += 1                               # the firmware signs seq 3 after 1
    msgs = charger.charge()
    r = validator.process(*msgs[0])
    assert (r.status, r.reason) == ("rejected", "pagination-gap")
    assert validator.db.receipt_at("CP-0001", 1)["status"] == "disputed"
    assert evidence_kinds(validator) == ["pagination-gap"]
    assert validator.process(*msgs[1]).status == "accepted"        # its log is still whole


def test_a_late_older_checkpoint_is_checked_against_the_newer_one(validator, charger):
    msgs = [charger.charge() for _ in range(3)]
    for (rt, rp), _ in msgs:
        assert validator.process(rt, rp).status == "accepted"
    assert validator.process(*msgs[2][1]).status == "accepted"       # size 3 first
    assert validator.process(*msgs[0][1]).status == "accepted"       # then 1: consistent with 3
    assert validator.process(*msgs[1][1]).status == "accepted"       # and 2 between them
    assert [c["size"] for c in validator.db.checkpoints("CP-0001")] == [1, 2, 3]
    assert validator.db.checkpoint_below("CP-0001", 3)["size"] == 2
    assert validator.db.checkpoint_above("CP-0001", 1)["size"] == 2
    assert validator.db.checkpoint_above("CP-0001", 3) is None


def test_messages_on_another_chargers_topic_or_origin_are_refused(tmp_path, validator, charger):
    (topic, rec), (cp_topic, note) = charger.charge()
    other = SimCharger(tmp_path / "o", "CP-0002", seed=12)
    validator.enroll(other.charger_id, other.pubkey_der(), origin="elsewhere.example/CP-0002")
    r = validator.process(topic.replace("CP-0001", "CP-0002"), rec)
    assert (r.status, r.reason, r.ack) == ("rejected", "wrong-topic", None)
    (_, _), (cp2_topic, note2) = other.charge()
    r = validator.process(cp2_topic, note2)
    assert (r.status, r.reason, r.ack) == ("rejected", "wrong-origin", None)


def test_enrolment_defaults_to_the_firmwares_checkpoint_origin(tmp_path, charger):
    v = Validator(str(tmp_path / "d.sqlite"), "val-d", tariffs=[charger.tariff_json()], clock=lambda: charger.now)
    v.enroll(charger.charger_id, charger.pubkey_der())          # no origin given
    assert [r.status for r in feed(v, charger.charge())] == ["accepted", "accepted"]
    v.close()


def test_a_replayed_receipt_under_another_seq_cannot_make_the_charger_drop_a_record(tmp_path, validator, charger):
    """An attacker republishes a genuine receipt on the topic of outbox seq 2 (which holds the
    checkpoint). The validator answers 'duplicate' for that seq, but the ack names the bytes it
    saw, so the charger's own outbox refuses it and keeps record 2."""
    box = outbox.Outbox(str(tmp_path / "outbox"))
    (rt, rec), (ct, cp) = charger.charge()
    assert box.put("receipt", rec) == 1 and box.put("checkpoint", cp) == 2
    r1 = validator.process(rt, rec)
    box.ack(*_ack_args(validator, r1))
    assert box.acked == 1
    replay = validator.process(ct.replace("/checkpoint/", "/receipt/"), rec)
    assert replay.status == "duplicate"
    with pytest.raises(outbox.BadAck):
        box.ack(*_ack_args(validator, replay))
    assert box.acked == 1 and box.get(2) is not None
    box.ack(*_ack_args(validator, validator.process(ct, cp)))
    assert box.acked == 2


def _checker(validator, charger_id="CP-0001"):
    """The charger's side of the acks: the keys provisioning gives it (acks.AckKeys)."""
    prov = validator.ack_keys.provisioning(validator.validator_id, charger_id)
    return AckChecker(charger_id, {validator.validator_id: prov["ack_keys"]})


def _ack_args(validator, result):
    """What the charger hands its outbox for this ack, after authenticating it."""
    seq, tag, digest = _checker(validator).check(validator.validator_id, result.ack)
    return seq, result.ack_topic.rsplit("/", 1)[1], digest, tag
