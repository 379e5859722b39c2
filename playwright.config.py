"""Browser settings for tests and benchmarks: Chromium path, flags, viewports, timeouts.

Read by tests/e2e/conftest.py and bench/*.py. Playwright's own browser download is never
used: the system Chromium (Debian's `chromium`, or $CHROMIUM) is driven directly.
`standin_launch_args(port)` is the browser for the HTTPS stand-in model host
(tools/modelhost.py): huggingface.co and raw.githubusercontent.com lead to it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent

BASE_ARGS = [
    "--headless",
    "--no-sandbox",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    # A SwiftShader WebGPU adapter (without shader-f16) on machines with no GPU.
    "--enable-unsafe-webgpu",
]
# Hermetic: every host but the local server is unresolvable, so a test can never pass
# by reaching the internet, and a request to a CDN fails loudly.
HERMETIC_ARGS = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"]

VIEWPORTS = {
    "desktop": {"width": 1280, "height": 800},
    "mobile": {"width": 390, "height": 844},
}

EXPECT_TIMEOUT_MS = 20_000
BOOT_TIMEOUT_MS = 60_000

# Fast simulated engine for tests: tiny downloads, short compile, instant replies.
FAST_SIM = "engine=sim&sim_scale=0.002&sim_mbps=200&sim_compile_s=0.2&sim_tps=0"


def chromium_path() -> str:
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "find_chromium.py")],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip() or "Chromium not found")
    return result.stdout.strip()


def launch_args() -> dict[str, object]:
    return {"executable_path": chromium_path(), "args": BASE_ARGS + HERMETIC_ARGS,
            "headless": True}


# The real model hosts, as the stand-in answers for them.
STANDIN_HOSTS = ("huggingface.co", "raw.githubusercontent.com")


def standin_launch_args(port: int) -> dict[str, object]:
    """The normal launch args, but the model hosts resolve to the stand-in on 127.0.0.1:port
    (still hermetic otherwise) and its self-signed certificate is accepted: only in this
    browser.

    Local Network Access checks are off here: the real hosts are public addresses, so the
    checks never apply to the real download path, but with the stand-in on loopback they
    block every request from a document Chromium counts as public (any page a test serves
    with `page.route(...).fulfill`: "Permission was denied for this request to access the
    `loopback` address space")."""
    rules = ", ".join([*(f"MAP {host} 127.0.0.1:{port}" for host in STANDIN_HOSTS),
                       "MAP * ~NOTFOUND", "EXCLUDE localhost", "EXCLUDE 127.0.0.1"])
    return {"executable_path": chromium_path(),
            "args": [*BASE_ARGS, f"--host-resolver-rules={rules}", "--ignore-certificate-errors",
                     "--disable-features=LocalNetworkAccessChecks"],
            "headless": True}
