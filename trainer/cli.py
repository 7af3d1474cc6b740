"""``standalone-trainer``: fine-tune a causal LM and write live progress for the sidecar."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from sidecar.core.contract import is_valid_job_id
from trainer.arguments import build_parser, validate
from trainer.stopping import Cancelled, CancelOnSignals

logger = logging.getLogger(__name__)

EXIT_FAILED = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None, *, signals: CancelOnSignals | None = None) -> int:
    """Train; returns the exit status.

    Args:
        argv: the arguments; ``sys.argv[1:]`` by default.
        signals: a signal handler installed already (``run`` installs one before anything
            else); by default one is installed for the run and the earlier ones put back after.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = signals or CancelOnSignals()
    with nullcontext() if signals else stop:
        return _run_job(parser, args, stop)


def _run_job(
    parser: argparse.ArgumentParser, args: argparse.Namespace, stop: CancelOnSignals
) -> int:
    progress: Any = None
    try:
        validate(parser, args)
        from trainer.callback import ProgressCallback

        progress = ProgressCallback(
            args.jobs_root / args.job_id, job_id=args.job_id, min_interval=args.progress_interval
        )
        progress.signals = stop
        stop.ending = lambda: progress.ending
        with progress.guard():
            progress.start()
            _train(args, progress)
            progress.finish("completed")  # on_train_end has, with its figures: a no-op
    except Cancelled as e:
        if progress is None:  # while torch loaded: the job had not begun
            logger.warning("job %s: cancelled by %s before it began", args.job_id, e)
            _write_end(args, "cancelled")
            return e.exit_status
        progress.finish("cancelled")  # the guard has, unless the signal came before it
    except Exception as e:
        logger.error("job %s: failed: %s%s", args.job_id, e, _ignored(stop), exc_info=True)
        if progress is None:  # before the job began (a library that would not load)
            _write_end(args, "failed", error=f"{type(e).__name__}: {e}")
        return EXIT_FAILED
    return _outcome(args.job_id, progress, stop)


def run(argv: Sequence[str] | None = None) -> None:
    """The ``standalone-trainer`` command: ``main``, under a signal handler installed before
    anything else, so that a signal at any moment ends the job with its terminal state. Once
    ``main`` is done, the process leaves at once with the job's exit status: a signal on the
    way out cannot change that status, and no library's exit handler can print a traceback."""
    stop = CancelOnSignals()
    stop.install()
    try:
        status = main(argv, signals=stop)
    except Cancelled as e:  # while the arguments were read: no job yet
        print(f"standalone-trainer: cancelled by {e}", file=sys.stderr)
        status = e.exit_status
    except SystemExit as e:  # --help, or bad arguments
        status = e.code if isinstance(e.code, int) else EXIT_USAGE
    finally:
        stop.ending = lambda: True  # from here, a signal is only noted
    # The job has ended and said so. Python's own way out would put the default handlers back
    # and then take torch down (most of a second), when a signal would end the process with a
    # status that is not the job's: leave at once instead, with everything written flushed.
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def _ignored(stop: CancelOnSignals) -> str:
    others = list(stop.received)
    if stop.cancelled in others:
        others.remove(stop.cancelled)
    if not others:
        return ""
    return (
        f"; {', '.join(others)} while it stopped: ignored, so that its final state could be written"
    )


def _outcome(job_id: str, progress: Any, stop: CancelOnSignals) -> int:
    """Say how the job ended, as progress.json says it (or does not), and its exit status."""
    unsaid = (
        ""
        if progress.final_written
        else ", but progress.json does not say so (see the error above)"
    )
    if progress.ended == "cancelled":
        cause = stop.cancelled or "a signal"
        logger.warning("job %s: cancelled by %s%s%s", job_id, cause, unsaid, _ignored(stop))
        return Cancelled(cause).exit_status
    if progress.ended == "failed":  # a signal arrived while the failure was being written
        logger.error("job %s: failed (progress.json says why)%s", job_id, _ignored(stop))
        return EXIT_FAILED
    if unsaid:
        logger.warning("job %s: training finished%s", job_id, unsaid)
        return 0
    came = f" ({', '.join(stop.received)} arrived as training finished)" if stop.received else ""
    logger.info("job %s: completed%s; progress in %s", job_id, came, progress.writer.job_dir)
    return 0


def _write_end(args: argparse.Namespace, status: str, **fields: Any) -> None:
    """Write the terminal state of a job that ended before it began, when its id allows."""
    if not is_valid_job_id(args.job_id) or args.jobs_root.is_file():
        return
    from trainer.writer import ProgressWriter, progress_document

    document = progress_document(
        args.job_id, status, {"progress": 0.0, "current_step": 0, **fields}
    )
    ProgressWriter(args.jobs_root / args.job_id).write_final(document)


def _train(args: argparse.Namespace, progress: Any) -> None:
    import torch
    from transformers import Trainer, TrainingArguments

    from trainer.corpus import BlockDataset
    from trainer.model import build_tiny, load_local

    lm = (
        build_tiny(args.texts, seed=args.seed)
        if args.model == "tiny"
        else load_local(Path(args.model))
    )
    ids = lm.encode(args.texts)
    dataset = BlockDataset(ids, lm.block_size)
    held_out = max(1, len(dataset) // 10)
    train_set, eval_set = torch.utils.data.random_split(
        dataset,
        [len(dataset) - held_out, held_out],
        generator=torch.Generator().manual_seed(args.seed),
    )
    callbacks: list[Any] = [progress]
    if args.fail_at_step:
        callbacks.append(_fail_at_step(args.fail_at_step))
    with tempfile.TemporaryDirectory(prefix="standalone-trainer-") as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir,
            num_train_epochs=args.epochs,
            max_steps=args.max_steps or -1,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=args.batch_size,
            learning_rate=args.lr,
            warmup_steps=0,
            logging_steps=args.logging_steps,
            eval_strategy="steps",
            eval_steps=args.eval_steps,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
            seed=args.seed,
            dataloader_num_workers=0,
        )
        trainer = Trainer(
            model=lm.model,
            args=training_args,
            train_dataset=train_set,
            eval_dataset=eval_set,
            callbacks=callbacks,
        )
        trainer.train()


def _fail_at_step(step: int) -> Any:
    """A callback that fails the run on purpose (--fail-at-step)."""
    from transformers import TrainerCallback

    class FailAtStep(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step >= step:
                raise RuntimeError(f"injected failure at step {state.global_step} (--fail-at-step)")

    return FailAtStep()


if __name__ == "__main__":
    run()
