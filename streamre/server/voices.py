"""Voices in the server: the speaker encoder `serve --voices on` loads, looked for before the
server listens. Naming a voice is one of the changes people make (`streamre.server.corrections`);
telling voices apart is each session's (`streamre.server.session`)."""

from __future__ import annotations

from typing import Callable

from streamre.config import ServeConfig
from streamre.voices.encoder import SpeakerEncoder, weights_path


def voice_encoder(config: ServeConfig) -> Callable[[], SpeakerEncoder] | None:
    """What loads the speaker encoder with `--voices on` (None: off). Its weights are found
    now, so a server that could not tell voices apart says so before it listens
    (`EncoderMissing` says what to install)."""
    if config.voices == "off":
        return None
    weights = weights_path()
    return lambda: SpeakerEncoder(weights)
