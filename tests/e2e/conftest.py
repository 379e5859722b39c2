"""Browser-test fixtures: the dev server, the model hosts, the system Chromium, the error guard.

- `site_url` (session): the dev server's URL; `dev_server` is the server itself.
- `sim_host`: the dev server's simulated model host (`/sim-host/`): `.faults`, `.log`.
- `model_host` (session): the HTTPS stand-in for huggingface.co and raw.githubusercontent.com
  (tools/modelhost.py): `.port`, `.faults`, `.log`, `.models`, `.add_model()`.
- `standin_browser` (session) / `standin_page` (per test, fresh context, desktop viewport):
  Chromium whose model hosts lead to `model_host`. `page` is the normal, hermetic one.
- `new_tab(url)`: another tab in `page`'s browser context (same storage), error-guarded too.
- Faults, logs and test-added models of every host a test uses are reset before and after
  it (`reset_model_hosts`), e.g.
      def test_x(standin_page, site_url, model_host):
          model_host.faults.status("*/params_shard_2.bin", 503, times=2, retry_after=1)

Every browser test fails on any uncaught page error or console error of `page` or
`standin_page`, and on any Content-Security-Policy violation in them (each is reported to
the console as "Content-Security-Policy violation: …" by an init script). A test that
provokes one on purpose names the expected texts with
`@pytest.mark.allow_console_errors("pattern", …)`.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Playwright, expect

ROOT = Path(__file__).resolve().parents[2]

_spec = importlib.util.spec_from_file_location("playwright_config", ROOT / "playwright.config.py")
assert _spec and _spec.loader
settings = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(settings)

from tools.devserver import Server, make_server  # noqa: E402
from tools.modelhost import ModelHostServer, make_https_server, make_self_signed_cert  # noqa: E402

expect.set_options(timeout=settings.EXPECT_TIMEOUT_MS)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_console_errors(*patterns): console errors this test expects")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


def _serve(server: Server | ModelHostServer) -> threading.Thread:
    # A short poll interval: shutdown() at the end of the session returns at once.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="session")
def dev_server() -> Iterator[Server]:
    if not (ROOT / "web" / "vendor" / "build.js").is_file():
        pytest.exit("web/vendor is not built: run `make test` (it builds first)", 2)
    server = make_server("127.0.0.1", 0, ROOT / "web")
    _serve(server)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def site_url(dev_server: Server) -> str:
    return f"http://127.0.0.1:{dev_server.port}/"


@pytest.fixture
def sim_host(dev_server: Server) -> Server:
    """The dev server, for its simulated model host: `.faults`, `.log` (of /sim-host/ only)."""
    return dev_server


@pytest.fixture(scope="session")
def model_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelHostServer]:
    """The HTTPS stand-in for the real model hosts, on 127.0.0.1 (a free port)."""
    certfile, keyfile = make_self_signed_cert(tmp_path_factory.mktemp("standin-cert"))
    server = make_https_server("127.0.0.1", 0, certfile, keyfile)
    _serve(server)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def reset_model_hosts(request: pytest.FixtureRequest) -> Iterator[None]:
    """No faults, an empty log and only the standard models on every host the test uses,
    before it and after it (the hosts live for the whole session)."""
    hosts: list[Server | ModelHostServer] = [
        request.getfixturevalue(name) for name in ("dev_server", "model_host")
        if name in request.fixturenames]
    for host in hosts:
        host.reset()
    yield
    for host in hosts:
        host.reset()


@pytest.fixture(scope="session")
def standin_browser(playwright: Playwright, model_host: ModelHostServer) -> Iterator[Browser]:
    """A second Chromium: huggingface.co and raw.githubusercontent.com are `model_host`."""
    browser = playwright.chromium.launch(**settings.standin_launch_args(model_host.port))
    yield browser
    browser.close()


@pytest.fixture
def standin_page(standin_browser: Browser) -> Iterator[Page]:
    context = standin_browser.new_context(viewport=settings.VIEWPORTS["desktop"])
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, object]:
    return settings.launch_args()


@pytest.fixture(scope="session")
def browser_context_args() -> dict[str, object]:
    return {"viewport": settings.VIEWPORTS["desktop"]}


@pytest.fixture
def new_tab(page: Page) -> Callable[[str], Page]:
    """Another tab of the same browser profile as `page` (same origin, same storage), opened
    at `url`, watched for errors like `page`: `second = new_tab(site_url + "?engine=sim")`."""
    def open_tab(url: str) -> Page:
        tab = page.context.new_page()
        tab.goto(url)
        return tab

    return open_tab


# Every document of a guarded context reports each policy violation as a console error
# naming the directive and where it happened. Chromium also prints its own console error
# ("… violates the following Content Security Policy directive …"), which the guard sees
# too, also from workers, where no init script runs; the event is the check that does not
# depend on that message's wording.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`Content-Security-Policy violation: ${e.effectiveDirective} refused `
    + `${e.blockedURI || "(inline)"} at ${e.sourceFile || "?"}:${e.lineNumber} `
    + `[${(e.sample || "").slice(0, 40)}]`);
});
"""


@pytest.fixture(autouse=True)
def fail_on_page_errors(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Collect console errors and uncaught exceptions of the test's pages."""
    pages: list[Page] = [request.getfixturevalue(name) for name in ("page", "standin_page")
                         if name in request.fixturenames]
    if not pages:
        yield []
        return
    allowed = [re.compile(p) for m in request.node.iter_markers("allow_console_errors")
               for p in m.args]
    problems: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            problems.append(f"console error: {msg.text} ({msg.location.get('url', '')})")

    def on_page_error(err: Error) -> None:
        problems.append(f"uncaught page error: {err}")

    # On the context, so every tab the test opens in it (`new_tab`) is watched too.
    for context in {id(p.context): p.context for p in pages}.values():
        context.set_default_timeout(settings.EXPECT_TIMEOUT_MS)
        context.add_init_script(REPORT_CSP_VIOLATIONS)
        context.on("console", on_console)
        context.on("weberror", lambda web_error: on_page_error(web_error.error))
    for page in pages:
        page.set_default_timeout(settings.EXPECT_TIMEOUT_MS)
    yield problems
    unexpected = [p for p in problems if not any(a.search(p) for a in allowed)]
    assert not unexpected, "the page reported errors:\n" + "\n".join(unexpected)
