"""Fixtures of the dashboard tests: one `fusetrain serve` child with tokens for two owners and its
dashboard, gRPC callers for each owner, and (when chromium is installed) one headless browser."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # web_helpers, under --import-mode=importlib

from web_helpers import ALICE, BOB, CHROMIUM, INSTALL_HINT, Caller, start_server  # noqa: E402


@pytest.fixture(scope="session")
def dash(tmp_path_factory):
    """The server: `.url` (dashboard), `.alice` and `.bob` (gRPC callers), `.proc`."""
    root = tmp_path_factory.mktemp("dash")
    tokens = root / "tokens"
    tokens.write_text(f"alice {ALICE}\nbob {BOB}\n")
    proc, url = start_server(root / "data", "--workers", "2", "--token-file", str(tokens),
                             "--checkpoint-seconds", "1")

    class Dash:
        pass
    d = Dash()
    d.proc, d.url = proc, url
    d.alice, d.bob = Caller(proc.address, ALICE), Caller(proc.address, BOB)
    try:
        yield d
    finally:
        d.alice.close()
        d.bob.close()
        proc.stop()


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium driven by Playwright; the tests are skipped (saying how to install
    it) when it is missing."""
    missing = pytest.fail if os.environ.get("FUSETRAIN_REQUIRE_BROWSER") else pytest.skip   # CI: never skipped
    if CHROMIUM is None:
        missing(INSTALL_HINT)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed: pip install -e '.[test]' (make install)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def alice_page(browser, dash):
    """A page logged in as alice through the login form; every request it makes off the server is
    refused and recorded in `page.outside` (the dashboard must work with the network cut off)."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.outside = []

    def only_the_server(route):
        if route.request.url.startswith(dash.url):
            route.continue_()
        else:
            page.outside.append(route.request.url)
            route.abort()
    context.route("**/*", only_the_server)
    page.goto(dash.url)
    page.fill("#token", ALICE)
    page.click("#login")
    page.wait_for_selector("#jobs-table")
    try:
        yield page
    finally:
        context.close()
