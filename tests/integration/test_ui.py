"""The web UI in a real browser (Debian's chromium driven by Playwright) against a real server with the
default models and a gallery with keys: every action goes through the page to the real API.

Helpers in browser.py. A failing test leaves a screenshot in ``test-results/ui/``
(``FACEPIPE_UI_ARTIFACTS``); each page's screenshot is written too (``FACEPIPE_UI_SHOTS=docs/ui``
refreshes the README's pictures).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.integration.browser import ARGS, chromium, drop, open_page, shoot, webcam_file
from tests.integration.conftest import Running, add_version, private_repository, start_server, stop_server

ADMIN, READ = "admin-key-0123456789", "read-key-0123456789ab"
expect.set_options(timeout=30_000)  # a shared 2-core machine: a photo can take seconds
AUTH = {"auth": {"api_keys": [ADMIN], "read_keys": [READ]}}
# photos/README.md: img1, img2, img4, img5, ... are one person; img13, img14, img15 another
PERSON_A, PERSON_B = ["img1.jpg", "img2.jpg"], ["img13.jpg", "img14.jpg"]


@pytest.fixture(scope="module")
def ui_repo(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository of our own, so that a version can be added to it (and rejected)."""
    return private_repository(models_dir, tmp_path_factory.mktemp("ui-models") / "models")


@pytest.fixture(scope="module")
def uiserver(ui_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_server(ui_repo, tmp_path_factory.mktemp("ui"), AUTH)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def pw() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(pw: Playwright) -> Iterator[Browser]:
    b = pw.chromium.launch(executable_path=chromium(), args=ARGS)
    yield b
    b.close()


@pytest.fixture
def admin(browser: Browser, uiserver: Running, request: pytest.FixtureRequest) -> Iterator[Page]:
    yield from open_page(browser, uiserver.url, ADMIN, "admin key", request)


@pytest.fixture
def reader(browser: Browser, uiserver: Running, request: pytest.FixtureRequest) -> Iterator[Page]:
    yield from open_page(browser, uiserver.url, READ, "read-only", request)


def add_subject(page: Page, name: str, sid: str, photos: list[Path]) -> None:
    page.goto(page.url.split("/ui/")[0] + "/ui/gallery")
    page.fill("#new-name", name)
    page.fill("#new-id", sid)
    page.click("#new-subject button")
    expect(page.locator("#subject-name")).to_have_text(name)
    drop(page, "#drop", photos)
    results = page.locator("#uploads .result")
    expect(results).to_have_count(len(photos))
    for i in range(len(photos)):
        expect(results.nth(i)).to_contain_text("enrolled as face #", timeout=60_000)
    crops = page.locator("#faces figure img")
    expect(crops).to_have_count(len(photos))
    for i in range(len(photos)):  # the stored 112x112 crops, fetched with the key
        expect(crops.nth(i)).to_have_js_property("naturalWidth", 112)
    expect(page.locator(f'#subjects tr[data-id="{sid}"] td').nth(2)).to_have_text(str(len(photos)))


def test_enrol_and_identify_through_the_ui(
    admin: Page, uiserver: Running, photos_dir: Path, tmp_path: Path
) -> None:
    add_subject(admin, "Person A", "person_a", [photos_dir / f for f in PERSON_A])
    add_subject(admin, "Person B", "person_b", [photos_dir / f for f in PERSON_B])
    admin.fill("#search", "person b")
    expect(admin.locator("#subjects tr")).to_have_count(1)
    expect(admin.locator("#subjects tr td").first).to_have_text("Person B")
    shoot(admin, "gallery", tmp_path)

    probe = photos_dir / "img5.jpg"  # Person A, not enrolled
    admin.goto(uiserver.url + "/ui/identify")
    admin.set_input_files("input[type=file]", str(probe))
    best = admin.locator('#results .face[data-face="0"] tr.match').first
    expect(best.locator("td").first).to_have_text("Person A", timeout=60_000)
    expect(best.locator(".badge")).to_have_text("match")
    admin.check("#liveness")  # the anti-spoofing model's verdict, per face
    admin.set_input_files("input[type=file]", str(probe))
    expect(admin.locator('#results .face[data-face="0"] .liveness')).to_have_text(
        re.compile(r"^(live|spoof) \(0")
    )
    shoot(admin, "identify", tmp_path)

    # the box drawn is the face the API finds, placed over the photo where that face is
    truth = httpx.post(uiserver.url + "/v1/detect", files={"i": probe.read_bytes()}, timeout=60).json()
    photo, face = truth["results"][0], truth["results"][0]["faces"][0]["box"]
    img = admin.locator("#photo img").bounding_box()
    rect = admin.locator("#photo rect.box").first.bounding_box()
    assert img is not None and rect is not None
    sx, sy = img["width"] / photo["width"], img["height"] / photo["height"]
    assert abs(rect["x"] - (img["x"] + face["x1"] * sx)) < 4
    assert abs(rect["y"] - (img["y"] + face["y1"] * sy)) < 4
    assert abs(rect["width"] - (face["x2"] - face["x1"]) * sx) < 6
    assert admin.locator("#photo circle.landmark").count() == 5 * len(photo["faces"])


def test_read_only_key_cannot_delete(reader: Page, uiserver: Running, photos_dir: Path) -> None:
    c = httpx.Client(base_url=uiserver.url, headers={"x-api-key": ADMIN}, timeout=60)
    c.post("/v1/subjects", json={"id": "keep_me", "name": "Keep Me"})
    c.post("/v1/subjects/keep_me/faces", files={"i": (photos_dir / "img16.jpg").read_bytes()})
    reader.goto(uiserver.url + "/ui/gallery")
    reader.fill("#search", "keep_me")
    reader.click('#subjects tr[data-id="keep_me"]')
    expect(reader.locator("#subject-name")).to_have_text("Keep Me")
    expect(reader.locator("#faces figure")).to_have_count(1)
    for hidden in ("#delete-subject", "#faces figure button", "#drop", "#new-subject", "#rename-btn"):
        expect(reader.locator(hidden)).to_be_hidden()
    # and if the page is made to try anyway, the server refuses and the page says so
    reader.evaluate("UI.guard(() => UI.api('DELETE', '/v1/subjects/keep_me'))")
    expect(reader.locator("#notice")).to_contain_text("403")
    assert c.get("/v1/subjects/keep_me").json()["faces"] == 1


def test_rename_and_delete_after_confirmation(admin: Page, uiserver: Running, photos_dir: Path) -> None:
    c = httpx.Client(base_url=uiserver.url, headers={"x-api-key": ADMIN}, timeout=60)
    c.post("/v1/subjects", json={"id": "temp", "name": "Temp"})
    photos = [("i", (photos_dir / f).read_bytes()) for f in ("img18.jpg", "img19.jpg")]
    assert c.post("/v1/subjects/temp/faces", files=photos).status_code == 201
    admin.goto(uiserver.url + "/ui/gallery")
    admin.fill("#search", "temp")
    admin.click('#subjects tr[data-id="temp"]')
    admin.fill("#rename", "Temporary")
    admin.click("#rename-btn")
    expect(admin.locator('#subjects tr[data-id="temp"] td').first).to_have_text("Temporary")
    assert c.get("/v1/subjects/temp").json()["name"] == "Temporary"

    faces = admin.locator("#faces figure")
    expect(faces).to_have_count(2)
    faces.first.locator("button").click()
    expect(admin.locator("#confirm")).to_be_visible()
    admin.click("#confirm button[value=cancel]")  # cancelled: nothing deleted
    expect(faces).to_have_count(2)
    faces.first.locator("button").click()
    admin.click("#confirm-ok")
    expect(faces).to_have_count(1)
    expect(admin.locator('#subjects tr[data-id="temp"] td').nth(2)).to_have_text("1")

    admin.click("#delete-subject")
    expect(admin.locator("#confirm-text")).to_contain_text("Temporary")
    admin.click("#confirm-ok")
    expect(admin.locator("#notice")).to_contain_text("Deleted Temporary (1 faces)")
    expect(admin.locator('#subjects tr[data-id="temp"]')).to_have_count(0)
    assert c.get("/v1/subjects/temp").status_code == 404


def test_verify_two_photos(admin: Page, uiserver: Running, photos_dir: Path, tmp_path: Path) -> None:
    admin.goto(uiserver.url + "/ui/verify")
    inputs = admin.locator("input[type=file]")
    inputs.nth(0).set_input_files(str(photos_dir / "img1.jpg"))
    inputs.nth(1).set_input_files(str(photos_dir / "img6.jpg"))
    expect(admin.locator("#match")).to_have_text("same person", timeout=60_000)
    expect(admin.locator("#photo-b rect.box")).to_have_count(1)
    shoot(admin, "verify", tmp_path)
    inputs.nth(1).set_input_files(str(photos_dir / "img13.jpg"))
    expect(admin.locator("#match")).to_have_text("different people", timeout=60_000)
    assert float(admin.locator("#similarity").inner_text()) < 0.38


def test_models_page_shows_why_a_version_was_rejected_and_sets_ab_weights(
    admin: Page, uiserver: Running, ui_repo: Path, tmp_path: Path
) -> None:
    add_version(ui_repo, 2, broken=True)  # its golden outputs negated: the self-test rejects it
    admin.goto(uiserver.url + "/ui/models")
    v1 = admin.locator('#versions tr[data-model="mobilefacenet"][data-version="1"]')
    row = admin.locator('#versions tr[data-model="mobilefacenet"][data-version="2"]')
    expect(v1.locator(".badge")).to_have_text("READY")
    expect(row.locator("button")).to_have_text("Load")
    row.locator("button").click()
    expect(admin.locator("#notice")).to_contain_text("rejected", timeout=60_000)
    expect(row.locator(".badge")).to_have_text("UNAVAILABLE")
    expect(row.locator(".reason")).to_contain_text("rejected")

    blaze = admin.locator('#versions tr[data-model="blazeface"][data-version="1"]')
    blaze.locator("button").click()  # Unload, then Load again (self-tested on the way in)
    expect(blaze.locator(".badge")).to_have_text("UNAVAILABLE")
    expect(blaze.locator("button")).to_have_text("Load")
    blaze.locator("button").click()
    expect(blaze.locator(".badge")).to_have_text("READY", timeout=60_000)

    weights = admin.locator('#weights tr[data-name="ArcFace"]')
    expect(weights.locator(".in-force")).to_have_text("newest only")
    weights.locator("input").first.fill("100")
    weights.locator("button").click()
    expect(admin.locator('#weights tr[data-name="ArcFace"] .in-force')).to_have_text("v1: 100")
    expect(admin.locator('#weights tr[data-name="mobilefacenet"] .in-force')).to_have_text("v1: 100")
    expect(v1.locator(".badge")).to_have_text("READY")  # what served before still serves
    shoot(admin, "models", tmp_path)


def load(url: str, photo: bytes, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, headers={"x-api-key": READ}, timeout=60) as c:
        while not stop.is_set():
            c.post("/v1/detect", files={"i": photo})


def test_live_numbers_move_under_load(
    reader: Page, uiserver: Running, photos_dir: Path, tmp_path: Path
) -> None:
    reader.goto(uiserver.url + "/ui/live")
    expect(reader.locator("#rps")).to_have_text("0.0", timeout=15_000)  # idle
    stop = threading.Event()
    photo = (photos_dir / "img25.jpg").read_bytes()
    threads = [threading.Thread(target=load, args=(uiserver.url, photo, stop)) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        expect(reader.locator('#endpoints tr[data-endpoint="v1:detect"]')).to_be_visible(timeout=15_000)
        time.sleep(3)  # a full window of scrapes under load
        assert float(reader.locator("#rps").inner_text()) > 0.5
        assert reader.locator("#p50").inner_text().endswith(" ms")
        assert reader.locator("#p99").inner_text().endswith(" ms")
        batch = reader.locator('#stages tr[data-stage="photos-mtcnn / detect"] .batch').inner_text()
        assert float(batch) >= 1
        shoot(reader, "live", tmp_path)
    finally:
        stop.set()
        for t in threads:
            t.join()
    expect(reader.locator("#rps")).to_have_text("0.0", timeout=15_000)  # and back when the load stops


def test_subjects_page_through_search_results(reader: Page, uiserver: Running) -> None:
    with httpx.Client(base_url=uiserver.url, headers={"x-api-key": ADMIN}) as c:
        for i in range(12):
            c.post("/v1/subjects", json={"id": f"paged{i:02}", "name": f"Paged {i:02}"})
    reader.goto(uiserver.url + "/ui/gallery")
    reader.fill("#search", "paged")
    expect(reader.locator("#page-info")).to_have_text("1-10 of 12")
    expect(reader.locator("#prev")).to_be_disabled()
    reader.click("#next")
    expect(reader.locator("#page-info")).to_have_text("11-12 of 12")
    expect(reader.locator("#subjects tr td:first-child")).to_have_text(["Paged 10", "Paged 11"])
    expect(reader.locator("#next")).to_be_disabled()
    reader.click("#prev")
    expect(reader.locator("#subjects tr")).to_have_count(10)


@pytest.fixture
def camera(
    pw: Playwright, uiserver: Running, photos_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A page in a browser whose webcam shows img5 (Person A, not enrolled), with the read key."""
    video = webcam_file(photos_dir / "img5.jpg", tmp_path / "camera.mjpeg")
    fake = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    fake.append(f"--use-file-for-fake-video-capture={video}")
    b = pw.chromium.launch(executable_path=chromium(), args=[*ARGS, *fake])
    yield from open_page(b, uiserver.url, READ, "read-only", request)
    b.close()


def test_webcam_snapshot_is_identified(camera: Page, uiserver: Running, photos_dir: Path) -> None:
    with httpx.Client(base_url=uiserver.url, headers={"x-api-key": ADMIN}, timeout=60) as c:
        # enrolled by the first test already, if it ran: then a 409 here and the same faces again
        c.post("/v1/subjects", json={"id": "person_a", "name": "Person A"})
        r = c.post(
            "/v1/subjects/person_a/faces", files=[("i", (photos_dir / f).read_bytes()) for f in PERSON_A]
        )
        assert r.status_code == 201, r.text
    camera.goto(uiserver.url + "/ui/identify")
    camera.click("#camera")
    expect(camera.locator("#video")).to_have_js_property("videoWidth", 640)
    camera.click("#snap")
    best = camera.locator('#results .face[data-face="0"] tr.match').first
    expect(best.locator("td").first).to_have_text("Person A", timeout=60_000)
    expect(best.locator(".badge")).to_have_text("match")
