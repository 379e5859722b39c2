"""Browser-test fixtures: the dev server, the system Chromium, and the error guard.

Every browser test fails on any uncaught page error or console error (a test that
provokes one on purpose names the expected texts with
`@pytest.mark.allow_console_errors("pattern", …)`).
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Error, Page, expect

ROOT = Path(__file__).resolve().parents[2]

_spec = importlib.util.spec_from_file_location("playwright_config", ROOT / "playwright.config.py")
assert _spec and _spec.loader
settings = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(settings)

from tools.devserver import make_server  # noqa: E402

expect.set_options(timeout=settings.EXPECT_TIMEOUT_MS)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_console_errors(*patterns): console errors this test expects")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def site_url() -> Iterator[str]:
    if not (ROOT / "web" / "vendor" / "build.js").is_file():
        pytest.exit("web/vendor is not built: run `make test` (it builds first)", 2)
    server = make_server("127.0.0.1", 0, ROOT / "web")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, object]:
    return settings.launch_args()


@pytest.fixture(scope="session")
def browser_context_args() -> dict[str, object]:
    return {"viewport": settings.VIEWPORTS["desktop"]}


@pytest.fixture(autouse=True)
def fail_on_page_errors(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Collect console errors and uncaught exceptions of the test's page."""
    if "page" not in request.fixturenames:
        yield []
        return
    page: Page = request.getfixturevalue("page")
    page.set_default_timeout(settings.EXPECT_TIMEOUT_MS)
    allowed = [re.compile(p) for m in request.node.iter_markers("allow_console_errors")
               for p in m.args]
    problems: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            problems.append(f"console error: {msg.text} ({msg.location.get('url', '')})")

    def on_page_error(err: Error) -> None:
        problems.append(f"uncaught page error: {err}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    yield problems
    unexpected = [p for p in problems if not any(a.search(p) for a in allowed)]
    assert not unexpected, "the page reported errors:\n" + "\n".join(unexpected)
