"""The repository root and its scripts/demo.py, for the demo tests."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).parents[1]
DEMO = REPO / "scripts" / "demo.py"
