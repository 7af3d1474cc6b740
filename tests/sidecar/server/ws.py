"""Progress documents a job writes, for the WebSocket stream tests."""

from __future__ import annotations

from typing import Any


def progress(job_id: str = "job1", **fields: Any) -> dict[str, Any]:
    return {"job_id": job_id, "status": "running", **fields}
