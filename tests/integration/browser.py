"""Helpers for driving Debian's chromium with Playwright in the web UI tests: launch arguments, a page
with the API key typed in (a screenshot kept if the test fails), drag-and-drop of real files,
screenshots small enough for the README, and a photo as the fake webcam's video."""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("FACEPIPE_UI_ARTIFACTS", "test-results/ui"))
SHOTS = os.environ.get("FACEPIPE_UI_SHOTS")


def chromium() -> str:
    path = os.environ.get("FACEPIPE_CHROMIUM") or shutil.which("chromium")
    if path is None:  # a failure, not a skip: CI installs it (scripts/ci-deps.sh)
        raise RuntimeError("chromium not found: run scripts/ci-deps.sh (apt-get install chromium)")
    return path


def open_page(
    browser: Browser, url: str, key: str, badge: str, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A page at ``url`` with ``key`` typed in once (the header then shows ``badge``)."""
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url + "/")  # "/" redirects to the UI
    page.fill("#key", key)  # typed once: kept for the browser session
    page.click("#key-form button")
    expect(page.locator("#role")).to_have_text(badge)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def shoot(page: Page, name: str, tmp: Path) -> None:
    """A screenshot of the page as users see it: small enough for the README."""
    path = Path(SHOTS or tmp) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    # photos make full-colour PNGs big: 128 colours, undithered, keep them readable and small
    Image.open(path).quantize(128, dither=Image.Dither.NONE).save(path, optimize=True)
    assert path.stat().st_size < 150_000, f"{path}: {path.stat().st_size} bytes"


def drop(page: Page, selector: str, paths: list[Path]) -> None:
    """Drag-and-drop of real files onto an element, as the browser delivers it (a DataTransfer)."""
    files = [{"name": p.name, "b64": base64.b64encode(p.read_bytes()).decode()} for p in paths]
    transfer = page.evaluate_handle(
        """files => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, { type: "image/jpeg" }));
            }
            return dt;
        }""",
        files,
    )
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def webcam_file(photo: Path, out: Path) -> Path:
    """A photo as the fake webcam's video (an MJPEG file: chromium plays it as the camera)."""
    img = cv2.imread(str(photo))
    h, w = img.shape[:2]
    img = cv2.resize(img, (round(w * 480 / h) // 2 * 2, 480))
    frame = np.full((480, 640, 3), 90, np.uint8)
    x = (640 - img.shape[1]) // 2
    frame[:, x : x + img.shape[1]] = img
    out.write_bytes(cv2.imencode(".jpg", frame)[1].tobytes() * 5)
    return out
