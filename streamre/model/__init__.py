"""The speech-to-triplet model: MCAM on Whisper, its tokenizer, target format and checkpoints."""

from streamre.model.checkpoint import (
    DEFAULT_ALIGNED_MODEL, create_checkpoint, load_checkpoint, resolve_model)
from streamre.model.linearize import linearize, parse, target_text
from streamre.model.mcam import MCAMConfig, MCAMModel

__all__ = ["DEFAULT_ALIGNED_MODEL", "create_checkpoint", "load_checkpoint", "resolve_model",
           "linearize", "parse", "target_text", "MCAMConfig", "MCAMModel"]
