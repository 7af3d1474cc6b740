"""``progress-sidecar tail JOB_ID``: one job, live, in the terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from sidecar.client import StreamError, follow_job

BAR_WIDTH = 24
DEFAULT_URL = "http://127.0.0.1:8765"


def _number(value: Any, spec: str) -> str | None:
    return (
        format(value, spec)
        if isinstance(value, int | float) and not isinstance(value, bool)
        else None
    )


def _duration(seconds: Any) -> str | None:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return None
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def render(state: dict[str, Any]) -> str:
    """One line for a job's state: status, a progress bar, step, losses, speed, ETA."""
    parts = [str(state.get("status", "?"))]
    progress = state.get("progress")
    if isinstance(progress, int | float) and not isinstance(progress, bool):
        filled = round(BAR_WIDTH * max(0.0, min(100.0, progress)) / 100)
        parts.append(f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {progress:5.1f}%")
    if (step := state.get("current_step")) is not None:
        total = state.get("total_steps")
        parts.append(f"step {step}/{total}" if total is not None else f"step {step}")
    for label, key, spec in (
        ("loss", "loss", ".4f"),
        ("eval", "eval_loss", ".4f"),
        ("samples/s", "samples_per_second", ".1f"),
    ):
        if (text := _number(state.get(key), spec)) is not None:
            parts.append(f"{label} {text}" if label != "samples/s" else f"{text} samples/s")
    if (eta := _duration(state.get("eta_seconds"))) is not None and not state.get("complete"):
        parts.append(f"ETA {eta}")
    if state.get("stalled"):
        parts.append("STALLED")
    if "read_error" in state:
        parts.append(f"(file unreadable: {state['read_error']})")
    return "  ".join(parts)


def outcome(state: dict[str, Any]) -> tuple[str, int]:
    """The closing line and exit status for a finished job."""
    status = str(state.get("status", "")).lower()
    if status == "completed":
        loss = _number(state.get("final_loss"), ".4f")
        return (f"completed: final loss {loss}" if loss else "completed"), 0
    detail = state.get("error")
    return (f"{status}: {detail}" if detail else status), 1


async def tail(url: str, job_id: str, *, out: TextIO, token: str | None = None) -> int:
    live = out.isatty()
    last_line = ""
    state: dict[str, Any] | None = None
    try:
        async for state in follow_job(url, job_id, token=token):
            line = f"{job_id}  {render(state)}"
            if line == last_line:
                continue
            last_line = line
            if live:
                out.write(f"\r\x1b[2K{line}")
            else:
                out.write(line + "\n")
            out.flush()
    except StreamError as e:
        out.write(f"\n{job_id}: {e.reason}\n" if live else f"{job_id}: {e.reason}\n")
        return 1
    assert state is not None
    message, code = outcome(state)
    out.write(("\n" if live else "") + f"{job_id} {message}\n")
    out.flush()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """``progress-sidecar tail``: exit 0 when the job completed, 1 when it failed or was cancelled."""
    parser = argparse.ArgumentParser(
        prog="progress-sidecar tail",
        description="Show one job live in the terminal until it ends. Exit status: 0 when the "
        "job completed, 1 when it failed, was cancelled or could not be followed.",
    )
    parser.add_argument("job_id", metavar="JOB_ID", help="the job to follow")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the sidecar (default: {DEFAULT_URL})")
    parser.add_argument("--token", default=None, help="the sidecar's token (or env SIDECAR_TOKEN)")
    args = parser.parse_args(argv)
    from sidecar.cli import env_token

    try:
        return asyncio.run(
            tail(args.url, args.job_id, out=sys.stdout, token=args.token or env_token())
        )
    except KeyboardInterrupt:
        return 130
