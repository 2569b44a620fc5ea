"""Whisper on torch (transformers' `WhisperForConditionalGeneration`): for CUDA, in float16 or
bfloat16, and wherever CTranslate2 is missing.

transformers' encoder insists on 3000 frames; hearing pads to smaller windows, so the encoder's
layers are run here on the window's frames with the first positions, as CTranslate2 does.
Decoding is greedy, or beam search as CTranslate2's, with a key/value cache and the same
suppressed tokens as CTranslate2.
"""

from __future__ import annotations

from itertools import groupby
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from streamre.hearing.guards import Decoded
from streamre.hearing.prompt import WhisperVocabulary


def run_encoder(encoder: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """A transformers Whisper encoder on features of any window up to 30 s: (B, n_mels,
    frames) to (B, frames // 2, d_model), with the window's first positions."""
    x = nn.functional.gelu(encoder.conv1(features))
    x = nn.functional.gelu(encoder.conv2(x)).transpose(1, 2)
    if x.shape[1] > encoder.embed_positions.weight.shape[0]:
        raise ValueError("features longer than Whisper's 30 s window")
    hidden = x + encoder.embed_positions.weight[:x.shape[1]]
    for layer in encoder.layers:
        hidden = layer(hidden, None)
    return encoder.layer_norm(hidden)


class TorchWhisper:
    """A `WhisperBackend` over a transformers Whisper.

    Args:
        model: a `WhisperForConditionalGeneration`, on its device and in its dtype, in eval mode.
        vocabulary: its prompt and special tokens.
        suppress: token ids never written (Whisper's `suppress_tokens`).
        suppress_begin: token ids not written first (Whisper's `begin_suppress_tokens`).
    """

    def __init__(self, model, vocabulary: WhisperVocabulary, suppress: list[int],
                 suppress_begin: list[int]) -> None:
        self.model = model
        self.vocabulary = vocabulary
        self.n_mels = model.config.num_mel_bins
        self.workers = 1  # torch spreads one call over the threads itself
        self.device = next(model.parameters()).device
        vocab = model.config.vocab_size
        self._suppress = torch.tensor([t for t in suppress if 0 <= t < vocab], dtype=torch.long,
                                      device=self.device)
        self._suppress_begin = torch.tensor([t for t in suppress_begin if 0 <= t < vocab],
                                            dtype=torch.long, device=self.device)

    def each(self, call, items):
        return [call(item) for item in items]

    @torch.inference_mode()
    def encode(self, features: np.ndarray) -> torch.Tensor:
        """(B, n_mels, frames) features to the encoder's (B, frames // 2, d_model) states."""
        encoder = self.model.model.encoder
        return run_encoder(encoder, torch.from_numpy(np.ascontiguousarray(features)).to(
            self.device, encoder.conv1.weight.dtype))

    @torch.inference_mode()
    def decode(self, memory: torch.Tensor, max_new_tokens: int,
               previous: Sequence[int] = (), beam_size: int = 1) -> list[Decoded]:
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        batch, prompt = memory.shape[0], self.vocabulary.prompt_after(previous)
        start = len(prompt) - len(self.vocabulary.prompt)  # where the transcript starts
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        logits = self._logits(torch.tensor([prompt] * batch, device=self.device), memory, cache)
        no_speech: list[float | None] = [None] * batch
        if self.vocabulary.no_speech is not None:  # read at the start token
            no_speech = logits[:, start].softmax(-1)[:, self.vocabulary.no_speech].tolist()
        found = self._greedy(logits[:, -1], memory, cache, max_new_tokens) if beam_size == 1 \
            else self._beams(logits[:, -1], memory, cache, max_new_tokens, beam_size)
        return [Decoded(b.tokens, b.logprobs, n, b.ended)
                for b, n in zip(found, no_speech, strict=True)]

    @torch.inference_mode()
    def score(self, memory: torch.Tensor, texts: Sequence[str],
              previous: Sequence[int] = ()) -> list[float]:
        prompt = self.vocabulary.prompt_after(previous)
        tokens = [self.vocabulary.tokens_of(t) for t in texts]
        longest = max(len(t) for t in tokens)
        # Padded at the end: a causal decoder's earlier positions never see the padding.
        ids = torch.tensor([prompt + t + [self.vocabulary.end] * (longest - len(t))
                            for t in tokens], device=self.device)
        hidden = self.model.model.decoder(input_ids=ids, encoder_hidden_states=memory[:1].expand(
            len(texts), -1, -1)).last_hidden_state
        logits = self.model.proj_out(hidden[:, len(prompt) - 1:]).float()
        # Each token as decoding would weigh it: the suppressed tokens out, as CTranslate2 does.
        logprobs = torch.cat([self._suppressed(logits[:, :1], first=True),
                              self._suppressed(logits[:, 1:], first=False)], 1).log_softmax(-1)
        return [float(logprobs[row, torch.arange(len(t), device=self.device),
                               torch.tensor(t, device=self.device)].sum())
                for row, t in enumerate(tokens)]

    def _logits(self, ids: torch.Tensor, memory: torch.Tensor, cache) -> torch.Tensor:
        hidden = self.model.model.decoder(input_ids=ids, encoder_hidden_states=memory,
                                          cache=cache, use_cache=True).last_hidden_state
        return self.model.proj_out(hidden).float()

    def _greedy(self, last: torch.Tensor, memory: torch.Tensor, cache,
                max_new_tokens: int) -> list["_Beam"]:
        rows = [_Beam(b, [], [], 0.0) for b in range(memory.shape[0])]
        for position in range(max_new_tokens):
            logprobs = self._suppressed(last, first=position == 0).log_softmax(-1)
            best, chosen = logprobs.max(-1)
            for b, row in enumerate(rows):
                if row.ended:
                    continue
                if int(chosen[b]) == self.vocabulary.end:
                    rows[b] = row._replace(ended=True)
                else:
                    rows[b] = row.grown(int(chosen[b]), float(best[b]), row.score + float(best[b]))
            if all(row.ended for row in rows):
                break
            # Finished rows are fed their end token; what they write is not read.
            ended = torch.tensor([row.ended for row in rows], device=self.device)
            step = torch.where(ended, torch.full_like(chosen, self.vocabulary.end), chosen)
            last = self._logits(step[:, None], memory, cache)[:, -1]
        return rows

    def _beams(self, last: torch.Tensor, memory: torch.Tensor, cache, max_new_tokens: int,
               beam_size: int) -> list["_Beam"]:
        """Beam search as CTranslate2 runs it with no length penalty: each segment's beams go on
        from its best 2 × beam_size candidates; a candidate among the first beam_size that ends
        is a finished hypothesis, and the next one that does not end takes its place; a segment
        is done when its best candidate ends (no later one can score higher), and its answer is
        the surest hypothesis it finished. At the token cap every live beam is finished."""
        rows = [_Beam(b, [], [], 0.0) for b in range(memory.shape[0])]
        finished: list[list[_Beam]] = [[] for _ in rows]
        for position in range(max_new_tokens):
            logprobs = self._suppressed(last, first=position == 0).log_softmax(-1)
            totals = logprobs + torch.tensor([r.score for r in rows], device=self.device)[:, None]
            going: list[tuple[int, _Beam]] = []  # (parent row, beam)
            last_step = position == max_new_tokens - 1
            for item, members in groupby(range(len(rows)), key=lambda i: rows[i].item):
                members = list(members)
                on, ended, done = _next_beams([rows[i] for i in members], totals[members],
                                              logprobs[members], beam_size,
                                              self.vocabulary.end, last_step)
                finished[item] += ended
                if not done:
                    going += [(members[parent], beam) for parent, beam in on]
            if not going:
                break
            cache.reorder_cache(torch.tensor([parent for parent, _ in going], device=self.device))
            rows = [beam for _, beam in going]
            items = torch.tensor([r.item for r in rows], device=self.device)
            step = torch.tensor([[r.tokens[-1]] for r in rows], device=self.device)
            last = self._logits(step, memory[items], cache)[:, -1]
        return [max(f, key=lambda b: b.score) for f in finished]

    def _suppressed(self, logits: torch.Tensor, first: bool) -> torch.Tensor:
        """logits: shape = (*, vocabulary); the tokens never written here set to -inf."""
        logits = logits.clone()
        logits[..., self._suppress] = -float("inf")
        if first:
            logits[..., self._suppress_begin] = -float("inf")
        # No timestamps are asked for, so none is written (CTranslate2's rule too).
        logits[..., self.vocabulary.timestamp_begin:] = -float("inf")
        return logits

    def text(self, tokens: list[int]) -> str:
        return self.vocabulary.text(tokens)


class _Beam(NamedTuple):
    """A transcript in the making: the segment it is of, its tokens and their log-probabilities,
    and their sum."""
    item: int
    tokens: list[int]
    logprobs: list[float]
    score: float
    ended: bool = False

    def grown(self, token: int, logprob: float, score: float) -> "_Beam":
        return self._replace(tokens=[*self.tokens, token], logprobs=[*self.logprobs, logprob],
                             score=score)


def _next_beams(rows: list[_Beam], totals: torch.Tensor, logprobs: torch.Tensor,
                beam_size: int, end: int, last_step: bool
                ) -> tuple[list[tuple[int, _Beam]], list[_Beam], bool]:
    """One step of one segment's beam search (`TorchWhisper._beams`): the beams that go on,
    each with the index in `rows` of the beam it grew from; the hypotheses finished at this
    step; and whether the segment is done. totals: each row's sums after each token,
    (len(rows), vocabulary)."""
    vocabulary = totals.shape[1]
    values, indices = totals.flatten().topk(min(2 * beam_size, totals.numel()))
    candidates = [(v, i // vocabulary, i % vocabulary)
                  for v, i in zip(values.tolist(), indices.tolist(), strict=True)]
    spare = iter([c for c in candidates[beam_size:] if c[2] != end])
    going, ended = [], []
    for candidate in candidates[:beam_size]:
        score, parent, token = candidate
        if token == end:
            ended.append(rows[parent]._replace(score=score, ended=True))
            candidate = next(spare, None)
            if candidate is None:
                continue
            score, parent, token = candidate
        elif last_step:  # at the token cap, unfinished
            ended.append(rows[parent].grown(token, float(logprobs[parent, token]), score))
            continue
        going.append((parent, rows[parent].grown(token, float(logprobs[parent, token]), score)))
    return going, ended, last_step or candidates[0][2] == end
