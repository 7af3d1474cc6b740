"""ProgressCallback inside a real transformers.Trainer, on the tiny model, on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import TrainerControl, TrainerState, TrainingArguments

from tests.trainer.job_files import read_progress
from tests.trainer.tiny_trainer import NoGpu, make_trainer, run_training
from trainer import ProgressCallback
from trainer.corpus import BlockDataset, default_corpus, load_texts
from trainer.model import build_tiny

SEED_FIELDS = {
    "job_id", "status", "progress", "current_epoch", "total_epochs", "current_step", "total_steps",
    "loss", "eval_loss", "learning_rate", "samples_per_second", "gpu_memory_allocated_gb",
    "gpu_utilization_percent", "eta_seconds", "timestamp", "pid", "hostname", "started_at",
}  # fmt: skip


def test_callback_in_a_real_trainer(tmp_path: Path) -> None:
    job_dir = tmp_path / "jobs" / "tiny-run"
    callback, written = run_training(job_dir)
    statuses = [w["status"] for w in written]
    assert statuses[0] == "running" and statuses[-1] == "completed"
    assert set(statuses) == {"running", "completed"}
    steps = [w["current_step"] for w in written]
    assert steps == sorted(steps) and steps[-1] == 12
    running = [w for w in written if w["status"] == "running" and w["current_step"] > 0]
    assert all(0 < w["progress"] <= 100 for w in running)
    etas = [w["eta_seconds"] for w in running if "eta_seconds" in w]
    assert len(etas) >= 3 and etas[-1] < etas[0]
    final = read_progress(job_dir)
    assert final.keys() >= SEED_FIELDS
    assert final["job_id"] == "tiny-run"
    assert (final["status"], final["progress"], final["current_step"], final["total_steps"]) == (
        "completed",
        100.0,
        12,
        12,
    )
    assert final["final_loss"] == final["loss"] > 0
    assert final["eval_loss"] > 0 and final["learning_rate"] >= 0
    assert final["gpu_memory_allocated_gb"] is None and final["gpu_utilization_percent"] is None
    assert final["samples_per_second"] > 0 and final["eta_seconds"] == 0
    assert final["current_epoch"] <= final["total_epochs"]
    history = [json.loads(line) for line in (job_dir / "metrics.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history if "loss" in h] == [2, 4, 6, 8, 10, 12]
    assert [h["step"] for h in history if "eval_loss" in h] == [4, 8, 12]
    assert all({"step", "epoch", "timestamp"} <= h.keys() for h in history)
    assert sorted(p.name for p in job_dir.iterdir()) == ["metrics.jsonl", "progress.json"]
    assert callback.hook_seconds.keys() >= {
        "on_train_begin",
        "on_step_end",
        "on_log",
        "on_train_end",
    }


def test_only_world_process_zero_writes(tmp_path: Path) -> None:
    callback = ProgressCallback(tmp_path / "j", gpu=NoGpu())
    state = TrainerState()
    state.is_world_process_zero = False
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True)
    callback.on_train_begin(args, state, TrainerControl())
    callback.on_log(args, state, TrainerControl(), logs={"loss": 1.0})
    callback.on_step_end(args, state, TrainerControl())
    callback.on_train_end(args, state, TrainerControl())
    assert not (tmp_path / "j").exists()


def test_tiny_model_is_built_offline_and_trains() -> None:
    texts = load_texts(default_corpus())
    lm = build_tiny(texts)
    ids = lm.encode(texts[:2])
    assert ids and max(ids) < lm.model.config.vocab_size
    batch = BlockDataset(lm.encode(texts), lm.block_size)[0]
    loss = lm.model(input_ids=batch["input_ids"][None], labels=batch["labels"][None]).loss
    assert torch.isfinite(loss)


def test_a_run_of_zero_epochs_is_at_epoch_zero_of_zero(tmp_path: Path) -> None:
    callback = ProgressCallback(tmp_path / "j", min_interval=0, gpu=NoGpu())
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True, num_train_epochs=0
    )
    state = TrainerState()
    state.num_train_epochs, state.epoch = 0, 0.0
    callback.on_train_begin(args, state, TrainerControl())
    callback.on_train_end(args, state, TrainerControl())
    final = read_progress(tmp_path / "j")
    assert (final["status"], final["total_epochs"], final["current_epoch"]) == ("completed", 0, 0)


def test_a_run_of_zero_steps_is_not_past_its_total(tmp_path: Path) -> None:
    """``max_steps=0`` still takes a step in transformers: the totals follow what was done."""
    _, written = run_training(tmp_path / "j", max_steps=0)
    final = read_progress(tmp_path / "j")
    assert final["status"] == "completed"
    assert final["current_step"] == final["total_steps"] and final["progress"] == 100.0
    assert all(w["current_step"] <= w["total_steps"] for w in written if "total_steps" in w)
    assert final["current_epoch"] <= final["total_epochs"]


def test_an_evaluation_after_the_end_leaves_the_end(tmp_path: Path) -> None:
    trainer, callback, written = make_trainer(tmp_path / "j", max_steps=4)
    with callback.guard():
        trainer.train()
    history = (tmp_path / "j" / "metrics.jsonl").read_text()
    trainer.evaluate()
    assert [w["status"] for w in written][-1] == "completed"
    assert read_progress(tmp_path / "j")["status"] == "completed"
    assert (tmp_path / "j" / "metrics.jsonl").read_text() == history  # nothing after the end
    assert not callback.writer.history.is_open  # and no file left open


def test_a_second_run_with_the_same_callback_starts_afresh(tmp_path: Path) -> None:
    trainer, callback, written = make_trainer(tmp_path / "j", max_steps=3)
    with callback.guard():
        trainer.train()
    with callback.guard():
        trainer.train()
    statuses = [w["status"] for w in written]
    assert statuses.count("completed") == 2 and statuses[-1] == "completed"
    assert read_progress(tmp_path / "j")["status"] == "completed"
