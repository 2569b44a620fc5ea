"""The decoder's tokenizer: Whisper's byte-level BPE with the target markers added.

A pretrained Whisper brings its own (`streamre import-whisper`); a model made from scratch (the
tests' tiny ones) gets a small BPE of the same shape trained on its text: Whisper's special
tokens, no prefix space, and a template that wraps text in the decoder prompt. Either way the
result is a `PreTrainedTokenizerFast` saved as `tokenizer.json` inside the checkpoint folder.
"""

from __future__ import annotations

from typing import Iterable

from streamre.model.linearize import TARGET_MARKERS
from streamre.model.orders import order_token
from streamre.whisper.tokenizer import ENDOFTEXT, NOTIMESTAMPS, START, prompted_tokenizer


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 1000):
    """A Whisper-shaped tokenizer learnt from `texts`, markers included."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[ENDOFTEXT, START, NOTIMESTAMPS],
        show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return with_markers(prompted_tokenizer(tok, [START, NOTIMESTAMPS]))


def with_markers(tokenizer, orders: Iterable[str] = (), extra: Iterable[str] = ()):
    """The tokenizer with the target markers, the tokens of these orders and any `extra`
    tokens, as added special tokens (kept if present)."""
    wanted = list(TARGET_MARKERS) + [order_token(o) for o in orders] + list(extra)
    missing = [m for m in wanted if m not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing},
                                     replace_extra_special_tokens=False)
    return tokenizer


def prompt_ids(tokenizer) -> list[int]:
    """The decoder prompt the tokenizer's template puts before text (without its end token)."""
    ids = tokenizer("").input_ids
    return ids[:-1] if ids and ids[-1] == tokenizer.eos_token_id else ids

