"""trainer.model: the models it builds or loads train without transformers' loss_type warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CHILD = """
import sys
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from trainer.corpus import default_corpus, load_texts
from trainer.model import build_tiny, load_local

which = sys.argv[1]
if which == "tiny":
    model = build_tiny(load_texts(default_corpus())).model
elif which == "local":
    model = load_local(Path(sys.argv[2])).model
else:  # as transformers makes it: the contrast that shows the warning is seen when it comes
    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2))
ids = torch.zeros((1, 8), dtype=torch.long)
assert torch.isfinite(model(input_ids=ids, labels=ids).loss)
"""


def save_local_model(directory: Path) -> Path:
    """A plain GPT-2 and its tokenizer saved as a Hugging Face model directory."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from trainer.corpus import default_corpus, load_texts

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        load_texts(default_corpus()), vocab_size=300, special_tokens=["<|endoftext|>"]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    tokenizer.save_pretrained(directory)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=32, n_layer=1, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(directory)
    return directory


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("which", "warned"), [("tiny", False), ("local", False), ("plain", True)])
def test_models_train_without_the_loss_type_warning(
    tmp_path: Path, which: str, warned: bool
) -> None:
    """A GPT2LMHeadModel names no loss transformers knows, so it warns ``loss_type=None`` at
    the first loss (as the plain model shows); the tiny model and a loaded one name theirs."""
    model_dir = save_local_model(tmp_path / "model") if which == "local" else tmp_path
    result = subprocess.run(
        [sys.executable, "-c", CHILD, which, str(model_dir)],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stderr
    assert ("loss_type=None" in result.stderr) == warned, result.stderr
