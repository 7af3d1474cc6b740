"""metrics.jsonl lines as a trainer appends them, for the history tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def entry(step: int, **metrics: Any) -> str:
    return (
        json.dumps(
            {"step": step, "epoch": step / 10, "timestamp": "2025-11-06T12:30:00Z", **metrics}
        )
        + "\n"
    )
