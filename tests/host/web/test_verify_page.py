"""The driver's check in a real headless Chromium (host_tools/web/static/verify.html, WebCrypto),
loaded from file:// with the bundle in the URL fragment: VALID for a genuine receipt, and for
every tampering case of the light-client tests (host_tools.lightclient.demo.World) the same
verdict and reason as the host light client. No console errors."""
import base64
import json

import pytest
from selenium.webdriver.common.by import By

from host_tools.lightclient import check as lightclient
from host_tools.lightclient.demo import ORIGIN, T_BEGIN, World
from host_tools.paths import ROOT
from host_tools.verify import merkle
from host_tools.web import browser
from ledger import checkpoint

PAGE = (ROOT / "host_tools" / "web" / "static" / "verify.html").as_uri()
# `make screenshots` writes them into docs/screenshots (the README's); a plain test run into
# build/screenshots, so running the suite leaves no tracked file changed.
SCREENSHOTS = browser.screenshot_dir()

pytestmark = pytest.mark.skipif(not browser.available(), reason="needs Debian's chromium and chromium-driver")


def b64url(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def b64(hashes):
    return [base64.b64encode(h).decode() for h in hashes]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return World(tmp_path_factory.mktemp("verify-page"))


@pytest.fixture(scope="module")
def chrome():
    driver = browser.chromium()
    yield driver
    driver.quit()


def in_browser(chrome, bundle, pub, checkpoint_note=None, proof=None, consistency=None):
    url = PAGE + "#b=" + b64url(bundle) + "&k=" + pub.hex()
    if checkpoint_note is not None:
        url += "&c=" + b64url(checkpoint_note)
    if proof is not None:
        url += "&p=" + b64url(json.dumps(proof))
    if consistency is not None:
        url += "&x=" + b64url(json.dumps(consistency))
    chrome.get("about:blank")
    chrome.get(url)
    return browser.wait_verdict(chrome)


def on_host(bundle, pub, **kw):
    try:
        return "VALID: " + lightclient.check(bundle, pub, **kw)
    except lightclient.Invalid as exc:
        return "INVALID: %s" % exc


def cases(world):
    """(name, bundle, pub, keyword arguments of lightclient.check) for every case."""
    out = [("genuine", world.bundle(), world.pub, {}),
           ("device checkpoint", world.bundle(note=world.cp), world.pub, {})]
    for reason, (what, bundle, extra) in world.tamperings().items():
        pub = bytes.fromhex(extra["--pubkey"]) if "--pubkey" in extra else world.pub
        kw = {}
        if "--proof" in extra:
            kw["proof"] = json.loads(extra["--proof"])
        if "--checkpoint" in extra:
            kw["checkpoint_note"] = extra["--checkpoint"]
        out.append((reason, bundle, pub, kw))
    # test_more_inconsistencies_are_named and the checkpoint cases of test_lightclient.py
    out.append(("time-mismatch", world.forged(edit_body=lambda b: b.replace(
        '"begin":%d' % (T_BEGIN + 86400), '"begin":%d' % (T_BEGIN + 86400 - 60))), world.pub, {}))
    out.append(("pagination-mismatch", world.forged(edit_body=lambda b: b.replace('"seq":2', '"seq":7')), world.pub, {}))
    out.append(("malformed-bundle", "{}", world.pub, {}))
    out.append(("bad-public-key", world.bundle(), b"\x30\x03junk", {}))
    old = checkpoint.build(ORIGIN, 1, merkle.Tree(world.records[:1]).root(), T_BEGIN, world.key)
    out.append(("older checkpoint: not-included", world.bundle(), world.pub, {"checkpoint_note": old}))
    tree = merkle.Tree(world.records + [b"a later receipt"])
    note = checkpoint.build(ORIGIN, 4, tree.root(), T_BEGIN + 99999, world.key)
    proof = {"index": 1, "tree_size": 4, "inclusion_proof": b64(tree.inclusion_proof(1))}
    cons = {"old_size": 3, "new_size": 4, "proof": b64(tree.consistency_proof(3, 4))}
    out.append(("newer checkpoint", world.bundle(), world.pub, {"checkpoint_note": note, "proof": proof}))
    out.append(("newer checkpoint, consistent", world.bundle(), world.pub,
                {"checkpoint_note": note, "proof": proof, "consistency": cons}))
    forked = merkle.Tree([b"x"] + world.records[1:] + [b"a later receipt"])
    fnote = checkpoint.build(ORIGIN, 4, forked.root(), T_BEGIN + 99999, world.key)
    out.append(("forked newer checkpoint", world.bundle(), world.pub,
                {"checkpoint_note": fnote, "proof": {"index": 1, "tree_size": 4, "inclusion_proof": b64(forked.inclusion_proof(1))},
                 "consistency": {"old_size": 3, "new_size": 4, "proof": b64(forked.consistency_proof(3, 4))}}))
    out.append(("high-S twin of the receipt signature", world.bundle(records=_malleated(world)), world.pub, {}))
    return out


def _malleated(world):
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
    from host_tools.verify.receipt import P256_N, Receipt
    genuine = Receipt(world.records[1])
    r, s = decode_dss_signature(genuine.sig_der)
    recs = list(world.records)
    recs[1] = genuine.body + b"|" + encode_dss_signature(r, P256_N - s).hex().encode()
    return recs


def test_browser_and_host_agree_on_every_case(world, chrome):
    seen = {}
    for name, bundle, pub, kw in cases(world):
        host = on_host(bundle, pub, **kw)
        page = in_browser(chrome, bundle, pub, kw.get("checkpoint_note"), kw.get("proof"), kw.get("consistency"))
        seen[name] = page.split(":")[:2]
        # same verdict and reason; the detail may be worded differently
        assert page.split(":")[:2] == host.split(":")[:2], (name, host, page)
        if host.startswith("VALID"):
            assert page == host, name
    assert browser.console_errors(chrome) == []
    reasons = {v[1].strip() for v in seen.values() if v[0] == "INVALID"}
    assert set(world.tamperings()) <= reasons and len(reasons) >= 13
    assert seen["genuine"][0] == "VALID" and seen["newer checkpoint, consistent"][0] == "VALID"


def test_genuine_bill_is_shown_as_a_person_reads_it(world, chrome):
    verdict = in_browser(chrome, world.bundle(), world.pub)
    assert verdict.startswith("VALID: receipt 1 (session T2) of CP-0001")
    lines = chrome.find_element(By.ID, "bill-lines").text
    assert "Idle fee" in lines and "Tax (19.00 %)" in lines and "Total" in lines
    assert "07:00" in lines and "00:00" in lines            # two tariff bands, in the charger's time
    assert chrome.find_element(By.ID, "bill-head").text.count("UTC+01:00") == 1
    assert browser.console_errors(chrome) == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    chrome.set_window_size(1000, 1250)
    chrome.save_screenshot(str(SCREENSHOTS / "verify.png"))
    chrome.set_window_size(1280, 900)


def test_pasted_bundle_with_its_own_key(world, chrome):
    """Paste: the key comes from the bundle (as the proof server's bundles carry it)."""
    bundle = json.loads(world.bundle())
    bundle["pubkey"] = world.pub.hex()
    chrome.get("about:blank")
    chrome.get(PAGE)
    box = chrome.find_element(By.ID, "paste")
    chrome.execute_script("arguments[0].value = arguments[1]", box, json.dumps(bundle))
    chrome.find_element(By.ID, "check-btn").click()
    assert browser.wait_verdict(chrome).startswith("VALID")
    assert "taken from the bundle" in chrome.find_element(By.ID, "notes").text
    edited = dict(bundle, receipt=bundle["receipt"].replace('"price":', '"price":1', 1))
    chrome.execute_script("arguments[0].value = arguments[1]", box, json.dumps(edited))
    chrome.find_element(By.ID, "check-btn").click()
    assert browser.wait_verdict(chrome).startswith("INVALID: bad-receipt-signature")


def test_witness_cosignatures_agree_with_the_host(world, chrome):
    """C2SP cosignatures (host_tools/verify/cosignature.py): the browser verifies Ed25519 with
    WebCrypto and gives the host's verdict for a quorum met, missed, a forged line, a bad key."""
    cosig = pytest.importorskip("host_tools.verify.cosignature")
    import inspect
    if "witnesses" not in inspect.signature(lightclient.check).parameters:
        pytest.skip("this light client has no witness quorum yet")
    from urllib.parse import quote
    bundle = json.loads(world.bundle())
    a, b, c = (cosig.Cosigner(n) for n in ("witness-a.example", "witness-b.example", "witness-c.example"))
    line_b = b.cosign(bundle["checkpoint"], T_BEGIN + 10000)
    bundle["cosignatures"] = [a.cosign(bundle["checkpoint"], T_BEGIN + 10001), line_b]
    good = json.dumps(bundle)
    forged = json.dumps(dict(bundle, cosignatures=[bundle["cosignatures"][0], line_b[:-8] + "AAAAAAA=" if line_b.endswith("=") else line_b[:-4] + "AAAA"]))
    runs = [(good, [a, b], None), (good, [a, b, c], 2), (good, [a, b, c], None), (forged, [a, b], None),
            (world.bundle(), [a], None)]
    for text, ws, quorum in runs:
        q = len(ws) if quorum is None else quorum
        host = on_host(text, world.pub, witnesses=[w.witness for w in ws], quorum=q)
        url = PAGE + "#b=" + b64url(text) + "&k=" + world.pub.hex() + "".join(
            "&w=" + quote(w.vkey(), safe="") for w in ws) + ("&q=%d" % quorum if quorum is not None else "")
        chrome.get("about:blank")
        chrome.get(url)
        page = browser.wait_verdict(chrome)
        assert page.split(":")[:2] == host.split(":")[:2], (host, page)
        if host.startswith("VALID"):
            assert page == host
    chrome.get("about:blank")
    chrome.get(PAGE + "#b=" + b64url(good) + "&k=" + world.pub.hex() + "&w=" + quote("nobody+00000000+AAAA", safe=""))
    assert browser.wait_verdict(chrome).startswith("INVALID: bad-witness-key")
    assert browser.console_errors(chrome) == []


# A published (version 2) tariff: Berlin's daylight-saving rule and quarter-hour slot prices;
# the world's sessions begin an hour before the clocks go back (25 Oct 2026), at 02:00 CEST.
AUTUMN = 1792890000
V2_TARIFF = {"v": 2, "id": "std-2026", "currency": "EUR", "valid_from": AUTUMN - 86400,
             "tz": "CET-1CEST,M3.5.0,M10.5.0/3", "session_fee_minor": 50,
             "bands": [{"start_min": 0, "kwh_price_milli": 25000}, {"start_min": 150, "kwh_price_milli": 31000},
                       {"start_min": 420, "kwh_price_milli": 39000}],
             "idle_min_price_milli": 10000, "idle_grace_min": 30, "tax_bp": 1900,
             "slot_s": 900, "slots": [[AUTUMN + 1800 + 900 * i, 20000 + 1500 * i] for i in range(6)]}


def test_browser_and_host_agree_on_a_published_tariff(tmp_path, chrome):
    w = World(tmp_path, tariff=V2_TARIFF, t_begin=AUTUMN - 3600)
    fields = json.loads(json.loads(w.bundle(0))["receipt"].rsplit("|", 1)[0])     # that night's session
    assert len(fields["segments"]) >= 5          # the fall-back change, band starts and slots
    other = dict(V2_TARIFF, slots=[[AUTUMN + 1800, 1]])
    for name, bundle in (("genuine", w.bundle(0)), ("other tariff", w.bundle(0, tariff=other)),
                         ("re-priced", w.forged(index=0, edit_body=lambda b: b.replace(
                             '"net":%d' % fields["net"], '"net":%d' % (fields["net"] - 1)).replace(
                             '"price":%d' % fields["price"], '"price":%d' % (fields["price"] - 1))))):
        host = on_host(bundle, w.pub)
        page = in_browser(chrome, bundle, w.pub)
        assert page.split(":")[:2] == host.split(":")[:2], (name, host, page)
        if name == "genuine":
            assert host.startswith("VALID") and page == host
    assert browser.console_errors(chrome) == []
