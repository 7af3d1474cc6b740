"""Training text: read from a text or JSONL file (or the small corpus shipped here) and cut into blocks."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset


def default_corpus() -> Path:
    """The small corpus shipped in the package."""
    return Path(str(resources.files("trainer") / "data" / "corpus.txt"))


def load_texts(path: Path) -> list[str]:
    """Texts from ``path``: one per non-empty line, or the ``text`` field of each JSONL line.

    Raises:
        ValueError: the file holds no text, or a JSONL line is not an object with a text.
    """
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        texts = []
        for number, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record: Any = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: invalid json: {e.msg}") from e
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f'{path}:{number}: want an object with a "text" string')
            texts.append(record["text"])
    else:
        texts = [line.strip() for line in raw.splitlines() if line.strip()]
    if not texts:
        raise ValueError(f"{path}: no text")
    return texts


class BlockDataset(Dataset[dict[str, torch.Tensor]]):
    """Token ids cut into equal blocks for causal language modelling (labels = inputs)."""

    def __init__(self, ids: list[int], block_size: int) -> None:
        count = len(ids) // block_size
        if count == 0:
            raise ValueError(f"too little text: {len(ids)} tokens for blocks of {block_size}")
        self.blocks = torch.tensor(ids[: count * block_size], dtype=torch.long).view(
            count, block_size
        )

    def __len__(self) -> int:
        return int(self.blocks.shape[0])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        block = self.blocks[index]
        return {"input_ids": block, "labels": block.clone()}
