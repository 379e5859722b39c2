"""tools/modelhost.py against real sockets: the stand-in and the simulated host, driven
with http.client as a browser would use them (files, Range, CORS, faults, sim knobs, TLS)."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tools.devserver import Server, make_server
from tools.modelhost import (
    CACHE_CONFIG,
    CACHE_MODEL,
    CACHE_WASM,
    SIM_HEADER,
    SIM_MODEL_MIB,
    STANDIN_MODELS,
    LoggedRequest,
    ModelHostServer,
    SimKnobs,
    SimModel,
    StandinModel,
    make_https_server,
    make_model_server,
    make_self_signed_cert,
    parse_range,
    sim_shard_sizes,
    wasm_module,
)

QUICK = "Llama-3.2-1B-Instruct-q4f32_1-MLC"
MODEL = STANDIN_MODELS[QUICK]
HF = "huggingface.co"
LIBS = "raw.githubusercontent.com"


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    cut: bool  # the body ended early (connection closed before Content-Length)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def request(port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None,
            host: str | None = None, context: ssl.SSLContext | None = None,
            server_hostname: str | None = None) -> Reply:
    if context is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection("127.0.0.1", port,
                                                                      timeout=10)
    else:
        conn = _TLSConnection("127.0.0.1", port, context, server_hostname)
    sent = dict(headers or {})
    if host is not None:
        sent["Host"] = host
    conn.request(method, path, headers=sent)
    reply = conn.getresponse()
    try:
        body, cut = reply.read(), False
    except http.client.IncompleteRead as error:
        body, cut = error.partial, True
    conn.close()
    return Reply(reply.status, reply.headers, body, cut)


class _TLSConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with the SNI/hostname check of another name."""

    def __init__(self, ip: str, port: int, context: ssl.SSLContext,
                 server_hostname: str | None) -> None:
        super().__init__(ip, port, context=context, timeout=10)
        self._name = server_hostname or ip

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._name)  # type: ignore[attr-defined]


def _serve(server: ModelHostServer | Server) -> None:
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()


@pytest.fixture(scope="module")
def standin_server() -> Iterator[ModelHostServer]:
    server = make_model_server("127.0.0.1", 0)
    _serve(server)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def standin(standin_server: ModelHostServer) -> Iterator[ModelHostServer]:
    standin_server.reset()
    yield standin_server
    standin_server.reset()


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("site")
    (root / "index.html").write_text("<!doctype html><title>site</title>")
    server = make_server("127.0.0.1", 0, root, False)
    _serve(server)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def sim(dev_server: Server) -> Iterator[Server]:
    dev_server.reset()
    yield dev_server
    dev_server.reset()


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def shard_path(i: int, model: StandinModel = MODEL) -> str:
    return path_of(model.shard_urls[i])


def sim_path(model_id: str, scale: float, name: str) -> str:
    return f"/sim-host/{scale:g}/{model_id}/resolve/main/{name}"


# ---------------------------------------------------------------------------------------
# Stand-in files and HTTP behaviour


def test_standin_serves_every_file_with_its_exact_size_sha256_and_etag(
        standin: ModelHostServer) -> None:
    assert len(MODEL.shard_sizes) == 6 and len(set(MODEL.shard_sizes)) == 6
    assert 1_000_000 < sum(MODEL.shard_sizes) < 2_000_000
    for url, file in MODEL.files.items():
        reply = request(standin.port, path_of(url), host=url.split("/")[2])
        assert reply.status == 200, url
        assert int(reply.header("Content-Length") or -1) == file.size == len(reply.body)
        assert hashlib.sha256(reply.body).hexdigest() == file.sha256
        assert reply.header("ETag") == file.etag
        assert reply.header("Accept-Ranges") == "bytes"
        assert reply.header("Access-Control-Allow-Origin") == "*"
        assert "Content-Range" in (reply.header("Access-Control-Expose-Headers") or "")
    caches = {file.name: file.cache for file in MODEL.files.values()}
    assert caches["mlc-chat-config.json"] == CACHE_CONFIG
    assert caches["Llama-3.2-1B-Instruct-q4f32_1_cs1k-webgpu.wasm"] == CACHE_WASM
    assert caches["tensor-cache.json"] == caches["tokenizer.json"] == CACHE_MODEL
    assert caches["tokenizer_config.json"] is None  # WebLLM never reads it


def test_standin_files_are_what_webllm_reads() -> None:
    config = json.loads(MODEL.file("mlc-chat-config.json").content())
    assert config["tokenizer_files"] == ["tokenizer.json", "tokenizer_config.json"]
    assert config["model_type"] == "llama" and "conv_template" in config
    tensor_cache = json.loads(MODEL.file("tensor-cache.json").content())
    assert [(r["dataPath"], r["nbytes"]) for r in tensor_cache["records"]] == [
        (f"params_shard_{i}.bin", n) for i, n in enumerate(MODEL.shard_sizes)]
    for record, i in zip(tensor_cache["records"], range(6), strict=True):
        assert record["format"] == "raw-shard"
        assert sum(r["nbytes"] for r in record["records"]) == record["nbytes"]
        assert record["md5sum"] == hashlib.md5(MODEL.file(f"params_shard_{i}.bin").content(),
                                               usedforsecurity=False).hexdigest()
    assert json.loads(MODEL.file("tokenizer.json").content())["model"]["type"] == "BPE"
    wasm = MODEL.file("wasm")
    assert wasm.size == 64 * 1024 and _custom_section(wasm.content()) == "localchat-standin"
    assert MODEL.base == f"https://{HF}/mlc-ai/{QUICK}/resolve/main/"
    assert MODEL.model_lib == (f"https://{LIBS}/mlc-ai/binary-mlc-llm-libs/main/web-llm-models/"
                               "v0_2_86/base/Llama-3.2-1B-Instruct-q4f32_1_cs1k-webgpu.wasm")
    assert MODEL.total_bytes == sum(f.size for f in MODEL.files.values()
                                    if f.name != "tokenizer_config.json")


def test_each_real_host_name_serves_only_its_own_files(standin: ModelHostServer) -> None:
    wasm, config = path_of(MODEL.model_lib), path_of(MODEL.base + "mlc-chat-config.json")
    assert request(standin.port, wasm, host=LIBS).status == 200
    assert request(standin.port, wasm, host=HF).status == 404
    assert request(standin.port, config, host=f"{HF}:443").status == 200
    assert request(standin.port, config, host=LIBS).status == 404
    assert request(standin.port, config).status == 200  # 127.0.0.1:port: every path


def test_range_requests_give_206_and_416(standin: ModelHostServer) -> None:
    data = MODEL.file("params_shard_1.bin").content()
    size = len(data)
    for header, start, end in [("bytes=1000-", 1000, size), ("bytes=10-99", 10, 100),
                               ("bytes=-500", size - 500, size), ("bytes=0-", 0, size),
                               (f"bytes=100-{size * 2}", 100, size)]:
        reply = request(standin.port, shard_path(1), headers={"Range": header})
        assert reply.status == 206, header
        assert reply.header("Content-Range") == f"bytes {start}-{end - 1}/{size}"
        assert int(reply.header("Content-Length") or -1) == end - start
        assert reply.body == data[start:end]
    for header in [f"bytes={size}-", f"bytes={size + 5}-{size + 9}", "bytes=-0"]:
        reply = request(standin.port, shard_path(1), headers={"Range": header})
        assert (reply.status, reply.header("Content-Range")) == (416, f"bytes */{size}")
    for ignored in ["bytes=9-3", "bytes=0-1,5-9", "items=0-1"]:
        reply = request(standin.port, shard_path(1), headers={"Range": ignored})
        assert (reply.status, len(reply.body)) == (200, size)
    etag = MODEL.file("params_shard_1.bin").etag
    assert request(standin.port, shard_path(1),
                   headers={"Range": "bytes=5-", "If-Range": etag}).status == 206
    assert request(standin.port, shard_path(1),
                   headers={"Range": "bytes=5-", "If-Range": '"old"'}).status == 200


def test_parse_range_edge_cases() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-0", 10) == parse_range("bytes=0-0", 1)
    assert parse_range("bytes=0-", 0) == "unsatisfiable"
    assert parse_range("bytes=-20", 10).start == 0  # type: ignore[union-attr]


def test_head_sends_the_get_headers_without_a_body(standin: ModelHostServer) -> None:
    reply = request(standin.port, shard_path(0), method="HEAD")
    assert reply.status == 200 and reply.body == b""
    assert int(reply.header("Content-Length") or -1) == MODEL.shard_sizes[0]
    ranged = request(standin.port, shard_path(0), method="HEAD", headers={"Range": "bytes=7-"})
    assert ranged.status == 206
    assert int(ranged.header("Content-Length") or -1) == MODEL.shard_sizes[0] - 7


def test_cors_preflight_echoes_the_requested_headers(standin: ModelHostServer) -> None:
    reply = request(standin.port, shard_path(0), method="OPTIONS", headers={
        "Origin": "http://127.0.0.1:8000", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range,x-localchat-sim"})
    assert reply.status == 204
    assert reply.header("Access-Control-Allow-Origin") == "*"
    assert reply.header("Access-Control-Allow-Methods") == "GET, HEAD"
    assert reply.header("Access-Control-Allow-Headers") == "range,x-localchat-sim"
    assert reply.header("Access-Control-Max-Age") == "600"


def test_unknown_path_is_an_html_404(standin: ModelHostServer) -> None:
    reply = request(standin.port, f"/mlc-ai/{QUICK}/resolve/main/params_shard_6.bin")
    assert reply.status == 404
    assert (reply.header("Content-Type") or "").startswith("text/html")
    assert reply.body.startswith(b"<!DOCTYPE html>")
    assert reply.header("Access-Control-Allow-Origin") == "*"


def test_connections_are_kept_alive(standin: ModelHostServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=10)
    for name in ("tensor-cache.json", "params_shard_0.bin", "no-such-file"):
        conn.request("GET", path_of(MODEL.base + name))
        reply = conn.getresponse()
        reply.read()
    assert reply.status == 404 and not reply.will_close
    conn.close()


def test_the_log_records_every_request_until_cleared(standin: ModelHostServer) -> None:
    request(standin.port, shard_path(2), headers={"Range": "bytes=5-"}, host=HF)
    request(standin.port, shard_path(2), method="HEAD", host=HF)
    request(standin.port, "/nothing", method="OPTIONS")
    assert list(standin.log) == [
        LoggedRequest("GET", shard_path(2), HF, "bytes=5-", 206),
        LoggedRequest("HEAD", shard_path(2), HF, None, 200),
        LoggedRequest("OPTIONS", "/nothing", f"127.0.0.1:{standin.port}", None, 204)]
    assert standin.log.records("*/params_shard_2.bin", method="GET")[0].status == 206
    assert len(standin.log.wait_for("*/params_shard_*", count=2, timeout=1)) == 2
    with pytest.raises(TimeoutError):
        standin.log.wait_for("*/params_shard_*", count=3, timeout=0.05)
    standin.log.clear()
    assert len(standin.log) == 0


def test_a_test_can_serve_another_model_until_reset(standin: ModelHostServer) -> None:
    extra = standin.add_model(StandinModel("Test-1B-Instruct-q4f32_1-MLC", "test-webgpu.wasm",
                                           shard_sizes=(1000, 2000)))
    assert request(standin.port, shard_path(1, extra)).body == extra.file(
        "params_shard_1.bin").content()
    assert extra.record["model_lib"] == extra.model_lib
    standin.reset()
    assert request(standin.port, shard_path(1, extra)).status == 404
    assert set(standin.models) == set(STANDIN_MODELS)


# ---------------------------------------------------------------------------------------
# Faults


def test_status_fault_answers_times_requests_with_retry_after(standin: ModelHostServer) -> None:
    fault = standin.faults.status("*/params_shard_2.bin", 503, times=2, retry_after=1)
    for _ in range(2):
        reply = request(standin.port, shard_path(2))
        assert (reply.status, reply.header("Retry-After")) == (503, "1")
        assert (reply.header("Content-Type") or "").startswith("text/html")
        assert reply.header("Access-Control-Allow-Origin") == "*"
    assert request(standin.port, shard_path(2)).status == 200
    assert fault.used == 2 and fault.remaining == 0
    assert request(standin.port, shard_path(3)).status == 200  # the glob decides
    always = standin.faults.status("*.wasm", 429, times=None, retry_after="Wed, 21 Oct 2099 "
                                   "07:28:00 GMT")
    for _ in range(3):
        reply = request(standin.port, path_of(MODEL.model_lib))
        assert reply.status == 429
        assert (reply.header("Retry-After") or "").startswith("Wed, 21 Oct 2099")
    assert always.used == 3 and always.remaining is None
    assert request(standin.port, shard_path(0)).header("Retry-After") is None


def test_drop_cuts_the_body_after_exactly_at_byte(standin: ModelHostServer) -> None:
    size = MODEL.shard_sizes[0]
    fault = standin.faults.drop("*/params_shard_0.bin", at_byte=100_003)
    reply = request(standin.port, shard_path(0))
    assert reply.status == 200 and int(reply.header("Content-Length") or -1) == size
    assert reply.cut and len(reply.body) == 100_003
    assert reply.body == MODEL.file("params_shard_0.bin").content()[:100_003]
    assert fault.used == 1
    whole = request(standin.port, shard_path(0))
    assert not whole.cut and len(whole.body) == size
    # Counted from the start of that response's body, a 206's too; 0 = right after headers.
    twice = standin.faults.drop("*/params_shard_0.bin", at_byte=10, times=2)
    ranged = request(standin.port, shard_path(0), headers={"Range": "bytes=1000-"})
    assert (ranged.status, ranged.cut, ranged.body) == (206, True, whole.body[1000:1010])
    assert request(standin.port, shard_path(0)).body == whole.body[:10]
    assert twice.remaining == 0 and standin.faults.active() == []
    standin.faults.drop("*/params_shard_0.bin", at_byte=0)
    assert request(standin.port, shard_path(0)).body == b""
    assert not request(standin.port, shard_path(0)).cut


def test_drop_never_touches_a_head(standin: ModelHostServer) -> None:
    fault = standin.faults.drop("*", at_byte=0)
    assert request(standin.port, shard_path(0), method="HEAD").status == 200
    assert fault.used == 0


def test_stall_pauses_mid_body_then_sends_the_rest(standin: ModelHostServer) -> None:
    standin.faults.stall("*/params_shard_1.bin", at_byte=1000, seconds=0.3)
    started = time.monotonic()
    reply = request(standin.port, shard_path(1))
    elapsed = time.monotonic() - started
    assert reply.body == MODEL.file("params_shard_1.bin").content()
    assert 0.3 <= elapsed < 1.5


def test_a_reset_ends_a_stall_at_once(standin: ModelHostServer) -> None:
    standin.faults.stall("*/params_shard_1.bin", at_byte=0, seconds=30)
    timer = threading.Timer(0.2, standin.faults.reset)
    timer.start()
    started = time.monotonic()
    reply = request(standin.port, shard_path(1))
    assert len(reply.body) == MODEL.shard_sizes[1] and time.monotonic() - started < 5
    timer.join()


def test_no_range_answers_200_with_the_whole_file(standin: ModelHostServer) -> None:
    standin.faults.no_range()
    reply = request(standin.port, shard_path(3), headers={"Range": "bytes=100-"})
    assert (reply.status, len(reply.body), reply.header("Content-Range")) == (
        200, MODEL.shard_sizes[3], None)
    standin.faults.no_range(False)
    assert request(standin.port, shard_path(3), headers={"Range": "bytes=100-"}).status == 206


def test_html_instead_sends_a_captive_portal_page(standin: ModelHostServer) -> None:
    standin.faults.html_instead("*.wasm")
    reply = request(standin.port, path_of(MODEL.model_lib), host=LIBS)
    assert reply.status == 200 and reply.header("Content-Type") == "text/html; charset=utf-8"
    assert reply.body.startswith(b"<!DOCTYPE html>") and b"Sign in to the network" in reply.body
    assert request(standin.port, path_of(MODEL.model_lib), host=LIBS).body[:4] == b"\0asm"


def test_redirect_sends_the_same_file_from_another_path(standin: ModelHostServer) -> None:
    standin.faults.redirect("*/params_shard_4.bin")
    moved = request(standin.port, shard_path(4), host=HF)
    assert moved.status == 302
    location = moved.header("Location") or ""
    assert location == "/__cdn__" + shard_path(4)
    reply = request(standin.port, location, host=HF, headers={"Range": "bytes=9-"})
    assert reply.status == 206
    assert reply.body == MODEL.file("params_shard_4.bin").content()[9:]


def test_rate_is_shared_by_all_connections(standin: ModelHostServer) -> None:
    standin.faults.rate(1_000_000)
    replies: list[Reply] = []
    paths = [shard_path(1), shard_path(4)]  # 150 001 + 199 999 bytes
    threads = [threading.Thread(target=lambda p=p: replies.append(request(standin.port, p)))
               for p in paths]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert sorted(len(r.body) for r in replies) == [150_001, 199_999]
    assert 0.3 <= elapsed < 0.6  # 350 000 bytes at 1 MB/s together
    standin.faults.rate(None)
    started = time.monotonic()
    request(standin.port, shard_path(0))
    assert time.monotonic() - started < 0.2


def test_a_client_that_hangs_up_mid_body_is_normal(standin: ModelHostServer,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    standin.faults.rate(200_000)
    with socket.create_connection(("127.0.0.1", standin.port)) as sock:
        sock.sendall(f"GET {shard_path(0)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.recv(1000)
    standin.log.wait_for("*/params_shard_0.bin")
    standin.faults.reset()  # the paced sender notices the hang-up at its next write
    assert request(standin.port, shard_path(1)).status == 200
    assert "Traceback" not in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# The simulated host


@pytest.mark.parametrize("model_id", list(SIM_MODEL_MIB))
def test_sim_host_serves_every_catalog_model(sim: Server, model_id: str) -> None:
    scale = 0.002
    tensor_cache = json.loads(request(sim.port, sim_path(model_id, scale,
                                                         "tensor-cache.json")).body)
    sizes = [r["nbytes"] for r in tensor_cache["records"]]
    assert sizes == sim_shard_sizes(model_id, scale)
    assert sum(sizes) == round(SIM_MODEL_MIB[model_id] * 1024 * 1024 * scale)
    config = json.loads(request(sim.port, sim_path(model_id, scale,
                                                   "mlc-chat-config.json")).body)
    assert config["context_window_size"] == 4096 and config["simulated"] is True
    assert config["tokenizer_files"] == ["tokenizer.json", "tokenizer_config.json"]
    assert json.loads(request(sim.port, sim_path(model_id, scale, "tokenizer.json")).body)
    last = f"params_shard_{len(sizes) - 1}.bin"
    reply = request(sim.port, sim_path(model_id, scale, last))
    assert len(reply.body) == sizes[-1]
    expected = SimModel(model_id, scale).file(last)
    assert expected is not None and hashlib.sha256(reply.body).hexdigest() == expected.sha256
    wasm = request(sim.port, sim_path(model_id, scale, "model-webgpu.wasm")).body
    assert len(wasm) == round(4 * 1024 * 1024 * scale)
    assert _custom_section(wasm) == "localchat-sim"
    assert request(sim.port, sim_path(model_id, scale,
                                      f"params_shard_{len(sizes)}.bin")).status == 404


def test_sim_host_refuses_bad_scales_and_models_and_leaves_the_site_alone(sim: Server) -> None:
    assert request(sim.port, sim_path(QUICK, 2, "tensor-cache.json")).status == 404
    assert request(sim.port, f"/sim-host/0/{QUICK}/resolve/main/tensor-cache.json").status == 404
    assert request(sim.port, sim_path("Other-1B-MLC", 0.1, "tensor-cache.json")).status == 404
    tiny = request(sim.port, sim_path(QUICK, 1e-05, "model-webgpu.wasm")).body
    assert len(tiny) == 64 and _custom_section(tiny) == "localchat-sim"
    site = request(sim.port, "/index.html")
    assert site.status == 200 and site.header("Cache-Control") == "no-cache"
    assert [r.path for r in sim.log] == [sim_path(QUICK, 2, "tensor-cache.json"),
                                         f"/sim-host/0/{QUICK}/resolve/main/tensor-cache.json",
                                         sim_path("Other-1B-MLC", 0.1, "tensor-cache.json"),
                                         sim_path(QUICK, 1e-05, "model-webgpu.wasm")]


def test_sim_shards_read_the_same_at_any_offset_and_are_not_periodic() -> None:
    shard = SimModel(QUICK, 0.01).file("params_shard_0.bin")
    assert shard is not None and shard.size > 256 * 1024
    whole = shard.content()
    for start, end in [(0, 10), (65_530, 65_600), (100_001, 165_537), (shard.size - 3,
                                                                        shard.size)]:
        assert shard.read(start, end) == whole[start:end]
    segments = {whole[i:i + 65536] for i in range(0, 4 * 65536, 65536)}
    assert len(segments) == 4 and whole[:4096] != whole[4096:8192]


def test_sim_fail_drops_once_per_session_at_the_right_shard_and_byte(sim: Server) -> None:
    model = SimModel(QUICK, 0.002)
    index, byte = model.fail_point(50)
    target = model.shard_offsets[index] + byte
    assert target == model.shard_bytes // 2
    path = sim_path(QUICK, 0.002, f"params_shard_{index}.bin")
    knobs = {SIM_HEADER: "fail=quick@50; session=one"}
    for other in (index - 1, index + 1):  # the other shards are whole
        reply = request(sim.port, sim_path(QUICK, 0.002, f"params_shard_{other}.bin"),
                        headers=knobs)
        assert not reply.cut
    assert request(sim.port, path, method="HEAD", headers=knobs).status == 200
    first = request(sim.port, path, headers=knobs)
    assert first.cut and len(first.body) == byte
    assert first.body == model.file(f"params_shard_{index}.bin").content()[:byte]  # type: ignore[union-attr]
    assert not request(sim.port, path, headers=knobs).cut  # once for that session
    again = request(sim.port, path, headers={SIM_HEADER: "session=two; fail=quick@50"})
    assert again.cut and len(again.body) == byte
    # A response that starts past the byte drops right after its headers.
    resumed = request(sim.port, path, headers={SIM_HEADER: "fail=quick@50; session=three",
                                               "Range": f"bytes={byte + 10}-"})
    assert (resumed.status, resumed.cut, resumed.body) == (206, True, b"")
    before = request(sim.port, path, headers={SIM_HEADER: "fail=quick@50; session=four",
                                              "Range": f"bytes={byte - 10}-"})
    assert (before.cut, len(before.body)) == (True, 10)
    other_model = request(sim.port, sim_path("Llama-3.2-3B-Instruct-q4f32_1-MLC", 0.002,
                                             f"params_shard_{index}.bin"), headers=knobs)
    assert not other_model.cut


def test_sim_fail_always_drops_every_time_and_100_percent_is_the_last_byte(sim: Server) -> None:
    model = SimModel(QUICK, 0.002)
    last = len(model.shard_sizes) - 1
    assert model.fail_point(100) == (last, model.shard_sizes[-1] - 1)
    assert model.fail_point(0) == (0, 0)
    path = sim_path(QUICK, 0.002, f"params_shard_{last}.bin")
    for _ in range(3):
        reply = request(sim.port, path, headers={SIM_HEADER: "fail_always=quick@100"})
        assert reply.cut and len(reply.body) == model.shard_sizes[-1] - 1


def test_sim_mbps_paces_each_session_on_its_own(sim: Server) -> None:
    scale = 0.005  # shards of 167 772 bytes
    size = sim_shard_sizes(QUICK, scale)[0]
    elapsed: dict[str, float] = {}

    def fetch(name: str, session: str, index: int) -> None:
        started = time.monotonic()
        reply = request(sim.port, sim_path(QUICK, scale, f"params_shard_{index}.bin"),
                        headers={SIM_HEADER: f"mbps=1; session={session}"})
        assert len(reply.body) == size
        elapsed[name] = time.monotonic() - started

    threads = [threading.Thread(target=fetch, args=args)
               for args in [("a0", "A", 0), ("a1", "A", 1), ("b0", "B", 0)]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    mib = 1024 * 1024
    assert 2 * size / mib * 0.9 <= max(elapsed["a0"], elapsed["a1"]) < 2 * size / mib + 0.25
    assert size / mib * 0.9 <= elapsed["b0"] < size / mib + 0.15  # B has its own MiB/s


def test_sim_knobs_parse_leniently() -> None:
    knobs = SimKnobs.parse(" mbps=2.5; fail=quick@50, smart@150,bad; fail_always=genius@x;"
                           " session=abc ")
    assert knobs == SimKnobs(2.5, (("quick", 50.0), ("smart", 100.0)), (), "abc")
    assert SimKnobs.parse(None) == SimKnobs.parse("mbps=nan; junk") == SimKnobs()


def test_make_server_keeps_its_signature(tmp_path: Path) -> None:
    server = make_server("127.0.0.1", 0, tmp_path, verbose=False)
    assert server.server_port == server.port > 0
    server.server_close()


# ---------------------------------------------------------------------------------------
# wasm and TLS


def _custom_section(module: bytes) -> str:
    """Parse the module as V8 would: magic, version, one custom section to the end."""
    assert module[:8] == b"\0asm\x01\0\0\0" and module[8] == 0

    def leb(at: int) -> tuple[int, int]:
        value = shift = 0
        for width in range(5):
            byte = module[at + width]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value, at + width + 1
        raise AssertionError("LEB128 longer than 5 bytes")

    size, at = leb(9)
    assert at + size == len(module)
    name_length, at = leb(at)
    return module[at:at + name_length].decode()


@pytest.mark.parametrize("size", [28, 64, 137, 138, 139, 16_396, 16_397, 16_398, 65_536,
                                  4 * 1024 * 1024])
def test_wasm_modules_have_the_exact_size_and_a_valid_layout(size: int) -> None:
    module = wasm_module(size, "localchat-sim", "x")
    assert len(module) == size and _custom_section(module) == "localchat-sim"
    assert wasm_module(size, "localchat-sim", "x") == module


def test_https_stand_in_with_the_generated_certificate(tmp_path: Path) -> None:
    certfile, keyfile = make_self_signed_cert(tmp_path)
    server = make_https_server("127.0.0.1", 0, certfile, keyfile)
    _serve(server)
    try:
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        reply = request(server.port, shard_path(0), context=insecure, host=HF)
        assert reply.status == 200 and reply.body == MODEL.file("params_shard_0.bin").content()
        # The certificate names both hosts and 127.0.0.1 (checked by a verifying client).
        trusting = ssl.create_default_context(cafile=str(certfile))
        for name in (HF, LIBS, "127.0.0.1"):
            assert request(server.port, path_of(MODEL.model_lib), context=trusting,
                           server_hostname=name, host=LIBS).status == 200
        server.faults.drop("*/params_shard_5.bin", at_byte=12_345)
        cut = request(server.port, shard_path(5), context=insecure)
        assert cut.cut and len(cut.body) == 12_345
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"not a TLS hello\r\n\r\n")  # a failed handshake is quiet
        assert request(server.port, shard_path(1), context=insecure).status == 200
    finally:
        server.shutdown()
        server.server_close()
