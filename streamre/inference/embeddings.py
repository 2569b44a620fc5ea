"""The speaker encoder beside hearing: each final's audio in, its speaker embedding out, on a
thread of its own, so a segment is embedded while it is heard or read (or waits to be), not
after. Requests that come while a call runs are all taken by the next call: batched across
streams. The encoder costs a few milliseconds a segment on two cores (benchmarks/README.md).
With `--voice-turns on` it also embeds a long segment's windows, before it is heard, to find
where its voice changes (`streamre.voices.turns`)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from streamre.inference.seam import VoiceEncoder
from streamre.voices.turns import window_starts

MAX_BATCH = 32  # segments in one call


class SpeakerEmbeddings:
    """Args: encoder: loaded and warmed up."""

    def __init__(self, encoder: VoiceEncoder) -> None:
        self.encoder = encoder
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamre-voices")
        # Each request: its audio, its future, and whether it asks for the turns' windows.
        self._pending: list[tuple[np.ndarray, asyncio.Future, bool]] = []
        self._running: asyncio.Task | None = None

    async def embed(self, audio: np.ndarray) -> np.ndarray:
        """A segment's (16 kHz) speaker embedding, a unit vector."""
        return await self._ask(audio, windows=False)

    async def turn_windows(self, audio: np.ndarray) -> np.ndarray:
        """The unit embeddings of a segment's windows for finding turns (`window_starts`):
        shape = (windows, dim); none for a segment too short to look in."""
        return await self._ask(audio, windows=True)

    async def _ask(self, audio: np.ndarray, windows: bool) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((audio, future, windows))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            for windows in (True, False):  # turns first: their segments wait to be heard
                asked = [(audio, future) for audio, future, w in batch if w is windows]
                if asked:
                    await self._call(asked, self._windows if windows else self.encoder.embed)

    def _windows(self, audio: list[np.ndarray]) -> list[np.ndarray]:
        return self.encoder.embed_windows(audio, window_starts)

    async def _call(self, asked: list[tuple[np.ndarray, asyncio.Future]],
                    call: Callable[[list[np.ndarray]], object]) -> None:
        loop = asyncio.get_running_loop()
        try:
            answers = await loop.run_in_executor(self._executor, call,
                                                 [audio for audio, _ in asked])
        except Exception as e:  # a bad batch fails its own segments, not the server
            for _, future in asked:
                if not future.done():
                    future.set_exception(e)
            return
        for (_, future), answer in zip(asked, answers, strict=True):
            if not future.done():
                future.set_result(answer)

    async def close(self) -> None:
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)
        self._executor.shutdown(wait=True)
