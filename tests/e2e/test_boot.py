"""Boot: the static shell comes first, typing works at once, and a send made while
Python starts is kept and sent once the app is ready."""

from __future__ import annotations

import re

from playwright.sync_api import Page, Route, expect

from .pages.chat import ChatPage


def test_app_becomes_ready_with_shell_controls(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open()
    expect(chat.message_box).to_be_editable()
    expect(chat.send_button).to_be_enabled()
    expect(page.get_by_role("button", name="Downloads")).to_be_visible()
    expect(page.get_by_role("navigation", name="Conversations")).to_contain_text(
        "No conversations yet")
    expect(page.get_by_text("Simulated engine")).to_be_visible()


def test_typing_and_sending_before_python_is_ready(page: Page, site_url: str) -> None:
    held: list[Route] = []
    page.route("**/vendor/app/localchat.zip", lambda route: held.append(route))
    chat = ChatPage(page, site_url).open(wait=False)
    # The shell is there and usable while the app's Python is held back.
    chat.message_box.fill("/echo typed while starting")
    chat.message_box.press("Enter")
    expect(page.get_by_role("button", name="Starting…")).to_be_visible()
    expect(chat.status).to_contain_text("Starting")
    expect(page.locator("body")).to_have_attribute("data-ready", "false")
    assert held, "the app archive should have been requested"
    for route in held:
        route.continue_()
    page.unroute("**/vendor/app/localchat.zip")
    chat.wait_until_ready()
    expect(chat.user_bubbles()).to_have_text(["/echo typed while starting"])
    expect(chat.wait_for_reply_done().locator(".bubble")).to_have_text("typed while starting")
    expect(chat.send_button).to_be_visible()


def test_unknown_engine_value_is_explained(page: Page, site_url: str) -> None:
    chat = ChatPage(page, site_url).open(query="engine=banana")
    expect(chat.alerts.filter(has_text=re.compile("Unknown engine"))).to_contain_text("banana")
    chat.send("hello")
    expect(chat.last_reply()).to_contain_text(re.compile("can't run|WebGPU|engine", re.I))


def test_real_engine_is_the_default(page: Page, site_url: str) -> None:
    ChatPage(page, site_url).open(query="")
    expect(page.get_by_text("Simulated engine")).to_be_hidden()



def test_the_app_runs_on_the_early_pyodide_from_precompiled_bytecode(page: Page,
                                                                      site_url: str) -> None:
    ChatPage(page, site_url).open()
    # boot.js starts Pyodide before PyScript loads; PyScript must run the app on that
    # same interpreter (js/interpreter.js), not start a second one.
    found = page.evaluate("""async () => {
        const pyodide = await window.localchat.pyodide;
        return pyodide.runPython(`
import importlib.util, sys
mods = [m for name, m in sys.modules.items() if name.startswith("localchat.")]
bad = []
for m in mods:
    with open(m.__cached__, "rb") as f:
        head = f.read(8)
    # Valid for this Python, hash-based and unchecked (flags 0b01): used as is.
    if head[:4] != importlib.util.MAGIC_NUMBER or int.from_bytes(head[4:8], "little") != 1:
        bad.append(m.__name__)
str(len(mods)) + " " + ",".join(bad)
`);
    }""")
    count, bad = found.split(" ")
    # Python does not write bytecode in the page (sys.dont_write_bytecode), so each .pyc
    # read here came from the app archive, built by tools/compile_pyc.mjs.
    assert int(count) >= 20, found
    assert bad == "", f"modules without usable bytecode: {bad}"


def test_pyscripts_own_package_is_imported_from_the_archives_bytecode(page: Page,
                                                                     site_url: str) -> None:
    ChatPage(page, site_url).open()
    # PyScript writes pyscript/*.py at every boot; the app archive carries checked-hash
    # .pyc files for them, which Python uses while the source's hash matches.
    found = page.evaluate("""async () => {
        const pyodide = await window.localchat.pyodide;
        return pyodide.runPython(`
import importlib.util, sys
mods = [m for name, m in sys.modules.items()
        if (name == "pyscript" or name.startswith("pyscript.")) and getattr(m, "__file__", None)]
bad = []
for m in mods:
    try:
        with open(m.__cached__, "rb") as f:
            head = f.read(16)
    except OSError:
        bad.append(m.__name__ + ":missing")
        continue
    with open(m.__file__, "rb") as f:
        digest = importlib.util.source_hash(f.read())
    checked = int.from_bytes(head[4:8], "little") == 3
    if head[:4] != importlib.util.MAGIC_NUMBER or not checked or head[8:16] != digest:
        bad.append(m.__name__)
str(len(mods)) + " " + ",".join(bad)
`);
    }""")
    count, bad = found.split(" ")
    assert int(count) >= 5, found
    assert bad == "", f"PyScript modules compiled from source at boot: {bad}"


def test_the_apps_dataclasses_get_their_methods_compiled_by_the_build(page: Page,
                                                                     site_url: str) -> None:
    ChatPage(page, site_url).open()
    # core/codecache.py: dataclasses' generated methods come from generated_code.bin.
    found = page.evaluate("""async () => {
        const pyodide = await window.localchat.pyodide;
        return pyodide.runPython(`
import dataclasses, sys, types
from localchat.core import codecache
hook = codecache.INSTALLED
def nested(code):
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield c
            yield from nested(c)
stored = {id(c) for code in hook.table.values() for c in nested(code)} if hook else set()
classes, compiled = 0, []
for name, m in list(sys.modules.items()):
    if not name.startswith("localchat"):
        continue
    for obj in vars(m).values():
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == name:
            classes += 1
            if id(obj.__init__.__code__) not in stored:
                compiled.append(obj.__qualname__)
f"{classes} {','.join(compiled)}"
`);
    }""")
    count, compiled = found.split(" ")
    assert int(count) >= 25, found
    assert compiled == "", f"dataclasses whose methods were compiled at boot: {compiled}"


def test_the_standard_library_is_imported_from_bytecode(page: Page, site_url: str) -> None:
    """Pyodide's python_stdlib.zip ships sources only; the build adds bytecode beside each
    module (tools/stdlib_pyc.mjs), so an import no longer compiles its module first
    (tarfile took ~100 ms compiled in the page, ~6 ms from bytecode)."""
    ChatPage(page, site_url).open()
    found = page.evaluate("""async () => {
        const pyodide = await window.localchat.pyodide;
        return pyodide.runPython(`
import builtins, importlib, importlib.util, sys, zipfile
home = next(p for p in sys.path if p.endswith(".zip"))
compiled = []
real_compile = builtins.compile
def counting(source, filename, *args, **kwargs):
    compiled.append(str(filename))
    return real_compile(source, filename, *args, **kwargs)
fresh = [n for n in ("difflib", "calendar", "pprint", "fractions") if n not in sys.modules]
builtins.compile = counting
try:
    for name in fresh:
        importlib.import_module(name)
finally:
    builtins.compile = real_compile
stale = []
with zipfile.ZipFile(home) as z:
    names = set(z.namelist())
    sources = [n for n in names if n.endswith(".py")]
    for name in sources:
        if name + "c" not in names:
            stale.append(name + " (no .pyc)")
            continue
        head = z.read(name + "c")[:16]
        if (head[:4] != importlib.util.MAGIC_NUMBER or int.from_bytes(head[4:8], "little") != 1
                or head[8:16] != importlib.util.source_hash(z.read(name))):
            stale.append(name)
f"{len(fresh)}|{len(sources)}|{','.join(compiled)}|{','.join(stale[:10])}"
`);
    }""")
    fresh, sources, compiled, stale = found.split("|")
    assert int(fresh) >= 2 and int(sources) > 300, found
    assert compiled == "", f"compiled from source in the page: {compiled}"
    assert stale == "", f"standard-library modules without matching bytecode: {stale}"


def test_the_vendored_wheels_are_imported_from_bytecode(page: Page, site_url: str) -> None:
    """micropip and markdown-it are installed after ready; their wheels carry bytecode
    (tools/build.py wheel_with_bytecode), so importing them compiles nothing."""
    ChatPage(page, site_url).open()
    expect(page.locator("body")).to_have_attribute("data-markdown", "ready")
    found = page.evaluate("""async () => {
        const pyodide = await window.localchat.pyodide;
        return pyodide.runPython(`
import importlib.util, os, sys
mods = [m for name, m in list(sys.modules.items())
        if name.split(".")[0] in ("micropip", "markdown_it", "mdurl")
        and getattr(m, "__file__", None)]
bad = []
for m in mods:
    cached = m.__cached__
    head = open(cached, "rb").read(8) if cached and os.path.exists(cached) else b""
    if head[:4] != importlib.util.MAGIC_NUMBER or int.from_bytes(head[4:8], "little") != 1:
        bad.append(m.__name__)
str(len(mods)) + " " + ",".join(bad)
`);
    }""")
    count, bad = found.split(" ")
    assert int(count) >= 60, found
    assert bad == "", f"modules installed without usable bytecode: {bad}"
