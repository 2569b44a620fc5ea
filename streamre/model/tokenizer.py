"""Tokenizers for the decoder: a byte-level BPE trained on the target text, or a pretrained one.

Either way the REBEL markers are added tokens, and the result is a `PreTrainedTokenizerFast`
that saves as `tokenizer.json` inside the checkpoint folder.
"""

from __future__ import annotations

from typing import Iterable

from transformers import PreTrainedTokenizerFast

from streamre.model.linearize import MARKERS

SPECIAL_TOKENS = {"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 1000) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    special = list(SPECIAL_TOKENS.values()) + list(MARKERS)
    tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    bos, eos = SPECIAL_TOKENS["bos_token"], SPECIAL_TOKENS["eos_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        special_tokens=[(bos, tok.token_to_id(bos)), (eos, tok.token_to_id(eos))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)
    fast.add_special_tokens({"additional_special_tokens": list(MARKERS)})
    return fast


def marker_ids(tokenizer) -> dict[int, str]:
    return {tokenizer.convert_tokens_to_ids(m): m for m in MARKERS}
