"""Static file server for web/, plus the simulated model host used by `?engine=sim`.

Serves the site with the MIME types Pyodide needs (`.wasm` as application/wasm, or its
boot hangs) and `Cache-Control: no-cache`, so a new build is always revalidated.

The simulated model host lives under `/sim-host/<scale>/<model_id>/resolve/main/` and
mimics a Hugging Face model folder as WebLLM reads it: `mlc-chat-config.json`,
`tokenizer.json`, `tensor-cache.json` (shards of 32 MiB × scale) and the shard bytes
themselves. The bytes are deterministic filler; only their count matters.

Usage: python tools/devserver.py [--port 8000] [--host 127.0.0.1] [--root web]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import sys
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MIB = 1024 * 1024
SHARD_BYTES = 32 * MIB

# Download sizes of the simulated models at scale 1, in MiB (close to the real ones).
SIM_MODEL_MIB = {
    "Llama-3.2-1B-Instruct-q4f16_1-MLC": 712,
    "Llama-3.2-1B-Instruct-q4f32_1-MLC": 1046,
    "Llama-3.2-3B-Instruct-q4f16_1-MLC": 1756,
    "Llama-3.2-3B-Instruct-q4f32_1-MLC": 2344,
    "Llama-3.1-8B-Instruct-q4f16_1-MLC": 4352,
    "Llama-3.1-8B-Instruct-q4f32_1-MLC": 5120,
}
CONTEXT_WINDOW = {"1B": 4096, "3B": 4096, "8B": 4096}

SIM_PATH = re.compile(
    r"^/sim-host/(?P<scale>[0-9.]+(?:e-?[0-9]+)?)/(?P<model>[A-Za-z0-9._-]+)/resolve/main/(?P<file>[A-Za-z0-9._-]+)$"
)
SHARD_FILE = re.compile(r"^params_shard_(\d+)\.bin$")

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


def shard_sizes(model: str, scale: float) -> list[int]:
    total = max(1, round(SIM_MODEL_MIB[model] * MIB * scale))
    shard = max(1, round(SHARD_BYTES * scale))
    count = math.ceil(total / shard)
    return [shard] * (count - 1) + [total - shard * (count - 1)]


def tensor_cache(model: str, scale: float) -> dict[str, object]:
    records = [
        {"dataPath": f"params_shard_{i}.bin", "format": "raw-shard", "nbytes": n,
         "records": []}
        for i, n in enumerate(shard_sizes(model, scale))
    ]
    return {"metadata": {"ParamSize": len(records), "ParamBytes": sum(r["nbytes"] for r in records),
                         "BitsPerParam": 4.5}, "records": records}


def filler(n: int, seed: int) -> bytes:
    block = bytes((seed * 31 + i) % 251 for i in range(4096))
    return (block * (n // len(block) + 1))[:n]


class Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **MIME}  # noqa: RUF012

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:  # type: ignore[attr-defined]
            super().log_message(format, *args)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path.startswith("/sim-host/"):
            self.serve_sim(path)
            return
        super().do_GET()

    def send_bytes(self, body: bytes, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(body)

    def serve_sim(self, path: str) -> None:
        match = SIM_PATH.match(path)
        if not match or match["model"] not in SIM_MODEL_MIB:
            self.send_error(HTTPStatus.NOT_FOUND, "no such simulated model file")
            return
        try:
            scale = float(match["scale"])
        except ValueError:
            scale = -1
        if not 0 < scale <= 1:
            self.send_error(HTTPStatus.NOT_FOUND, "scale must be in (0, 1]")
            return
        model, name = match["model"], match["file"]
        if name == "tensor-cache.json":
            self.send_bytes(json.dumps(tensor_cache(model, scale)).encode(), "application/json")
        elif name == "mlc-chat-config.json":
            size = next(k for k in CONTEXT_WINDOW if f"-{k}-" in model)
            config = {"model_type": "llama", "context_window_size": CONTEXT_WINDOW[size],
                      "conv_template": {"name": "llama-3"}, "simulated": True}
            self.send_bytes(json.dumps(config).encode(), "application/json")
        elif name == "tokenizer.json":
            self.send_bytes(json.dumps({"simulated": True, "model": model}).encode(),
                            "application/json")
        elif shard := SHARD_FILE.match(name):
            sizes = shard_sizes(model, scale)
            index = int(shard[1])
            if index >= len(sizes):
                self.send_error(HTTPStatus.NOT_FOUND, "no such shard")
                return
            self.send_bytes(filler(sizes[index], index), "application/octet-stream")
        else:
            self.send_error(HTTPStatus.NOT_FOUND, "no such simulated model file")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A browser that closes a connection mid-response (a canceled download, a
        # closed tab) is normal here, not a server error worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


def make_server(host: str, port: int, root: Path, verbose: bool = False) -> ThreadingHTTPServer:
    server = Server((host, port), partial(Handler, directory=str(root)))
    server.daemon_threads = True
    server.verbose = verbose  # type: ignore[attr-defined]
    return server


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
