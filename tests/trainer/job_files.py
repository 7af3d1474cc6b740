"""What the trainer wrote, read back for the tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_progress(job_dir: Path) -> dict[str, Any]:
    """The job's progress.json, which must be a whole JSON object."""
    data = json.loads((job_dir / "progress.json").read_text())
    assert isinstance(data, dict)
    return data
