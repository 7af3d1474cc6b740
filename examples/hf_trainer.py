#!/usr/bin/env python3
"""Your own transformers.Trainer, with live progress for progress-sidecar: one added line.

Trains the tiny GPT-2-style model that `standalone-trainer --model tiny` builds (offline, on the
CPU, about 20 s for 300 steps) and writes <jobs-root>/<job-id>/progress.json and metrics.jsonl
as it goes. From the repository root:

    .venv/bin/progress-sidecar --root my-jobs                 # in one terminal
    .venv/bin/python examples/hf_trainer.py --job-id my-run   # in another
    .venv/bin/progress-sidecar tail my-run --wait             # or open http://127.0.0.1:8765/
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from transformers import Trainer, TrainingArguments

from sidecar.core.argtypes import positive_int
from trainer import ProgressCallback
from trainer.corpus import BlockDataset, default_corpus, load_texts
from trainer.model import build_tiny


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--jobs-root", default="my-jobs", metavar="DIR", help="where jobs live")
    parser.add_argument("--job-id", default="hf-trainer-example", metavar="ID", help="this run")
    parser.add_argument(
        "--steps", type=positive_int, default=300, metavar="N", help="training steps"
    )
    args = parser.parse_args()

    # Your model and data go here; this is the tiny model and the small corpus trainer/ ships.
    texts = load_texts(default_corpus())
    lm = build_tiny(texts)  # a 2-layer GPT-2 and a BPE tokenizer trained on the texts
    dataset = BlockDataset(lm.encode(texts), lm.block_size)

    with tempfile.TemporaryDirectory() as output_dir:
        trainer = Trainer(
            model=lm.model,
            args=TrainingArguments(
                output_dir=output_dir,
                max_steps=args.steps,
                per_device_train_batch_size=8,
                learning_rate=5e-4,
                logging_steps=5,  # each log is a line of metrics.jsonl
                save_strategy="no",
                report_to="none",
                use_cpu=True,
            ),
            train_dataset=dataset,
        )

        # The line this example is about:
        progress = ProgressCallback(f"{args.jobs_root}/{args.job_id}")
        trainer.add_callback(progress)

        # Optional: a crash is written as failed; Ctrl-C or SIGTERM as cancelled (a second one
        # cannot cut that final write short), after which the script exits 130 or 143 with
        # one line on stderr.
        with progress.guard(signals=True):
            trainer.train()
    if progress.final_written:
        print(f"done: {args.jobs_root}/{args.job_id}/progress.json")
    else:
        sys.exit("training finished, but progress.json does not say so (see the error above)")


if __name__ == "__main__":
    main()
