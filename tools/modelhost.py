"""A model host that behaves like huggingface.co and raw.githubusercontent.com, with faults.

Owns: the files a WebLLM model download reads (their bytes, sizes, SHA-256s and URLs), the
HTTP behaviour of a real model host (GET/HEAD, `Range` → 206/416, `ETag`, CORS and its
preflight, HTML 404 pages), test-controlled faults, the simulated host's header knobs and a
log of every request. Standard library only: it runs inside tools/devserver.py.

Two uses:
- `tools/devserver.py` serves the simulated host under
  `/sim-host/<scale>/<model_id>/resolve/main/<file>` (`SimModel`: every catalog model, shards
  of 32 MiB × scale, sizes from `SIM_MODEL_MIB`) through `ModelHost.respond(handler)`.
- Browser tests start the HTTPS stand-in for the real hosts (`make_self_signed_cert`,
  `make_https_server`); Chromium maps huggingface.co and raw.githubusercontent.com to it
  (playwright.config.py's `standin_launch_args`). It serves `STANDIN_MODELS` at WebLLM's own
  URLs: `https://huggingface.co/mlc-ai/<id>/resolve/main/<file>` and the model library
  `https://raw.githubusercontent.com/mlc-ai/binary-mlc-llm-libs/main/web-llm-models/v0_2_86/base/<lib>`
  (exactly `prebuiltAppConfig`'s `model_lib`; note the `base/`).

What a test can read (all exact; a test can compare bytes stored in the browser):
    model = model_host.models["Llama-3.2-1B-Instruct-q4f32_1-MLC"]    # a StandinModel
    model.base, model.model_lib, model.record       # URLs; an appConfig model record
    for url, f in model.files.items():              # url → HostedFile
        f.size, f.sha256, f.cache, f.content()      # cache: "webllm/model", … or None
    model.shard_urls, model.total_bytes
    SimModel("Llama-3.2-1B-Instruct-q4f32_1-MLC", 0.002).files(site_origin)   # the sim host
  A test can serve another model: `model_host.add_model(StandinModel(...))` (until reset).

Faults (`server.faults`, thread-safe; every call but rate/no_range/reset returns the `Fault`,
whose `.used` counts the requests it answered, so a test can check it really happened):
    faults = model_host.faults
    faults.status("*/params_shard_2.bin", 503, times=2, retry_after=1)  # 2 × 503, then normal
    faults.drop("*/params_shard_0.bin", at_byte=100_000)   # headers + 100 000 bytes, then cut
    faults.stall("*/tensor-cache.json", at_byte=0, seconds=5)   # nothing for 5 s, then rest
    faults.html_instead("*.wasm")            # 200 text/html captive-portal page instead
    faults.redirect("*/params_shard_*", times=None)  # 302 to /__cdn__<path>, same file there
    faults.rate(200_000)                     # 200 KB/s for all responses together; None: off
    faults.no_range()                        # ignore Range: always 200 and the whole file
    faults.reset()                           # no faults, empty log (the fixtures do this)
- Globs (fnmatch, `*` also matches `/`) are matched against the URL path (no host, no
  query). `times=None` means every matching request. Per request, the first matching
  `status`, then `html_instead`, then `redirect` fault answers it (HEAD too); for a GET of a
  file the first matching `drop` and the first matching `stall` apply to its body.
- `at_byte` counts body bytes of *that* response (a 206 body starts at its range). A drop
  sends the headers with the full Content-Length, `at_byte` bytes, then shuts the socket
  down (the browser sees a network error mid-body; with `at_byte` >= the body length the
  body is complete and the client sees no error). A stall keeps the socket open.

Request log (`server.log`): `LoggedRequest(method, path, host, range, status)` per request
(OPTIONS too), recorded when the status line is sent. `log.records(path_glob, method=...)`,
`log.wait_for(path_glob, count=1, timeout=10)` (waits on a condition, never a fixed sleep),
`log.clear()`.

Simulated host only: header `X-LocalChat-Sim: mbps=2; fail=quick@50; fail_always=smart@10;
session=abc` (every part optional; key quick/smart/genius from the model id's -1B-/-3B-/-8B-).
`mbps` is MiB/s shared by every connection of that session (absent or 0: unlimited).
`fail=key@pct`: the shard holding byte pct% of the model's shard bytes (cumulative, index
order; 100 % is the last byte) drops at that byte, once per (session, key, pct) in this
process; a response starting at or past it drops right after its headers. `fail_always`:
the same on every attempt. The knobs never change bytes or URLs.

Side effects: sockets; `make_self_signed_cert` runs the `openssl` command in a folder.
Run the stand-in by hand: python tools/modelhost.py [--port 8443]
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import json
import math
import random
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

__all__ = [
    "CACHE_CONFIG",
    "CACHE_MODEL",
    "CACHE_WASM",
    "HF_HOST",
    "LIBS_HOST",
    "SIM_HEADER",
    "SIM_MODEL_MIB",
    "STANDIN_MODELS",
    "Fault",
    "Faults",
    "HostedFile",
    "LoggedRequest",
    "ModelHost",
    "ModelHostServer",
    "RequestLog",
    "SimKnobs",
    "SimModel",
    "StandinModel",
    "captive_portal_page",
    "make_https_server",
    "make_model_server",
    "make_self_signed_cert",
    "parse_range",
    "sim_shard_sizes",
    "wasm_module",
]

KIB = 1024
MIB = 1024 * KIB
CHUNK = 64 * KIB  # body write size, so pacing, stalls and drops happen mid-body

HF_HOST = "huggingface.co"
LIBS_HOST = "raw.githubusercontent.com"
REAL_HOSTS = (HF_HOST, LIBS_HOST)
LIBS_PREFIX = f"https://{LIBS_HOST}/mlc-ai/binary-mlc-llm-libs/main/web-llm-models/"
LIB_VERSION = "v0_2_86/base"  # WebLLM 0.2.86's modelVersion

# WebLLM's cache names (lib/index.js: fetchWithCache scopes).
CACHE_CONFIG = "webllm/config"
CACHE_WASM = "webllm/wasm"
CACHE_MODEL = "webllm/model"

SIM_HEADER = "X-LocalChat-Sim"
CDN_PREFIX = "/__cdn__"  # where `redirect` faults send a request (same host, same file)

EXPOSED_HEADERS = "Content-Length, Content-Range, Accept-Ranges, ETag, Retry-After"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


# ---------------------------------------------------------------------------------------
# Files


@dataclass(frozen=True)
class HostedFile:
    """One file a host serves. `url` is the key WebLLM stores it under (the sim host's
    files built without an origin have just the path). `read(start, end)` gives bytes
    [start, end) of at most CHUNK bytes, without building the whole file."""

    url: str
    size: int
    content_type: str
    cache: str | None  # WebLLM cache that keeps it; None: WebLLM never fetches it
    etag: str
    read: Callable[[int, int], bytes] = field(compare=False, repr=False)

    @classmethod
    def of(cls, url: str, data: bytes, content_type: str, cache: str | None) -> HostedFile:
        view = memoryview(data)
        return cls(url, len(data), content_type, cache, f'"{hashlib.sha256(data).hexdigest()}"',
                   lambda start, end: view[start:end])  # type: ignore[arg-type,return-value]

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def chunks(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        end = self.size if end is None else end
        for offset in range(start, end, CHUNK):
            yield self.read(offset, min(offset + CHUNK, end))

    def content(self) -> bytes:
        return b"".join(self.chunks())

    @cached_property
    def sha256(self) -> str:
        """Hex SHA-256 of the whole file (computed once)."""
        digest = hashlib.sha256()
        for chunk in self.chunks():
            digest.update(chunk)
        return digest.hexdigest()


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, indent=2).encode()


def _leb128(value: int, width: int | None = None) -> bytes:
    """Unsigned LEB128; with `width`, padded to that many bytes (valid in wasm, ≤ 5)."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value or (width is not None and len(out) + 1 < width):
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def wasm_module(size: int, section_name: str = "localchat-sim", seed: str = "") -> bytes:
    """A valid WebAssembly module of exactly `size` bytes (>= 28): the magic and version,
    then one custom section named `section_name` whose payload is deterministic filler."""
    header = b"\x00asm\x01\x00\x00\x00"
    name = section_name.encode()
    name_part = _leb128(len(name)) + name
    for width in (1, 2, 3, 4, 5, None):  # the shortest section-size encoding that fits
        length_bytes = 5 if width is None else width
        content = size - len(header) - 1 - length_bytes
        if content < len(name_part):
            continue
        encoded = _leb128(content, 5 if width is None else None)
        if len(encoded) == length_bytes:
            break
    else:
        raise ValueError(f"a wasm module needs at least 28 bytes, not {size}")
    payload = random.Random(f"wasm/{seed}/{size}").randbytes(content - len(name_part))
    module = header + b"\x00" + encoded + name_part + payload
    assert len(module) == size
    return module


def captive_portal_page() -> bytes:
    return (b"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Wi-Fi</title></head>"
            b"<body><h1>Sign in to the network</h1><p>Accept the terms of use to get online."
            b"</p><form method=\"post\" action=\"/login\"><button>Accept and connect</button>"
            b"</form></body></html>\n")


def _error_page(code: int, reason: str) -> bytes:
    return (f"<!DOCTYPE html><html><head><title>{code} {reason}</title></head><body>"
            f"<h1>{code} {reason}</h1></body></html>\n").encode()


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            408: "Request Timeout", 416: "Range Not Satisfiable", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout"}

# Architecture figures by size, so each config reads like the real one of that model.
_ARCH = {
    "1B": {"hidden_size": 2048, "intermediate_size": 8192, "num_attention_heads": 32,
           "num_hidden_layers": 16, "num_key_value_heads": 8, "head_dim": 64,
           "tie_word_embeddings": True},
    "3B": {"hidden_size": 3072, "intermediate_size": 8192, "num_attention_heads": 24,
           "num_hidden_layers": 28, "num_key_value_heads": 8, "head_dim": 128,
           "tie_word_embeddings": True},
    "8B": {"hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
           "num_hidden_layers": 32, "num_key_value_heads": 8, "head_dim": 128,
           "tie_word_embeddings": False},
}


def _size_of(model_id: str) -> str:
    return next((size for size in _ARCH if f"-{size}-" in model_id), "1B")


def chat_config(model_id: str, context_window_size: int, *, simulated: bool) -> dict[str, Any]:
    """An mlc-chat-config.json like MLC's for a Llama 3.x model (real field names)."""
    quantization = "q4f16_1" if "q4f16" in model_id else "q4f32_1"
    config: dict[str, Any] = {
        "version": "0.1.0",
        "model_type": "llama",
        "quantization": quantization,
        "model_config": {**_ARCH[_size_of(model_id)], "rms_norm_eps": 1e-05,
                         "vocab_size": 128256, "position_embedding_base": 500000.0,
                         "context_window_size": 131072, "prefill_chunk_size": 8192,
                         "tensor_parallel_shards": 1, "max_batch_size": 128},
        "vocab_size": 128256,
        "context_window_size": context_window_size,
        "sliding_window_size": -1,
        "prefill_chunk_size": 8192,
        "attention_sink_size": -1,
        "tensor_parallel_shards": 1,
        "temperature": 0.6,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "repetition_penalty": 1.0,
        "top_p": 0.9,
        "tokenizer_files": list(TOKENIZER_FILES),
        "tokenizer_info": {"token_postproc_method": "byte_level",
                           "prepend_space_in_encode": False, "strip_space_in_decode": False},
        "conv_template": {
            "name": "llama-3_1",
            "system_template": "<|start_header_id|>system<|end_header_id|>\n\n"
                               "{system_message}<|eot_id|>",
            "system_message": "You are a helpful, respectful and honest assistant.",
            "system_prefix_token_ids": [128000],
            "add_role_after_system_message": True,
            "roles": {"user": "<|start_header_id|>user",
                      "assistant": "<|start_header_id|>assistant",
                      "tool": "<|start_header_id|>ipython"},
            "role_templates": {"user": "{user_message}", "assistant": "{assistant_message}",
                               "tool": "{tool_message}"},
            "messages": [],
            "seps": ["<|eot_id|>"],
            "role_content_sep": "<|end_header_id|>\n\n",
            "role_empty_sep": "<|end_header_id|>\n\n",
            "stop_str": [],
            "stop_token_ids": [128001, 128008, 128009],
            "function_string": "",
            "use_function_calling": False,
        },
        "pad_token_id": 0,
        "bos_token_id": 128000,
        "eos_token_id": [128001, 128008, 128009],
    }
    if simulated:
        config["simulated"] = True
    return config


def tokenizer_json() -> dict[str, Any]:
    """A small but well-formed Hugging Face tokenizers file (byte-level BPE)."""
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>"]
    vocab = {token: i for i, token in enumerate(
        ["!", "\"", "#", "a", "b", "c", "d", "e", "h", "l", "o", "Ġ", "Ġh", "el", "lo", "hel",
         "hello"])}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": 128000 + i, "content": t, "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": False,
                          "special": True} for i, t in enumerate(specials)],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True,
                           "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": ["Ġ h", "e l", "l o", "h el", "hel lo"]},
    }


def tokenizer_config_json() -> dict[str, Any]:
    return {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
            "clean_up_tokenization_spaces": True, "model_max_length": 131072,
            "tokenizer_class": "PreTrainedTokenizerFast"}


def tensor_cache_json(shard_sizes: Iterable[int],
                      md5s: Iterable[str] | None = None) -> dict[str, Any]:
    """tensor-cache.json: one record per `params_shard_<i>.bin` with short inner records."""
    sizes = list(shard_sizes)
    md5_list = list(md5s) if md5s is not None else None
    records: list[dict[str, Any]] = []
    for i, nbytes in enumerate(sizes):
        first = nbytes // 2
        inner = [{"name": f"model.layers.{i}.mlp.down_proj.q_weight", "shape": [first],
                  "dtype": "uint8", "format": "raw", "nbytes": first, "byteOffset": 0},
                 {"name": f"model.layers.{i}.mlp.down_proj.q_scale", "shape": [nbytes - first],
                  "dtype": "uint8", "format": "raw", "nbytes": nbytes - first,
                  "byteOffset": first}]
        record: dict[str, Any] = {"dataPath": f"params_shard_{i}.bin", "format": "raw-shard",
                                  "nbytes": nbytes, "records": inner}
        if md5_list is not None:
            record["md5sum"] = md5_list[i]
        records.append(record)
    return {"metadata": {"ParamSize": 2 * len(sizes), "ParamBytes": sum(sizes),
                         "BitsPerParam": 4.5}, "records": records}


def _model_files(base: str, model_lib: str, model_id: str, context_window_size: int,
                 wasm: bytes, shards: list[HostedFile], *, simulated: bool,
                 md5s: list[str] | None) -> dict[str, HostedFile]:
    json_type = "application/json"
    files = [
        HostedFile.of(f"{base}mlc-chat-config.json",
                      _json_bytes(chat_config(model_id, context_window_size,
                                              simulated=simulated)), json_type, CACHE_CONFIG),
        HostedFile.of(f"{base}tokenizer.json", _json_bytes(tokenizer_json()), json_type,
                      CACHE_MODEL),
        HostedFile.of(f"{base}tokenizer_config.json", _json_bytes(tokenizer_config_json()),
                      json_type, None),
        HostedFile.of(f"{base}tensor-cache.json",
                      _json_bytes(tensor_cache_json([s.size for s in shards], md5s)),
                      json_type, CACHE_MODEL),
        HostedFile.of(model_lib, wasm, "application/octet-stream", CACHE_WASM),
        *shards,
    ]
    return {f.url: f for f in files}


# ---------------------------------------------------------------------------------------
# The stand-in models (real hosts)


@dataclass(frozen=True)
class StandinModel:
    """A model as the real hosts serve it, small: a few shards of unequal sizes (random
    bytes, so any misplaced chunk changes the SHA-256) and a small valid wasm module."""

    model_id: str
    lib_file: str
    shard_sizes: tuple[int, ...] = (400_000, 150_001, 327_680, 262_147, 199_999, 240_000)
    wasm_size: int = 64 * KIB
    # The real config's value; WebLLM's prebuilt record overrides it with 4096.
    context_window_size: int = 131072
    lib_version: str = LIB_VERSION

    @property
    def model_url(self) -> str:
        """The record's `model` (what prebuiltAppConfig says)."""
        return f"https://{HF_HOST}/mlc-ai/{self.model_id}"

    @property
    def base(self) -> str:
        """The model URL cleaned as WebLLM's cleanModelUrl does."""
        return f"{self.model_url}/resolve/main/"

    @property
    def model_lib(self) -> str:
        return f"{LIBS_PREFIX}{self.lib_version}/{self.lib_file}"

    @property
    def record(self) -> dict[str, Any]:
        """An appConfig model record for it (for a model WebLLM's prebuilt list lacks)."""
        return {"model": self.model_url, "model_id": self.model_id, "model_lib": self.model_lib,
                "vram_required_MB": 1128.82, "low_resource_required": True,
                "overrides": {"context_window_size": 4096}}

    @property
    def shard_urls(self) -> list[str]:
        return [f"{self.base}params_shard_{i}.bin" for i in range(len(self.shard_sizes))]

    @property
    def total_bytes(self) -> int:
        """Bytes of every file WebLLM stores (config, wasm, tokenizer.json, tensor cache,
        shards)."""
        return sum(f.size for f in self.files.values() if f.cache is not None)

    @cached_property
    def files(self) -> dict[str, HostedFile]:
        """Every file served, by URL (WebLLM's cache key)."""
        shards = []
        md5s = []
        for i, size in enumerate(self.shard_sizes):
            data = random.Random(f"{self.model_id}/params_shard_{i}.bin").randbytes(size)
            md5s.append(hashlib.md5(data).hexdigest())
            shards.append(HostedFile.of(f"{self.base}params_shard_{i}.bin", data,
                                        "application/octet-stream", CACHE_MODEL))
        wasm = wasm_module(self.wasm_size, "localchat-standin", self.model_id)
        return _model_files(self.base, self.model_lib, self.model_id, self.context_window_size,
                            wasm, shards, simulated=False, md5s=md5s)

    def file(self, name: str) -> HostedFile:
        """A file by name: "tensor-cache.json", "params_shard_0.bin", "wasm"."""
        url = self.model_lib if name == "wasm" else f"{self.base}{name}"
        return self.files[url]

    @cached_property
    def by_path(self) -> dict[str, HostedFile]:
        return {f.path: f for f in self.files.values()}


def _standins(*models: StandinModel) -> dict[str, StandinModel]:
    return {m.model_id: m for m in models}


# The catalog's q4f32 variants (SwiftShader has no shader-f16, so the app picks these).
# The 1B model is the realistic one of the spec; the others let tests queue several.
STANDIN_MODELS: dict[str, StandinModel] = _standins(
    StandinModel("Llama-3.2-1B-Instruct-q4f32_1-MLC",
                 "Llama-3.2-1B-Instruct-q4f32_1_cs1k-webgpu.wasm"),
    StandinModel("Llama-3.2-3B-Instruct-q4f32_1-MLC",
                 "Llama-3.2-3B-Instruct-q4f32_1_cs1k-webgpu.wasm",
                 shard_sizes=(350_003, 280_000, 410_000, 175_555), wasm_size=70_001),
    StandinModel("Llama-3.1-8B-Instruct-q4f32_1-MLC",
                 "Llama-3_1-8B-Instruct-q4f32_1_cs1k-webgpu.wasm",
                 shard_sizes=(300_000, 300_001, 222_222, 333_333, 410_000), wasm_size=80_000),
)


# ---------------------------------------------------------------------------------------
# The simulated host (dev server)

# Download sizes of the simulated models at scale 1, in MiB (close to the real ones).
SIM_MODEL_MIB = {
    "Llama-3.2-1B-Instruct-q4f16_1-MLC": 712,
    "Llama-3.2-1B-Instruct-q4f32_1-MLC": 1046,
    "Llama-3.2-3B-Instruct-q4f16_1-MLC": 1756,
    "Llama-3.2-3B-Instruct-q4f32_1-MLC": 2344,
    "Llama-3.1-8B-Instruct-q4f16_1-MLC": 4352,
    "Llama-3.1-8B-Instruct-q4f32_1-MLC": 5120,
}
SIM_CONTEXT_WINDOW = 4096
SIM_SHARD_BYTES = 32 * MIB
SIM_PATH = re.compile(r"^/sim-host/(?P<scale>[0-9.]+(?:e-?[0-9]+)?)/(?P<model>[A-Za-z0-9._-]+)"
                      r"/resolve/main/(?P<file>[A-Za-z0-9._-]+)$")
_SHARD_FILE = re.compile(r"^params_shard_(\d+)\.bin$")
_SIM_SEGMENT = 64 * KIB
_SIM_STEP = 40_503  # odd: every 64 KiB segment of a shard starts at a different rotation


def sim_shard_sizes(model_id: str, scale: float) -> list[int]:
    """Shard sizes of a simulated model: 32 MiB × scale each, the last one the rest."""
    total = max(1, round(SIM_MODEL_MIB[model_id] * MIB * scale))
    shard = max(1, round(SIM_SHARD_BYTES * scale))
    count = math.ceil(total / shard)
    return [shard] * (count - 1) + [total - shard * (count - 1)]


def catalog_key(model_id: str) -> str | None:
    """quick/smart/genius from the model id (-1B- / -3B- / -8B-)."""
    for size, key in (("-1B-", "quick"), ("-3B-", "smart"), ("-8B-", "genius")):
        if size in model_id:
            return key
    return None


@lru_cache(maxsize=32)
def _sim_segment_source(seed: str) -> bytes:
    return random.Random(seed).randbytes(2 * _SIM_SEGMENT)


def _sim_shard_reader(seed: str) -> Callable[[int, int], bytes]:
    """Deterministic pseudo-random bytes at any offset without generating what comes
    before: 64 KiB segment k is a rotation (k × an odd step) of one random 128 KiB block."""

    def read(start: int, end: int) -> bytes:
        source = _sim_segment_source(seed)
        parts = []
        while start < end:
            segment, within = divmod(start, _SIM_SEGMENT)
            rotation = (segment * _SIM_STEP) % _SIM_SEGMENT
            n = min(end - start, _SIM_SEGMENT - within)
            parts.append(source[rotation + within:rotation + within + n])
            start += n
        return parts[0] if len(parts) == 1 else b"".join(parts)

    return read


@lru_cache(maxsize=8)
def _sim_wasm(model_id: str, scale: float) -> bytes:
    return wasm_module(max(64, round(4 * MIB * scale)), "localchat-sim", model_id)


@dataclass(frozen=True)
class SimModel:
    """One simulated model at one scale, as the dev server serves it under
    `/sim-host/<scale>/<model_id>/resolve/main/`."""

    model_id: str
    scale: float

    def __post_init__(self) -> None:
        if self.model_id not in SIM_MODEL_MIB:
            raise KeyError(f"not a simulated model: {self.model_id}")
        if not 0 < self.scale <= 1:
            raise ValueError("scale must be in (0, 1]")

    @property
    def key(self) -> str | None:
        return catalog_key(self.model_id)

    @property
    def base_path(self) -> str:
        return f"/sim-host/{self.scale:g}/{self.model_id}/resolve/main/"

    @cached_property
    def shard_sizes(self) -> list[int]:
        return sim_shard_sizes(self.model_id, self.scale)

    @cached_property
    def shard_offsets(self) -> list[int]:
        offsets, total = [], 0
        for size in self.shard_sizes:
            offsets.append(total)
            total += size
        return offsets

    @property
    def shard_bytes(self) -> int:
        return sum(self.shard_sizes)

    def fail_point(self, percent: float) -> tuple[int, int]:
        """(shard index, byte in that shard) of byte `percent`% of the shard bytes."""
        total = self.shard_bytes
        target = min(total - 1, max(0, math.floor(total * percent / 100)))
        index = next(i for i in range(len(self.shard_sizes) - 1, -1, -1)
                     if self.shard_offsets[i] <= target)
        return index, target - self.shard_offsets[index]

    def files(self, origin: str = "") -> dict[str, HostedFile]:
        """Every file by URL (`origin` like "http://127.0.0.1:8000"; "" gives paths)."""
        base = origin + self.base_path
        shards = [self._shard(base, i) for i in range(len(self.shard_sizes))]
        return _model_files(base, f"{base}model-webgpu.wasm", self.model_id,
                            SIM_CONTEXT_WINDOW, _sim_wasm(self.model_id, self.scale), shards,
                            simulated=True, md5s=None)

    def file(self, name: str, origin: str = "") -> HostedFile | None:
        base = origin + self.base_path
        if shard := _SHARD_FILE.match(name):
            index = int(shard[1])
            return self._shard(base, index) if index < len(self.shard_sizes) else None
        if name not in ("mlc-chat-config.json", "tokenizer.json", "tokenizer_config.json",
                        "tensor-cache.json", "model-webgpu.wasm"):
            return None
        return _sim_small_files(self.model_id, self.scale, base).get(base + name)

    def _shard(self, base: str, index: int) -> HostedFile:
        size = self.shard_sizes[index]
        seed = f"{self.model_id}/{index}"
        tag = hashlib.sha256(f"{seed}/{size}".encode()).hexdigest()[:32]
        return HostedFile(f"{base}params_shard_{index}.bin", size, "application/octet-stream",
                          CACHE_MODEL, f'"{tag}"', _sim_shard_reader(seed))


@lru_cache(maxsize=64)
def _sim_small_files(model_id: str, scale: float, base: str) -> dict[str, HostedFile]:
    """A sim model's files but its shards (the tensor cache lists them all)."""
    model = SimModel(model_id, scale)
    files = _model_files(base, f"{base}model-webgpu.wasm", model_id, SIM_CONTEXT_WINDOW,
                         _sim_wasm(model_id, scale), [], simulated=True, md5s=None)
    url = f"{base}tensor-cache.json"
    files[url] = HostedFile.of(url, _json_bytes(tensor_cache_json(model.shard_sizes)),
                               "application/json", CACHE_MODEL)
    return files


@dataclass(frozen=True)
class SimKnobs:
    """The `X-LocalChat-Sim` header: `mbps=<float>; fail=<key@pct,…>;
    fail_always=<key@pct,…>; session=<token>`, every part optional."""

    mbps: float = 0.0
    fail: tuple[tuple[str, float], ...] = ()
    fail_always: tuple[tuple[str, float], ...] = ()
    session: str | None = None

    @classmethod
    def parse(cls, header: str | None) -> SimKnobs:
        values: dict[str, str] = {}
        for part in (header or "").split(";"):
            name, _, value = part.partition("=")
            if value.strip():
                values[name.strip().lower()] = value.strip()
        try:
            mbps = max(0.0, float(values.get("mbps", "0")))
        except ValueError:
            mbps = 0.0
        if not math.isfinite(mbps):
            mbps = 0.0
        return cls(mbps, _failures(values.get("fail", "")),
                   _failures(values.get("fail_always", "")), values.get("session"))


def _failures(text: str) -> tuple[tuple[str, float], ...]:
    found = []
    for part in text.split(","):
        key, _, percent = part.strip().partition("@")
        try:
            value = float(percent)
        except ValueError:
            continue
        if key.strip() and math.isfinite(value):
            found.append((key.strip().lower(), min(100.0, max(0.0, value))))
    return tuple(found)


# ---------------------------------------------------------------------------------------
# Log, pacing, faults


class LoggedRequest(NamedTuple):
    """One request as the host saw it."""

    method: str
    path: str  # the URL path, without the query
    host: str | None  # the Host header as sent
    range: str | None  # the Range header as sent
    status: int


class RequestLog:
    """Every request, in arrival order of their status lines. Thread-safe."""

    def __init__(self) -> None:
        self._records: list[LoggedRequest] = []
        self._changed = threading.Condition()

    def add(self, record: LoggedRequest) -> None:
        with self._changed:
            self._records.append(record)
            self._changed.notify_all()

    def clear(self) -> None:
        with self._changed:
            self._records.clear()

    def records(self, path_glob: str = "*", method: str | None = None) -> list[LoggedRequest]:
        with self._changed:
            return [r for r in self._records if fnmatch.fnmatchcase(r.path, path_glob)
                    and (method is None or r.method == method)]

    def wait_for(self, path_glob: str = "*", count: int = 1, method: str | None = None,
                 timeout: float = 10.0) -> list[LoggedRequest]:
        """The matching records once there are at least `count`; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(found := self.records(path_glob, method)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(found)} of {count} requests for {path_glob!r} "
                                       f"within {timeout} s; log: {self._records!r}")
                self._changed.wait(left)
            return found

    def __iter__(self) -> Iterator[LoggedRequest]:
        return iter(self.records())

    def __len__(self) -> int:
        with self._changed:
            return len(self._records)


class _Wakeup:
    """Sleeps that `wake_all()` (a reset, a shutdown) ends early."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self._cond:
            generation = self._generation
            while self._generation == generation:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def wake_all(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()


class Pacer:
    """A byte rate shared by every response that sends through it: each chunk reserves
    the next free slot of the link and is sent when its slot ends (no credit builds up
    while idle). A new rate applies from the next chunk."""

    def __init__(self, wakeup: _Wakeup, bytes_per_s: float | None = None) -> None:
        self._wakeup = wakeup
        self._lock = threading.Lock()
        self._rate = bytes_per_s or None
        self._next = time.monotonic()

    @property
    def bytes_per_s(self) -> float | None:
        return self._rate

    def set_rate(self, bytes_per_s: float | None) -> None:
        with self._lock:
            if (bytes_per_s or None) != self._rate:
                self._rate = bytes_per_s or None
                self._next = time.monotonic()

    def chunk_size(self) -> int:
        """About 20 chunks a second, so progress moves smoothly on a slow link."""
        rate = self._rate
        return CHUNK if rate is None else int(min(CHUNK, max(KIB, rate / 20)))

    def take(self, n: int) -> None:
        with self._lock:
            if self._rate is None:
                return
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + n / self._rate
            delay = self._next - now
        self._wakeup.sleep(delay)


@dataclass
class Fault:
    """One programmed fault; `used` counts the requests it has answered."""

    kind: str  # "status", "drop", "stall", "html", "redirect"
    path_glob: str
    times: int | None
    code: int = 0
    retry_after: int | float | str | None = None
    at_byte: int = 0
    seconds: float = 0.0
    used: int = 0

    @property
    def remaining(self) -> int | None:
        return None if self.times is None else self.times - self.used


class Faults:
    """Test-controlled misbehaviour of one host (see the module docstring). Thread-safe."""

    def __init__(self, log: RequestLog, wakeup: _Wakeup) -> None:
        self._lock = threading.Lock()
        self._log = log
        self._wakeup = wakeup
        self._faults: list[Fault] = []
        self._no_range = False
        self.pacer = Pacer(wakeup)

    # -- programming --------------------------------------------------------------------
    def rate(self, bytes_per_s: float | None) -> None:
        """Limit all responses together to this many bytes a second (None: no limit)."""
        if bytes_per_s is not None and not bytes_per_s > 0:
            raise ValueError("rate must be > 0 bytes/s, or None")
        self.pacer.set_rate(bytes_per_s)

    def status(self, path_glob: str, code: int, times: int | None = 1,
               retry_after: int | float | str | None = None) -> Fault:
        """Answer the next `times` matching requests with `code` and an HTML body, with
        `Retry-After: <retry_after>` if given (seconds, or an HTTP-date string)."""
        if not 100 <= code <= 599:
            raise ValueError(f"not an HTTP status: {code}")
        return self._add(Fault("status", path_glob, _times(times), code=code,
                               retry_after=retry_after))

    def drop(self, path_glob: str, at_byte: int, times: int | None = 1) -> Fault:
        """Send the headers and `at_byte` body bytes, then cut the connection."""
        return self._add(Fault("drop", path_glob, _times(times), at_byte=_byte(at_byte)))

    def stall(self, path_glob: str, at_byte: int, seconds: float,
              times: int | None = 1) -> Fault:
        """After `at_byte` body bytes send nothing for `seconds`, then the rest."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        return self._add(Fault("stall", path_glob, _times(times), at_byte=_byte(at_byte),
                               seconds=seconds))

    def html_instead(self, path_glob: str, times: int | None = 1) -> Fault:
        """Answer 200 text/html with a captive-portal page instead of the file."""
        return self._add(Fault("html", path_glob, _times(times)))

    def redirect(self, path_glob: str, times: int | None = 1) -> Fault:
        """Answer 302 to `/__cdn__<path>` on the same host, which serves the same file (as
        Hugging Face redirects file downloads): the final response URL is not the
        request's URL."""
        return self._add(Fault("redirect", path_glob, _times(times)))

    def no_range(self, enabled: bool = True) -> None:
        """Ignore `Range`: always 200 with the whole file."""
        with self._lock:
            self._no_range = enabled

    def reset(self) -> None:
        """No faults, no rate limit, Range honoured, empty log; stalls and paced sends
        waiting now go on at once."""
        with self._lock:
            self._faults.clear()
            self._no_range = False
        self.pacer.set_rate(None)
        self._log.clear()
        self._wakeup.wake_all()

    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    # -- use by the host ----------------------------------------------------------------
    @property
    def ignores_range(self) -> bool:
        return self._no_range

    def take(self, kind: str, path: str) -> Fault | None:
        """The first matching fault of that kind, counted as used (gone when used up)."""
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and fnmatch.fnmatchcase(path, fault.path_glob):
                    fault.used += 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault


def _times(times: int | None) -> int | None:
    if times is not None and times < 1:
        raise ValueError("times must be >= 1, or None for every time")
    return times


def _byte(at_byte: int) -> int:
    if at_byte < 0:
        raise ValueError("at_byte must be >= 0")
    return at_byte


# ---------------------------------------------------------------------------------------
# The host


class Catalog:
    """What a host serves: `find(host header, path)` → (file, its sim model or None)."""

    def find(self, host: str | None, path: str) -> tuple[HostedFile, SimModel | None] | None:
        raise NotImplementedError


class StandinCatalog(Catalog):
    """The real hosts' files of some stand-in models. Under a real host name only that
    host's files exist; under any other name (127.0.0.1:port) every path works."""

    def __init__(self, models: Mapping[str, StandinModel] | Iterable[StandinModel]) -> None:
        items = models.values() if isinstance(models, Mapping) else models
        self.initial = _standins(*items)
        self.models = dict(self.initial)

    def find(self, host: str | None, path: str) -> tuple[HostedFile, SimModel | None] | None:
        name = (host or "").rsplit(":", 1)[0].lower() if host else ""
        for model in list(self.models.values()):
            found = model.by_path.get(path)
            if found and (name not in REAL_HOSTS or urlsplit(found.url).hostname == name):
                return found, None
        return None


class SimCatalog(Catalog):
    """The dev server's simulated host: every catalog model at any scale in (0, 1]."""

    def find(self, host: str | None, path: str) -> tuple[HostedFile, SimModel | None] | None:
        match = SIM_PATH.match(path)
        if not match or match["model"] not in SIM_MODEL_MIB:
            return None
        try:
            model = SimModel(match["model"], float(match["scale"]))
        except ValueError:
            return None
        found = model.file(match["file"])
        return None if found is None else (found, model)


@dataclass(frozen=True)
class _Range:
    start: int
    end: int  # exclusive


def parse_range(header: str | None, size: int) -> _Range | str | None:
    """A satisfiable single range, "unsatisfiable", or None (absent or ignored, as RFC 9110
    allows for syntax it does not honour: several ranges, nonsense)."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or not (match[1] or match[2]):
        return None
    if not match[1]:  # suffix: the last N bytes
        suffix = int(match[2])
        return "unsatisfiable" if suffix == 0 or size == 0 else _Range(max(0, size - suffix), size)
    start = int(match[1])
    end = int(match[2]) + 1 if match[2] else size
    if match[2] and end <= start:
        return None  # "bytes=9-3" is invalid syntax: ignored
    return "unsatisfiable" if start >= size else _Range(start, min(end, size))


class ModelHost:
    """The state and behaviour of one model host: what it serves, faults, log, sim
    sessions. `respond(handler)` answers the request a BaseHTTPRequestHandler holds."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.log = RequestLog()
        self._wakeup = _Wakeup()
        self.faults = Faults(self.log, self._wakeup)
        self._lock = threading.Lock()
        self._session_pacers: dict[str | None, Pacer] = {}
        self._failed_once: set[tuple[str | None, str, float]] = set()

    def reset(self) -> None:
        """Faults and log cleared, test-added models gone, sim sessions forgotten."""
        self.faults.reset()
        with self._lock:
            self._session_pacers.clear()
            self._failed_once.clear()
        if isinstance(self.catalog, StandinCatalog):
            self.catalog.models = dict(self.catalog.initial)

    def close(self) -> None:
        self._wakeup.wake_all()

    # -- one request ----------------------------------------------------------------------
    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        try:
            # Headers and body go out in separate writes: without this, Nagle's algorithm
            # and the client's delayed ACK hold each response ~40 ms on a kept-alive socket.
            handler.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if handler.command == "OPTIONS":
                self._preflight(handler)
            elif handler.command in ("GET", "HEAD"):
                self._serve(handler)
            else:
                self._html(handler, 405, _error_page(405, "Method Not Allowed"),
                           [("Allow", "GET, HEAD, OPTIONS")])
        except OSError:  # the client hung up (or we cut it): normal here
            handler.close_connection = True

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        path = urlsplit(h.path).path
        lookup_path = path[len(CDN_PREFIX):] if path.startswith(CDN_PREFIX + "/") else path
        faults = self.faults
        if fault := faults.take("status", path):
            extra = [] if fault.retry_after is None else [("Retry-After",
                                                           _retry_after(fault.retry_after))]
            self._html(h, fault.code, _error_page(fault.code, _REASONS.get(fault.code, "Error")),
                       extra)
            return
        if faults.take("html", path):
            self._html(h, 200, captive_portal_page(), [])
            return
        if not path.startswith(CDN_PREFIX) and faults.take("redirect", path):
            self._html(h, 302, _error_page(302, "Found"), [("Location", CDN_PREFIX + path)])
            return
        found = self.catalog.find(h.headers.get("Host"), lookup_path)
        if found is None:
            self._html(h, 404, _error_page(404, "Not Found"), [])
            return
        file, sim = found
        headers = [("Content-Type", file.content_type), ("Accept-Ranges", "bytes"),
                   ("ETag", file.etag)]
        wanted = None if faults.ignores_range else parse_range(h.headers.get("Range"), file.size)
        if_range = h.headers.get("If-Range")
        if if_range is not None and if_range.strip() != file.etag:
            wanted = None
        if wanted == "unsatisfiable":
            self._html(h, 416, _error_page(416, "Range Not Satisfiable"),
                       [("Content-Range", f"bytes */{file.size}")])
            return
        if isinstance(wanted, _Range):
            status, start, end = 206, wanted.start, wanted.end
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{file.size}"))
        else:
            status, start, end = 200, 0, file.size
        headers.append(("Content-Length", str(end - start)))
        knobs = SimKnobs.parse(h.headers.get(SIM_HEADER)) if sim else SimKnobs()
        self._head(h, status, headers)
        if h.command == "HEAD":
            return
        events: list[tuple[int, str, float]] = []  # (body byte, "drop"/"stall", seconds)
        if drop := faults.take("drop", path):
            events.append((drop.at_byte, "drop", 0.0))
        if stall := faults.take("stall", path):
            events.append((stall.at_byte, "stall", stall.seconds))
        if sim is not None and (at := self._sim_failure(sim, knobs, file, start)) is not None:
            events.append((at, "drop", 0.0))
        pacers = [faults.pacer]
        if sim is not None and knobs.mbps > 0:
            pacers.append(self._session_pacer(knobs))
        self._body(h, file, start, end, sorted(events), pacers)

    def _sim_failure(self, sim: SimModel, knobs: SimKnobs, file: HostedFile,
                     start: int) -> int | None:
        """The body byte at which this shard response drops for the sim knobs, if any."""
        shard = _SHARD_FILE.match(file.name)
        if shard is None or sim.key is None:
            return None
        index = int(shard[1])
        planned = [(key, pct, False) for key, pct in knobs.fail_always]
        planned += [(key, pct, True) for key, pct in knobs.fail]
        for key, percent, once in planned:
            if key != sim.key:
                continue
            fail_index, fail_byte = sim.fail_point(percent)
            if fail_index != index:
                continue
            if once:
                marker = (knobs.session, key, percent)
                with self._lock:
                    if marker in self._failed_once:
                        continue
                    self._failed_once.add(marker)
            return max(0, fail_byte - start)
        return None

    def _session_pacer(self, knobs: SimKnobs) -> Pacer:
        with self._lock:
            pacer = self._session_pacers.get(knobs.session)
            if pacer is None:
                pacer = self._session_pacers[knobs.session] = Pacer(self._wakeup)
        pacer.set_rate(knobs.mbps * MIB)
        return pacer

    def _body(self, h: BaseHTTPRequestHandler, file: HostedFile, start: int, end: int,
              events: list[tuple[int, str, float]], pacers: list[Pacer]) -> None:
        sent = 0
        length = end - start
        while True:
            while events and events[0][0] <= sent:
                _, action, seconds = events.pop(0)
                if action == "drop":
                    _cut(h)
                    return
                self._wakeup.sleep(seconds)
            if sent >= length:
                return
            limit = min([p.chunk_size() for p in pacers] + [length - sent])
            if events:
                limit = min(limit, events[0][0] - sent)
            for pacer in pacers:
                pacer.take(limit)
            h.wfile.write(file.read(start + sent, start + sent + limit))
            sent += limit

    # -- small answers ----------------------------------------------------------------------
    def _head(self, h: BaseHTTPRequestHandler, status: int,
              headers: list[tuple[str, str]]) -> None:
        self.log.add(LoggedRequest(h.command, urlsplit(h.path).path, h.headers.get("Host"),
                                   h.headers.get("Range"), status))
        h.send_response(status)
        for name, value in headers:
            h.send_header(name, value)
        h.send_header("Access-Control-Allow-Origin", "*")
        h.send_header("Access-Control-Expose-Headers", EXPOSED_HEADERS)
        h.end_headers()

    def _html(self, h: BaseHTTPRequestHandler, status: int, body: bytes,
              headers: list[tuple[str, str]]) -> None:
        self._head(h, status, [("Content-Type", "text/html; charset=utf-8"),
                               ("Content-Length", str(len(body))), *headers])
        if h.command != "HEAD":
            h.wfile.write(body)

    def _preflight(self, h: BaseHTTPRequestHandler) -> None:
        headers = [("Access-Control-Allow-Methods", "GET, HEAD"),
                   ("Access-Control-Max-Age", "600"), ("Content-Length", "0")]
        if requested := h.headers.get("Access-Control-Request-Headers"):
            headers.append(("Access-Control-Allow-Headers", requested))
        self._head(h, 204, headers)


def _retry_after(value: int | float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def _cut(h: BaseHTTPRequestHandler) -> None:
    """Close the connection mid-body, as a real network drop does: the bytes already
    sent reach the client, then the stream ends short and the client sees a network
    error. A bare close() would send a TCP reset, and a reset makes the client's kernel
    throw away bytes it has received but the browser has not read yet, so how many
    bytes arrived would depend on timing. Instead: wait until the peer has acknowledged
    what was sent, send FIN, and wait (bounded) for the client to close its side."""
    h.close_connection = True
    with contextlib.suppress(OSError, ValueError):
        h.wfile.flush()
    conn = h.connection
    deadline = time.monotonic() + 5.0
    with contextlib.suppress(OSError):
        while _unacked(conn) > 0 and time.monotonic() < deadline:
            time.sleep(0.005)  # polls the kernel's send queue, not a test delay
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(max(0.1, deadline - time.monotonic()))
        while conn.recv(65536):  # the client closes once it sees the short body
            pass
    with contextlib.suppress(OSError):
        conn.close()


def _unacked(conn: socket.socket) -> int:
    """Bytes in this socket's send queue the peer has not acknowledged (Linux SIOCOUTQ);
    0 where the platform cannot tell."""
    try:
        import fcntl
        import struct
        raw = fcntl.ioctl(conn.fileno(), 0x5411, b"\0\0\0\0")  # TIOCOUTQ == SIOCOUTQ
    except (ImportError, OSError, ValueError):
        return 0
    return int(struct.unpack("i", raw)[0])


# ---------------------------------------------------------------------------------------
# Servers


class ModelHostHandler(BaseHTTPRequestHandler):
    """Every request goes to the server's ModelHost. HTTP/1.1 with keep-alive, as the
    real hosts (browsers reuse connections; a drop closes one)."""

    protocol_version = "HTTP/1.1"
    server: ModelHostServer
    timeout = 300  # an idle keep-alive connection's thread ends after this

    def do_GET(self) -> None:
        self.server.model_host.respond(self)

    do_HEAD = do_GET
    do_OPTIONS = do_GET

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class ModelHostServer(ThreadingHTTPServer):
    """A threading server (daemon threads) in front of one ModelHost; HTTPS when given
    an SSL context (the handshake runs in the connection's thread)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], model_host: ModelHost,
                 ssl_context: ssl.SSLContext | None = None, verbose: bool = False) -> None:
        self.model_host = model_host
        self.ssl_context = ssl_context
        self.verbose = verbose
        super().__init__(address, ModelHostHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def faults(self) -> Faults:
        return self.model_host.faults

    @property
    def log(self) -> RequestLog:
        return self.model_host.log

    @property
    def models(self) -> dict[str, StandinModel]:
        """The stand-in models served now, by id."""
        catalog = self.model_host.catalog
        return catalog.models if isinstance(catalog, StandinCatalog) else {}

    def add_model(self, model: StandinModel) -> StandinModel:
        """Serve one more stand-in model (until the next reset)."""
        catalog = self.model_host.catalog
        if not isinstance(catalog, StandinCatalog):
            raise TypeError("only a stand-in host serves stand-in models")
        catalog.models = {**catalog.models, model.model_id: model}
        return model

    def reset(self) -> None:
        self.model_host.reset()

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(10)  # a connection that never finishes its handshake
        connection = self.ssl_context.wrap_socket(request, server_side=True)
        try:
            connection.settimeout(None)
            self.RequestHandlerClass(connection, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                connection.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up or fails the TLS handshake is normal for a test host.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def server_close(self) -> None:
        self.model_host.close()
        super().server_close()


def make_model_server(host: str, port: int,
                      models: Mapping[str, StandinModel] | Iterable[StandinModel] = STANDIN_MODELS,
                      ssl_context: ssl.SSLContext | None = None,
                      verbose: bool = False) -> ModelHostServer:
    """The stand-in host for `models` on (host, port); port 0 picks a free port."""
    return ModelHostServer((host, port), ModelHost(StandinCatalog(models)), ssl_context,
                           verbose)


def make_https_server(host: str, port: int, certfile: Path | str, keyfile: Path | str,
                      models: Mapping[str, StandinModel] | Iterable[StandinModel] = STANDIN_MODELS,
                      verbose: bool = False) -> ModelHostServer:
    """The HTTPS stand-in for huggingface.co and raw.githubusercontent.com."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    context.set_alpn_protocols(["http/1.1"])
    return make_model_server(host, port, models, context, verbose)


def make_self_signed_cert(folder: Path | str) -> tuple[Path, Path]:
    """(certfile, keyfile) of a new self-signed certificate for the real hosts' names and
    127.0.0.1, valid 2 days, made with the `openssl` command in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    certfile, keyfile = folder / "standin-cert.pem", folder / "standin-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={HF_HOST}",
         "-addext", f"subjectAltName=DNS:{HF_HOST},DNS:{LIBS_HOST},IP:127.0.0.1",
         "-keyout", str(keyfile), "-out", str(certfile)],
        check=True, capture_output=True)
    return certfile, keyfile


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the HTTPS stand-in model host.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--certs", type=Path, default=Path(".build") / "standin-certs")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    server = make_https_server(args.host, args.port, *make_self_signed_cert(args.certs),
                               verbose=args.verbose)
    port = server.port
    print(f"stand-in model host on https://{args.host}:{port}/ ; Chromium flags:\n"
          f"  --ignore-certificate-errors '--host-resolver-rules=MAP {HF_HOST} 127.0.0.1:{port},"
          f" MAP {LIBS_HOST} 127.0.0.1:{port}, MAP * ~NOTFOUND, EXCLUDE localhost,"
          f" EXCLUDE 127.0.0.1'", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
