"""Headless Chromium for the page tests: Debian's `chromium` and `chromium-driver` (bin/bootstrap dev installs them),
driven by Selenium, with WebGL through SwiftShader (MapLibre draws with WebGL; --disable-gpu would leave none).

Shared by fleet/tests/test_pages_browser.py and fleet/tests/test_pages_weight.py.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from devtools.testing.auth import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / ".var" / "screenshots"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

# What this machine's Chromium needs to run headless and predictably: WebGL from SwiftShader (software), no
# sandbox (root in a container), /tmp instead of a small /dev/shm, and none of its background traffic.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
    "--lang=en-GB",
)

needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="chromium and chromium-driver are not installed (bin/bootstrap dev installs them, or: "
    "sudo apt-get install -y --no-install-recommends chromium chromium-driver)",
)


@dataclass
class Browser:
    driver: webdriver.Chrome
    downloads: Path
    base_url: str = ""
    user: str = ""

    def get(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def wait(self, condition: Callable[[webdriver.Chrome], Any], timeout: float = 30, message: str = "") -> Any:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(condition, message)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def find(self, css: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def console(self) -> list[dict[str, Any]]:
        """The browser log since the last call (console messages, uncaught errors, failed loads)."""
        return list(self.driver.get_log("browser"))

    def console_errors(self) -> list[dict[str, Any]]:
        return [entry for entry in self.console() if entry["level"] == "SEVERE"]

    def network(self) -> list[dict[str, Any]]:
        """The DevTools Network events since the last call."""
        events = [json.loads(entry["message"])["message"] for entry in self.driver.get_log("performance")]
        return [e for e in events if e["method"].startswith("Network.")]

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.network() if e["method"] == "Network.requestWillBeSent"]

    def session_cookie(self) -> dict[str, str]:
        cookie = self.driver.get_cookie("sessionid")
        return {"sessionid": cookie["value"]} if cookie else {}

    def log_in(self, username: str, password: str = PASSWORD) -> None:
        self.get("/login/")
        self.driver.delete_all_cookies()
        self.get("/login/")
        self.find("#id_username").send_keys(username)
        self.find("#id_password").send_keys(password)
        self.find("button[type=submit]").click()
        self.wait(lambda d: "/login/" not in d.current_url, message="the login did not leave the login page")
        self.user = username

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path


def assert_test_database() -> None:
    """The page tests commit rows and flush every table after: never anywhere but a test database. (pytest-django
    sets one up only when the run holds a test marked django_db; the page test modules are marked so.)"""
    name = str(connection.settings_dict["NAME"])
    assert name.startswith("test_"), f"refusing to write to {name!r}: not a test database"


def off_origin(urls: list[str], base_url: str) -> list[str]:
    """The URLs that leave the page's origin (data: and blob: URLs stay in the browser)."""
    origin = urlsplit(base_url)
    return [
        url
        for url in urls
        if urlsplit(url).scheme not in ("data", "blob")
        and (urlsplit(url).scheme, urlsplit(url).netloc) != (origin.scheme, origin.netloc)
    ]


def chromium(*, width: int = 1366, height: int = 900) -> Iterator[Browser]:
    """One headless Chromium with a fresh profile and its own download directory; checks that WebGL 2 works."""
    with tempfile.TemporaryDirectory(prefix="fleet-chromium-") as scratch:
        profile, downloads = Path(scratch) / "profile", Path(scratch) / "downloads"
        downloads.mkdir()
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        options.add_experimental_option(
            "prefs",
            {
                "download.default_directory": str(downloads),
                "download.prompt_for_download": False,
                "download.directory_upgrade": True,
                "safebrowsing.enabled": False,
            },
        )
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
        try:
            driver.get("about:blank")
            renderer = driver.execute_script(
                "const gl = document.createElement('canvas').getContext('webgl2');"
                "return gl ? gl.getParameter(gl.VERSION) : null;"
            )
            assert "WebGL 2" in (renderer or ""), f"no WebGL 2 in this Chromium ({renderer}): MapLibre needs it"
            yield Browser(driver=driver, downloads=downloads)
        finally:
            driver.quit()
