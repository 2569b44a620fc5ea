"""Voices in the server: the speaker encoder `serve --voices on` loads, looked for before the
server listens, and each session's voices (`SessionVoices`). Naming a voice is one of the
changes people make (`streamre.server.corrections`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from streamre import SAMPLE_RATE
from streamre.audio import Segment
from streamre.config import ServeConfig
from streamre.inference.engine import InferenceEngine
from streamre.voices.clusterer import VoiceClusterer, VoiceSettings
from streamre.voices.encoder import SpeakerEncoder, weights_path
from streamre.voices.turns import change_points, cut_samples, voice_audio

log = logging.getLogger("streamre.session")


def voice_encoder(config: ServeConfig) -> Callable[[], SpeakerEncoder] | None:
    """What loads the speaker encoder with `--voices on` (None: off). Its weights are found
    now, so a server that could not tell voices apart says so before it listens
    (`EncoderMissing` says what to install)."""
    if config.voices == "off":
        return None
    weights = weights_path()
    return lambda: SpeakerEncoder(weights)


class SessionVoices:
    """One session's voices: each final embedded beside its hearing (`embed`), then numbered
    in stream order (`voice_of`, called as its answer is journaled); with `--voice-turns on`,
    a long segment is first looked at for where its voice changes (`turns`)."""

    def __init__(self, session_id: str, engine: InferenceEngine, settings: VoiceSettings
                 ) -> None:
        self.session_id, self.engine, self.settings = session_id, engine, settings
        self.clusterer = VoiceClusterer(settings)

    async def turns(self, segment: Segment) -> list[int]:
        """Where the segment's voice changes, in samples into it: none if it is one voice's,
        or if its windows could not be embedded (logged: it is heard whole)."""
        try:
            windows = await self.engine.turn_windows(segment.audio)
        except Exception:
            log.exception("could not look for turns in %s/%s", self.session_id, segment.index)
            return []
        if windows is None:
            return []
        return cut_samples(segment.audio, change_points(windows, self.settings.turn_threshold))

    def embed(self, segment: Segment) -> asyncio.Future:
        return asyncio.ensure_future(self.engine.embed(voice_audio(segment)))

    async def voice_of(self, segment: Segment, embedding: asyncio.Future, heard: bool
                       ) -> int | None:
        """A heard segment's voice; None without an encoder, for a segment that was not heard
        (nor counted among the voices), or if its embedding failed (logged)."""
        if not heard:
            embedding.cancel()
            return None
        try:
            found = await embedding
        except Exception:
            log.exception("could not embed the voice of %s/%s", self.session_id, segment.index)
            return None
        if found is None:
            return None
        return self.clusterer.assign(found, len(segment.audio) / SAMPLE_RATE)
