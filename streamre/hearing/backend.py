"""What hearing asks of an engine that runs Whisper (`WhisperBackend`: CTranslate2's or
torch's), and the encoder's states of a call's segments, made once for every pass over them."""

from __future__ import annotations

from typing import Callable, Protocol, Sequence, TypeVar

import numpy as np

from streamre.hearing.features import window_log_mel
from streamre.hearing.guards import Decoded
from streamre.hearing.prompt import WhisperVocabulary

T = TypeVar("T")
R = TypeVar("R")


def worker_shares(items: Sequence[int], workers: int) -> list[list[int]]:
    """`items` (at least one) split in order into as many even shares as there are workers
    for them: what `WhisperBackend.each` runs side by side."""
    return [list(share) for share in np.array_split(items, min(workers, len(items)))]


class WhisperBackend(Protocol):
    """An engine that runs a pretrained Whisper: the encoder once a segment and window, then
    greedy or beam-search decoding after the model's own prompt (start of transcript, English,
    no timestamps) and previous text if given, and the score of a given transcript."""

    n_mels: int
    vocabulary: WhisperVocabulary
    workers: int  # calls `each` runs side by side

    def each(self, call: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """call(item) for each item, in order: side by side where the engine has workers, the
        engine calls `call` makes included."""

    def encode(self, features: np.ndarray) -> object:
        """features: shape = (B, n_mels, frames), one window. The encoder's states, shape =
        (B, frames // 2, d_model): rows are taken with a list of indices."""

    def decode(self, states, max_new_tokens: int,
               previous: Sequence[int] = (), beam_size: int = 1) -> list[Decoded]:
        """states: from `encode`; previous: the ids of previous text for every row;
        beam_size 1 is greedy. With beams, the surest sequence by its summed log-probabilities
        (no length penalty)."""

    def score(self, states, texts: Sequence[str], previous: Sequence[int] = ()) -> list[float]:
        """The summed log-probability of each text's tokens, after the prompt, on the audio of
        the first row of `states`: how much Whisper's ear prefers one transcript to another."""

    def text(self, tokens: list[int]) -> str: ...


class EncodedParts:
    """Each part's encoder states in each window it is heard in, made once: the first pass,
    a retry, the prompted pass and the scoring of names all read them."""

    def __init__(self, backend: WhisperBackend, parts: list[np.ndarray]) -> None:
        self.backend, self.parts = backend, parts
        self._states: dict[tuple[int, int], tuple[object, int]] = {}  # (part, window) -> row

    def rows(self, parts: list[int], window: int):
        """The states of these parts in this window, in their order."""
        missing = [i for i in parts if (i, window) not in self._states]
        if missing:
            states = self._encode(missing, window)
            for row, i in enumerate(missing):
                self._states[i, window] = (states, row)
        batches = [self._states[i, window] for i in parts]
        if any(states is not batches[0][0] for states, _ in batches):
            return self._encode(parts, window)  # made in different calls: made again together
        return batches[0][0][[row for _, row in batches]]

    def _encode(self, parts: list[int], window: int):
        """One call, or the engine's workers' share each side by side, joined."""
        backend = self.backend
        shares = worker_shares(parts, backend.workers)
        states = backend.each(lambda share: backend.encode(window_log_mel(
            [self.parts[i] for i in share], window, backend.n_mels)), shares)
        return states[0] if len(states) == 1 else np.concatenate(states)
