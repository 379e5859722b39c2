"""The downloader (core/downloader.py) against FakeModelHost, a working in-memory host
and cache store with real-looking files and faults (tests/fakes.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from localchat.core.downloader import (
    CONFIG_CACHE,
    MODEL_CACHE,
    WASM_CACHE,
    Downloader,
    DownloadProgress,
    FailureKind,
    FetchFailure,
    ModelSource,
    RetryPolicy,
    clean_model_url,
    explain_fetch_failure,
)
from tests.fakes import FakeModelHost, HostFile

QUICK = "Llama-3.2-1B-Instruct-q4f32_1-MLC"
SOURCE = FakeModelHost.source(QUICK)
K = FailureKind


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


class Rig:
    def __init__(self, **host: Any) -> None:
        self.host = FakeModelHost(models=[QUICK], **host)
        self.waits: list[float] = []
        self.progress: list[DownloadProgress] = []
        self.downloader = Downloader(self.host, sleep=self.sleep)

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)

    async def download(self) -> None:
        await self.downloader.download(SOURCE, self.progress.append)

    def shard(self, i: int) -> str:
        return SOURCE.file_url(f"params_shard_{i}.bin")

    def requested(self, url: str) -> list[int]:
        """The start byte of every request for `url`."""
        return [start for u, start in self.host.requests if u == url]


# --- the files, their keys and their bytes -----------------------------------------------------


def test_every_file_webllm_reads_is_stored_under_its_key() -> None:
    rig = Rig()
    run(rig.download)
    host = rig.host
    assert set(host.caches[CONFIG_CACHE]) == {SOURCE.config_url}
    assert set(host.caches[WASM_CACHE]) == {SOURCE.lib_url}
    assert set(host.caches[MODEL_CACHE]) == {
        SOURCE.tensor_cache_url, SOURCE.file_url("tokenizer.json"),
        *(rig.shard(i) for i in range(4))}
    for url in host.model_files(QUICK):
        cache = host.files[url].cache
        assert host.caches[cache][url] == host.files[url].body
    # tokenizer_config.json is named in the config, but WebLLM never reads it.
    assert not any("tokenizer_config" in u for u, _ in host.requests)


def test_progress_counts_bytes_from_the_first_file_to_the_exact_total() -> None:
    rig = Rig(chunk=100)
    run(rig.download)
    done = [p.bytes_done for p in rig.progress]
    assert done == sorted(done)  # never backwards
    total = rig.host.model_bytes(QUICK)
    assert rig.progress[-1] == DownloadProgress(total, total, 0)
    # Bytes move within files (chunks), not only when a file ends.
    shard_bytes = len(rig.host.files[rig.shard(0)].body)
    assert len({d for d in done if d % shard_bytes > 0}) > 4
    # Once tensor-cache.json is read the total is known, before any shard arrives.
    first_with_total = next(p for p in rig.progress if p.bytes_total is not None)
    assert first_with_total.bytes_done < shard_bytes


def test_only_tokenizer_model_when_there_is_no_tokenizer_json() -> None:
    rig = Rig(tokenizer_files=("tokenizer.model",))
    model_url = SOURCE.file_url("tokenizer.model")
    rig.host.files[model_url] = HostFile(b"sentencepiece", MODEL_CACHE)
    del rig.host.files[SOURCE.file_url("tokenizer.json")]
    run(rig.download)
    assert rig.host.caches[MODEL_CACHE][model_url] == b"sentencepiece"


def test_a_config_without_a_usable_tokenizer_fails_as_a_bad_file() -> None:
    rig = Rig(tokenizer_files=("vocab.txt",))
    with pytest.raises(FetchFailure) as caught:
        run(rig.download)
    assert caught.value.kind is K.INVALID


def test_four_files_at_a_time() -> None:
    rig = Rig(shards=12)
    run(rig.download)
    assert rig.host.max_in_flight == 4


def test_unsafe_shard_paths_are_refused() -> None:
    rig = Rig()
    doc = json.loads(rig.host.files[SOURCE.tensor_cache_url].body)
    doc["records"][1]["dataPath"] = "../../other-model/params_shard_0.bin"
    rig.host.files[SOURCE.tensor_cache_url] = HostFile(json.dumps(doc).encode(), MODEL_CACHE)
    with pytest.raises(FetchFailure) as caught:
        run(rig.download)
    assert caught.value.kind is K.INVALID
    assert not any("other-model" in u for u, _ in rig.host.requests)


# --- resume --------------------------------------------------------------------------------


def test_stored_files_are_not_fetched_again_and_count_at_once() -> None:
    rig = Rig()
    rig.host.store_all(QUICK)
    for url in (rig.shard(2), rig.shard(3), SOURCE.lib_url):
        rig.host.caches[rig.host.files[url].cache].pop(url)
    run(rig.download)
    fetched = {u for u, _ in rig.host.requests}
    assert fetched == {rig.shard(2), rig.shard(3), SOURCE.lib_url}
    missing = sum(len(rig.host.files[u].body) for u in fetched)
    first = rig.progress[0]
    assert first.bytes_done == rig.host.model_bytes(QUICK) - missing


def test_a_stored_shard_of_the_wrong_length_is_replaced() -> None:
    rig = Rig()
    rig.host.store_all(QUICK)
    rig.host.caches[MODEL_CACHE][rig.shard(1)] = b"short"
    run(rig.download)
    assert [u for u, _ in rig.host.requests] == [rig.shard(1)]
    assert rig.host.caches[MODEL_CACHE][rig.shard(1)] == rig.host.files[rig.shard(1)].body


def test_an_unreadable_stored_config_is_fetched_again() -> None:
    rig = Rig()
    rig.host.store_all(QUICK)
    rig.host.caches[CONFIG_CACHE][SOURCE.config_url] = b"<html>portal</html>"
    run(rig.download)
    assert [u for u, _ in rig.host.requests] == [SOURCE.config_url]


def test_a_dropped_connection_resumes_from_the_bytes_received() -> None:
    rig = Rig(chunk=100)
    rig.host.fail(rig.shard(1), K.DROPPED, at_byte=300)
    run(rig.download)
    assert rig.requested(rig.shard(1)) == [0, 300]  # the second is a Range request
    assert rig.host.caches[MODEL_CACHE][rig.shard(1)] == rig.host.files[rig.shard(1)].body
    assert rig.waits == [1.0]


def test_a_host_without_range_support_starts_the_file_over() -> None:
    rig = Rig(chunk=100)
    rig.host.no_range = True
    rig.host.fail(rig.shard(1), K.STALL, at_byte=300)
    run(rig.download)
    assert rig.requested(rig.shard(1)) == [0, 0]
    assert rig.host.caches[MODEL_CACHE][rig.shard(1)] == rig.host.files[rig.shard(1)].body


# --- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, status", [
    (K.UNREACHABLE, None), (K.DROPPED, None), (K.STALL, None), (K.HTTP, 500),
    (K.HTTP, 502), (K.HTTP, 503), (K.HTTP, 504), (K.HTTP, 429), (K.HTTP, 408),
])
def test_passing_troubles_are_retried_with_backoff(kind: FailureKind, status: int | None) -> None:
    rig = Rig()
    rig.host.fail(rig.shard(0), kind, status=status, times=2)
    run(rig.download)
    assert rig.waits == [1.0, 2.0]
    assert rig.host.caches[MODEL_CACHE][rig.shard(0)] == rig.host.files[rig.shard(0)].body
    assert max(p.retry for p in rig.progress) == 2
    assert rig.progress[-1].retry == 0


def test_a_waiting_retry_reports_when_it_starts() -> None:
    rig = Rig()
    rig.downloader.monotonic = lambda: 100.0
    rig.host.fail(rig.shard(0), K.DROPPED, times=2)
    run(rig.download)
    waiting = [p.retry_in_s for p in rig.progress if p.retry_in_s is not None]
    assert sorted(set(waiting)) == [1.0, 2.0]  # other files report while one waits
    assert rig.progress[-1].retry_in_s is None


def test_three_retries_in_a_row_without_progress_then_it_gives_up() -> None:
    rig = Rig()
    rig.host.fail(rig.shard(0), K.HTTP, status=503, times=None)
    with pytest.raises(FetchFailure) as caught:
        run(rig.download)
    assert (caught.value.kind, caught.value.status) == (K.HTTP, 503)
    assert rig.waits == [1.0, 2.0, 4.0]
    assert len(rig.requested(rig.shard(0))) == 4
    assert rig.shard(0) not in rig.host.caches.get(MODEL_CACHE, {})


def test_a_retry_that_makes_progress_counts_from_zero_again() -> None:
    rig = Rig(chunk=100, shard_bytes=1000)
    for _ in range(6):  # six drops, each after some new bytes: never three in a row idle
        rig.host.fail(rig.shard(0), K.DROPPED, at_byte=100)
    run(rig.download)
    assert rig.host.caches[MODEL_CACHE][rig.shard(0)] == rig.host.files[rig.shard(0)].body
    assert rig.waits == [1.0] * 6


def test_retry_after_is_honoured() -> None:
    rig = Rig()
    rig.host.fail(rig.shard(0), K.HTTP, status=429, retry_after=30)
    run(rig.download)
    assert rig.waits == [30]


def test_a_retry_after_beyond_ten_minutes_is_not_waited_for() -> None:
    rig = Rig()
    rig.host.fail(rig.shard(0), K.HTTP, status=503, retry_after=3600)
    with pytest.raises(FetchFailure):
        run(rig.download)
    assert rig.waits == []


@pytest.mark.parametrize("kind, status", [
    (K.HTTP, 404), (K.HTTP, 403), (K.HTTP, 401), (K.HTTP, 410), (K.QUOTA, None),
    (K.STORAGE, None), (K.INVALID, None),
])
def test_what_waiting_cannot_fix_fails_at_once(kind: FailureKind, status: int | None) -> None:
    rig = Rig()
    rig.host.fail(rig.shard(2), kind, status=status)
    with pytest.raises(FetchFailure) as caught:
        run(rig.download)
    assert caught.value.kind is kind
    assert rig.waits == []
    assert len(rig.requested(rig.shard(2))) == 1


def test_a_captive_portal_page_is_never_stored() -> None:
    rig = Rig()
    rig.host.corrupt(SOURCE.lib_url, b"<!DOCTYPE html><html>Sign in</html>")
    with pytest.raises(FetchFailure) as caught:
        run(rig.download)
    assert caught.value.kind is K.INVALID
    assert SOURCE.lib_url not in rig.host.caches.get(WASM_CACHE, {})
    # Retry (a new download) fetches it again and stores the real one.
    run(rig.download)
    assert rig.host.caches[WASM_CACHE][SOURCE.lib_url].startswith(b"\0asm")


def test_one_file_giving_up_stops_the_other_lanes() -> None:
    rig = Rig(shards=8)
    rig.host.hold(rig.shard(1))
    rig.host.fail(rig.shard(0), K.HTTP, status=404)

    async def scenario() -> None:
        with pytest.raises(FetchFailure):
            await rig.download()
        assert rig.host.in_flight == 0

    run(scenario)


def test_cancel_stops_every_request_and_keeps_complete_files() -> None:
    rig = Rig(shards=8)
    held = rig.shard(4)
    rig.host.hold(held)

    async def scenario() -> None:
        task = asyncio.ensure_future(rig.download())
        await rig.host.until_holding(held)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert rig.host.in_flight == 0
        before = len(rig.host.requests)
        await asyncio.sleep(0.01)
        assert len(rig.host.requests) == before
        assert held not in rig.host.caches[MODEL_CACHE]
        assert rig.shard(0) in rig.host.caches[MODEL_CACHE]

    run(scenario)


# --- inspect, size, remove -------------------------------------------------------------------


def test_inspect_reads_only_the_cache() -> None:
    rig = Rig()

    async def scenario() -> None:
        empty = await rig.downloader.inspect(SOURCE)
        assert (empty.stored_bytes, empty.total_bytes, empty.complete) == (0, None, False)
        await rig.download()
        requests = len(rig.host.requests)
        full = await rig.downloader.inspect(SOURCE)
        assert full.complete
        assert full.stored_bytes == full.total_bytes == rig.host.model_bytes(QUICK)
        rig.host.caches[MODEL_CACHE].pop(rig.shard(3))
        partial = await rig.downloader.inspect(SOURCE)
        assert not partial.complete
        assert partial.total_bytes == full.total_bytes
        assert partial.stored_bytes == full.stored_bytes - len(rig.host.files[rig.shard(3)].body)
        assert len(rig.host.requests) == requests

    run(scenario)


def test_inspect_counts_the_shards_when_the_config_is_gone() -> None:
    # Retry after a failure to start removes the config and the library: what is stored
    # of the model is still known from tensor-cache.json (a Retry never shows 0 %).
    rig = Rig()
    rig.host.store_all(QUICK)
    run(lambda: rig.downloader.forget_start_files(SOURCE))
    found = run(lambda: rig.downloader.inspect(SOURCE))
    gone = sum(len(rig.host.files[u].body) for u in (SOURCE.config_url, SOURCE.lib_url))
    assert found.stored_bytes == rig.host.model_bytes(QUICK) - gone
    assert (found.total_bytes, found.complete) == (None, False)
    assert rig.host.requests == []


def test_the_total_is_reported_once_and_never_grows_when_late_files_join() -> None:
    # The shards are stored, the library and tokenizer are not: their lengths are known
    # only once their requests start, so no total is reported before that.
    rig = Rig(chunk=50)
    rig.host.store_all(QUICK)
    for url in (SOURCE.lib_url, SOURCE.file_url("tokenizer.json")):
        rig.host.caches[rig.host.files[url].cache].pop(url)
    run(rig.download)
    total = rig.host.model_bytes(QUICK)
    assert {p.bytes_total for p in rig.progress if p.bytes_total is not None} == {total}
    fractions = [p.bytes_done / p.bytes_total for p in rig.progress if p.bytes_total]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_remove_deletes_every_file_of_the_model_only() -> None:
    rig = Rig()
    other = "Llama-3.2-3B-Instruct-q4f32_1-MLC"
    rig.host.add_model(other, 2, 50, ("tokenizer.json",))
    rig.host.store_all(other)

    async def scenario() -> None:
        await rig.download()
        rig.host.caches[MODEL_CACHE][SOURCE.file_url("partial.bin")] = b"x"
        await rig.downloader.remove(SOURCE)

    run(scenario)
    assert rig.host.stored_urls() == set(rig.host.model_files(other))


def test_forget_start_files_drops_the_library_and_config_only() -> None:
    rig = Rig()
    rig.host.store_all(QUICK)
    run(lambda: rig.downloader.forget_start_files(SOURCE))
    stored = rig.host.stored_urls()
    assert SOURCE.lib_url not in stored and SOURCE.config_url not in stored
    assert SOURCE.tensor_cache_url in stored and rig.shard(0) in stored


def test_size_comes_from_a_stored_tensor_cache_only_for_remote_hosts() -> None:
    rig = Rig()

    async def scenario() -> None:
        assert await rig.downloader.size(SOURCE) is None  # the fake host is remote
        rig.host.store_all(QUICK)
        shards = sum(len(rig.host.files[rig.shard(i)].body) for i in range(4))
        assert await rig.downloader.size(SOURCE) == shards

    run(scenario)


# --- policy, words, URLs ---------------------------------------------------------------


def test_retry_policy() -> None:
    policy = RetryPolicy(max_retries=3, backoff_s=2.0, max_wait_s=60)
    dropped = FetchFailure(K.DROPPED)
    assert [policy.wait(dropped, n) for n in range(4)] == [2.0, 4.0, 8.0, None]
    assert policy.wait(FetchFailure(K.HTTP, status=429, retry_after=10), 0) == 10
    assert policy.wait(FetchFailure(K.HTTP, status=429, retry_after=1), 2) == 8.0
    assert policy.wait(FetchFailure(K.HTTP, status=503, retry_after=61), 0) is None
    assert policy.wait(FetchFailure(K.HTTP, status=404), 0) is None
    assert policy.wait(FetchFailure(K.ABORTED), 0) is None


@pytest.mark.parametrize("failure, title", [
    (FetchFailure(K.INVALID), "The model host sent something that isn't a model file."),
    (FetchFailure(K.QUOTA), "There isn't enough storage space for this model."),
    (FetchFailure(K.HTTP, status=404), "The model host doesn't have Quick's files (HTTP 404)."),
    (FetchFailure(K.HTTP, status=403), "The model host refused to send Quick (HTTP 403)."),
    (FetchFailure(K.HTTP, status=401), "The model host refused to send Quick (HTTP 401)."),
    (FetchFailure(K.HTTP, status=429), "The model host is busy and asked LocalChat to slow down."),
    (FetchFailure(K.HTTP, status=503), "The model host is having trouble."),
    (FetchFailure(K.STALL), "The download stopped making progress."),
    (FetchFailure(K.DROPPED), "The connection to the model host keeps breaking."),
    (FetchFailure(K.UNREACHABLE), "Can't reach the model host."),
])
def test_failures_in_plain_words(failure: FetchFailure, title: str) -> None:
    failure.detail = "TypeError: Failed to execute 'add' on 'Cache': Request failed"
    words = explain_fetch_failure(failure, "Quick")
    assert words.title == title
    text = f"{words.title} {words.detail} {words.action}"
    assert "Failed to execute" not in text and "TypeError" not in text


@pytest.mark.parametrize("model, base", [
    ("https://huggingface.co/mlc-ai/M", "https://huggingface.co/mlc-ai/M/resolve/main/"),
    ("https://huggingface.co/mlc-ai/M/", "https://huggingface.co/mlc-ai/M/resolve/main/"),
    ("https://h.test/x/M/resolve/v2/", "https://h.test/x/M/resolve/v2/"),
    ("http://127.0.0.1:8000/sim-host/0.01/M", "http://127.0.0.1:8000/sim-host/0.01/M/resolve/main/"),
])
def test_clean_model_url_as_webllm(model: str, base: str) -> None:
    assert clean_model_url(model) == base


def test_model_source_urls() -> None:
    source = ModelSource("M", "https://h.test/M/resolve/main/", "https://l.test/M.wasm")
    assert source.config_url == "https://h.test/M/resolve/main/mlc-chat-config.json"
    assert source.tensor_cache_url == "https://h.test/M/resolve/main/tensor-cache.json"
    assert source.file_url("params_shard_3.bin") == "https://h.test/M/resolve/main/params_shard_3.bin"
    for bad in ("", "/etc/passwd", "../x", "a/../../b", "https://evil.test/x", "C:\\x"):
        with pytest.raises(FetchFailure):
            source.file_url(bad)
