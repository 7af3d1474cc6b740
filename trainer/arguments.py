"""standalone-trainer's command line: its flags, and every check of them that can fail
before anything is written (a mistake is one line and exit status 2)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sidecar.core.argtypes import positive_float, positive_int, version
from sidecar.core.contract import JOB_ID_PATTERN, is_valid_job_id


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, but not a default of None (a required flag, or one that says its own)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """standalone-trainer's flags."""
    parser = argparse.ArgumentParser(
        prog="standalone-trainer",
        description=(
            "Fine-tune a causal language model with transformers.Trainer and write live progress "
            "to <jobs-root>/<job-id>/progress.json (and metrics.jsonl) for progress-sidecar. "
            "Uses the GPU when there is one. The first SIGINT or SIGTERM cancels the run; "
            "later ones wait for its final state to be written (SIGKILL stops it at once). "
            "Exit status: 0 completed, 1 failed, 130/143 cancelled by SIGINT/SIGTERM, "
            "2 bad arguments."
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version()}", help="print the version"
    )
    parser.add_argument(
        "--jobs-root", type=Path, required=True, metavar="DIR", help="where job directories live"
    )
    parser.add_argument(
        "--job-id", required=True, metavar="ID", help="the job's id: its directory under the root"
    )
    parser.add_argument(
        "--model",
        default="tiny",
        help="a local Hugging Face causal-LM directory, or 'tiny': a small GPT-2-style model "
        "built from a config with a tokenizer trained on the data (offline, seconds on a CPU)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="FILE",
        help="training text: a text file (one sample per line) or JSONL with a 'text' field "
        "(default: a small corpus shipped with the package)",
    )
    parser.add_argument("--epochs", type=positive_float, default=3.0, help="training epochs")
    parser.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        help="stop after this many steps (overrides --epochs)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=8, help="per-device batch size")
    parser.add_argument("--lr", type=positive_float, default=5e-4, help="peak learning rate")
    parser.add_argument(
        "--eval-steps", type=positive_int, default=20, help="evaluate every N steps"
    )
    parser.add_argument(
        "--logging-steps",
        type=positive_int,
        default=2,
        help="log loss (and append to metrics.jsonl) every N steps",
    )
    parser.add_argument(
        "--progress-interval",
        type=positive_float,
        default=0.5,
        metavar="SECONDS",
        help="at most one progress.json write per this many seconds (first and final states: at once)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--fail-at-step",
        type=positive_int,
        default=None,
        metavar="N",
        help="raise an error at step N, to show (and test) how a failed run looks",
    )
    return parser


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every check that can fail before anything is written."""
    if not is_valid_job_id(args.job_id):
        parser.error(f"invalid job id {args.job_id!r}: want {JOB_ID_PATTERN}")
    if args.jobs_root.exists() and not args.jobs_root.is_dir():
        parser.error(f"--jobs-root {args.jobs_root} is not a directory")
    if args.data is not None and not args.data.is_file():
        parser.error(
            f"--data {args.data}: {'not a file' if args.data.exists() else 'no such file'}"
        )
    if args.model != "tiny":
        from trainer.model import is_model_dir

        if not is_model_dir(Path(args.model)):
            parser.error(
                f"--model {args.model}: not a Hugging Face model directory (no config.json); or use 'tiny'"
            )
    from trainer.corpus import default_corpus, load_texts

    try:
        args.texts = load_texts(args.data or default_corpus())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        parser.error(f"--data: {e}")
