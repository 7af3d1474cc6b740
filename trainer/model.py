"""The model to fine-tune: a local Hugging Face causal LM, or ``tiny``, built offline in seconds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tokenizers import ByteLevelBPETokenizer
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
)

TINY = "tiny"
END_OF_TEXT = "<|endoftext|>"
CAUSAL_LM_LOSS = "ForCausalLM"
"""The name transformers gives the loss of a causal LM (a key of its ``LOSS_MAPPING``)."""


@dataclass
class LanguageModel:
    """A causal LM and the function that turns texts into its token ids."""

    model: PreTrainedModel
    encode: Callable[[list[str]], list[int]]
    block_size: int


def is_model_dir(path: Path) -> bool:
    """A Hugging Face model directory has a config.json."""
    return (path / "config.json").is_file()


def build_tiny(
    texts: list[str], *, block_size: int = 64, vocab_size: int = 512, seed: int = 0
) -> LanguageModel:
    """A 2-layer GPT-2-style model with a byte-level BPE tokenizer trained on ``texts``."""
    import torch

    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(
        texts,
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[END_OF_TEXT],
        show_progress=False,
    )
    end = tokenizer.token_to_id(END_OF_TEXT)
    config = GPT2Config(
        vocab_size=tokenizer.get_vocab_size(),
        n_positions=block_size,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=end,
        eos_token_id=end,
    )
    torch.manual_seed(seed)
    model = _with_causal_lm_loss(GPT2LMHeadModel(config))

    def encode(batch: list[str]) -> list[int]:
        ids: list[int] = []
        for encoding in tokenizer.encode_batch(batch):
            ids.extend(encoding.ids)
            ids.append(end)
        return ids

    return LanguageModel(model, encode, block_size)


def load_local(path: Path, *, block_size: int = 128) -> LanguageModel:
    """A causal LM and its tokenizer from a local directory; nothing is downloaded."""
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = _with_causal_lm_loss(AutoModelForCausalLM.from_pretrained(path, local_files_only=True))
    limit = getattr(model.config, "max_position_embeddings", None) or getattr(
        model.config, "n_positions", None
    )
    size = min(block_size, limit) if limit else block_size

    def encode(batch: list[str]) -> list[int]:
        ids: list[int] = []
        for text in batch:
            ids.extend(tokenizer(text)["input_ids"])
            if tokenizer.eos_token_id is not None:
                ids.append(tokenizer.eos_token_id)
        return ids

    return LanguageModel(model, encode, size)


def _with_causal_lm_loss(model: PreTrainedModel) -> PreTrainedModel:
    """Name the model's loss. transformers picks it by the class's name, and ``GPT2LMHeadModel``
    (like other older names) says none it knows: it then warns "loss_type=None ... is
    unrecognized" at the first step and uses the causal LM's loss anyway. This is that loss,
    named, so that there is nothing to warn about."""
    if getattr(model, "loss_type", None) is None:
        model.loss_type = CAUSAL_LM_LOSS
    return model
