"""The operator's dashboard and the demo report in a real headless Chromium, on a real demo
fleet (`host_tools.demo`: MicroPython chargers, pymodbus meters, amqtt, two validators): every
page renders the fleet with its curves, the live page updates without a reload, the QR code's
link and the session's bundle pass the in-browser check, and no page logs a console error.
Screenshots go to docs/screenshots/ (kept current by this run)."""
import csv
import io
import re
import threading
import time
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from host_tools import demo
from host_tools.paths import ROOT
from host_tools.validator.timeseries import TimeSeries
from host_tools.web import browser
from host_tools.web.app import make_server

# `make screenshots` writes them into docs/screenshots (the README's); a plain test run into
# build/screenshots, so running the suite leaves no tracked file changed.
SCREENSHOTS = browser.screenshot_dir()
CHARGERS, SESSIONS = 2, 2

pytestmark = pytest.mark.skipif(not browser.available(), reason="needs Debian's chromium and chromium-driver")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    assert demo.main(["--chargers", str(CHARGERS), "--sessions", str(SESSIONS), "--out", str(out)]) == 0
    server = make_server(str(out / "ledger.sqlite"), peers=[str(out / "ledger-b.sqlite")])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"out": out, "url": "http://127.0.0.1:%d" % server.server_port}
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def chrome():
    driver = browser.chromium(1280, 1000)
    yield driver
    driver.quit()


def load(chrome, url):
    chrome.get(url)
    WebDriverWait(chrome, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")


def shoot(chrome, name, height=None):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if height:
        chrome.set_window_size(1280, height)
    chrome.save_screenshot(str(SCREENSHOTS / name))
    chrome.set_window_size(1280, 1000)


def test_fleet_overview(fleet, chrome):
    load(chrome, fleet["url"] + "/")
    rows = chrome.find_elements(By.CSS_SELECTOR, "#fleet tbody tr")
    assert [r.get_attribute("data-charger") for r in rows] == ["CP-%03d" % (n + 1) for n in range(CHARGERS)]
    for r in rows:
        cells = [c.text for c in r.find_elements(By.TAG_NAME, "td")]
        assert cells[1] == "idle" and cells[2] == "none"                 # final health: unplugged, no fault
        assert cells[3] != "never" and cells[4].endswith(" B")           # last seen, heap all-time low
        assert cells[5] == "0" and cells[6] == str(SESSIONS)             # outbox drained, log size
        assert cells[7] == str(SESSIONS) and cells[9].startswith("agrees (%d of %d)" % (SESSIONS, SESSIONS))
    assert browser.console_errors(chrome) == []
    shoot(chrome, "dashboard-fleet.png", 500)


def test_sessions_with_filters_and_csv(fleet, chrome):
    load(chrome, fleet["url"] + "/sessions")
    assert len(chrome.find_elements(By.CSS_SELECTOR, "#sessions tbody tr")) == CHARGERS * SESSIONS
    load(chrome, fleet["url"] + "/sessions?charger=CP-002")
    rows = chrome.find_elements(By.CSS_SELECTOR, "#sessions tbody tr")
    assert len(rows) == SESSIONS and all(r.text.startswith("CP-002") for r in rows)
    assert "kWh" in rows[0].text and "€" in rows[0].text                 # en-GB locale, EUR
    assert browser.console_errors(chrome) == []
    with urllib.request.urlopen(fleet["url"] + "/sessions?format=csv&charger=CP-001", timeout=10) as r:
        table = list(csv.DictReader(io.StringIO(r.read().decode())))
    assert [t["seq"] for t in table] == [str(s + 1) for s in range(SESSIONS)]
    assert all(t["status"] == "accepted" and int(t["energy_wh"]) > 0 for t in table)


def test_session_page_curve_bill_and_driver_links(fleet, chrome):
    load(chrome, fleet["url"] + "/session/CP-001/1")
    assert len(chrome.find_elements(By.CSS_SELECTOR, ".curve .uplot canvas")) == 1
    assert "From the charger's telemetry" in chrome.page_source
    check = chrome.find_element(By.ID, "check").text
    assert check.startswith("Light client: VALID: receipt 1 (session T2) of CP-001, card ")
    # The driver's card, by its pseudonym (never its UID): on the page, in every verdict, on the bill.
    card = re.search(r", card ([0-9A-F]{32}):", check).group(1)
    assert "card %s (its pseudonym" % card in chrome.page_source
    assert "Total" in chrome.find_element(By.CSS_SELECTOR, "table.segments").text
    assert len(chrome.find_elements(By.CSS_SELECTOR, "#readings tbody tr")) == 2
    assert chrome.find_elements(By.CSS_SELECTOR, "#qr svg")
    assert browser.console_errors(chrome) == []
    shoot(chrome, "dashboard-session.png", 1250)
    token = re.search(r"verify\.html#t=([0-9a-f]{32})", chrome.page_source).group(1)
    in_browser = chrome.find_element(By.ID, "check-in-browser").get_attribute("href")
    # the QR code's link: the page fetches the bundle by its token, then checks it itself
    load(chrome, fleet["url"] + "/verify.html#t=" + token)
    assert browser.wait_verdict(chrome).startswith("VALID: receipt 1 (session T2) of CP-001")
    load(chrome, in_browser)
    assert browser.wait_verdict(chrome).startswith("VALID: receipt 1 (session T2) of CP-001, card %s:" % card)
    assert "Card " + card in chrome.find_element(By.ID, "bill-head").text
    load(chrome, fleet["url"] + "/verify.html#t=" + "0" * 32)
    assert browser.wait_verdict(chrome).startswith("INVALID: malformed-bundle")
    browser.console_errors(chrome)          # the 404 of the unknown token is expected here


def test_live_page_updates_without_reload(fleet, chrome):
    ts = TimeSeries(str(fleet["out"] / "ledger.sqlite"))
    t0 = int(time.time()) + 86400          # after every demo session: a new one
    assert ts.record("cp/CP-002/telemetry", b'{"w":7400,"wh":0,"price":0,"t":%d}' % t0)
    load(chrome, fleet["url"] + "/live")
    chrome.execute_script("window.notReloaded = true")
    card = WebDriverWait(chrome, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".live-session[data-charger='CP-002']"))[0]
    for i in range(1, 4):
        assert ts.record("cp/CP-002/telemetry", b'{"w":7400,"wh":%d,"price":%d,"t":%d}' % (i * 1234, i * 40, t0 + i * 600))
    WebDriverWait(chrome, 10).until(lambda d: "3.702 kWh" in card.text)
    assert "running cost €1.20" in card.text and chrome.execute_script("return window.notReloaded") is True
    assert len(card.find_elements(By.CSS_SELECTOR, ".uplot canvas")) == 1
    assert browser.console_errors(chrome) == []
    shoot(chrome, "dashboard-live.png", 600)
    ts.close()


def test_evidence_page(fleet, chrome):
    load(chrome, fleet["url"] + "/evidence")
    assert "None: every charger's history is consistent." in chrome.find_element(By.ID, "evidence").text
    assert browser.console_errors(chrome) == []


def test_report_is_one_self_contained_file(fleet, chrome):
    report = fleet["out"] / "report.html"
    html = report.read_text()
    assert not re.search(r"""(src|href)=["'](https?:|//|/static)""", html)    # nothing fetched
    load(chrome, report.as_uri())
    sections = chrome.find_elements(By.CSS_SELECTOR, "section.session")
    assert len(sections) == CHARGERS * SESSIONS
    for s in sections:
        assert len(s.find_elements(By.CSS_SELECTOR, ".uplot canvas")) == 1
        verdicts = s.find_element(By.CSS_SELECTOR, ".verdicts").text.splitlines()
        assert verdicts[:2] == ["ledger: accepted", "ledger-b: accepted"] and verdicts[2].startswith("light client: VALID")
    assert browser.console_errors(chrome) == []
    shoot(chrome, "report.png", 1300)


def test_the_demo_receipt_and_its_edited_copy_in_the_link(fleet, chrome):
    """What `make demo` leaves for the driver: receipt-CP-001-1.json in verify.html#b=... is
    VALID (served and from file://), the copy with its price edited INVALID."""
    from host_tools.web.bill import fragment_for
    page = ROOT / "host_tools" / "web" / "static" / "verify.html"
    genuine = (fleet["out"] / "receipt-CP-001-1.json").read_text()
    edited = (fleet["out"] / "receipt-CP-001-1-edited.json").read_text()
    for base in (page.as_uri(), fleet["url"] + "/verify.html"):
        load(chrome, "about:blank")
        load(chrome, base + "#" + fragment_for(genuine))
        assert browser.wait_verdict(chrome).startswith("VALID: receipt 0 (session T1) of CP-001")
        load(chrome, "about:blank")
        load(chrome, base + "#" + fragment_for(edited))
        assert browser.wait_verdict(chrome).startswith("INVALID: bad-receipt-signature")
    link = (fleet["out"] / "verify-link.txt").read_text().strip()
    load(chrome, "about:blank")
    load(chrome, link)
    assert browser.wait_verdict(chrome).startswith("VALID")
    assert browser.console_errors(chrome) == []
