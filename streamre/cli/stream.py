"""`streamre stream`: a reference client. Sends a file as PCM16 frames, prints every message.

Given several URLs (instances of one cluster), it fails over: when the connection is lost
before `done`, or an instance refuses it, the next URL is tried (round the list, with a short
pause), and the file goes on from the end of the last segment that was answered, so nothing
that was not yet heard is lost (a segment heard but not answered before the loss may be heard
twice).
"""

from __future__ import annotations

import asyncio
import json
import sys
from urllib.parse import urlencode

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from streamre.audio.pcm import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, read_audio_native
from streamre.protocol import start_message, stop_message

FAILOVER_TRIES = 12  # connections tried after a loss, round the URLs, before giving up
FAILOVER_PAUSE_S = 0.5
REFUSED = (1008, 1009, 4400)  # closes that another instance would give too: no failover


class _Lost(Exception):
    """The connection ended before `done`: with its close code (None if never open)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(reason)
        self.code = code


async def stream_file(path: str, urls: list[str], room: str = "default",
                      realtime: bool = False, token: str | None = None,
                      speaker: str | None = None, frame_ms: int = 100, out=None) -> int:
    out = out or sys.stdout
    if not 10 <= frame_ms <= 1000:
        raise ValueError("--frame-ms must be from 10 to 1000")
    samples, rate = read_audio_native(path)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"{path}: {rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    # The room in the URL too, for a proxy that spreads rooms over instances (deploy/).
    urls = [url + ("&" if "?" in url else "?") + urlencode({"room": room}) for url in urls]
    start = json.dumps(start_message(room, rate, speaker or None))
    sent_from, tries, attempt = 0, 0, 0  # sample the current connection began at
    while True:
        url = urls[attempt % len(urls)]
        answered = [sent_from]  # the end of the last answered segment, in samples
        try:
            await _one_connection(url, headers, start, samples[sent_from:], rate, frame_ms,
                                  realtime, out, answered, sent_from)
            return 0
        except _Lost as e:
            if len(urls) == 1 or tries >= FAILOVER_TRIES or e.code in REFUSED:
                print(f"streamre stream: {e}", file=sys.stderr)
                return 1
            tries = 0 if max(answered) > sent_from else tries + 1
            sent_from, attempt = max(answered), attempt + 1
            print(f"streamre stream: {e}; going on at {sent_from / rate:.2f} s with "
                  f"{urls[attempt % len(urls)]}", file=sys.stderr)
            await asyncio.sleep(FAILOVER_PAUSE_S)


async def _one_connection(url, headers, start: str, samples: np.ndarray, rate: int,
                          frame_ms: int, realtime: bool, out, answered: list[int],
                          offset: int) -> None:
    """Stream `samples` (the file from sample `offset`) to `url` until `done`, appending to
    `answered` where each answered segment ends in the file; raises `_Lost` if the
    connection ends before `done`."""
    try:
        async with connect(url, additional_headers=headers, max_size=None,
                           open_timeout=10) as ws:
            await ws.send(start)
            sender = asyncio.create_task(_send_audio(ws, samples, rate, frame_ms, realtime))
            try:
                async for message in ws:
                    if not isinstance(message, str):
                        continue  # the protocol sends no binary frames to clients
                    print(message, file=out, flush=True)
                    data = json.loads(message)
                    if data.get("type") == "triplets" and data.get("source") == "speech":
                        answered.append(offset + round(data["end"] * rate))
                    if data.get("type") == "done":
                        return
            except ConnectionClosed:
                pass
            finally:
                sender.cancel()
            code = ws.close_code
    except InvalidStatus as e:
        raise _Lost(None, f"{url} refused the connection: HTTP "
                          f"{e.response.status_code}") from None
    except OSError as e:
        raise _Lost(None, f"could not connect to {url}: {e}") from None
    raise _Lost(code, f"connection to {url} closed before 'done' (code {code})")


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
