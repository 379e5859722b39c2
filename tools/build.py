"""Build web/vendor/: the runtime files, the app's Python archive and the precache list.

Everything the site loads at run time comes out of this script, from exact-pinned npm
packages (node_modules/, installed from package-lock.json) and PyPI wheels (downloaded
once into .build/wheels/). Nothing here is fetched by the browser from anywhere else.

Side effects: rewrites web/vendor/ (generated, git-ignored) and fills .build/.
Usage: python tools/build.py [--check]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import struct
import subprocess
import sys
import tomllib
import zipfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
VENDOR = WEB / "vendor"
NODE = ROOT / "node_modules"
CACHE = ROOT / ".build"

# npm package -> (files to copy, destination folder under web/vendor/)
NPM_FILES: dict[str, tuple[list[str], str]] = {
    "pyodide": (
        ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm"],  # + python_stdlib.zip
        "pyodide",
    ),
    "dexie": (["dist/dexie.mjs"], "dexie"),
    "@mlc-ai/web-llm": (["lib/index.js"], "web-llm"),
}

# The static shell: every file the page itself needs, precached by the service worker.
SHELL_FILES = [
    "index.html",
    "manifest.webmanifest",
    "main.py",
    "pyscript.json",
    "css/app.css",
]
SHELL_GLOBS = ["js/*.js", "workers/*.js"]


def log(msg: str) -> None:
    print(f"build: {msg}", flush=True)


def copy_if_changed(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise SystemExit(f"build: missing {src} (run `make` to install npm packages)")
    if dst.is_file() and dst.stat().st_size == src.stat().st_size and (
        dst.stat().st_mtime >= src.stat().st_mtime
    ):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def copy_npm() -> None:
    for package, (files, dest) in NPM_FILES.items():
        for rel in files:
            copy_if_changed(NODE / package / rel, VENDOR / dest / Path(rel).name)
    # PyScript loads its chunks lazily by relative URL: copy the whole dist (no maps).
    dist = NODE / "@pyscript" / "core" / "dist"
    patched = 0
    for src in sorted(dist.iterdir()):
        if src.suffix not in {".js", ".css"}:
            continue
        text = src.read_text(encoding="utf-8") if src.suffix == ".js" else ""
        if PYSCRIPT_EVAL[0] in text:
            patched += text.count(PYSCRIPT_EVAL[0])
            write_if_changed(VENDOR / "pyscript" / src.name,
                             text.replace(PYSCRIPT_EVAL[0], PYSCRIPT_EVAL[1]))
        else:
            copy_if_changed(src, VENDOR / "pyscript" / src.name)
    if patched != 1:
        raise SystemExit(f"build: PyScript's worker-hook Function() found {patched} times, "
                         "not once: re-check PYSCRIPT_EVAL against this PyScript version")


# The site's Content-Security-Policy has no 'unsafe-eval'. PyScript 0.7.31 builds the hooks
# it would hand to a PyScript worker with Function() as soon as it starts, on the main
# thread too, although LocalChat never starts a PyScript worker; under the policy that throws
# and Python never starts. The same hook, as source text for a worker (its toString, which
# is all a worker gets of it), without evaluating anything here.
PYSCRIPT_EVAL = (
    "return Function(`return(w,x)=>(${r})(w,x,...[${s}])`)()",
    "return Object.assign(()=>{throw new Error(\"LocalChat: PyScript worker hook\")},"
    "{toString:()=>`(w,x)=>(${r})(w,x,...[${s}])`})",
)


def write_if_changed(dst: Path, text: str) -> None:
    if dst.is_file() and dst.read_text(encoding="utf-8") == text:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text, encoding="utf-8")


def browser_wheel_specs() -> tuple[str, list[str]]:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["localchat"]
    return conf["browser-python"], list(conf["browser-wheels"])


def wheel_file_for(spec: str, folder: Path) -> Path | None:
    name, version = spec.split("==")
    stem = f"{name.replace('-', '_')}-{version}-"
    hits = [p for p in folder.glob("*.whl") if p.name.lower().startswith(stem.lower())]
    return hits[0] if hits else None


def fetch_wheels() -> list[Path]:
    """Download the pinned pure-Python wheels once (PyPI is reachable at build time only)."""
    py, specs = browser_wheel_specs()
    folder = CACHE / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [s for s in specs if wheel_file_for(s, folder) is None]
    if missing:
        log(f"downloading wheels {' '.join(missing)}")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--python-version", py, "-d", str(folder), *missing],
            check=True,
        )
    wheels = []
    for spec in specs:
        found = wheel_file_for(spec, folder)
        if found is None:
            raise SystemExit(f"build: wheel for {spec} not found after download")
        wheels.append(found)
    return wheels


def vendor_wheels(wheels: list[Path]) -> list[dict[str, str]]:
    """Copy wheels next to pyodide-lock.json and patch the lock so they load offline; the
    lock lists only the packages served.

    The lock file names micropip by file name and sha256; PyPI's wheel differs byte-wise
    from the one Pyodide's CDN serves, and a mismatch only logs and returns, so the lock
    is rewritten with the sha256 of the file we actually serve.
    """
    lock = json.loads((NODE / "pyodide" / "pyodide-lock.json").read_text())
    served = []
    for original in wheels:
        whl = wheel_with_bytecode(original)
        copy_if_changed(whl, VENDOR / "pyodide" / whl.name)
        digest = hashlib.sha256(whl.read_bytes()).hexdigest()
        served.append({"file": whl.name, "sha256": digest})
        name = whl.name.split("-")[0].replace("_", "-").lower()
        entry = lock["packages"].get(name)
        if entry is not None:
            entry["file_name"] = whl.name
            entry["sha256"] = digest
    # Only what this site serves: the ~350 other packages have no files here (nothing can
    # load them offline), and micropip turns the whole lock into Python objects when it is
    # imported (a 50-80 ms task after ready with all of them).
    names = {w["file"] for w in served}
    lock["packages"] = {k: v for k, v in lock["packages"].items() if v["file_name"] in names}
    missing = {d for v in lock["packages"].values() for d in v["depends"]} - set(lock["packages"])
    if missing:
        raise SystemExit(f"build: served packages depend on unserved ones: {sorted(missing)}")
    out = VENDOR / "pyodide" / "pyodide-lock.json"
    text = json.dumps(lock, separators=(",", ":"), sort_keys=True)
    if not out.is_file() or out.read_text() != text:
        out.write_text(text)
    return served


def page_site_packages() -> str:
    """Where Pyodide installs packages in the page (loadPackage and micropip alike)."""
    return f"/lib/python{browser_wheel_specs()[0]}/site-packages"


def wheel_with_bytecode(whl: Path) -> Path:
    """The wheel with each module's bytecode beside it (`pkg/__pycache__/m.cpython-314.pyc`,
    compiled by the vendored Pyodide: compile_bytecode), so that importing micropip and
    markdown-it after the page is ready reads bytecode instead of compiling ~110 modules
    (each a 5-40 ms task). Installing unpacks the wheel as it is; the .pyc files are
    unchecked-hash ones, used without comparing timestamps. Cached in .build/wheels-pyc/."""
    with zipfile.ZipFile(whl) as zin:
        sources = {i.filename: zin.read(i) for i in zin.infolist()
                   if i.filename.endswith(".py") and ".dist-info/" not in i.filename}
        compiled = compile_bytecode(sources, page_site_packages())
        out = CACHE / "wheels-pyc" / hashlib.sha256(
            whl.read_bytes() + json.dumps(sorted(compiled)).encode()).hexdigest()[:20] / whl.name
        if out.is_file():
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
            for info in zin.infolist():
                zout.writestr(info, zin.read(info))
            for rel, data in sorted(compiled.items()):
                entry = zipfile.ZipInfo(rel, (2020, 1, 1, 0, 0, 0))
                entry.compress_type = zipfile.ZIP_DEFLATED
                zout.writestr(entry, data)
        tmp.replace(out)
    return out


# Where PyScript's `files` unpacks the archive in the page (Pyodide's working directory).
PAGE_CWD = "/home/pyodide"


def compile_bytecode(sources: dict[str, bytes], dest: str = "",
                     record: list[str] | None = None,
                     checked: list[str] | None = None) -> dict[str, bytes]:
    """The .pyc files for `sources` (archive path -> source), compiled by the vendored
    Pyodide under node (tools/compile_pyc.mjs), so they match the page's Python exactly;
    `dest` is where the page has them (PAGE_CWD unless given), for tracebacks. Cached in
    .build/pyc/ by the sources' and Pyodide's hash: a rebuild with unchanged sources does
    not start Pyodide. With `record` (module names), also the code dataclasses generates
    for those modules' classes, compiled (`localchat/generated_code.bin`: core/codecache.py)."""
    dest = dest or PAGE_CWD
    digest = hashlib.sha256((NODE / "pyodide" / "package.json").read_bytes())
    digest.update((ROOT / "tools" / "compile_pyc.mjs").read_bytes())
    digest.update(dest.encode() + b"\0" + json.dumps([record, checked]).encode() + b"\0")
    for rel, data in sorted(sources.items()):
        digest.update(rel.encode() + b"\0" + data + b"\0")
    tag = hashlib.sha256(dest.encode() + min(sources, default="").encode()).hexdigest()[:8]
    cached = CACHE / "pyc" / f"{tag}-{digest.hexdigest()[:20]}.json"
    if not cached.is_file():
        log(f"compiling {len(sources)} Python files to bytecode with Pyodide")
        request = {"dest": dest, "files": {k: v.decode() for k, v in sources.items()},
                   "record": record or [], "checked": checked or []}
        done = subprocess.run(["node", str(ROOT / "tools" / "compile_pyc.mjs")],
                              input=json.dumps(request).encode(), capture_output=True)
        if done.returncode != 0:
            raise SystemExit("build: compiling the app's Python failed:\n"
                             + done.stderr.decode(errors="replace")[-2000:])
        cached.parent.mkdir(parents=True, exist_ok=True)
        for old in cached.parent.glob(f"{tag}-*.json"):  # this set's earlier versions
            old.unlink()
        cached.write_bytes(done.stdout)
    encoded: dict[str, str] = json.loads(cached.read_text())
    return {rel: base64.b64decode(data) for rel, data in encoded.items()}


def build_stdlib() -> None:
    """Pyodide's python_stdlib.zip with bytecode beside each module (tools/stdlib_pyc.mjs):
    the npm file has sources only, and compiling them made every standard-library import
    10-20 times slower (tarfile ~100 ms instead of ~6). Cached in .build/stdlib/ by
    Pyodide's and the script's hash."""
    source = NODE / "pyodide" / "python_stdlib.zip"
    digest = hashlib.sha256(source.read_bytes())
    digest.update((ROOT / "tools" / "stdlib_pyc.mjs").read_bytes())
    cached = CACHE / "stdlib" / f"{digest.hexdigest()[:20]}.zip"
    if not cached.is_file():
        log("compiling Pyodide's standard library to bytecode")
        shutil.rmtree(cached.parent, ignore_errors=True)
        cached.parent.mkdir(parents=True)
        done = subprocess.run(["node", str(ROOT / "tools" / "stdlib_pyc.mjs"), str(source),
                               str(cached.with_suffix(".tmp"))], capture_output=True)
        if done.returncode != 0:
            raise SystemExit("build: compiling the standard library failed:\n"
                             + done.stderr.decode(errors="replace")[-2000:])
        cached.with_suffix(".tmp").replace(cached)
    out = VENDOR / "pyodide" / "python_stdlib.zip"
    if not out.is_file() or out.read_bytes() != cached.read_bytes():
        shutil.copyfile(cached, out)


# Packages the page imports one module per task after it is ready (adapters/packages.py).
# The first three are what Pyodide's package loader imports on its first use.
SLICED_IMPORTS = ("encodings.cp437", "tarfile", "importlib.metadata", "micropip", "markdown_it")


def import_orders(wheels: list[dict[str, str]]) -> dict[str, list[str]]:
    """For each of SLICED_IMPORTS, its modules in the order importing it finishes them,
    recorded by the vendored Pyodide under node (tools/import_order.mjs) with the served
    wheels. Cached in .build/order/ by the wheels' and Pyodide's hash."""
    digest = hashlib.sha256((NODE / "pyodide" / "package.json").read_bytes())
    digest.update((ROOT / "tools" / "import_order.mjs").read_bytes())
    digest.update(json.dumps([SLICED_IMPORTS, wheels], sort_keys=True).encode())
    cached = CACHE / "order" / f"{digest.hexdigest()[:20]}.json"
    if not cached.is_file():
        log(f"recording the import order of {', '.join(SLICED_IMPORTS)} with Pyodide")
        paths = [str(VENDOR / "pyodide" / w["file"]) for w in wheels]
        done = subprocess.run(["node", str(ROOT / "tools" / "import_order.mjs"),
                               ",".join(SLICED_IMPORTS), *paths], capture_output=True)
        if done.returncode != 0:
            raise SystemExit("build: recording the import order failed:\n"
                             + done.stderr.decode(errors="replace")[-2000:])
        orders = json.loads(done.stdout)
        shutil.rmtree(cached.parent, ignore_errors=True)
        cached.parent.mkdir(parents=True)
        cached.write_text(json.dumps(orders, sort_keys=True))
    result: dict[str, list[str]] = json.loads(cached.read_text())
    return result


def pyscript_sources() -> dict[str, bytes]:
    """The Python files PyScript writes into the page at boot (its `pyscript` package, as
    the artifact src/stdlib/pyscript.js of the npm package holds them: minified, so not
    the files beside it), by archive path."""
    artifact = NODE / "@pyscript" / "core" / "src" / "stdlib" / "pyscript.js"
    script = ("const m = await import(process.argv[1]);"
              "process.stdout.write(JSON.stringify(m.default));")
    done = subprocess.run(["node", "--input-type=module", "-e", script, artifact.as_uri()],
                          capture_output=True)
    if done.returncode != 0:
        raise SystemExit("build: reading PyScript's Python package failed:\n"
                         + done.stderr.decode(errors="replace")[-2000:])
    tree = json.loads(done.stdout)
    files: dict[str, bytes] = {}

    def walk(node: dict[str, object], prefix: str) -> None:
        for name, value in node.items():
            if isinstance(value, str):
                files[prefix + name] = value.encode()
            elif isinstance(value, dict):
                walk(value, prefix + name + "/")

    walk(tree, "")
    return {rel: data for rel, data in files.items() if rel.endswith(".py")}


def build_app_archive(wheels: list[dict[str, str]]) -> Path:
    """Zip pysrc/localchat into one archive, unpacked by PyScript's `files` at boot.

    The archive carries the sources and their bytecode (compiled by the same Pyodide, so
    the page skips compiling at boot), and `localchat/vendored_wheels.json`, the wheels
    served next to Pyodide, so the app can install them with micropip without another
    request, `localchat/import_order.json` (`import_orders`), and
    `localchat/generated_code.bin`, the compiled code of the app's dataclasses' generated
    methods (core/codecache.py), and checked-hash bytecode for PyScript's own package.
    """
    out = VENDOR / "app" / "localchat.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    sources = {str(p.relative_to(ROOT / "pysrc")): p.read_bytes()
               for p in sorted((ROOT / "pysrc" / "localchat").rglob("*.py"))}
    # The pure modules (core, ui, ports) define every dataclass and import under node.
    pure = sorted(rel[:-3].replace("/", ".").removesuffix(".__init__") for rel in sources
                  if rel.startswith(("localchat/core/", "localchat/ui/", "localchat/ports")))
    # PyScript writes its own package (pyscript/*.py) into the same directory at every
    # boot and imports it: its bytecode rides in this archive, checked against the source
    # PyScript writes (a different PyScript version just compiles as before).
    pyscript = pyscript_sources()
    compiled = compile_bytecode({**sources, **pyscript}, record=pure, checked=sorted(pyscript))
    members = {**sources, **{k: v for k, v in compiled.items() if not k.startswith("pyscript/")
                             or "/__pycache__/" in k}}
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in sorted(members.items()):
            info = zipfile.ZipInfo(rel, (2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
        info = zipfile.ZipInfo("localchat/vendored_wheels.json", (2020, 1, 1, 0, 0, 0))
        zf.writestr(info, json.dumps(wheels, sort_keys=True))
        info = zipfile.ZipInfo("localchat/import_order.json", (2020, 1, 1, 0, 0, 0))
        zf.writestr(info, json.dumps(import_orders(wheels), sort_keys=True))
    if out.is_file() and out.read_bytes() == tmp.read_bytes():
        tmp.unlink()
    else:
        tmp.replace(out)
    return out


def png(size: int) -> bytes:
    """A square app icon (speech bubble on indigo), drawn without image libraries."""
    bg, fg = (0x3B, 0x3F, 0xB8), (0xFF, 0xFF, 0xFF)
    rows = []
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            u, v = x / size, y / size
            in_bubble = ((u - 0.5) / 0.34) ** 2 + ((v - 0.45) / 0.26) ** 2 <= 1
            in_tail = 0.30 <= u <= 0.42 and 0.62 <= v <= 0.80 and (v - 0.62) <= (0.42 - u) * 1.5
            row += bytes(fg if (in_bubble or in_tail) else bg)
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def build_icons() -> None:
    for size in (192, 512):
        out = VENDOR / "icons" / f"icon-{size}.png"
        if not out.is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(png(size))


def precache_list() -> list[str]:
    files: list[Path] = [WEB / rel for rel in SHELL_FILES]
    for pattern in SHELL_GLOBS:
        files += sorted(WEB.glob(pattern))
    files += sorted(p for p in VENDOR.rglob("*") if p.is_file() and p.name != "build.js")
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise SystemExit(f"build: files listed for precache are missing: {missing}")
    return [p.relative_to(WEB).as_posix() for p in files]


def write_build_manifest(files: list[str], wheels: list[dict[str, str]]) -> str:
    digest = hashlib.sha256()
    hashes = {}
    for rel in files:
        file_hash = hashlib.sha256((WEB / rel).read_bytes()).hexdigest()
        hashes[rel] = file_hash
        digest.update(rel.encode())
        digest.update(file_hash.encode())
    build_id = digest.hexdigest()[:16]
    # hashes let the page name a missing or damaged file when it fails to start.
    manifest = {"id": build_id, "files": ["./", *files], "hashes": hashes, "wheels": wheels}
    body = (
        "// Generated by tools/build.py: the build id names the service worker's cache, and\n"
        "// files lists everything it precaches. Do not edit.\n"
        f"self.LOCALCHAT_BUILD = {json.dumps(manifest, indent=1)};\n"
    )
    out = VENDOR / "build.js"
    if not out.is_file() or out.read_text() != body:
        out.write_text(body)
    return build_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    VENDOR.mkdir(parents=True, exist_ok=True)
    copy_npm()
    build_stdlib()
    wheels = vendor_wheels(fetch_wheels())
    build_app_archive(wheels)
    build_icons()
    files = precache_list()
    build_id = write_build_manifest(files, wheels)
    log(f"web/vendor ready, build {build_id}, {len(files)} files precached")
    return 0


if __name__ == "__main__":
    sys.exit(main())
