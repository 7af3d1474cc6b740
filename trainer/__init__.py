"""The reference trainer: writes progress.json and metrics.jsonl the way progress-sidecar likes them.

``from trainer import ProgressCallback`` needs the ``train`` extra (transformers, torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainer.stopping import Cancelled, CancelledExit
from trainer.writer import ProgressWriter

if TYPE_CHECKING:
    from trainer.callback import ProgressCallback

__all__ = ["Cancelled", "CancelledExit", "ProgressCallback", "ProgressWriter"]


def __getattr__(name: str) -> Any:
    # Lazy, so that the writer (and the sidecar's tests of it) work without transformers.
    if name == "ProgressCallback":
        from trainer.callback import ProgressCallback

        return ProgressCallback
    raise AttributeError(name)
