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
    in stream order (`voice_of`, called as its answer is journaled)."""

    def __init__(self, session_id: str, engine: InferenceEngine, settings: VoiceSettings
                 ) -> None:
        self.session_id, self.engine = session_id, engine
        self.clusterer = VoiceClusterer(settings)

    def embed(self, segment: Segment) -> asyncio.Future:
        return asyncio.ensure_future(self.engine.embed(segment.audio))

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
