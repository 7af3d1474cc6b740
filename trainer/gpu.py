"""GPU figures for progress.json: NVML (nvidia-ml-py) for the device, torch for allocations.

On a machine without an NVIDIA driver every figure is None, said once at info level.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Any, Protocol

logger = logging.getLogger(__name__)

GIB = 1 << 30


class CudaInfo(Protocol):
    """The part of ``torch.cuda`` this module uses."""

    def is_available(self) -> bool: ...
    def current_device(self) -> int: ...
    def memory_allocated(self, device: int | None = None) -> int: ...


def _visible_devices() -> list[str] | None:
    """CUDA_VISIBLE_DEVICES as a list, or None when unset (every device is visible)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


class GpuMonitor:
    """Reads utilisation and memory of the GPU this process trains on.

    Args:
        nvml: the ``pynvml`` module (imported when None); tests pass a stand-in.
        cuda: ``torch.cuda`` (imported when None); tests pass a stand-in.
    """

    def __init__(
        self, *, nvml: ModuleType | Any | None = None, cuda: CudaInfo | None = None
    ) -> None:
        self._nvml = nvml
        self._cuda = cuda
        self._handle: Any = None
        self._ready = False
        self._started = False

    def _start(self) -> None:
        self._started = True
        cuda = self._cuda
        if cuda is None:
            try:
                import torch

                cuda = torch.cuda
            except ImportError:
                cuda = None
            self._cuda = cuda
        try:
            if self._nvml is None:
                import pynvml

                self._nvml = pynvml
            self._nvml.nvmlInit()
        except Exception as e:
            logger.info("no NVIDIA GPU figures (NVML unavailable: %s); GPU fields will be null", e)
            return
        if cuda is None or not cuda.is_available():
            logger.info("training on the CPU; GPU fields will be null")
            return
        try:
            self._handle = self._device_handle(cuda.current_device())
        except Exception as e:
            logger.info("cannot find this process's GPU in NVML (%s); GPU fields will be null", e)
            return
        self._ready = True

    def _device_handle(self, logical: int) -> Any:
        """NVML's handle for torch's device ``logical``, through CUDA_VISIBLE_DEVICES."""
        assert self._nvml is not None
        visible = _visible_devices()
        if visible is None:
            return self._nvml.nvmlDeviceGetHandleByIndex(logical)
        physical = visible[logical]
        if physical.isdigit():
            return self._nvml.nvmlDeviceGetHandleByIndex(int(physical))
        return self._nvml.nvmlDeviceGetHandleByUUID(physical)

    def sample(self) -> dict[str, float | int | None]:
        """The GPU fields of progress.json; None where there is no figure."""
        if not self._started:
            self._start()
        fields: dict[str, float | int | None] = {
            "gpu_memory_allocated_gb": None,
            "gpu_memory_used_gb": None,
            "gpu_memory_total_gb": None,
            "gpu_utilization_percent": None,
        }
        if not self._ready:
            return fields
        assert self._nvml is not None and self._cuda is not None
        try:
            fields["gpu_memory_allocated_gb"] = round(self._cuda.memory_allocated() / GIB, 3)
            memory = self._nvml.nvmlDeviceGetMemoryInfo(self._handle)
            fields["gpu_memory_used_gb"] = round(memory.used / GIB, 3)
            fields["gpu_memory_total_gb"] = round(memory.total / GIB, 3)
            fields["gpu_utilization_percent"] = int(
                self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu
            )
        except Exception as e:
            # A GPU that falls off the bus must not stop training; say it once and stop asking.
            logger.warning(
                "reading GPU figures failed (%s); GPU fields will be null from now on", e
            )
            self._ready = False
        return fields
