"""standalone-trainer end to end: real training runs on the CPU, as subprocesses where signals matter."""

from __future__ import annotations

import configparser
import importlib.metadata
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.trainer.job_files import read_progress
from tests.trainer.small_tmpfs import SmallTmpfs
from trainer.cli import main

REPO = Path(__file__).parents[2]


def test_a_run_completes(tmp_path: Path) -> None:
    assert (
        main(
            [
                "--jobs-root",
                str(tmp_path),
                "--job-id",
                "ok",
                "--max-steps",
                "6",
                "--eval-steps",
                "3",
            ]
        )
        == 0
    )
    final = read_progress(tmp_path / "ok")
    assert (final["status"], final["progress"], final["current_step"]) == ("completed", 100.0, 6)
    assert isinstance(final["final_loss"], float)


def test_a_failure_writes_failed_and_exits_1(tmp_path: Path) -> None:
    code = main(
        [
            "--jobs-root",
            str(tmp_path),
            "--job-id",
            "bad",
            "--max-steps",
            "50",
            "--fail-at-step",
            "3",
        ]
    )
    assert code == 1
    final = read_progress(tmp_path / "bad")
    assert final["status"] == "failed"
    assert final["error"] == "RuntimeError: injected failure at step 3 (--fail-at-step)"
    assert final["current_step"] == 3


def test_jsonl_data(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text(
        "\n".join(json.dumps({"text": f"line number {i} of a small data set"}) for i in range(200))
    )
    assert (
        main(
            ["--jobs-root", str(tmp_path), "--job-id", "j", "--data", str(data), "--max-steps", "3"]
        )
        == 0
    )
    assert read_progress(tmp_path / "j")["status"] == "completed"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "/no/such/file.txt"], "--data /no/such/file.txt: no such file"),
        (["--model", "/tmp"], "not a Hugging Face model directory (no config.json)"),
        (["--job-id", "../escape"], "invalid job id '../escape'"),
        (["--max-steps", "0"], "must be positive: '0'"),
        (["--epochs", "inf"], "--epochs: must be finite: 'inf'"),
        (["--lr", "inf"], "--lr: must be finite: 'inf'"),
        (["--lr", "nan"], "--lr: not a number: 'nan'"),
        (["--data", "/tmp"], "--data /tmp: not a file"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    root = tmp_path / "jobs"
    with pytest.raises(SystemExit) as exit_info:
        main(["--jobs-root", str(root), "--job-id", "j", *extra])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not root.exists()


def test_empty_data_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "empty.txt"
    data.write_text("\n\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--jobs-root", str(tmp_path / "jobs"), "--job-id", "j", "--data", str(data)])
    assert exit_info.value.code == 2
    assert "no text" in capsys.readouterr().err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_writes_cancelled(tmp_path: Path, signum: signal.Signals, code: int) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainer",
            "--jobs-root",
            str(tmp_path),
            "--job-id",
            "long",
            "--max-steps",
            "100000",
            "--progress-interval",
            "0.05",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                step = read_progress(tmp_path / "long").get("current_step", 0)
            except (OSError, ValueError):
                step = 0
            if isinstance(step, int) and step > 0:
                break
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.05)
        process.send_signal(signum)
        assert process.wait(timeout=30) == code, process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
    finally:
        process.kill()
        process.wait()
        process.stderr.close()  # type: ignore[union-attr]
    final = read_progress(tmp_path / "long")
    assert final["status"] == "cancelled"


def test_a_local_model_directory(tmp_path: Path) -> None:
    """--model DIR loads a saved causal LM and its tokenizer from disk, offline."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from trainer.corpus import default_corpus, load_texts

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        load_texts(default_corpus()), vocab_size=300, special_tokens=["<|endoftext|>"]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    model_dir = tmp_path / "model"
    tokenizer.save_pretrained(model_dir)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=32, n_layer=1, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(model_dir)
    code = main(
        [
            "--jobs-root",
            str(tmp_path / "jobs"),
            "--job-id",
            "local",
            "--model",
            str(model_dir),
            "--max-steps",
            "3",
        ]
    )
    assert code == 0
    assert read_progress(tmp_path / "jobs" / "local")["status"] == "completed"


def test_a_disk_that_fills_up_mid_run_does_not_fail_a_finished_run(
    small_tmpfs: SmallTmpfs, caplog: pytest.LogCaptureFixture
) -> None:
    """A real tmpfs with 24 KiB free and a history line every step: the history stops when the
    disk is full, without a cut line (a later line short enough for the tail of the last page
    may still go in, whole); the run exits 0, and its final state is in progress.json (written
    over the old file, which needs no new space)."""
    disk = small_tmpfs.mount(size_kib=300)
    small_tmpfs.fill(disk, leave_kib=24)
    args = ["--jobs-root", str(disk), "--job-id", "full", "--max-steps", "200"]
    args += ["--logging-steps", "1", "--eval-steps", "1000", "--progress-interval", "0.001"]
    with caplog.at_level(logging.INFO):
        assert main(args) == 0
    final = read_progress(disk / "full")
    assert (final["status"], final["current_step"]) == ("completed", 200)
    text = (disk / "full" / "metrics.jsonl").read_text()
    assert text.endswith("\n")
    steps = [json.loads(line)["step"] for line in text.splitlines()]  # every line whole
    # Each step's line until the disk is full; after it, the tail of the last page is shorter
    # than the line that did not fit: room for one shorter line at most.
    assert steps[:-1] == list(range(1, len(steps))) and steps[-1] >= len(steps)
    assert 20 < len(steps) < 200
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("trainer")]
    problems = [(level, message) for level, message in said if level in ("WARNING", "ERROR")]
    assert [level for level, _ in problems] == ["WARNING", "WARNING"], problems
    assert all("No space left on device" in message for _, message in problems)
    assert said[-1] == ("INFO", f"job full: completed; progress in {disk}/full")


def test_a_disk_full_from_the_start_is_said_and_the_log_never_says_completed(
    small_tmpfs: SmallTmpfs, caplog: pytest.LogCaptureFixture
) -> None:
    disk = small_tmpfs.mount(size_kib=300)
    (disk / "jobs").mkdir()
    small_tmpfs.fill(disk)
    args = ["--jobs-root", str(disk / "jobs"), "--job-id", "full", "--max-steps", "3"]
    with caplog.at_level(logging.INFO):
        assert main(args) == 0  # training itself completed
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("trainer")]
    errors = [message for level, message in said if level == "ERROR"]
    assert len(errors) == 1 and "its final state (completed) could not be written" in errors[0]
    assert said[-1] == (
        "WARNING",
        "job full: training finished, but progress.json does not say so (see the error above)",
    )
    cli = [
        message for r in caplog.records if r.name == "trainer.cli" for message in [r.getMessage()]
    ]
    assert cli and not any("completed" in message for message in cli)


def test_a_failure_before_the_job_began_is_written_as_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "trainer.callback", None)  # as if transformers would not load
    assert main(["--jobs-root", str(tmp_path), "--job-id", "j", "--max-steps", "3"]) == 1
    final = read_progress(tmp_path / "j")
    assert final["status"] == "failed" and str(final["error"]).startswith("ModuleNotFoundError")


def test_version_is_the_packages_own() -> None:
    """The installed command prints the version of the package's metadata (setup.cfg's) and
    exits 0, before any check of the required flags."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    command = Path(sys.executable).parent / "standalone-trainer"
    result = subprocess.run([str(command), "--version"], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout == f"standalone-trainer {setup['metadata']['version']}\n"


def test_version_of_a_checkout_that_is_not_installed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == "standalone-trainer unknown (not installed)\n"
