"""The console on a stack with storage-backed mode off: the storage pages say why they are
empty, and the test page and API keys still work."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.integration.conftest import LIMITS, PHOTO_FACES, sample
from tests.integration.console.conftest import ADMIN_PASSWORD, ADMIN_USERNAME
from tests.integration.stack import start_stack


@pytest.fixture(scope="module")
def storage_off(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("console-storage-off"),
                          env={**LIMITS, "FACE_API_STORAGE_ENABLED": "false"})
    yield running
    running.stop()


def test_storage_pages_explain_and_the_test_page_still_works(new_page, storage_off):
    page = new_page(base_url=storage_off.url)
    page.expected_errors.append("status of 501")  # the storage endpoints' answer, which the pages explain
    page.goto("/admin")
    page.get_by_label("Username").fill(ADMIN_USERNAME)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    for route, heading in (("#/", "Dashboard"), ("#/images", "Images"), ("#/jobs", "Jobs")):
        page.goto(f"/admin{route}")
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        expect(page.locator("main")).to_contain_text("Storage-backed mode is off")

    page.goto("/admin#/keys")
    expect(page.locator("tbody tr")).not_to_have_count(0)  # the stack's first key

    page.goto("/admin#/test")
    page.locator("#photo").set_input_files(str(sample("yaoming.jpg")))
    page.get_by_role("button", name="Detect and mask").click()
    expect(page.locator("#face-count")).to_have_text(str(PHOTO_FACES["yaoming.jpg"]), timeout=60_000)
    expect(page.locator(".result")).to_contain_text("not recorded")
