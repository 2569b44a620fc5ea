"""The speaker encoder beside hearing: each final's audio in, its speaker embedding out, on a
thread of its own, so a segment is embedded while it is heard or read (or waits to be), not
after. Requests that come while a call runs are all taken by the next call: batched across
streams. The encoder costs a few milliseconds a segment on two cores (benchmarks/README.md)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from streamre.inference.seam import VoiceEncoder

MAX_BATCH = 32  # segments in one call


class SpeakerEmbeddings:
    """Args: encoder: loaded and warmed up."""

    def __init__(self, encoder: VoiceEncoder) -> None:
        self.encoder = encoder
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamre-voices")
        self._pending: list[tuple[np.ndarray, asyncio.Future]] = []
        self._running: asyncio.Task | None = None

    async def embed(self, audio: np.ndarray) -> np.ndarray:
        """A segment's (16 kHz) speaker embedding, a unit vector."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((audio, future))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                embedded = await loop.run_in_executor(
                    self._executor, self.encoder.embed, [audio for audio, _ in batch])
            except Exception as e:  # a bad batch fails its own segments, not the server
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, future), row in zip(batch, embedded, strict=True):
                if not future.done():
                    future.set_result(row)

    async def close(self) -> None:
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)
        self._executor.shutdown(wait=True)
