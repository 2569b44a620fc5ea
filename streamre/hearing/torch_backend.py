"""Whisper on torch (transformers' `WhisperForConditionalGeneration`): for CUDA, in float16 or
bfloat16, and wherever CTranslate2 is missing.

transformers' encoder insists on 3000 frames; hearing pads to smaller windows, so the encoder's
layers are run here on the window's frames with the first positions, as CTranslate2 does.
Decoding is greedy with a key/value cache, with the same suppressed tokens as CTranslate2.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from streamre.hearing.guards import Decoded
from streamre.hearing.prompt import WhisperVocabulary


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
        self.device = next(model.parameters()).device
        vocab = model.config.vocab_size
        self._suppress = torch.tensor([t for t in suppress if 0 <= t < vocab], dtype=torch.long,
                                      device=self.device)
        self._suppress_begin = torch.tensor([t for t in suppress_begin if 0 <= t < vocab],
                                            dtype=torch.long, device=self.device)

    @torch.inference_mode()
    def encode(self, features: np.ndarray) -> torch.Tensor:
        """(B, n_mels, frames) features to the encoder's (B, frames // 2, d_model) states."""
        encoder = self.model.model.encoder
        x = torch.from_numpy(np.ascontiguousarray(features)).to(self.device, encoder.conv1.weight.dtype)
        x = nn.functional.gelu(encoder.conv1(x))
        x = nn.functional.gelu(encoder.conv2(x)).transpose(1, 2)
        if x.shape[1] > encoder.embed_positions.weight.shape[0]:
            raise ValueError("features longer than Whisper's 30 s window")
        hidden = x + encoder.embed_positions.weight[:x.shape[1]]
        for layer in encoder.layers:
            hidden = layer(hidden, None)
        return encoder.layer_norm(hidden)

    @torch.inference_mode()
    def decode(self, features: np.ndarray, max_new_tokens: int,
               previous: Sequence[int] = ()) -> list[Decoded]:
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        memory = self.encode(features)
        batch, prompt = memory.shape[0], self.vocabulary.prompt_after(previous)
        start = len(prompt) - len(self.vocabulary.prompt)  # where the transcript starts
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        step = torch.tensor([prompt] * batch, device=self.device)
        tokens: list[list[int]] = [[] for _ in range(batch)]
        scores: list[list[float]] = [[] for _ in range(batch)]
        ended = [False] * batch
        no_speech: list[float | None] = [None] * batch
        for position in range(max_new_tokens):
            hidden = self.model.model.decoder(input_ids=step, encoder_hidden_states=memory,
                                              cache=cache, use_cache=True).last_hidden_state
            logits = self.model.proj_out(hidden).float()
            if position == 0 and self.vocabulary.no_speech is not None:  # read at the start token
                no_speech = logits[:, start].softmax(-1)[:, self.vocabulary.no_speech].tolist()
            logprobs = self._suppressed(logits[:, -1], first=position == 0).log_softmax(-1)
            best, chosen = logprobs.max(-1)
            for b in range(batch):
                if ended[b]:
                    continue
                if int(chosen[b]) == self.vocabulary.end:
                    ended[b] = True
                else:
                    tokens[b].append(int(chosen[b]))
                    scores[b].append(float(best[b]))
            if all(ended):
                break
            # Finished rows are fed their end token; what they write is not read.
            step = torch.where(torch.tensor(ended, device=self.device),
                               torch.full_like(chosen, self.vocabulary.end), chosen)[:, None]
        return [Decoded(t, s, n, e) for t, s, n, e in zip(tokens, scores, no_speech, ended,
                                                            strict=True)]

    def _suppressed(self, logits: torch.Tensor, first: bool) -> torch.Tensor:
        logits = logits.clone()
        logits[:, self._suppress] = -float("inf")
        if first:
            logits[:, self._suppress_begin] = -float("inf")
        # No timestamps are asked for, so none is written (CTranslate2's rule too).
        logits[:, self.vocabulary.timestamp_begin:] = -float("inf")
        return logits

    def text(self, tokens: list[int]) -> str:
        return self.vocabulary.text(tokens)
