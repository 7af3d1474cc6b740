"""GPU figures with NVML stood in for (there is no NVIDIA driver on the test machines)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from trainer.gpu import GIB, GpuMonitor


class FakeNvml:
    """The few pynvml calls GpuMonitor makes, over two devices."""

    def __init__(self) -> None:
        self.handles = {0: "gpu0", 1: "gpu1", 2: "gpu2"}
        self.uuids = {"GPU-abc": "gpu2"}

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return self.handles[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        return self.uuids[uuid]

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> Any:
        index = int(handle[-1])
        return SimpleNamespace(used=(index + 1) * GIB, total=80 * GIB)

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> Any:
        return SimpleNamespace(gpu=90 + int(handle[-1]), memory=10)


class FakeCuda:
    def __init__(self, device: int = 0, available: bool = True) -> None:
        self.device = device
        self.available = available

    def is_available(self) -> bool:
        return self.available

    def current_device(self) -> int:
        return self.device

    def memory_allocated(self, device: int | None = None) -> int:
        return int(18.5 * GIB)


class NoDriver:
    def nvmlInit(self) -> None:
        raise RuntimeError("NVML Shared Library Not Found")


def test_fields_from_nvml_and_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monitor = GpuMonitor(nvml=FakeNvml(), cuda=FakeCuda(device=1))
    assert monitor.sample() == {
        "gpu_memory_allocated_gb": 18.5,
        "gpu_memory_used_gb": 2.0,
        "gpu_memory_total_gb": 80.0,
        "gpu_utilization_percent": 91,
    }


@pytest.mark.parametrize(("visible", "utilisation"), [("2,0", 92), ("GPU-abc", 92), ("1", 91)])
def test_cuda_visible_devices_maps_torch_device_to_nvml(
    monkeypatch: pytest.MonkeyPatch, visible: str, utilisation: int
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    monitor = GpuMonitor(nvml=FakeNvml(), cuda=FakeCuda(device=0))
    assert monitor.sample()["gpu_utilization_percent"] == utilisation


def test_no_driver_gives_nulls_and_one_info_line(caplog: pytest.LogCaptureFixture) -> None:
    monitor = GpuMonitor(nvml=NoDriver(), cuda=FakeCuda())
    with caplog.at_level(logging.DEBUG, logger="trainer.gpu"):
        samples = [monitor.sample() for _ in range(5)]
    assert all(set(s.values()) == {None} for s in samples)
    assert [(r.levelname, "NVML unavailable" in r.getMessage()) for r in caplog.records] == [
        ("INFO", True)
    ]


def test_cpu_training_gives_nulls_and_one_info_line(caplog: pytest.LogCaptureFixture) -> None:
    monitor = GpuMonitor(nvml=FakeNvml(), cuda=FakeCuda(available=False))
    with caplog.at_level(logging.DEBUG, logger="trainer.gpu"):
        assert set(monitor.sample().values()) == {None}
        assert set(monitor.sample().values()) == {None}
    assert [r.levelname for r in caplog.records] == ["INFO"]


def test_a_failing_gpu_is_reported_once_and_not_asked_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nvml = FakeNvml()
    monitor = GpuMonitor(nvml=nvml, cuda=FakeCuda())
    assert monitor.sample()["gpu_utilization_percent"] == 90

    def lost(handle: str) -> Any:
        raise RuntimeError("GPU is lost")

    nvml.nvmlDeviceGetUtilizationRates = lost  # type: ignore[method-assign]
    with caplog.at_level(logging.DEBUG, logger="trainer.gpu"):
        assert monitor.sample()["gpu_utilization_percent"] is None
        assert set(monitor.sample().values()) == {None}
    assert [r.levelname for r in caplog.records] == ["WARNING"]


def test_real_pynvml_on_this_machine_never_raises() -> None:
    """Whatever this machine has (usually no NVIDIA driver), sampling gives the four fields."""
    fields = GpuMonitor().sample()
    assert set(fields) == {
        "gpu_memory_allocated_gb",
        "gpu_memory_used_gb",
        "gpu_memory_total_gb",
        "gpu_utilization_percent",
    }
