#!/usr/bin/env python3
"""The cost of ProgressCallback per training step, on the tiny model, on this machine's CPU.

Two measures, in one run:
- inside: the time spent in the callback's per-step hooks (on_step_end, on_log, on_evaluate:
  it counts them), per step, against the step time without the callback; the one-off cost of
  on_train_begin and on_train_end (opening NVML, the first and last fsynced writes) apart;
- A/B: the median time per step of runs without and with the callback, alternated.
Writes bench-results/callback.json.

    .venv/bin/python scripts/bench_callback.py [--steps 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks.common import machine, run_info

from trainer import ProgressCallback
from trainer.corpus import BlockDataset, default_corpus, load_texts
from trainer.model import build_tiny

PER_STEP_HOOKS = ("on_step_end", "on_log", "on_evaluate")


class StepClock(TrainerCallback):
    """Times the training loop from its first step to its last."""

    def __init__(self) -> None:
        self.began = 0.0
        self.ended = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.began = time.perf_counter()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.ended = time.perf_counter()


def run(steps: int, callback: ProgressCallback | None, texts: list[str]) -> float:
    """Seconds per step of one tiny training run."""
    lm = build_tiny(texts)
    dataset = BlockDataset(lm.encode(texts), lm.block_size)
    clock = StepClock()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, max_steps=steps, per_device_train_batch_size=8, logging_steps=2,
            save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True,
        )  # fmt: skip
        callbacks: list[Any] = [clock] + ([callback] if callback else [])
        trainer = Trainer(model=lm.model, args=args, train_dataset=dataset, callbacks=callbacks)
        trainer.remove_callback(PrinterCallback)  # it prints every log line
        trainer.train()
    return (clock.ended - clock.began) / steps


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-results/callback.json"))
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    texts = load_texts(default_corpus())
    result: dict[str, Any] = {"steps": args.steps, "rounds": args.rounds, "machine": machine()}
    result.update(run_info())
    with tempfile.TemporaryDirectory() as jobs:
        for interval in (0.5, 0.0):
            without, with_cb, inside, once = [], [], [], []
            for round_ in range(args.rounds):
                without.append(run(args.steps, None, texts))
                callback = ProgressCallback(
                    Path(jobs) / f"j{interval}-{round_}", min_interval=interval
                )
                per_step = run(args.steps, callback, texts)
                with_cb.append(per_step)
                hooks = callback.hook_seconds
                inside.append(sum(hooks.get(h, 0.0) for h in PER_STEP_HOOKS) / args.steps)
                once.append(hooks.get("on_train_begin", 0.0) + hooks.get("on_train_end", 0.0))
            base = statistics.median(without)
            result[f"min_interval={interval}"] = {
                "step_ms_without": base * 1000,
                "step_ms_with": statistics.median(with_cb) * 1000,
                "callback_us_per_step": statistics.median(inside) * 1e6,
                "callback_share_percent": 100 * statistics.median(inside) / base,
                "begin_and_end_ms_once": statistics.median(once) * 1000,
                "ab_difference_percent": 100 * (statistics.median(with_cb) - base) / base,
            }
    for name, fig in result.items():
        if isinstance(fig, dict):
            print(
                f"{name}: step {fig['step_ms_without']:.2f} ms without, {fig['step_ms_with']:.2f} ms with "
                f"(A/B {fig['ab_difference_percent']:+.1f} %, noisy); inside the callback "
                f"{fig['callback_us_per_step']:.1f} us/step = {fig['callback_share_percent']:.2f} % of a step "
                f"(target < 1 %), plus {fig['begin_and_end_ms_once']:.1f} ms once at begin and end"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
