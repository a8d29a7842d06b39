"""A real headless Chromium driven by Selenium (Debian's `chromium` and `chromium-driver`),
for the browser tests, the screenshots and the `browser_verify_ms` bench row."""
import os
import pathlib
import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER = ("/usr/bin/chromedriver",)


def find(candidates, name):
    for path in candidates:
        if shutil.which(path):
            return path
    return shutil.which(name)


def available() -> bool:
    return bool(find(CHROMIUM, "chromium") and find(DRIVER, "chromedriver"))


def chromium(width=1280, height=900):
    """A headless Chromium whose console messages can be read with console_errors()."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = find(CHROMIUM, "chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=%d,%d" % (width, height), "--allow-file-access-from-files",
                "--lang=en-GB", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(find(DRIVER, "chromedriver")))


def console_errors(driver):
    """Console messages of level SEVERE since the last call (the browser log is drained)."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def wait_verdict(driver, timeout=20):
    """The text of #verdict once it says VALID or INVALID."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def done(d):
        text = d.find_element(By.ID, "verdict").text
        return text if text.startswith(("VALID", "INVALID")) else False
    return WebDriverWait(driver, timeout).until(done)


def screenshot_dir() -> pathlib.Path:
    """Where the browser tests save their screenshots: $CHARGEPROOF_SCREENSHOTS (`make
    screenshots` points it at docs/screenshots), else build/screenshots (untracked)."""
    from host_tools.paths import ROOT
    return pathlib.Path(os.environ.get("CHARGEPROOF_SCREENSHOTS") or ROOT / "build" / "screenshots")
