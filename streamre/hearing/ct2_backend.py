"""Whisper on CTranslate2: the engine faster-whisper and the streaming peers run on the CPU.

CTranslate2 takes features of any window up to 30 s (fewer than 3000 frames too), and decodes
greedily in C++; int8 weights are its fastest on a CPU (`docs/evaluation.md` has the measures).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from streamre.hearing.backend import R, T
from streamre.hearing.guards import Decoded
from streamre.hearing.prompt import WhisperVocabulary

COMPUTE_TYPES = ("auto", "int8", "int8_float32", "int16", "float32", "float16", "bfloat16",
                 "int8_float16", "int8_bfloat16")
CPU_COMPUTE_TYPE = "int8"  # measured fastest on 2 cores at the same WER (docs/evaluation.md)


class CT2Whisper:
    """A `WhisperBackend` over `ctranslate2.models.Whisper`.

    Args:
        folder: the CTranslate2 model folder (its `tokenizer.json` and `config.json`).
        files: the files that make its `model.bin`, in order (one, or the parts of a split one).
        device: cpu or cuda.
        compute_type: CTranslate2's name; auto is int8 on a CPU and float16 on CUDA.
        threads: CPU threads of a call made alone (0: CTranslate2's default).
        workers: calls `each` runs side by side, one CPU thread each, on replicas of the
            model (1: none). Whisper's decoder is too small for two threads to share a call
            well: on 2 cores eight segments' prompted passes took 0.6 of the time side by
            side, and one call took about as long on one thread as on two
            (docs/evaluation.md).
    """

    def __init__(self, folder: Path, files: list[Path], device: str = "cpu",
                 compute_type: str = "auto", threads: int = 0, workers: int = 1) -> None:
        import ctranslate2

        if compute_type not in COMPUTE_TYPES:
            raise ValueError(f"compute type must be one of {', '.join(COMPUTE_TYPES)}, "
                             f"not {compute_type!r}")
        if compute_type == "auto":
            compute_type = CPU_COMPUTE_TYPE if device == "cpu" else "float16"
        self.compute_type = compute_type
        in_memory = None
        if files != [folder / "model.bin"]:  # a split model: its parts joined in memory
            in_memory = {"model.bin": b"".join(p.read_bytes() for p in files)}
            for extra in ("config.json", "vocabulary.json", "vocabulary.txt"):
                if (folder / extra).is_file():
                    in_memory[extra] = (folder / extra).read_bytes()
        def whisper(intra: int, inter: int):
            return ctranslate2.models.Whisper(
                str(folder), device=device.split(":")[0],
                device_index=int(device.split(":")[1]) if ":" in device else 0,
                compute_type=compute_type, intra_threads=intra, inter_threads=inter,
                files=in_memory)

        self.model = whisper(threads, 1)
        self.workers = max(1, workers) if device == "cpu" else 1
        self._local = threading.local()  # marks the pool's threads
        self._replicas = whisper(1, self.workers) if self.workers > 1 else None
        self._pool = ThreadPoolExecutor(self.workers, "whisper-worker", self._mark_worker) \
            if self._replicas is not None else None
        self.vocabulary = WhisperVocabulary.from_file(folder / "tokenizer.json",
                                                      self.model.is_multilingual)
        self.n_mels = self.model.n_mels

    def each(self, call: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """call(item) for each item, in order; side by side on the workers where there are
        two or more, and the calls to this engine that `call` makes run there, on a replica
        of one thread. Called on a worker, it runs the items there, one after another."""
        if self._pool is None or len(items) < 2 or self._on_worker():
            return [call(item) for item in items]
        return list(self._pool.map(call, items))

    def _mark_worker(self) -> None:
        self._local.worker = True

    def _on_worker(self) -> bool:
        return getattr(self._local, "worker", False)

    def _engine(self):
        return self._replicas if self._on_worker() else self.model

    def encode(self, features: np.ndarray) -> np.ndarray:
        """(B, n_mels, frames) features to the encoder's (B, frames // 2, d_model) states, kept
        so that every pass over a segment (and its scoring) runs the encoder once."""
        import ctranslate2

        states = self._engine().encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features, dtype=np.float32)),
            to_cpu=True)
        return np.array(states, dtype=np.float32)

    def decode(self, states: np.ndarray, max_new_tokens: int,
               previous: Sequence[int] = (), beam_size: int = 1) -> list[Decoded]:
        import ctranslate2

        prompt = self.vocabulary.prompt_after(previous)
        # CTranslate2 4.8's Whisper writes at most half of max_length new tokens (measured), where
        # the documentation has prompt and new tokens together: room for both, cut here.
        results = self._engine().generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(states)),
            [prompt] * states.shape[0], beam_size=beam_size,
            max_length=2 * (len(prompt) + max_new_tokens),
            return_scores=True, return_no_speech_prob=True, return_logits_vocab=False,
            length_penalty=0)
        decoded = []
        for r in results:
            tokens = [t for t in r.sequences_ids[0] if t != self.vocabulary.end]
            ended = len(tokens) < max_new_tokens
            tokens = tokens[:max_new_tokens]
            # With length_penalty 0 the score is the sum of the tokens' log-probabilities;
            # CTranslate2 gives no per-token values, so each token is given the mean.
            total = r.scores[0] if r.scores else 0.0
            mean = total / max(1, len(tokens) + 1)  # the end token is scored too
            decoded.append(Decoded(tokens, [mean] * len(tokens), r.no_speech_prob, ended))
        return decoded

    def score(self, states: np.ndarray, texts: Sequence[str],
              previous: Sequence[int] = ()) -> list[float]:
        import ctranslate2

        tokens = [self.vocabulary.tokens_of(t) for t in texts]
        rows = np.ascontiguousarray(np.repeat(states[:1], len(texts), axis=0))
        # align() scores the given tokens after the prompt. Its alignments are not needed, so
        # they are made over one frame: the same probabilities, 15-25 % sooner (measured).
        results = self._engine().align(ctranslate2.StorageView.from_array(rows),
                                   self.vocabulary.prompt_after(previous), tokens,
                                   [1] * len(texts))
        return [float(np.log(np.maximum(r.text_token_probs, 1e-30)).sum()) for r in results]

    def text(self, tokens: list[int]) -> str:
        return self.vocabulary.text(tokens)
