"""Static file server for web/, plus the simulated model host used by `?engine=sim`.

Serves the site with the MIME types Pyodide needs (`.wasm` as application/wasm, or its
boot hangs) and `Cache-Control: no-cache`, so a new build is always revalidated. Every
response carries the security headers (`SECURITY_HEADERS`): the Content-Security-Policy of
web/index.html's `<meta>` plus `frame-ancestors 'none'` (which only a header can say), so
it also governs the workers, whose scripts a `<meta>` policy does not reach;
`X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.

Requests under `/sim-host/` (GET, HEAD, OPTIONS) go to the simulated model host of
tools/modelhost.py: every catalog model as a Hugging Face folder,
`/sim-host/<scale>/<model_id>/resolve/main/<file>`, with Range, faults (`server.faults`),
a request log (`server.log`) and the `X-LocalChat-Sim` header's knobs (pace, failures).

Usage: python tools/devserver.py [--port 8000] [--host 127.0.0.1] [--root web]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

try:
    from tools.modelhost import Faults, ModelHost, RequestLog, SimCatalog
except ImportError:  # run as a script: tools/ itself is on sys.path
    from modelhost import Faults, ModelHost, RequestLog, SimCatalog  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
SIM_PREFIX = "/sim-host/"

# The site's Content-Security-Policy, exactly as web/index.html's <meta> states it (a unit
# test keeps the two equal). Scripts and workers only from the site; 'wasm-unsafe-eval' lets
# Pyodide and WebLLM compile WebAssembly (no 'unsafe-eval': nothing needs eval); fetches to
# the site and the model hosts (Hugging Face and the hosts it redirects file downloads to,
# GitHub for model libraries); no inline script or style, no plugins, no <base>, no forms.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; "
    "script-src 'self' 'wasm-unsafe-eval'; "
    "worker-src 'self'; "
    "connect-src 'self' https://huggingface.co https://*.huggingface.co https://*.hf.co "
    "https://raw.githubusercontent.com; "
    "img-src 'self'; "
    "style-src 'self'; "
    "object-src 'none'; "
    "base-uri 'self'; "
    "form-action 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY + "; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

MIME = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".webmanifest": "application/manifest+json",
    ".json": "application/json",
    ".zip": "application/zip",
    ".whl": "application/zip",
    ".py": "text/x-python",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}


class Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **MIME}  # noqa: RUF012

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:  # type: ignore[attr-defined]
            super().log_message(format, *args)

    def do_GET(self) -> None:
        if not self.answered_by_sim_host():
            super().do_GET()

    def do_HEAD(self) -> None:
        if not self.answered_by_sim_host():
            super().do_HEAD()

    def do_OPTIONS(self) -> None:
        if not self.answered_by_sim_host():
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, "Unsupported method ('OPTIONS')")

    def answered_by_sim_host(self) -> bool:
        if not self.path.startswith(SIM_PREFIX):
            return False
        self.server.model_host.respond(self)  # type: ignore[attr-defined]
        return True


class Server(ThreadingHTTPServer):
    """The site and, under /sim-host/, the simulated model host (`model_host`)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: partial[Handler],
                 verbose: bool = False) -> None:
        self.verbose = verbose
        self.model_host = ModelHost(SimCatalog())
        super().__init__(address, handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def faults(self) -> Faults:
        """Faults of the simulated model host (tools/modelhost.py); the site has none."""
        return self.model_host.faults

    @property
    def log(self) -> RequestLog:
        """Every /sim-host/ request (the site's own files are not logged)."""
        return self.model_host.log

    def reset(self) -> None:
        """The simulated host without faults, log or remembered sim sessions."""
        self.model_host.reset()

    def handle_error(self, request: object, client_address: object) -> None:
        # A browser that closes a connection mid-response (a canceled download, a
        # closed tab) is normal here, not a server error worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def server_close(self) -> None:
        self.model_host.close()
        super().server_close()


def make_server(host: str, port: int, root: Path, verbose: bool = False) -> Server:
    return Server((host, port), partial(Handler, directory=str(root)), verbose)


def main() -> int:
    parser = argparse.ArgumentParser(description="Serve LocalChat's static site.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--root", type=Path, default=ROOT / "web")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if not (args.root / "vendor" / "build.js").is_file():
        print("devserver: web/vendor is not built; run `make serve`", file=sys.stderr)
        return 2
    server = make_server(args.host, args.port, args.root, args.verbose)
    print(f"LocalChat on http://{args.host}:{server.server_port}/  "
          f"(simulated engine: http://{args.host}:{server.server_port}/?engine=sim)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
