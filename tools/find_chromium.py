"""Find the Chromium that browser tests and benchmarks drive, installing it when allowed.

Order: the CHROMIUM environment variable, then chromium / chromium-browser on PATH.
With --install and none found, root installs Debian's `chromium` package with apt-get;
anyone else gets a message saying what to install. Prints the path found.
(Playwright's own browser download never works here and is never used.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CANDIDATES = ("chromium", "chromium-browser")


def find() -> str | None:
    explicit = os.environ.get("CHROMIUM", "").strip()
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def install() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("Chromium not found: installing Debian's chromium package…", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)


def main() -> int:
    path = find()
    if path is None and os.environ.get("CHROMIUM", "").strip():
        print(f"CHROMIUM={os.environ['CHROMIUM']} is not an executable file.", file=sys.stderr)
        return 1
    if path is None and "--install" in sys.argv:
        if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
            install()
            path = find()
        else:
            print("Browser tests need Chromium. Install it (Debian/Ubuntu: "
                  "`sudo apt-get install chromium`) or set CHROMIUM=/path/to/chromium.",
                  file=sys.stderr)
            return 1
    if path is None:
        print("Chromium not found; set CHROMIUM=/path/to/chromium.", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
