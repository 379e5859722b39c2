"""Browser settings for tests and benchmarks: Chromium path, flags, viewports, timeouts.

Read by tests/e2e/conftest.py and bench/*.py. Playwright's own browser download is never
used: the system Chromium (Debian's `chromium`, or $CHROMIUM) is driven directly.
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
