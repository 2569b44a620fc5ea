"""The aligned speech model behind the engine's seam (`streamre.inference.seam.
TripletExtractor`): `ModelExtractor` runs an MCAM checkpoint, hearing and reading at once.
Calls are blocking and belong on a worker thread, never on the event loop.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from streamre import SAMPLE_RATE
from streamre.model.checkpoint import load_checkpoint, resolve_model
from streamre.whisper.features import equal_parts
from streamre.whisper.devices import pick_device, pick_dtype
from streamre.model.ensemble import vote
from streamre.model.linearize import FACTS, MARKERS, Piece, parse_pieces
from streamre.model.orders import order_token, parse_in_order
from streamre.model.relation_heads import RelationPrompt
from streamre.triplets import Extraction


# oneDNN (torch's CPU kernels) caches a compiled kernel per input shape, 1024 of them by
# default. Every segment length is a new shape, so a server's memory grew by hundreds of MB
# before the cache filled (benchmarks/README.md); 8 keeps it flat at the same speed. Read when
# the first kernel is made, so it is set before any model call.
KERNEL_CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
KERNEL_CACHE_SIZE = "8"


def length_groups(lengths: Sequence[int], max_padding: float) -> list[list[int]]:
    """Indices sorted by length, cut wherever padding to the group's longest would exceed
    `max_padding` of the group's real audio; each group becomes one model call."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:
        group = groups[-1] if groups else None
        if group is not None:
            total = sum(lengths[j] for j in group) + lengths[i]
            if lengths[i] * (len(group) + 1) <= total * (1 + max_padding):
                group.append(i)
                continue
        groups.append([i])
    return groups


def orders_of(model: str | None) -> list[str] | None:
    """The element orders a checkpoint's config names (`[]`: one order), without loading its
    weights; None when its config cannot be read here (loading it will say why)."""
    from transformers import PretrainedConfig

    try:
        return list(PretrainedConfig.get_config_dict(resolve_model(model))[0].get("orders") or [])
    except OSError:
        return None


class ModelExtractor:
    """A model of this project behind the `TripletExtractor` seam.

    Args:
        model: an `MCAMModel`, on its device and in its dtype.
        tokenizer: its tokenizer (with the triplet markers).
        name: what `/healthz` and the logs call it.
        max_new_tokens: the most tokens one segment may be answered with.
        max_padding: how much padding a batched model call may add, as a share of the real
            audio, before segments are split into calls of similar lengths (`length_groups`);
            infinite: one call per batch handed over (training evaluates this way).
        ensemble: for a model trained in element orders, decode every order and keep the
            facts `min_votes` of them agree on (`streamre.model.ensemble`); without, the
            first order alone.
    """

    def __init__(self, model, tokenizer, name: str = "in-memory", max_new_tokens: int = 192,
                 max_padding: float = float("inf"), ensemble: bool = False,
                 min_votes: int = 2) -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.device = str(next(model.parameters()).device)
        self.max_new_tokens, self.max_padding = max_new_tokens, max_padding
        orders = model.config.orders
        if ensemble and not orders:
            raise ValueError(f"the ensemble needs a model trained in several element orders "
                             f"(streamre train --orders); {name} writes one")
        if min_votes < 1:
            raise ValueError("min_votes is at least 1")
        self.orders = (orders if ensemble else orders[:1]) if orders else []
        self.min_votes = min_votes
        self._facts = tokenizer.convert_tokens_to_ids(FACTS)
        self._markers = {tokenizer.convert_tokens_to_ids(m): m for m in MARKERS}
        self._specials = set(tokenizer.all_special_ids) - set(self._markers)
        self._prompt = RelationPrompt.of(model, tokenizer)

    @classmethod
    def load(cls, model: str | None = None, device: str = "auto", threads: int = 0,
             max_new_tokens: int = 192, dtype: str = "auto", max_padding: float = 0.5,
             ensemble: bool = False, min_votes: int = 2) -> "ModelExtractor":
        """A checkpoint folder or hub id (None: the bundled default model), ready to serve."""
        os.environ.setdefault(KERNEL_CACHE_ENV, KERNEL_CACHE_SIZE)  # a user's own value wins
        device = pick_device(device)
        if threads > 0 and device == "cpu":
            torch.set_num_threads(threads)
        loaded, tokenizer = load_checkpoint(model, device)
        loaded.to(pick_dtype(dtype, device))
        return cls(loaded, tokenizer, resolve_model(model).rstrip("/").split("/")[-1],
                   max_new_tokens, max_padding, ensemble, min_votes)

    asr = None  # one model hears and reads

    def window_of(self, waveform: np.ndarray) -> int:
        """Every segment may share a batch: `length_groups` splits calls by length."""
        return self.model.window_samples

    def extract(self, waveforms: Sequence[np.ndarray],
                vocabularies: Sequence[Sequence[str]] | None = None) -> list[Extraction]:
        """Each segment's transcript and facts; the aligned model hears without a vocabulary,
        so `vocabularies` are left (the settings refuse one given to it)."""
        # Audio longer than the model's window is heard in equal parts, and their answers joined.
        parts, owners = equal_parts(waveforms, self.model.window_samples)
        answers: list[Extraction] = [Extraction("", []) for _ in parts]
        for group in length_groups([len(p) for p in parts], self.max_padding):
            values, mask = self.model.prepare_waveforms([parts[i] for i in group], self.device)
            values = values.to(self.model.dtype)
            for i, answer in zip(group, self._generate(values, mask), strict=True):
                answers[i] = answer
        texts: list[list[str]] = [[] for _ in waveforms]
        facts: list[dict] = [{} for _ in waveforms]  # a fact said in two parts counts once
        for answer, owner in zip(answers, owners, strict=True):
            if answer.text:
                texts[owner].append(answer.text)
            for t in answer.triplets:
                facts[owner].setdefault(t.key, t)
        return [Extraction(" ".join(text), list(found.values()))
                for text, found in zip(texts, facts, strict=True)]

    def _generate(self, values: torch.Tensor, mask: torch.Tensor) -> list[Extraction]:
        """One model call: each segment's extraction, voted across orders when there are
        several."""
        if not self.orders and self._prompt is None:
            ids, logprobs = self.model.generate_tokens(values, mask, self.max_new_tokens)
            return [self.read(row, lp) for row, lp in zip(ids, logprobs, strict=True)]
        order_ids = [self.tokenizer.convert_tokens_to_ids(order_token(o))
                     for o in self.orders] or [None]
        per_segment = self.model.generate_in_orders(values, mask, order_ids, self._facts,
                                                    self.max_new_tokens, self._prompt)
        answers = []
        for per_order in per_segment:
            read = [self.read(ids, lp) for ids, lp in per_order]
            answers.append(Extraction(read[0].text, vote([r.triplets for r in read],
                                                         self.min_votes)))
        return answers

    def read(self, ids: list[int], logprobs: list[float]) -> Extraction:
        """Decoded tokens (no prompt, no end token) to the transcript and scored triplets:
        everything before `<facts>` is the transcript, the triplets come after it."""
        cut = ids.index(self._facts) if self._facts in ids else len(ids)
        text = self.tokenizer.decode([t for t in ids[:cut] if t not in self._specials
                                      and t not in self._markers]).strip()
        parse = parse_in_order if self.model.config.orders else parse_pieces
        triplets = parse(self._pieces(ids[cut + 1:], logprobs[cut + 1:]))
        # A half-trained decoder can spell relations the model never had ("Work_ForIn"):
        # only the model's own labels are facts.
        labels = set(self.model.config.relations)
        return Extraction(text, [t for t in triplets if not labels or t.relation in labels])

    def _pieces(self, ids: list[int], logprobs: list[float]) -> list[Piece]:
        """Token ids to marker pieces and decoded text spans, each span with its summed score."""
        pieces: list[Piece] = []
        span: list[int] = []
        span_logprob = 0.0

        def close_span() -> None:
            nonlocal span, span_logprob
            if span:
                pieces.append(Piece(self.tokenizer.decode(span), span_logprob, len(span)))
            span, span_logprob = [], 0.0

        for token, logprob in zip(ids, logprobs, strict=True):
            if token in self._markers:
                close_span()
                pieces.append(Piece(self._markers[token]))
            elif token not in self._specials:
                span.append(token)
                span_logprob += logprob
        close_span()
        return pieces

    def warmup(self) -> None:
        """One forward pass on a short noise burst, so the first real segment is not slow."""
        rng = np.random.default_rng(0)
        self.extract([(rng.standard_normal(SAMPLE_RATE) * 1000).astype(np.int16)])
