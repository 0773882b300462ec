"""Headless Chromium (Debian's `chromium` and `chromium-driver`) driven by Selenium, for the explorer's
browser tests and benchmarks/explorer.py: a fresh profile each time, no network services of its own,
every console message and every request the page makes recorded.

    with open_browser() as browser:
        browser.open(site / "index.html", "#/neuron/L1.N3")
        browser.console_errors(), browser.requests()
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

INSTALL_HINT = ("install Chromium to run them: `sudo apt-get install -y chromium chromium-driver` "
                "(Debian/Ubuntu), then `.venv/bin/pip install -c constraints.txt selenium`")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
         "--disable-extensions", "--window-size=1280,1000")


def find_chromium() -> tuple[str | None, str | None, str]:
    """(chromium binary, chromedriver, why-not): the binaries when both and Selenium are present."""
    binary = os.environ.get("FT_CHROMIUM") or next(
        (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium") or "") if p and
         Path(p).is_file()), None)
    driver = os.environ.get("FT_CHROMEDRIVER") or next(
        (p for p in ("/usr/bin/chromedriver", shutil.which("chromedriver") or "") if p and Path(p).is_file()), None)
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None, None, "Selenium is not installed; " + INSTALL_HINT
    if not binary or not driver or not Path(binary).is_file() or not Path(driver).is_file():
        return None, None, "no Chromium/chromedriver found; " + INSTALL_HINT
    return binary, driver, ""


class Browser:
    def __init__(self, driver):
        self.driver = driver

    def open(self, index: Path | str, route: str = "#/", timeout: float = 20) -> float:
        """Load the site at `route` and wait for the view to be ready; returns the seconds it took."""
        url = index.resolve().as_uri() if isinstance(index, Path) else index
        start = time.perf_counter()
        self.driver.get(url + route)
        self.wait_ready(route, timeout)
        return time.perf_counter() - start

    def go(self, route: str, timeout: float = 20) -> None:
        """Follow a hash route in the page (a new history entry), and wait for its view."""
        self.driver.execute_script("location.hash = arguments[0];", route)
        self.wait_ready(route, timeout)

    def wait_ready(self, route: str, timeout: float = 20) -> None:
        want = route if route not in ("", "#") else "#/"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = self.driver.execute_script(
                "var v = document.getElementById('view'); return v && v.getAttribute('data-ready');")
            if ready == want or (want == "#/" and ready in ("#/", "")):
                return
            time.sleep(0.02)
        raise AssertionError(f"the view for {route!r} did not become ready within {timeout} s "
                             f"(console: {self.console()})")

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def console(self) -> list[dict]:
        """Console messages since the last call (level, message)."""
        return [{"level": e["level"], "message": e["message"]} for e in self.driver.get_log("browser")]

    def console_errors(self) -> list[dict]:
        return [e for e in self.console() if e["level"] in ("SEVERE", "ERROR", "WARNING")]

    def requests(self) -> list[str]:
        """Every URL the page requested since the last call (Chromium's performance log)."""
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
        return urls

    def screenshot(self, path: Path) -> None:
        self.driver.save_screenshot(str(path))


@contextlib.contextmanager
def open_browser():
    """A fresh headless Chromium with its own profile, on about:blank, logs drained; quits afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path, why = find_chromium()
    if not binary:
        raise RuntimeError(why)
    profile = tempfile.mkdtemp(prefix="ft-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        driver.get("about:blank")
        browser = Browser(driver)
        browser.console(), browser.requests()  # what the browser did on its own before the page
        yield browser
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":  # `make test` ends with this: say so when the browser tests could not run
    _binary, _driver, _why = find_chromium()
    if _why:
        print(f"NOTE: the explorer's browser tests were skipped: {_why}")
