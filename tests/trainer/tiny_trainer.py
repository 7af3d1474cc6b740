"""A real Trainer of the tiny model on the CPU, its ProgressCallback's writes recorded."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainerCallback, TrainingArguments

from trainer import ProgressCallback
from trainer.corpus import BlockDataset, default_corpus, load_texts
from trainer.gpu import GpuMonitor
from trainer.model import build_tiny


class NoGpu(GpuMonitor):
    def __init__(self) -> None:
        super().__init__(nvml=None, cuda=None)
        self._started = True  # as if NVML had said there is no driver


def run_training(
    job_dir: Path, *, max_steps: int = 12, callbacks: Sequence[TrainerCallback] = ()
) -> tuple[ProgressCallback, list[dict[str, Any]]]:
    trainer, callback, written = make_trainer(job_dir, max_steps=max_steps, callbacks=callbacks)
    with callback.guard():
        trainer.train()
    return callback, written


def make_trainer(
    job_dir: Path, *, max_steps: int = 12, callbacks: Sequence[TrainerCallback] = ()
) -> tuple[Trainer, ProgressCallback, list[dict[str, Any]]]:
    """A real Trainer of the tiny model with a ProgressCallback whose writes are recorded."""
    texts = load_texts(default_corpus())
    lm = build_tiny(texts)
    dataset = BlockDataset(lm.encode(texts), lm.block_size)
    callback = ProgressCallback(job_dir, min_interval=0, gpu=NoGpu())
    written: list[dict[str, Any]] = []
    real_write = callback.writer.write

    def recording_write(state: dict[str, Any], *, force: bool = False) -> bool:
        written.append(json.loads(json.dumps(state)))
        return real_write(state, force=force)

    real_final = callback.writer.write_final

    def recording_final(state: dict[str, Any]) -> bool:
        written.append(json.loads(json.dumps(state)))
        return real_final(state)

    callback.writer.write = recording_write  # type: ignore[method-assign]
    callback.writer.write_final = recording_final  # type: ignore[method-assign]
    args = TrainingArguments(
        output_dir=str(job_dir.parent / "out"),
        max_steps=max_steps,
        per_device_train_batch_size=4,
        logging_steps=2,
        eval_strategy="steps",
        eval_steps=4,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Trainer(
        model=lm.model,
        args=args,
        train_dataset=dataset,
        eval_dataset=dataset,
        callbacks=[callback, *callbacks],
    )
    return trainer, callback, written
