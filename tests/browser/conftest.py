"""A real headless Chromium for the browser tests: Debian's `chromium` (installed by .ci/run), driven
by Playwright from PyPI with `executable_path`, never `playwright install`.

`page` is a fresh page whose console errors and failed requests are collected; a test ends with
`assert_clean(page_log)`. Screenshots and other artifacts go to `test-artifacts/` (git-ignored).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class PageLog:
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)


# Per module, not per session: Playwright's sync API runs an event loop of its own in this thread,
# and while it is up no asyncio test can run (pytest-asyncio's runner refuses to start).
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: bash .ci/run installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture
def page(browser: Browser, page_log: PageLog) -> Iterator[Page]:
    context = browser.new_context()
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    opened.on("console", lambda m: page_log.console_errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: page_log.console_errors.append(str(e)))
    opened.on("requestfailed", lambda r: page_log.failed_requests.append(f"{r.method} {r.url}: {r.failure}"))
    yield opened
    context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def assert_clean(log: PageLog) -> None:
    assert log.console_errors == [], log.console_errors
    assert log.failed_requests == [], log.failed_requests
