"""`streamre stream`: a reference client. Sends a file as PCM16 frames, prints every message."""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from streamre.audio.pcm import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, read_audio_native
from streamre.protocol import start_message, stop_message


async def stream_file(path: str, url: str, room: str = "default", realtime: bool = False,
                      token: str | None = None, speaker: str | None = None,
                      frame_ms: int = 100, out=None) -> int:
    out = out or sys.stdout
    if not 10 <= frame_ms <= 1000:
        raise ValueError("--frame-ms must be from 10 to 1000")
    samples, rate = read_audio_native(path)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"{path}: {rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    start = start_message(room, rate, speaker or None)
    try:
        async with connect(url, additional_headers=headers, max_size=None) as ws:
            await ws.send(json.dumps(start))
            sender = asyncio.create_task(_send_audio(ws, samples, rate, frame_ms, realtime))
            done = False
            try:
                async for message in ws:
                    if not isinstance(message, str):
                        continue  # the protocol sends no binary frames to clients
                    print(message, file=out, flush=True)
                    if json.loads(message).get("type") == "done":
                        done = True
            except ConnectionClosed:
                pass
            sender.cancel()
            code = ws.close_code
    except InvalidStatus as e:
        raise OSError(f"server refused the connection: HTTP {e.response.status_code}") from None
    if not done:
        print(f"streamre stream: connection closed before 'done' (code {code})", file=sys.stderr)
        return 1
    return 0


async def _send_audio(ws, samples: np.ndarray, rate: int, frame_ms: int, realtime: bool) -> None:
    step = rate * frame_ms // 1000
    loop = asyncio.get_running_loop()
    began = loop.time()
    for i, offset in enumerate(range(0, len(samples), step)):
        await ws.send(samples[offset:offset + step].astype("<i2").tobytes())
        if realtime:
            await asyncio.sleep(max(0.0, began + (i + 1) * frame_ms / 1000 - loop.time()))
        else:
            await asyncio.sleep(0)
    await ws.send(json.dumps(stop_message()))
