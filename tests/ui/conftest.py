"""Browser fixtures: headless Chromium (Debian's package, not a downloaded build) driven by
Playwright. The README and .ci/run install it (`apt-get install -y chromium`)."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    """The system Chromium: $EVOL_CHROMIUM, else the first of CHROMIUM_NAMES on PATH."""
    path = os.environ.get("EVOL_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if not path:
        pytest.fail("the browser tests need Chromium: apt-get install -y chromium (or set EVOL_CHROMIUM)")
    return path


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page (its own context: no storage shared between tests); console errors are kept
    in `page.console_errors` so a test can assert that the page's script ran clean."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    new_page = context.new_page()
    new_page.console_errors = []
    new_page.on("console", lambda m: m.type == "error" and new_page.console_errors.append(m.text))
    new_page.on("pageerror", lambda error: new_page.console_errors.append(str(error)))
    new_page.set_default_timeout(15_000)
    yield new_page
    context.close()
