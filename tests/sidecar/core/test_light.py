"""The core and the trainer's contract load no web server, file watcher or metrics library."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module", ["sidecar.core.state", "sidecar.core.hub", "sidecar.core.contract", "trainer.writer"]
)
def test_importing_loads_nothing_heavy(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in ('aiohttp', 'watchfiles', 'prometheus_client') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
