"""The site's Content-Security-Policy: one policy in web/index.html's <meta> and in the dev
server's headers, strict where it can be (browser tests prove it holds in Chromium)."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tools.devserver import CONTENT_SECURITY_POLICY, SECURITY_HEADERS, Server, make_server

from tests.unit.html_probe import elements

ROOT = Path(__file__).resolve().parents[2]
INDEX = (ROOT / "web" / "index.html").read_text(encoding="utf-8")


def directives(policy: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        if part.strip():
            name, *values = part.split()
            assert name not in parsed, f"{name} twice"
            parsed[name] = values
    return parsed


def meta_policy() -> str:
    metas = [e.attrs for e in elements(INDEX, "meta")
             if (e.attrs.get("http-equiv") or "").lower() == "content-security-policy"]
    assert len(metas) == 1
    return metas[0]["content"] or ""


def test_the_meta_policy_is_the_dev_servers() -> None:
    assert meta_policy() == CONTENT_SECURITY_POLICY


def test_the_meta_comes_before_anything_it_governs() -> None:
    tags = [(e.tag, e.attrs) for e in elements(INDEX)]
    first_loader = next(i for i, (tag, _) in enumerate(tags) if tag in ("link", "script"))
    policy_at = next(i for i, (tag, a) in enumerate(tags)
                     if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert policy_at < first_loader
    assert ("meta", {"name": "referrer", "content": "no-referrer"}) in tags


def test_the_policy_is_narrow() -> None:
    policy = directives(CONTENT_SECURITY_POLICY)
    assert policy["default-src"] == ["'self'"]
    # WebAssembly may compile; no string is ever evaluated as script, nothing inline runs.
    assert policy["script-src"] == ["'self'", "'wasm-unsafe-eval'"]
    assert policy["worker-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'none'"]
    assert policy["connect-src"] == [
        "'self'", "https://huggingface.co", "https://*.huggingface.co", "https://*.hf.co",
        "https://raw.githubusercontent.com"]
    for values in policy.values():
        assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "blob:", "http:",
                    "https:"} & set(values)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    server = make_server("127.0.0.1", 0, ROOT / "web")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path", ["/", "/index.html", "/workers/engine-worker.js",
                                  "/no-such-file"])
def test_every_response_carries_the_security_headers(server: Server, path: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.getheader("Content-Security-Policy") == (
        CONTENT_SECURITY_POLICY + "; frame-ancestors 'none'")
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("Referrer-Policy") == "no-referrer"
    assert set(SECURITY_HEADERS) == {"Content-Security-Policy", "X-Content-Type-Options",
                                     "Referrer-Policy"}
