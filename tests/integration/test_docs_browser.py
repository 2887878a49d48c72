"""Swagger UI at /docs in a real browser (Debian's chromium driven by Playwright) against a real server
with API keys: the page loads from the server's own files with no script error, shows every operation
of /openapi.json, and "Try it out" calls the real API, refused without a key and answered once the key
is given through "Authorize" (the x-api-key scheme)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.integration.conftest import Running
from tests.integration.test_client_cli import cserver  # noqa: F401  (a server with API keys)
from tests.integration.test_gallery_api import READ

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def chromium() -> str:
    path = os.environ.get("FACEPIPE_CHROMIUM") or shutil.which("chromium")
    if path is None:  # a failure, not a skip: `make test` installs it (scripts/ci-deps.sh)
        raise RuntimeError("chromium not found: run scripts/ci-deps.sh (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=ARGS)
        yield browser.new_page(viewport={"width": 1280, "height": 1600})
        browser.close()


def test_swagger_ui_shows_every_operation_and_calls_the_api(page: Page, cserver: Running) -> None:  # noqa: F811
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    external: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(cserver.url) else external.append(r.url))
    page.goto(cserver.url + "/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    doc = page.request.get(cserver.url + "/openapi.json").json()
    operations = sum(len(ops) for ops in doc["paths"].values())
    expect(page.locator(".opblock")).to_have_count(operations)
    op = page.locator("#operations-gallery-get_v1_subjects")
    op.locator(".opblock-summary").click()
    op.locator("button.try-out__btn").click()
    op.locator("button.execute").click()
    status = op.locator(".live-responses-table tbody .response-col_status").first
    expect(status).to_have_text("401", timeout=30_000)  # keys are configured: reading needs one
    page.locator("button.authorize").first.click()
    page.locator(".auth-container input").fill(READ)
    page.locator(".auth-btn-wrapper button.authorize").click()
    page.locator(".auth-btn-wrapper button.btn-done").click()
    op.locator("button.execute").click()
    expect(status).to_have_text("200", timeout=30_000)
    body = op.locator(".live-responses-table .response-col_description pre").first
    expect(body).to_contain_text('"total"')
    assert errors == [] and external == [], (errors, external)
