"""The GPU probe's report, and what it means for the user."""

from __future__ import annotations

from typing import Any

import pytest

from localchat.core.gpu import GpuReport, explain_gpu, gpu_report_from_probe


def test_a_full_probe_is_read() -> None:
    report = gpu_report_from_probe({
        "usable": True, "reason": "ok", "f16": True, "lowResource": False,
        "vendor": "nvidia", "description": "RTX 4070", "simulated": False,
        "maxStorageBufferBindingSize": 2 * 1024 ** 3,
    })
    assert report == GpuReport(usable=True, reason="ok", f16=True, low_resource=False,
                               vendor="nvidia", description="RTX 4070", simulated=False,
                               max_binding_mb=2048.0)


def test_missing_fields_mean_no() -> None:
    report = gpu_report_from_probe({})
    assert report == GpuReport(usable=False, reason="no-adapter", f16=False, low_resource=False)
    assert (report.vendor, report.description, report.max_binding_mb) == ("", "", 0.0)


def test_null_vendor_and_description_become_empty() -> None:
    report = gpu_report_from_probe({"usable": True, "vendor": None, "description": None})
    assert (report.vendor, report.description) == ("", "")


def test_low_resource_and_simulated_flags() -> None:
    report = gpu_report_from_probe({"usable": True, "lowResource": True, "simulated": True})
    assert report.low_resource
    assert report.simulated


@pytest.mark.parametrize("value, mib", [
    (128 * 1024 * 1024, 128.0),
    (134_217_728.0, 128.0),
    (1024 * 1024 // 2, 0.5),
    (0, 0.0),
    (-5, 0.0),
    (True, 0.0),
    ("134217728", 0.0),
    (None, 0.0),
])
def test_binding_size_is_converted_to_mib(value: Any, mib: float) -> None:
    assert gpu_report_from_probe({"maxStorageBufferBindingSize": value}).max_binding_mb == mib


def test_a_usable_gpu_needs_no_notice() -> None:
    assert explain_gpu(GpuReport(usable=True, reason="ok", f16=False, low_resource=True)) is None


def _unusable(reason: str) -> GpuReport:
    return GpuReport(usable=False, reason=reason, f16=False, low_resource=False)


def test_no_webgpu() -> None:
    msg = explain_gpu(_unusable("no-webgpu"))
    assert msg is not None
    assert msg.title == "This browser can't run models: WebGPU is not available."
    assert "Chrome or Edge 113" in msg.action


def test_limits() -> None:
    msg = explain_gpu(_unusable("limits"))
    assert msg is not None
    assert msg.title == "This GPU is too limited to run the models."


@pytest.mark.parametrize("reason", ["no-adapter", "something-new"])
def test_no_adapter_and_unknown_reasons(reason: str) -> None:
    msg = explain_gpu(_unusable(reason))
    assert msg is not None
    assert msg.title == "No usable GPU was found."
    assert "graphics drivers" in msg.action


@pytest.mark.parametrize("reason", ["no-webgpu", "limits", "no-adapter"])
def test_every_notice_says_saved_conversations_remain(reason: str) -> None:
    msg = explain_gpu(_unusable(reason))
    assert msg is not None
    assert "Your saved conversations are still here to read." in msg.detail
