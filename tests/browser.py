"""Headless Chromium for browser tests: Debian's ``chromium`` and ``chromium-driver`` packages
(``bin/test-services`` installs them under CI as root) driven through selenium.

- ``browser``: a fresh headless Chromium (its own profile in ``tmp_path``) for one test;
  skipped without chromium/chromedriver/selenium, failing instead when ``CI`` is set.
  A test module gets it with ``from tests.browser import browser_fixture  # noqa: F401``.
- ``assert_report_renders(browser, path)``: open a local HTML file and check that every
  ``<img>`` in it loaded (``naturalWidth > 0``): a report's embedded plots really decode.
- ``wait_for_text``, ``page_text``, ``screenshot``: small helpers for pages that render late.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_ARGS = (
    "--headless=new",
    "--no-sandbox",  # root in a container has no user namespaces for the sandbox
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--window-size=1920,1200",
)
PAGE_TIMEOUT = 60.0


def browser_missing() -> str | None:
    """Why no browser test can run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (path.is_file() and os.access(path, os.X_OK)):
            return f"no {path} (apt-get install chromium chromium-driver, or bin/test-services)"
    if importlib.util.find_spec("selenium") is None:
        return "no selenium in the environment (pip install -e '.[dev]')"
    return None


@pytest.fixture(name="browser")
def browser_fixture(tmp_path: Path) -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile; quit after the test."""
    missing = browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests under CI need Chromium: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options.add_argument(f"--user-data-dir={profile}")
    # chromedriver's log and the browser's stderr (it inherits chromedriver's) go to a file
    service = Service(str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


def page_text(browser: WebDriver) -> str:
    """The text the page shows (rendered, as a user would read it)."""
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.TAG_NAME, "body").text)


def wait_for(
    browser: WebDriver, condition: Callable[[WebDriver], Any], what: str, timeout: float
) -> Any:
    """``condition``'s first truthy value; fails with ``what`` and the page's text."""
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def check(driver: WebDriver) -> Any:
        try:
            return condition(driver)
        except WebDriverException:  # a stale or not yet rendered element: try again
            return None

    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.25).until(check)
    except TimeoutException:
        pytest.fail(
            f"{browser.current_url}: {what} not shown within {timeout:.0f} s; "
            f"the page reads:\n{page_text(browser)[:2000]}"
        )


def wait_for_text(browser: WebDriver, texts: list[str], timeout: float = PAGE_TIMEOUT) -> str:
    """Wait until the page shows every one of ``texts``; the page's text."""
    text: str = wait_for(
        browser,
        lambda d: t if all(s in (t := page_text(d)) for s in texts) else None,
        f"{texts}",
        timeout,
    )
    return text


def screenshot(browser: WebDriver, path: Path) -> Path:
    """Save what the browser shows as a PNG (for a human look, or a failing test's log)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(path)), f"no screenshot written to {path}"
    return path


def loaded_images(browser: WebDriver) -> list[dict[str, Any]]:
    """Every ``<img>`` of the page: ``src`` (its start), ``complete`` and ``naturalWidth``."""
    images: list[dict[str, Any]] = browser.execute_script(
        "return Array.from(document.images).map(i => ("
        "{src: i.currentSrc.slice(0, 80) || i.src.slice(0, 80), "
        "complete: i.complete, naturalWidth: i.naturalWidth}))"
    )
    return images


def assert_report_renders(
    browser: WebDriver, path: Path, min_images: int = 1, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Open the HTML file at ``path`` and check that it has at least ``min_images`` images
    and that every one of them decoded (``complete`` with ``naturalWidth > 0``): a plot that
    is missing or broken (bad base64, a wrong path) fails with the images' list."""
    browser.get(Path(path).resolve().as_uri())
    wait_for(
        browser,
        lambda d: d.execute_script("return document.readyState") == "complete",
        "the document loaded",
        timeout,
    )
    wait_for(
        browser,
        lambda d: all(image["complete"] for image in loaded_images(d)),
        "every image finished loading",
        timeout,
    )
    images = loaded_images(browser)
    assert len(images) >= min_images, f"{path}: {len(images)} image(s), wanted {min_images}+"
    broken = [image for image in images if not image["naturalWidth"]]
    assert not broken, f"{path}: {len(broken)} of {len(images)} image(s) did not load: {broken}"
    return images
