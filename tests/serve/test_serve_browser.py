"""The explorer page in real headless Chromium: pick a user, see recommendations, open similar items."""

from __future__ import annotations

import os
import shutil

import httpx
import pytest

from colisten.serve.app import create_app

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page(tmp_path):
    if CHROMIUM is None:
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright (the dev extra) is not installed"
    )
    with sync_api.sync_playwright() as pw:
        # a fresh profile per test; Playwright drives the system Chromium, downloads nothing
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def test_explorer_shows_a_users_recommendations_and_similar_items(toy_run, toy_bundle, live_server, page):
    app = create_app(toy_run, bundle=toy_bundle)
    with live_server(app) as base:
        page.goto(base + "/")
        page.wait_for_selector("#user-results li button")
        page.fill("#user-search", "u00000")
        page.click("#search-button")
        page.wait_for_selector("#user-results button:text-is('u000003')")
        page.click("#user-results button:text-is('u000003')")

        for item_type in ("audiobook", "podcast"):
            page.wait_for_selector(f".recs[data-type={item_type}] li.rec", timeout=15_000)
        shown = page.locator(".recs[data-type=audiobook] li.rec .item-link").evaluate_all(
            "els => els.map(e => e.dataset.itemId)"
        )
        api = [it["item_id"] for it in httpx.get(f"{base}/v1/users/u000003/recommendations").json()["items"]]
        assert shown == api  # the page shows the API's ranking
        assert page.locator(".recs li.rec .because").count() > 0  # explanations are visible
        assert page.locator("#history h4").count() >= 1  # history grouped by type
        assert "u000003" in page.text_content("#user-id")

        if os.environ.get("COLISTEN_SCREENSHOT"):
            page.set_viewport_size({"width": 1280, "height": 1000})
            page.screenshot(path=os.environ["COLISTEN_SCREENSHOT"], full_page=True)

        page.locator(".recs[data-type=audiobook] li.rec .item-link").first.click()
        page.wait_for_selector("#similar-items li")
        assert page.locator("#similar-items li").count() == 10
        assert (
            page.text_content("#similar-title")
            == page.locator(".recs li.rec .item-link").first.text_content()
        )
        assert "error" not in (page.get_attribute("#status", "class") or "")
