"""Fixtures for the browser tests of the admin console: Debian's Chromium via Playwright.

The console runs in the session's real stack (``stack`` from the parent conftest; the
admin login is ``ADMIN_USERNAME`` / ``ADMIN_PASSWORD`` below). A test asks for pages
from ``new_page`` and drives them with Playwright's sync API::

    from playwright.sync_api import expect

    from tests.integration.console.conftest import ADMIN_PASSWORD, ADMIN_USERNAME

    def test_login(new_page, shoot):
        page = new_page()                       # 1366x900; new_page(mobile=True): a 390x844 phone
        page.goto("/admin")                     # relative to stack.url
        page.get_by_label("Username").fill(ADMIN_USERNAME)
        ...
        expect(page.get_by_role("heading", name="Images")).to_be_visible()
        shoot(page, "images-desktop")           # tests/artifacts/screenshots/images-desktop.png

Fixtures:

``browser`` (package: this folder's tests share one)
    The launched Chromium (``tests/support/browser.py``). The tests here are plain
    functions, not ``async def`` (see ``browser`` for why).
``new_page(width=None, height=None, mobile=False, **context_options)`` (function)
    A Page in a fresh browser context: ``base_url=stack.url``, locale en-GB, timezone
    UTC, ``reduced_motion="reduce"``, 15 s default timeout (also for ``expect``).
    Desktop 1366x900 by default; ``mobile=True`` is a 390x844 touch phone
    (``is_mobile``, ``has_touch``). Other keywords go to ``Browser.new_context``
    (e.g. ``color_scheme="dark"``, ``accept_downloads=True``). Every call makes a new
    context, so two pages do not share cookies; popups the page opens are watched too.
    The contexts are closed after the test.
``shoot(page, name)`` (function; also importable from this module)
    Saves a full-page PNG to ``tests/artifacts/screenshots/<name>.png`` and returns its path.

Errors in the page fail the test. Every page records console messages of type
"error" (Content-Security-Policy violations show up there: "Refused to ..." or, in
Chromium 156, "Executing inline script violates the following Content Security Policy ..."),
uncaught exceptions ("pageerror") and crashes; when the test body is done, any of
them fails the test with the list. Chromium's "Failed to load resource: the server
responded with a status of 4xx" lines are not counted: the console handles those
answers (a 401 before login, a 404 for a deleted image); a 5xx or a network error is.
A test that provokes an error on purpose says so, by a substring of the message::

    page.expected_errors.append("status of 500")

(the list is shared by the pages of one ``new_page`` context, popups included.)

A failing test leaves a screenshot of each page it had open in
``tests/artifacts/failures/<test name>-<n>.png``, named in the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.stack import ADMIN_PASSWORD as ADMIN_PASSWORD  # the test stack's admin login
from tests.integration.stack import ROOT
from tests.support.browser import BrowserUnavailable, check_chromium, launch_chromium

ADMIN_USERNAME = "admin"  # FACE_API_ADMIN_USERNAME of the test stack (tests/integration/stack.py)

ARTIFACTS = ROOT / "tests" / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
FAILURES = ARTIFACTS / "failures"

DEFAULT_TIMEOUT_MS = 15_000
DESKTOP = (1366, 900)
PHONE = (390, 844)

# Console errors that are not the page's fault: resource loads the app answers itself.
IGNORED_CONSOLE_ERRORS = [
    re.compile(r"^Failed to load resource: the server responded with a status of 4\d\d\b"),
]


@dataclass
class PageError:
    kind: str  # "console", "pageerror" or "crash"
    text: str
    where: str = ""

    def __str__(self) -> str:
        return f"[{self.kind}] {self.text}" + (f"  ({self.where})" if self.where else "")


@dataclass
class PageWatch:
    """What went wrong in the pages of one context, and what the test expects to go wrong."""

    expected: list[str] = field(default_factory=list)
    errors: list[PageError] = field(default_factory=list)
    reported: int = 0  # errors[:reported] already failed the test

    def watch(self, page) -> None:
        if getattr(page, "expected_errors", None) is self.expected:
            return
        page.expected_errors = self.expected

        def on_console(message) -> None:
            if message.type != "error" or any(p.search(message.text) for p in IGNORED_CONSOLE_ERRORS):
                return
            location = message.location or {}
            where = location.get("url") or page.url
            if location.get("lineNumber") is not None and location.get("url"):
                where += f":{location['lineNumber'] + 1}"
            self.errors.append(PageError("console", message.text, where))

        def on_page_error(error) -> None:
            text = f"{error.name}: {error.message}" if getattr(error, "name", "") else str(error.message)
            stack = (error.stack or "").strip().splitlines()
            self.errors.append(PageError("pageerror", text, "; ".join(s.strip() for s in stack[1:3])))

        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        page.on("crash", lambda _: self.errors.append(PageError("crash", "the page crashed", page.url)))

    def unexpected(self) -> list[PageError]:
        fresh = self.errors[self.reported:]
        self.reported = len(self.errors)
        return [e for e in fresh if not any(x in e.text for x in self.expected)]


class PageFactory:
    """``new_page``: pages in fresh contexts, watched for errors, closed after the test."""

    def __init__(self, browser, base_url: str):
        self.browser = browser
        self.base_url = base_url
        self.test_name = "test"  # set by pytest_runtest_call, for the failure screenshots
        self.contexts: list[tuple[object, PageWatch]] = []

    def __call__(self, width: int | None = None, height: int | None = None, mobile: bool = False,
                 **context_options):
        default_width, default_height = PHONE if mobile else DESKTOP
        options = {
            "base_url": self.base_url,
            "viewport": {"width": width or default_width, "height": height or default_height},
            "reduced_motion": "reduce", "locale": "en-GB", "timezone_id": "UTC",
            **({"is_mobile": True, "has_touch": True} if mobile else {}),
            **context_options,
        }
        context = self.browser.new_context(**options)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        watch = PageWatch()
        self.contexts.append((context, watch))
        context.on("page", watch.watch)  # popups (window.open, target=_blank) too
        page = context.new_page()
        watch.watch(page)
        return page

    def open_pages(self) -> list:
        return [page for context, _ in self.contexts for page in context.pages if not page.is_closed()]

    def flush(self) -> None:
        """Let the events the pages sent so far arrive (a round trip to each page)."""
        for page in self.open_pages():
            try:
                page.evaluate("0")
            except Exception:  # navigating, crashed or closing: nothing more to wait for
                pass

    def unexpected_errors(self) -> list[PageError]:
        self.flush()
        return [error for _, watch in self.contexts for error in watch.unexpected()]

    def screenshot_all(self, test_name: str) -> list[Path]:
        FAILURES.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^\w.-]+", "_", test_name).strip("_") or "test"
        saved = []
        for n, page in enumerate(self.open_pages(), start=1):
            path = FAILURES / f"{stem}-{n}.png"
            try:
                page.screenshot(path=path, full_page=True, animations="disabled", timeout=5_000)
            except Exception:
                continue
            saved.append(path)
        return saved

    def close(self) -> None:
        for context, _ in self.contexts:
            try:
                context.close()
            except Exception:
                pass
        self.contexts.clear()


def error_report(errors: list[PageError]) -> str:
    lines = "\n".join(f"  {error}" for error in errors)
    return (f"the page reported {len(errors)} error(s); if one is expected, add a substring of it "
            f"to page.expected_errors:\n{lines}")


def shoot(page, name: str) -> Path:
    """A full-page PNG of ``page`` in tests/artifacts/screenshots/<name>.png; returns the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True, animations="disabled")
    return path


@pytest.fixture(scope="package")
def browser():
    """Chromium, for the tests of this package, and closed after them: while Playwright's
    sync API runs, asyncio sees its event loop as running in this thread, so the async
    tests elsewhere in tests/integration would fail ("Runner.run() cannot be called from
    a running event loop") with a browser left open for the whole session. For the same
    reason the console tests are plain (sync) functions."""
    try:
        check_chromium()
    except BrowserUnavailable as error:
        missing = str(error)
    else:
        missing = ""
    if missing:
        pytest.fail(missing, pytrace=False)
    with launch_chromium() as launched:
        yield launched


@pytest.fixture
def new_page(browser, stack):
    from playwright.sync_api import expect

    expect.set_options(timeout=DEFAULT_TIMEOUT_MS)
    factory = PageFactory(browser, stack.url)
    yield factory
    late = factory.unexpected_errors()  # errors that arrived after the test body's check
    shots = factory.screenshot_all(factory.test_name) if late else []
    factory.close()
    if late:
        pytest.fail(error_report(late) + "".join(f"\nscreenshot: {p}" for p in shots), pytrace=False)


@pytest.fixture(name="shoot")
def shoot_fixture():
    return shoot


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fail a test whose pages reported errors, even when its own assertions passed."""
    factory = item.funcargs.get("new_page")
    if isinstance(factory, PageFactory):
        factory.test_name = item.name
    result = yield
    if isinstance(factory, PageFactory):
        errors = factory.unexpected_errors()
        if errors:
            pytest.fail(error_report(errors), pytrace=False)
    return result


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test leaves a screenshot of each page it had open (tests/artifacts/failures/)."""
    outcome = yield
    report = outcome.get_result()
    factory = item.funcargs.get("new_page")
    if not (report.failed and report.when in ("setup", "call") and isinstance(factory, PageFactory)):
        return
    if report.when == "call":
        errors = factory.unexpected_errors()  # errors beside a failed assertion: they may explain it
        if errors:
            report.sections.append(("page errors", error_report(errors)))
    shots = factory.screenshot_all(item.name)
    if shots:
        report.sections.append(("screenshots", "\n".join(str(path) for path in shots)))
