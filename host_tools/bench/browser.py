"""In-browser receipt check: the driver's page (host_tools/web/static/verify.js) in a real
headless Chromium, WebCrypto doing every signature and hash.

Rows:
  browser_verify_ms   median of 30 full checks of one genuine bundle (3 ECDSA P-256 verifications,
                      the RFC 9162 inclusion proof, OCMF parsing, tariff hash and BigInt price),
                      measured inside the page with performance.now() (no WebDriver round trip)
"""
import json
import tempfile

from host_tools.lightclient.demo import World
from host_tools.paths import ROOT
from host_tools.web import browser

PAGE = (ROOT / "host_tools" / "web" / "static" / "verify.html").as_uri()
RUNS = 30

MEASURE = """
const [bundle, keyHex, runs, done] = arguments;
(async () => {
  const V = window.ChargeProofVerify, pub = V.hexToBytes(keyHex), times = [];
  let last;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    last = await V.check(bundle, pub, {});
    times.push(performance.now() - t0);
  }
  done({times: times, summary: last.summary});
})().catch((e) => done({error: String(e)}));
"""


def run():
    if not browser.available():
        print("browser: no chromium/chromedriver, row skipped")
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        world = World(tmp)
        driver = browser.chromium()
        try:
            driver.set_script_timeout(120)
            driver.get(PAGE)
            out = driver.execute_async_script(MEASURE, world.bundle(), world.pub.hex(), RUNS)
        finally:
            driver.quit()
    if "error" in out:
        raise RuntimeError("in-browser check failed: %s" % out["error"])
    times = sorted(out["times"])
    print("browser: %s" % out["summary"][:80])
    return {"browser_verify_ms": round(times[len(times) // 2], 3)}


if __name__ == "__main__":
    print(json.dumps(run()))
