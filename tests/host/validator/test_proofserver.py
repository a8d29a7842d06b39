"""Proof serving over HTTP: a light client fetches its bundle and a consistency proof from a
validator's ledger while the validator keeps appending, and checks them with the light client."""
import base64
import json
import threading
import urllib.error
import urllib.request

import pytest

from host_tools.lightclient import check as lightclient
from host_tools.verify import merkle
from host_tools.validator.proofserver import make_server
from host_tools.sim.charger import SimCharger
from host_tools.validator.service import Validator


@pytest.fixture
def served(tmp_path):
    c = SimCharger(tmp_path / "cp", "CP-0007", seed=7)
    v = Validator(str(tmp_path / "l.sqlite"), "val-1", tariffs=[c.tariff_json()], clock=lambda: c.now)
    v.enroll(c.charger_id, c.pubkey_der(), origin=c.origin)
    for _ in range(3):
        for t, p in c.charge():
            assert v.process(t, p).status == "accepted"
    server = make_server(str(tmp_path / "l.sqlite"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": "http://127.0.0.1:%d" % server.server_port, "charger": c, "validator": v,
           "token": lambda seq: server.service.token_for("CP-0007", seq=seq)}
    server.shutdown()
    server.server_close()
    v.close()


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers.get_content_type(), r.read().decode()


def status_of(url):
    try:
        return get(url)[0]
    except urllib.error.HTTPError as exc:
        assert json.loads(exc.read())["error"]
        return exc.code


def test_bundle_from_the_server_passes_the_light_client(served):
    code, ctype, body = get(served["url"] + "/proof/" + served["token"](2))
    assert (code, ctype) == (200, "application/json")
    assert lightclient.check(body, served["charger"].pubkey_der()).startswith("receipt")
    code, ctype, note = get(served["url"] + "/checkpoint/CP-0007")
    assert ctype == "text/plain" and note.split("\n")[1] == "3"
    chargers = json.loads(get(served["url"] + "/chargers")[2])
    assert chargers[0]["charger_id"] == "CP-0007" and chargers[0]["receipts"] == 3


def test_proofs_follow_the_log_as_it_grows(served):
    c, v, url = served["charger"], served["validator"], served["url"]
    old_note = get(url + "/checkpoint/CP-0007")[2]
    for _ in range(4):
        for t, p in c.charge():
            assert v.process(t, p).status == "accepted"
    b = json.loads(get(url + "/proof/%s?old_size=3" % served["token"](2))[2])
    assert b["tree_size"] == 7
    assert lightclient.check(json.dumps(b), c.pubkey_der()).startswith("receipt")
    cons = json.loads(get(url + "/consistency/CP-0007?old=3&new=7")[2])
    root = lambda note: base64.b64decode(note.split("\n")[2])
    merkle.verify_consistency(3, 7, root(old_note), root(b["checkpoint"]),
                              [base64.b64decode(h) for h in cons["proof"]])
    assert cons["proof"] == b["consistency"]["proof"]


def test_errors_are_json_with_the_right_status(served):
    url = served["url"]
    assert status_of(url + "/proof/" + "0" * 32) == 404
    assert status_of(url + "/proof/x") == 400
    assert status_of(url + "/consistency/CP-0007?old=2&new=9") == 404
    assert status_of(url + "/consistency/CP-0007?old=3") == 400
    assert status_of(url + "/nothing") == 404


def test_receipts_cannot_be_enumerated(served):
    """Bundles are addressed by an unguessable per-receipt token, not by charger and seq or
    by the leaf hash (which inclusion and consistency proofs reveal for other receipts)."""
    url = served["url"]
    for path in ("/proof/CP-0007/1", "/proof/CP-0007/2", "/proof/CP-0007", "/proof/1"):
        assert status_of(url + path) in (400, 404)
    bundle = json.loads(get(url + "/proof/" + served["token"](2))[2])
    neighbour_leaf = base64.b64decode(bundle["inclusion_proof"][0])      # leaf 0's hash, in leaf 1's proof
    assert status_of(url + "/proof/" + neighbour_leaf.hex()) in (400, 404)
    assert status_of(url + "/proof/" + neighbour_leaf.hex()[:32]) == 404
    tokens = {served["token"](s) for s in (1, 2, 3)}
    assert len(tokens) == 3 and all(len(t) == 32 for t in tokens)
