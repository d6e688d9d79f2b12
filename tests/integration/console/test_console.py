"""The admin console in Debian's Chromium against the real stack (Triton, SQLite, local
object storage): log in, dashboard, test page, images, jobs, API keys, delete, log out.

Each test checks what the page shows against the admin API's own answer, and takes the
screenshots that docs/console.md uses (tests/artifacts/screenshots/)."""

from __future__ import annotations

import functools
import re
import secrets

import httpx
import pytest
from playwright.sync_api import Page, expect

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
