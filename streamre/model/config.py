"""The model's config (`config.json`): its Whisper backbone, alignment and inputs."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig, WhisperConfig

from streamre.model.orders import ORDERS

ALIGNMENTS = ("mcam", "none")
MODALITIES = (["speech"], ["speech", "text"])
# Rows of the presence table: each input, present or absent.
SPEECH_PRESENT, SPEECH_ABSENT, TEXT_PRESENT, TEXT_ABSENT = range(4)


class MCAMConfig(PretrainedConfig):
    """The model's config, saved as `config.json`.

    Args:
        whisper: the `WhisperConfig` of the backbone, as a dict.
        alignment: "mcam" (the adapter) or "none" (encoder straight to decoder).
        relations: the relation labels, one relation prompt each.
        adapter_layers: stride-2 convolutions of the length adapter (0: none).
        text_encoder_layers: layers of the text path (training only, unless the model reads text).
        projection_layers: shared projection layers after the adapter.
        decoder_prompt: token ids the decoder is given before it writes.
        modalities: ["speech"], or ["speech", "text"] for a model that reads text too.
        orders: the element orders the facts are written in, each with its order token
            (`streamre.model.orders`); empty: one order, REBEL's, heads chained.
        relation_heads: CNN heads over the speech encoder guess the relations, and a prompt
            of them is given after `<facts>` (`streamre.model.relation_heads`).
    """

    model_type = "streamre-mcam"

    def __init__(
        self,
        whisper: dict[str, Any] | None = None,
        alignment: str = "mcam",
        relations: list[str] | None = None,
        adapter_layers: int = 0,
        text_encoder_layers: int = 2,
        projection_layers: int = 1,
        decoder_prompt: list[int] | None = None,
        modalities: list[str] | None = None,
        orders: list[str] | None = None,
        relation_heads: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
        self.whisper = dict(whisper or {})
        self.alignment = alignment
        self.relations = list(relations or [])
        self.adapter_layers = adapter_layers
        self.text_encoder_layers = text_encoder_layers
        self.projection_layers = projection_layers
        # Token ids the decoder is given before it writes (Whisper's start of transcript, ...).
        self.decoder_prompt = list(decoder_prompt or [])
        self.modalities = list(modalities or ["speech"])
        if self.modalities not in MODALITIES:
            raise ValueError(f"modalities must be one of {MODALITIES}, got {self.modalities!r}")
        self.orders = list(orders or [])
        if not set(self.orders) <= set(ORDERS) or len(set(self.orders)) != len(self.orders):
            raise ValueError(f"orders must be distinct, each one of {ORDERS}: {self.orders!r}")
        self.relation_heads = bool(relation_heads)
        if self.relation_heads and (self.modalities != ["speech"] or not self.relations):
            raise ValueError("relation heads need a speech-only model with named relations")

    @property
    def whisper_config(self) -> WhisperConfig:
        config = WhisperConfig(**self.whisper)
        config._attn_implementation = "sdpa"
        return config
