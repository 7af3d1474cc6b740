"""``progress-sidecar tail JOB_ID``: one job, live, in the terminal."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import sys
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TextIO

from sidecar.clients.follow import (
    FollowError,
    InvalidURL,
    StreamError,
    follow_job,
    sidecar_url,
)
from sidecar.core.argtypes import positive_float
from sidecar.core.environment import env_token
from sidecar.core.protocol import CloseCode

BAR_WIDTH = 24
DEFAULT_URL = "http://127.0.0.1:8765"
GIVE_UP_AFTER = 5.0
"""Seconds tail waits for a sidecar out of reach: a terminal wants an answer soon."""

_TENTH = Decimal("0.1")


def one_decimal(value: int | float) -> str:
    """``value`` with one decimal, as JavaScript's ``toFixed(1)`` writes it (the dashboard does).

    ``toFixed`` rounds the exact binary value half away from zero (33.25 gives 33.3, 0.15,
    stored as 0.1499..., gives 0.1); Python's ``format`` rounds ties to even (33.2).
    """
    if not math.isfinite(value) or abs(value) >= 1e21:
        return format(value, ".1f")  # JavaScript writes these otherwise; no trainer sends them
    # `or 0.0`: JavaScript writes -0 as "0.0".
    return str(Decimal(value or 0.0).quantize(_TENTH, rounding=ROUND_HALF_UP))


# Characters a terminal acts on (C0 and C1 controls, DEL) or that reorder what follows
# (bidirectional overrides and isolates): whoever writes a job's file must not be able to set a
# terminal's title or clear its screen through ``tail``.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
MAX_TEXT = 200
"""The most characters of a text field a line shows."""
MAX_DURATION = 100 * 365 * 86400.0
HUGE = 1e15
"""Numbers at least this large are written with an exponent (``1e+308``, not 309 digits)."""


def _text(value: Any) -> str | None:
    """A text field as a terminal may show it: strings only, unsafe characters replaced by
    U+FFFD, cut to ``MAX_TEXT``; None for any other type."""
    if not isinstance(value, str):
        return None
    shown = _UNSAFE.sub("\ufffd", value)
    return shown if len(shown) <= MAX_TEXT else shown[: MAX_TEXT - 1] + "…"


def _number(value: Any, spec: str) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if not math.isfinite(value):
        return None
    return format(value, spec if abs(value) < HUGE else ".4g")


def _count(value: Any) -> str | None:
    """A step count: whole numbers as they are, others as ``_number`` writes them."""
    if isinstance(value, float) and value.is_integer() and abs(value) < HUGE:
        return str(int(value))
    return _number(value, "d" if isinstance(value, int) else ".6g")


def _duration(seconds: Any) -> str | None:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return None
    if not 0 <= seconds < MAX_DURATION:
        return None  # a negative ETA, or one of centuries, says nothing
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def render(state: dict[str, Any]) -> str:
    """One line for a job's state: status, a progress bar, step, losses, speed, ETA."""
    parts = [_text(state.get("status")) or "?"]
    progress = state.get("progress")
    if isinstance(progress, int | float) and not isinstance(progress, bool):
        filled = round(BAR_WIDTH * max(0.0, min(100.0, progress)) / 100)
        parts.append(f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {one_decimal(progress):>5}%")
    if (step := _count(state.get("current_step"))) is not None:
        total = _count(state.get("total_steps"))
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
    if (read_error := _text(state.get("read_error"))) is not None:
        parts.append(f"(file unreadable: {read_error})")
    return "  ".join(parts)


def outcome(state: dict[str, Any]) -> tuple[str, int]:
    """The closing line and exit status for a finished job."""
    status = (_text(state.get("status")) or "?").lower()
    if status == "completed":
        loss = _number(state.get("final_loss"), ".4f")
        return (f"completed: final loss {loss}" if loss else "completed"), 0
    detail = _text(state.get("error"))
    return (f"{status}: {detail}" if detail else status), 1


def _problem(error: FollowError, job_id: str, url: str, *, followed: bool, token: bool) -> str:
    """The one line that says why a job could not be followed (or no longer can)."""
    if isinstance(error, StreamError):
        if error.code == CloseCode.NOT_FOUND and not followed:
            return f"{job_id}: no such job on {url}"
        if error.code == CloseCode.UNAUTHORIZED:
            why = (
                "the token was refused"
                if token
                else "it needs a token (--token, env SIDECAR_TOKEN)"
            )
            return f"{job_id}: unauthorized on {url}: {why}"
    return f"{job_id}: {error}"


async def tail(
    url: str,
    job_id: str,
    *,
    out: TextIO,
    err: TextIO | None = None,
    token: str | None = None,
    wait: bool = False,
    give_up_after: float = GIVE_UP_AFTER,
) -> int:
    """Show one job live on ``out`` until it ends; returns the exit status.

    0: the job completed; 1: it failed or was cancelled, or could not be followed (one line on
    ``err``, stderr by default, says why: ``JOB: no such job on URL``, ``JOB: cannot reach URL:
    connection refused``...); 2: ``url`` is not a sidecar's URL.

    Args:
        url: the sidecar, as ``http://host:port`` (or ``host:port``).
        job_id: the job to follow.
        out: where the job's lines go; on a terminal, one line redrawn in place.
        err: where problems go.
        token: the sidecar's token, if it has one.
        wait: wait for a job that does not exist yet (saying so once) instead of exiting 1.
        give_up_after: seconds the sidecar may stay out of reach (at the start, or after a
            drop) before giving up.
    """
    errors = err or sys.stderr
    live = out.isatty()
    last_line = ""
    state: dict[str, Any] | None = None
    waiting = False

    def end_live_line() -> None:
        if live and last_line:
            out.write("\n")
            out.flush()

    def say(line: str) -> None:
        end_live_line()
        errors.write(line + "\n")
        errors.flush()

    try:
        base = sidecar_url(url)
    except InvalidURL as e:
        say(f"{job_id}: {e}")
        return 2

    def retrying(code: int | None, reason: str) -> None:
        nonlocal waiting
        if code == CloseCode.NOT_FOUND and not waiting:
            waiting = True
            say(f"waiting for job {job_id} to appear on {base}")

    try:
        async for state in follow_job(
            base,
            job_id,
            token=token,
            wait_for_job=wait,
            give_up_after=give_up_after,
            max_backoff=1.0,  # a job that appears, a sidecar back: shown within a second
            on_retry=retrying,
        ):
            line = f"{job_id}  {render(state)}"
            if line == last_line:
                continue
            last_line = line
            out.write(f"\r\x1b[2K{line}" if live else line + "\n")
            out.flush()
    except FollowError as e:
        say(_problem(e, job_id, base, followed=state is not None, token=token is not None))
        return 1
    assert state is not None
    message, code = outcome(state)
    end_live_line()
    out.write(f"{job_id} {message}\n")
    out.flush()
    return code


def _url(text: str) -> str:
    try:
        return sidecar_url(text)
    except InvalidURL as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def main(argv: Sequence[str] | None = None) -> int:
    """``progress-sidecar tail``: exit 0 when the job completed, 1 when it failed, was cancelled
    or could not be followed, 2 for a usage error, 130 on Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="progress-sidecar tail",
        description="Show one job live in the terminal until it ends. Exit status: 0 when the "
        "job completed; 1 when it failed, was cancelled or could not be followed (an unknown "
        "job, a sidecar out of reach: one line on stderr says why); 2 for a usage error.",
    )
    parser.add_argument("job_id", metavar="JOB_ID", help="the job to follow")
    parser.add_argument(
        "--url",
        type=_url,
        default=DEFAULT_URL,
        help=f"the sidecar: http[s]://host:port, or host:port (default: {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token", default=None, help="the sidecar's token (default: env SIDECAR_TOKEN)"
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="wait for a job that does not exist yet (default: exit 1 at once)",
    )
    parser.add_argument(
        "--give-up-after",
        type=positive_float,
        default=GIVE_UP_AFTER,
        metavar="SECONDS",
        help="give up when the sidecar stays out of reach this long, at the start or after a "
        f"drop (default: {GIVE_UP_AFTER:g})",
    )
    args = parser.parse_args(argv)
    try:
        return asyncio.run(
            tail(
                args.url,
                args.job_id,
                out=sys.stdout,
                token=args.token or env_token(),
                wait=args.wait,
                give_up_after=args.give_up_after,
            )
        )
    except KeyboardInterrupt:
        if sys.stdout.isatty():
            sys.stdout.write("\n")  # the shell's prompt on a line of its own
        return 130
    except BrokenPipeError:
        # The reader went away (tail ... | head -1): stop quietly, as a shell tool does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
