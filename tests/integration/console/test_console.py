"""The admin console in Debian's Chromium against the real stack (Triton, SQLite, local
object storage): log in, dashboard, test page, images, jobs (video jobs' progress too), API keys,
delete, log out.

Each test checks what the page shows against the admin API's own answer, and takes the
screenshots that docs/console.md uses (tests/artifacts/screenshots/)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import secrets
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import httpx
import pytest
import sqlalchemy as sa
from PIL import Image, ImageFilter
from playwright.sync_api import Page, expect

from frontend.auth.api_keys import hash_key
from frontend.persistence.database import create_database
from frontend.persistence.tables import api_keys, images, jobs
from frontend.services import video as video_service
from frontend.video import jobs as queue
from frontend.video.io import probe
from tests.integration.conftest import PHOTO_FACES, sample, unique_photo
from tests.integration.console.conftest import ADMIN_PASSWORD, ADMIN_USERNAME

# name -> (route, the page's heading)
PAGES = {"dashboard": ("#/", "Dashboard"), "images": ("#/images", "Images"), "jobs": ("#/jobs", "Jobs"),
         "keys": ("#/keys", "API keys"), "test": ("#/test", "Test")}


def log_in(page: Page, route: str = "#/") -> None:
    page.goto(f"/admin{route}")
    page.get_by_label("Username").fill(ADMIN_USERNAME)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("navigation", name="console")).to_be_visible()


def recorded_photo(client: httpx.Client, name: str = "yaoming.jpg") -> dict:
    """A detect call on bytes never uploaded before: a new image with one job."""
    response = client.post("/api/v1/detect", files={"image": ("photo.png", unique_photo(name))})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image_id"] and body["job_id"]
    return body


def settle(page: Page) -> None:
    """Wait for the view's data, then load every image now (lazy ones too) so that a
    full-page screenshot shows them."""
    expect(page.locator("main")).not_to_have_attribute("aria-busy", "true")
    page.evaluate("""() => Promise.all([...document.images].map((img) => {
        img.loading = "eager"; return img.decode().catch(() => null); }))""")


def no_horizontal_scroll(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


# --- login and logout ---

def test_nothing_is_shown_or_served_without_a_session(new_page, shoot):
    page = new_page()
    page.goto("/admin#/images")
    expect(page.get_by_role("heading", name="Admin console")).to_be_visible()
    expect(page.get_by_role("navigation", name="console")).to_have_count(0)
    assert page.request.get("/api/v1/admin/images").status == 401
    shoot(page, "login")

    page.get_by_label("Username").fill(ADMIN_USERNAME)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(page.get_by_role("navigation", name="console")).to_have_count(0)

    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    # Logging in keeps the page that was asked for.
    expect(page.get_by_role("heading", name="Images", exact=True)).to_be_visible()
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["face_api_session"]["httpOnly"] and cookies["face_api_session"]["sameSite"] == "Strict"
    assert page.request.get("/api/v1/admin/images").status == 200


def test_logout_revokes_the_session(new_page, stack):
    page = new_page()
    log_in(page)
    token = {c["name"]: c["value"] for c in page.context.cookies()}["face_api_session"]
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Admin console")).to_be_visible()
    assert page.request.get("/api/v1/admin/stats").status == 401
    # The old cookie is dead on the server too, not only forgotten by the browser.
    with httpx.Client(base_url=stack.url, cookies={"face_api_session": token}) as http:
        assert http.get("/api/v1/admin/stats").status_code == 401


def test_a_session_ended_elsewhere_sends_the_console_back_to_login(new_page, stack):
    page = new_page()
    log_in(page)
    token = {c["name"]: c["value"] for c in page.context.cookies()}["face_api_session"]
    with httpx.Client(base_url=stack.url, cookies={"face_api_session": token}) as http:
        assert http.post("/api/v1/admin/auth/logout").status_code == 204  # revoked, as an expiry would
    page.get_by_role("link", name="Jobs").click()
    expect(page.get_by_role("heading", name="Admin console")).to_be_visible()
    expect(page.locator(".toast")).to_contain_text("session has ended")


# --- dashboard ---

def test_dashboard_shows_the_stats_and_the_last_24_hours(new_page, shoot, client, admin):
    recorded_photo(client)
    page = new_page()
    log_in(page)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator(".chart .bar")).to_have_count(24)
    stats = admin.get("/stats").json()

    def card(label: str) -> str:
        heading = page.get_by_role("heading", name=label, exact=True)
        return page.locator(".stat", has=heading).locator(".value").inner_text()

    assert card("Images") == f"{stats['images_total']:,}"
    assert card("Jobs") == f"{stats['jobs_total']:,}"
    assert card("Faces found") == f"{stats['faces_total']:,}"
    now = stats["last_24h"]["hourly"][-1]
    assert now["detect"] >= 1
    expect(page.locator(".chart .bar").last.locator("title")).to_contain_text(f"{now['detect']} detect")
    shoot(page, "dashboard")
    day = page.locator(".card", has=page.get_by_role("heading", name="Last 24 hours", exact=True))
    day.get_by_text("Show as a table").click()
    expect(day.locator("details table tbody tr")).to_have_count(24)


def live_figure(page: Page, label: str) -> str:
    """The value of one of the live-health figures, as shown (e.g. "0.34 req/s")."""
    heading = page.get_by_role("heading", name=label, exact=True)
    return page.locator(".live .stat", has=heading).locator(".value").inner_text()


def test_dashboard_shows_live_health_and_polls_only_while_shown(new_page, client, admin):
    recorded_photo(client)
    for _ in range(3):
        assert client.get("/health").status_code == 200
    page = new_page()
    page.clock.install()  # the page's timers run when the test says (run_for), not every 15 s
    polls = []
    page.on("request", lambda request: "/metrics/recent" in request.url and polls.append(request.url))
    log_in(page)
    expect(page.locator("main")).not_to_have_attribute("aria-busy", "true")
    live = page.locator("section.live")
    expect(live.get_by_role("heading", name="Live health · last hour")).to_be_visible()
    for label in ("Request rate", "p95 latency", "Error rate"):
        expect(live.get_by_role("heading", name=label, exact=True)).to_be_visible()
    note = live.locator(".stat", has=page.get_by_role("heading", name="Request rate")).locator("p.muted")
    shown = re.fullmatch(r"([\d,]+) requests? since \d\d:\d\d UTC", note.inner_text())
    shown = int(shown[1].replace(",", ""))
    recent = admin.get("/metrics/recent").json()  # after the page's own call: it counts at least as many
    assert 0 < shown <= recent["requests"], (shown, recent)
    assert re.fullmatch(r"[\d,]+(\.\d+)? req/s", live_figure(page, "Request rate"))
    assert re.fullmatch(r"[\d,]+(\.\d)? ms", live_figure(page, "p95 latency"))  # a number: requests were made
    assert re.fullmatch(r"\d+(\.\d+)?%", live_figure(page, "Error rate"))
    # The chart, or (on a stack younger than two snapshots) the line that says it is coming.
    expect(live.locator("svg.live-chart").or_(live.get_by_text("fills in as minutes pass"))).to_be_visible()
    if live.locator("svg.live-chart").count():
        minutes = live.locator("svg.live-chart g.minute").count()
        assert minutes >= 1
        live.get_by_text("Show the minutes as a table").click()
        expect(live.locator("details table tbody tr")).to_have_count(minutes)

    # Polled every 15 s while the dashboard is shown...
    assert len(polls) == 1, polls
    with page.expect_request(lambda request: "/metrics/recent" in request.url):
        page.clock.run_for(15_000)
    expect(live.locator(".live-status")).to_contain_text("Updated")
    # ...and not once another page is.
    page.get_by_role("navigation", name="console").get_by_role("link", name="Jobs").click()
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    expect(page.locator("main")).not_to_have_attribute("aria-busy", "true")
    before = len(polls)
    page.clock.run_for(120_000)
    page.wait_for_timeout(500)  # a request the timers made would have been reported by now
    assert len(polls) == before, polls[before:]


def fulfil(route, **answer) -> None:
    route.fulfill(**answer)


def test_live_health_says_when_it_has_nothing_to_show(new_page):
    page = new_page()
    page.clock.install()
    page.expected_errors.extend(["status of 501", "net::ERR_FAILED"])  # provoked below
    log_in(page)
    live = page.locator("section.live")
    expect(live.get_by_role("heading", name="Request rate")).to_be_visible()
    recent = "**/api/v1/admin/metrics/recent"

    # A refresh that fails keeps the figures on show and says how old they are.
    page.route(recent, lambda route: route.abort())
    page.clock.run_for(15_000)
    expect(live.locator(".live-status")).to_contain_text("Could not refresh")
    expect(live.get_by_role("heading", name="Request rate")).to_be_visible()

    # A server without the endpoint (404, 501) or unreachable: a note, and the rest of the page.
    for status, text in ((404, "not available on this server"), (501, "not available on this server"),
                         (None, "could not be loaded")):
        page.unroute(recent)
        detail = {"detail": "Not Found" if status == 404 else "Not Implemented"}
        page.route(recent, (lambda route: route.abort()) if status is None
                   else functools.partial(fulfil, status=status, json=detail))
        page.reload()
        expect(page.locator("main")).not_to_have_attribute("aria-busy", "true")
        expect(live).to_contain_text(text)
        expect(live.locator(".stat")).to_have_count(0)
        expect(page.get_by_role("heading", name="Images", exact=True)).to_be_visible()  # the /stats cards

    # An empty window: the three figures, and the chart to come.
    page.unroute(recent)
    page.route(recent, lambda route: route.fulfill(json={
        "window_s": 3600, "step_s": 60, "since": "2026-12-02T14:00:00Z", "requests": 3, "rate_per_s": 0.1,
        "errors": 0, "error_ratio": 0.0, "p95_ms": 12.5, "points": []}))
    page.reload()
    expect(live.get_by_text("The per-minute chart fills in as minutes pass.")).to_be_visible()
    assert live_figure(page, "Request rate") == "0.10 req/s"
    assert live_figure(page, "p95 latency") == "13 ms"
    assert live_figure(page, "Error rate") == "0%"
    expect(live.locator("svg")).to_have_count(0)
    expect(live.get_by_text("Show the minutes as a table")).to_be_hidden()


# --- the test page, and finding its result in images and jobs ---

def test_test_page_masks_a_photo_and_the_call_is_in_images_and_jobs(new_page, shoot, admin):
    page = new_page()
    log_in(page, "#/test")
    page.locator("#photo").set_input_files(str(sample("gdp.jpg")))
    expect(page.get_by_text("gdp.jpg")).to_be_visible()
    page.get_by_label("Method").select_option("pixelate")
    page.get_by_label("Strength").fill("12")
    page.get_by_label("Format").select_option("png")
    page.get_by_role("button", name="Detect and mask").click()

    expect(page.locator("#face-count")).to_have_text(str(PHOTO_FACES["gdp.jpg"]), timeout=60_000)
    detections, masked = page.locator(".result figure.photo").all()
    expect(detections.locator(".faces .face")).to_have_count(PHOTO_FACES["gdp.jpg"])
    assert masked.locator("img").evaluate("img => img.complete && img.naturalWidth") == 500
    shoot(page, "test-page")

    job_link = page.get_by_role("link", name=re.compile(r"^job "))
    job_id = job_link.get_attribute("href").removeprefix("#/jobs/")
    image_link = page.get_by_role("link", name=re.compile(r"^image "))
    image_id = image_link.get_attribute("href").removeprefix("#/images/")
    job = admin.get(f"/jobs/{job_id}").json()
    assert (job["job_type"], job["method"], job["image_id"]) == ("mask", "pixelate", image_id)
    assert job["parameters"]["strength"] == 12 and job["processed_content_type"] == "image/png"
    # The result the page offers for download is the output the server kept, byte for byte.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download result").click()
    assert download.value.suggested_filename == "masked.png"
    kept = admin.get(f"/jobs/{job_id}/download", follow_redirects=True)
    assert download.value.path().read_bytes() == kept.content

    # The job's page: both photos, the call's parameters, the payload.
    job_link.click()
    expect(page.get_by_role("heading", name=re.compile("^Mask job"))).to_be_visible()
    expect(page.locator(".panels .faces .face")).to_have_count(PHOTO_FACES["gdp.jpg"])
    expect(page.locator(".facts").filter(has_text="strength")).to_contain_text("12")
    page.get_by_text("Detection payload (JSON)").click()
    expect(page.locator("pre.json")).to_contain_text(job["result"]["request_id"])
    settle(page)
    shoot(page, "job-detail")

    # The image is the newest in the gallery, with its masked thumbnail beside the original.
    page.get_by_role("link", name="Images", exact=True).click()
    tile = page.locator(".tile").first
    expect(tile.locator("a")).to_have_attribute("href", f"#/images/{image_id}")
    expect(tile.locator("img")).to_have_count(2)
    settle(page)
    shoot(page, "images")
    tile.locator("a").click()
    expect(page.get_by_role("heading", name=re.compile("^Image"))).to_contain_text(image_id[:8])
    expect(page.locator(".viewer .faces .face")).to_have_count(PHOTO_FACES["gdp.jpg"])
    expect(page.locator(f"tr[data-job='{job_id}']")).to_be_visible()
    settle(page)
    shoot(page, "image-detail")

    # The jobs list, filtered to this method.
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_label("Method").select_option("pixelate")
    expect(page).to_have_url(re.compile(r"method=pixelate"))
    expect(page.locator(f"tr[data-job='{job_id}']")).to_be_visible()
    methods = page.locator("tbody tr td:nth-child(4)").all_inner_texts()
    assert methods and set(methods) == {"pixelate"}
    shoot(page, "jobs")


def test_bad_uploads_get_a_readable_message_on_the_test_page(new_page):
    page = new_page()
    log_in(page, "#/test")
    page.locator("#photo").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"this is not a photo"})
    page.get_by_role("button", name="Detect and mask").click()
    expect(page.locator(".result [role=alert]")).to_contain_text("not an image")


# --- deleting an image ---

def test_deleting_an_image_asks_first(new_page, client, admin):
    recorded = recorded_photo(client)
    image_id = recorded["image_id"]
    page = new_page()
    log_in(page, f"#/images/{image_id}")
    expect(page.get_by_role("heading", name=re.compile("^Image"))).to_contain_text(image_id[:8])
    expect(page.locator(".viewer .faces .face")).to_have_count(1)

    page.get_by_role("button", name="Delete image…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("cannot be undone")
    page.keyboard.press("Escape")  # changing one's mind keeps the image
    expect(dialog).to_have_count(0)
    assert admin.get(f"/images/{image_id}").status_code == 200

    page.get_by_role("button", name="Delete image…").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.locator(".toast")).to_contain_text("deleted")
    expect(page.get_by_role("heading", name="Images", exact=True)).to_be_visible()
    assert admin.get(f"/images/{image_id}").status_code == 404
    assert admin.get(f"/jobs/{recorded['job_id']}").status_code == 404
    expect(page.locator(f".tile a[href='#/images/{image_id}']")).to_have_count(0)


# --- API keys ---

def test_api_keys_create_use_rename_deactivate_delete(new_page, shoot, stack):
    page = new_page(permissions=["clipboard-read", "clipboard-write"])
    log_in(page, "#/keys")
    name = f"browser {secrets.token_hex(3)}"
    page.get_by_label("New key for").fill(name)
    page.get_by_role("button", name="Create key").click()

    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("only time the full key is shown")
    key = dialog.get_by_label(re.compile("^API key")).input_value()
    assert re.fullmatch(r"xyl_[A-Za-z0-9_-]{20,}", key), key
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.get_by_role("button", name="Copied ✓")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key
    shoot(page, "key-created")
    dialog.get_by_role("button", name="Done").click()

    def call() -> int:
        with httpx.Client(base_url=stack.url, timeout=60) as http:
            return http.post("/api/v1/detect", headers={"X-API-Key": key},
                             files={"image": ("a.jpg", sample("yaoming.jpg").read_bytes())}).status_code

    row = page.locator("tr", has_text=name)
    expect(row).to_contain_text(f"{key[:8]}...{key[-4:]}")
    expect(row.locator(".badge")).to_have_text("active")
    assert call() == 200

    row.get_by_role("button", name=f"deactivate {name}").click()
    expect(page.locator("tr", has_text=name).locator(".badge")).to_have_text("inactive")
    assert call() == 403
    page.locator("tr", has_text=name).get_by_role("button", name=f"activate {name}").click()
    expect(page.locator("tr", has_text=name).locator(".badge")).to_have_text("active")
    assert call() == 200

    renamed = f"{name} renamed"
    page.locator("tr", has_text=name).get_by_role("button", name=f"rename {name}").click()
    page.get_by_role("dialog").get_by_label("Name").fill(renamed)
    page.get_by_role("dialog").get_by_role("button", name="Save").click()
    row = page.locator("tr", has_text=renamed)
    expect(row).to_be_visible()
    shoot(page, "keys")

    row.get_by_role("button", name=f"delete {renamed}").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.locator("tr", has_text=renamed)).to_have_count(0)
    assert call() == 401


# --- keyboard and phone ---

def test_the_console_works_from_the_keyboard(new_page):
    page = new_page()
    page.goto("/admin")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type(ADMIN_USERNAME)
    page.keyboard.press("Tab")
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    # After each navigation the focus is on the content, and the navigation is a Shift+Tab away.
    expect(page.locator("main")).to_be_focused()
    jobs = page.get_by_role("navigation", name="console").get_by_role("link", name="Jobs")
    for _ in range(10):
        page.keyboard.press("Shift+Tab")
        if jobs.evaluate("link => link === document.activeElement"):
            break
    expect(jobs).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    expect(jobs).to_have_attribute("aria-current", "page")
    expect(page.locator("main")).to_be_focused()

    # On a fresh load, the first Tab offers to skip the navigation.
    page.reload()
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    assert page.url.endswith("#/jobs")  # the skip link does not change the page

    # A dialog takes the focus and Escape gives it back.
    page.goto("/admin#/keys")
    page.get_by_label("New key for").focus()
    page.keyboard.type(f"keyboard {secrets.token_hex(3)}")
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    assert dialog.evaluate("d => d.contains(document.activeElement)")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_fits_a_phone(new_page, shoot, client, scheme):
    recorded_photo(client, "gdp.jpg")
    page = new_page(mobile=True, color_scheme=scheme)
    log_in(page)
    for name, (route, heading) in PAGES.items():
        page.goto(f"/admin{route}")
        expect(page.locator("main h1")).to_have_text(heading)
        expect(page.locator("main")).not_to_have_attribute("aria-busy", "true")
        assert no_horizontal_scroll(page), f"{name} scrolls sideways at 390 px"
        expect(page.get_by_role("link", name="Log out").or_(page.get_by_role("button", name="Log out"))) \
            .to_be_visible()
        if scheme == "light" or name == "dashboard":
            settle(page)
            shoot(page, f"phone-{name}-{scheme}")


# --- video jobs ---

VIDEO_FRAMES = 48
POLL_MS = 2000  # frontend/console/static/views/jobs.js: how often a page with an active video job asks again
NOBODY = "console-test:0"  # the seeded jobs' claimed_by: no video worker has this name
LEASE_S = 86_400.0  # far beyond the test: requeue_expired never sees these jobs' leases run out
JOB_LIST = re.compile(r"/api/v1/admin/jobs\?")


def video_clip(path: Path, background: int, blur: float = 0.0) -> Path:
    """VIDEO_FRAMES frames (320x180, 12 fps, H.264) of a sample face crossing a grey frame; with
    ``blur`` the face is blurred, a stand-in for a masked output."""
    width, height = 320, 180
    face = Image.open(sample("yaoming.jpg")).convert("RGB")
    face = face.resize((round(face.width * height / face.height), height))
    if blur:
        face = face.filter(ImageFilter.GaussianBlur(blur))
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(VIDEO_FRAMES):
            frame = Image.new("RGB", (width, height), (background,) * 3)
            frame.paste(face, (round((width - face.width) * index / (VIDEO_FRAMES - 1)), 0))
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return path


@dataclass
class SeededVideo:
    """A stored video and its video jobs, put straight into the stack's database and object store."""

    url: str  # the stack's database
    objects: Path  # the stack's local object store
    image_id: str
    info: dict
    claims: dict[str, queue.Claim] = field(default_factory=dict)  # job id -> the claim its writes name
    written: list[Path] = field(default_factory=list)  # objects to delete afterwards

    def run(self, work):
        """``await work(database)`` on the stack's database, in a thread with an event loop of its own
        (Playwright's sync API takes this thread's)."""
        async def main():
            database = create_database(self.url)
            await database.connect()
            try:
                return await work(database)
            finally:
                await database.disconnect()

        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, main()).result()

    def progress(self, job_id: str, done: int, total: int | None) -> None:
        """What a worker writes as frames are masked (the lease kept far off)."""
        assert self.run(lambda db: queue.progress(db, self.claims[job_id], done, total, LEASE_S))

    def finish(self, job_id: str, faces: int, total_ms: float) -> None:
        """What a worker writes when the masked video is stored: the job done, with its output."""
        key, content_type = queue.output_key(job_id, "mp4")
        (self.objects / key).parent.mkdir(parents=True, exist_ok=True)
        output = video_clip(self.objects / key, 110, blur=8)
        self.written.append(output)
        size = output.stat().st_size
        result = {"input": self.info, "frames": VIDEO_FRAMES, "faces_masked": VIDEO_FRAMES, "tracks": faces,
                  "timings": {"queued_ms": 0.0, "download_ms": 1.0, "pipeline_ms": total_ms - 2,
                              "upload_ms": 1.0, "total_ms": total_ms},
                  "output": {"container": "mp4", "codec": "h264", "size_bytes": size,
                             "content_type": content_type}}
        assert self.run(lambda db: queue.finish(
            db, self.claims[job_id], output_key=key, content_type=content_type, size_bytes=size,
            frames=VIDEO_FRAMES, faces=faces, result=result, total_ms=total_ms))

    def fail(self, job_id: str, error: str) -> None:
        assert self.run(lambda db: queue.fail(db, self.claims[job_id], error))


@pytest.fixture
def seeded_video(stack, objects, tmp_path):
    """A stored video (an images row of content type video/mp4 and its file in the object store)
    with no job yet; the rows and files are deleted after the test, so the counts other tests
    read are as they were."""
    original = video_clip(tmp_path / "original.mp4", 100 + secrets.randbelow(40))  # bytes new to the stack
    sha = hashlib.sha256(original.read_bytes()).hexdigest()
    key = f"originals/{sha[:2]}/{sha}.mp4"
    info = video_service.describe(probe(original))
    seeded = SeededVideo(url=f"sqlite:///{stack.log_path.parent / 'face-api.sqlite3'}", objects=objects,
                         image_id=str(uuid.uuid4()), info=info)
    try:
        (objects / key).parent.mkdir(parents=True, exist_ok=True)
        seeded.written.append(objects / key)
        shutil.copyfile(original, objects / key)
        seeded.run(lambda db: db.execute(sa.insert(images).values(
            id=seeded.image_id, sha256=sha, object_key=key, content_type="video/mp4", width=info["width"],
            height=info["height"], channels=3, size_bytes=info["size_bytes"], created_at=datetime.now(UTC))))
        yield seeded
    finally:
        async def forget(db):
            await db.execute(sa.delete(jobs).where(jobs.c.image_id == seeded.image_id))
            await db.execute(sa.delete(images).where(images.c.id == seeded.image_id))

        seeded.run(forget)
        for path in seeded.written:
            path.unlink(missing_ok=True)


def seed_running_job(seeded: SeededVideo, api_key_id: str, done: int, total: int | None,
                     created_at: datetime) -> str:
    """A video job in the state a worker's claim leaves it, held by NOBODY under a lease far in
    the future: the stack's own video worker only claims queued jobs and requeues expired
    leases, so it never touches this one. Inserted running, never queued, so no worker can
    claim it first. Its id."""
    job_id = str(uuid.uuid4())
    parameters = video_service.VideoRequest(
        method="gaussian", strength=25, padding=0.1, confidence=0.5, nms_threshold=0.4, max_faces=100,
        max_missed=4, lookahead=4, container="mp4", codec="h264", quality=23, audio=False).parameters()
    started = created_at + timedelta(seconds=1)
    seeded.run(lambda db: db.execute(sa.insert(jobs).values(
        id=job_id, image_id=seeded.image_id, job_type=queue.JOB_TYPE, method="gaussian",
        parameters=parameters, result={"input": seeded.info}, face_count=0, model="scrfd_500m", total_ms=0.0,
        api_key_id=api_key_id, created_at=created_at, state=queue.RUNNING, attempts=1, frames_done=done,
        frames_total=total, claimed_by=NOBODY, lease_until=started + timedelta(seconds=LEASE_S),
        started_at=started)))
    seeded.claims[job_id] = queue.Claim(
        id=job_id, worker=NOBODY, attempt=1, image_id=seeded.image_id, parameters=parameters,
        info=seeded.info, model="scrfd_500m", created_at=created_at, started_at=started)
    return job_id


def fact(page: Page, term: str):
    """The value (dd) of one of the facts (dl.facts) shown on the page."""
    return page.locator(f"xpath=//dl[contains(@class, 'facts')]/dt[normalize-space()='{term}']"
                        "/following-sibling::dd[1]")


def test_jobs_page_follows_a_running_video_job_until_it_ends(new_page, shoot, admin, api_key, seeded_video):
    key_id = seeded_video.run(lambda db: db.fetch_val(
        sa.select(api_keys.c.id).where(api_keys.c.key_hash == hash_key(api_key))))
    now = datetime.now(UTC)
    masked = seed_running_job(seeded_video, key_id, 12, VIDEO_FRAMES, now)
    uncounted = seed_running_job(seeded_video, key_id, 5, None, now - timedelta(seconds=1))  # no total
    listed = admin.get("/jobs", params={"job_type": "mask_video"}).json()["items"]
    assert [(j["id"], j["state"], j["progress"]) for j in listed[:2]] == [
        (masked, "running", {"frames_done": 12, "frames_total": VIDEO_FRAMES}),
        (uncounted, "running", {"frames_done": 5, "frames_total": None})]

    page = new_page()
    page.clock.install()  # the page's polls run when the test says (run_for), not every 2 s
    polls = []
    page.on("request", lambda request: JOB_LIST.search(request.url) and polls.append(request.url))
    log_in(page, "#/jobs")
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    expect(page.locator("main")).not_to_have_attribute("aria-busy", "true")
    page.evaluate("window.notReloaded = true")  # gone if the page were loaded again

    row, other = page.locator(f"tr[data-job='{masked}']"), page.locator(f"tr[data-job='{uncounted}']")
    bar, other_bar = row.locator("progress"), other.locator("progress")
    expect(bar).to_have_attribute("aria-label", "progress: 12 of 48 frames")
    expect(bar).to_have_js_property("value", 12)
    expect(bar).to_have_js_property("max", VIDEO_FRAMES)
    expect(row.locator(".progress-cell")).to_contain_text("25%")
    expect(row.locator(".badge")).to_have_text("mask_video")
    # Without a total (the container did not say) the bar is indeterminate and counts frames.
    expect(other_bar).to_have_attribute("aria-label", "progress: 5 frames")
    expect(other_bar).to_have_js_property("position", -1)  # indeterminate
    expect(other.locator(".progress-cell")).to_contain_text("5 frames")

    # The worker's progress reaches the page at the next poll, without a reload.
    seeded_video.progress(masked, 30, VIDEO_FRAMES)
    seeded_video.progress(uncounted, 17, None)
    with page.expect_response(lambda response: JOB_LIST.search(response.url) is not None):
        page.clock.run_for(POLL_MS)
    expect(bar).to_have_attribute("aria-label", "progress: 30 of 48 frames")
    expect(bar).to_have_js_property("value", 30)
    expect(bar).to_have_js_property("max", VIDEO_FRAMES)
    expect(row.locator(".progress-cell")).to_contain_text("62%")
    expect(other_bar).to_have_attribute("aria-label", "progress: 17 frames")
    assert page.evaluate("window.notReloaded === true")
    shoot(page, "jobs-video-progress")

    # One done, one failed: the done one shows its time like any job, the failed one a badge
    # with the reason as its title; then, with no active job left, the polls stop.
    error = "the inference server was unavailable (tried 3 times)"
    seeded_video.finish(masked, faces=1, total_ms=5432.1)
    seeded_video.fail(uncounted, error)
    with page.expect_response(lambda response: JOB_LIST.search(response.url) is not None):
        page.clock.run_for(POLL_MS)
    expect(row.locator("progress")).to_have_count(0)
    expect(row.locator("td.num").last).to_have_text("5432 ms")
    expect(row.locator("td.num").first).to_have_text("1")  # faces, once done
    expect(other.locator("progress")).to_have_count(0)
    expect(other.locator(".badge.failed")).to_have_text("failed")
    expect(other.locator(".badge.failed")).to_have_attribute("title", error)
    assert page.evaluate("window.notReloaded === true")
    before = len(polls)
    page.clock.run_for(10 * POLL_MS)
    page.wait_for_timeout(500)  # a request the timers made would have been reported by now
    assert len(polls) == before, polls[before:]

    # The jobs' pages: the frames, the state, the output (its first frame) or the error.
    row.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name=re.compile("^Video job"))).to_contain_text(masked[:8])
    expect(fact(page, "Frames")).to_have_text("48 of 48")
    expect(fact(page, "State").locator(".badge")).to_have_text("done")
    expect(fact(page, "Runs")).to_have_text("1")
    expect(fact(page, "Faces")).to_have_text("1")
    expect(fact(page, "Output")).to_contain_text("video/mp4")
    expect(fact(page, "Input")).to_contain_text(f"320×180, {VIDEO_FRAMES} frames, 12 fps, h264")
    expect(page.get_by_role("link", name="Download masked")).to_be_visible()
    settle(page)
    thumbnails = page.locator(".panels img")
    expect(thumbnails).to_have_count(2)
    for thumbnail in thumbnails.all():  # the original's and the output's first frames, decoded
        assert thumbnail.evaluate("img => img.complete && img.naturalWidth") > 0

    page.get_by_role("navigation", name="breadcrumb").get_by_role("link", name="Jobs").click()
    other.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name=re.compile("^Video job"))).to_contain_text(uncounted[:8])
    expect(fact(page, "Frames")).to_have_text("17 of ?")
    expect(fact(page, "State").locator(".badge")).to_have_text("failed")
    expect(fact(page, "Error")).to_have_text(error)
    expect(page.get_by_role("link", name="Download masked")).to_have_count(0)
