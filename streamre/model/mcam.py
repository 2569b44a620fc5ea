"""The aligned speech-to-triplet model (MCAM) on a Whisper backbone, in the Hugging Face shape.

    waveform (B, T) ──log-mel (80 bands, 10 ms)──▶ (B, 80, F) ──Whisper encoder, on the
    segment's own length──▶ H (B, S, D), S = F / 2 ──alignment──▶ memory ──Whisper decoder──▶
    PROMPT transcript <facts> <triplet> HEAD<subj> TAIL<obj> RELATION … <|endoftext|>

`alignment="none"` (the LNA-ED baseline): the decoder reads the encoder output, as in Whisper.
`alignment="mcam"` (the paper's adapter): a length adapter, R relation queries whose outputs are
prepended as a soft prompt, and shared projection layers that read speech as well as text.
Training adds a text path (the transcript's tokens, embedded with the decoder's own table,
through a small text encoder) and a mixed path (`streamre.training.objective`). The projection
starts as the identity and the length adapter has no layers by default.

With `modalities=["speech", "text"]` (after IMAGE) the model reads text too, through the same
text path: the memory is the speech part, then the text part, each with a learnt embedding
saying whether it is present (a missing one is a single "absent" position). Given text, the
text is the transcript: forced after the prompt, only the facts are decoded. With `orders`,
the facts are written in element orders (`streamre.model.orders`), one decoding per order;
with `relation_heads`, a prompt of the relations heard is given after `<facts>`. Greedy
generation, for speech, in orders or from text, is `streamre.model.generation`.

Whisper is trained on 30 s windows; here the encoder runs on each segment's own frames
(positions sliced), with padding masked in every attention, so batching never changes a
segment's output.

The papers named here: `docs/papers.md`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.models.whisper.modeling_whisper import (
    WhisperDecoder, WhisperEncoder, WhisperEncoderLayer)

from streamre.model.config import (  # noqa: F401 (ALIGNMENTS, MODALITIES: re-exported)
    ALIGNMENTS, MODALITIES, SPEECH_ABSENT, SPEECH_PRESENT, TEXT_ABSENT, TEXT_PRESENT, MCAMConfig)
from streamre.model.alignment import (LengthAdapter, RelationQueries, causal_bias, encode_own_length,
                                      padding_bias)
from streamre.whisper.features import HOP, prepare_waveforms
from streamre.model.generation import Generation
from streamre.model.relation_heads import RelationHeads

@dataclass
class DecoderOutput:
    logits: torch.Tensor  # (B, L, V)
    loss: torch.Tensor | None  # mean cross-entropy over the labelled tokens


class MCAMModel(Generation, PreTrainedModel):
    """Waveforms to transcript-and-triplet tokens (see the module); made from an `MCAMConfig`,
    loaded and saved as a Hugging Face folder (`streamre.model.checkpoint`)."""

    config_class = MCAMConfig
    base_model_prefix = "mcam"
    main_input_name = "input_values"
    _supports_sdpa = True

    def __init__(self, config: MCAMConfig) -> None:
        super().__init__(config)
        whisper = config.whisper_config
        self.encoder = WhisperEncoder(whisper)
        self.decoder = WhisperDecoder(whisper)  # its token table is also the output layer
        d_model = whisper.d_model
        self.adapter = self.prompts = self.text_encoder = self.projection = self.ctc_blank = None
        if config.alignment == "mcam":
            self.adapter = LengthAdapter(d_model, config.adapter_layers)
            self.prompts = RelationQueries(d_model, max(1, len(config.relations)),
                                           whisper.encoder_attention_heads)
            self.text_encoder = nn.ModuleList(
                WhisperEncoderLayer(whisper) for _ in range(config.text_encoder_layers))
            self.projection = nn.ModuleList(
                WhisperEncoderLayer(whisper) for _ in range(config.projection_layers))
            for layer in self.projection:  # residual branches at zero: starts as the identity
                for linear in (layer.self_attn.out_proj, layer.fc2):
                    nn.init.zeros_(linear.weight)
                    nn.init.zeros_(linear.bias)
            # The CTC "blank" entry beside the batch's text token features (training only).
            self.ctc_blank = nn.Parameter(torch.randn(d_model) * 0.02)
        self.presence = None
        if self.takes_text:
            if self.text_encoder is None:
                self.text_encoder = nn.ModuleList(
                    WhisperEncoderLayer(whisper) for _ in range(config.text_encoder_layers))
            self.presence = nn.Embedding(4, d_model)
            nn.init.normal_(self.presence.weight, std=0.02)
        self.relation_heads = RelationHeads(len(config.relations)) if config.relation_heads \
            else None
        self.post_init()

    @property
    def takes_text(self) -> bool:
        return "text" in self.config.modalities

    def _init_weights(self, module: nn.Module) -> None:
        # Whisper's parts initialise themselves; the adapter keeps what __init__ gave it.
        pass

    @property
    def window_samples(self) -> int:
        """The longest audio the encoder takes in one piece (Whisper's 30 s)."""
        return self.encoder.max_source_positions * 2 * HOP

    prepare_waveforms = staticmethod(prepare_waveforms)

    # -- the parts of every path ------------------------------------------------------------

    def encode_speech(self, input_values: torch.Tensor, attention_mask: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Whisper's encoder on each segment's own length: (B, S, D) and the (B, S) mask."""
        return encode_own_length(self.encoder, input_values, attention_mask)

    def speech_features(self, input_values: torch.Tensor, attention_mask: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """H_s: the encoder output, through the length adapter when aligned; and its mask."""
        hidden, mask = self.encode_speech(input_values, attention_mask)
        if self.adapter is None or not len(self.adapter.convs):
            return hidden, mask
        hidden = self.adapter(hidden)
        lengths = self.adapter.output_lengths(mask.sum(-1)).clamp(min=1, max=hidden.shape[1])
        return hidden, torch.arange(hidden.shape[1], device=hidden.device)[None, :] < \
            lengths[:, None]

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """H_t: transcript tokens, embedded with the decoder's table and positions, through the
        text encoder: (B, T, D)."""
        hidden = self.decoder.embed_tokens(input_ids) + \
            self.decoder.embed_positions.weight[: input_ids.shape[1]]
        bias = padding_bias(attention_mask, hidden.dtype)
        for layer in self.text_encoder:
            hidden = layer(hidden, bias)
        return hidden

    def relation_prompts(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.prompts(hidden, ~mask.bool())

    def project(self, hidden: torch.Tensor, mask: torch.Tensor, prompts: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepend the R prompts, run the shared projection layers: the decoder's memory."""
        mask = mask.bool()
        if prompts is not None:
            hidden = torch.cat([prompts, hidden], dim=1)
            mask = torch.cat([torch.ones(mask.shape[0], prompts.shape[1], dtype=torch.bool,
                                         device=mask.device), mask], dim=1)
        bias = padding_bias(mask, hidden.dtype)
        for layer in self.projection:
            hidden = layer(hidden, bias)
        return hidden, mask

    def decoder_hidden(self, input_ids: torch.Tensor, memory: torch.Tensor,
                       memory_mask: torch.Tensor, cache=None, real: torch.Tensor | None = None
                       ) -> torch.Tensor:
        """Whisper's decoder over (B, L) tokens reading the memory; with `cache` (an
        `EncoderDecoderCache`), only the new tokens are given and the cache grows. `real`
        (B, past + L), for left-padded rows: which tokens so far are not padding; positions
        then count real tokens only, and padding is never attended to."""
        decoder = self.decoder
        past = cache.get_seq_length() if cache is not None else 0
        if real is None:
            positions = decoder.embed_positions.weight[past: past + input_ids.shape[1]]
            causal = causal_bias(input_ids.shape[1], past, memory.dtype, memory.device)
        else:
            at = (real.long().cumsum(-1) - 1).clamp(min=0)[:, past:]
            positions = decoder.embed_positions.weight[at]
            causal = causal_bias(input_ids.shape[1], past, memory.dtype, memory.device, real)
        hidden = decoder.embed_tokens(input_ids) + positions
        cross = padding_bias(memory_mask, hidden.dtype)
        for layer in decoder.layers:
            hidden = layer(hidden, causal, memory, cross, past_key_values=cache,
                           use_cache=cache is not None)
        return decoder.layer_norm(hidden)

    def decode(self, memory: torch.Tensor, memory_mask: torch.Tensor,
               decoder_input_ids: torch.Tensor, labels: torch.Tensor | None = None
               ) -> DecoderOutput:
        """Teacher-forced decoder pass: logits (B, L, V) and, given labels, the mean CE."""
        hidden = self.decoder_hidden(decoder_input_ids, memory, memory_mask)
        logits = hidden @ self.decoder.embed_tokens.weight.T
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten())
        return DecoderOutput(logits, loss)

    # -- the speech path (inference) --------------------------------------------------------

    def encode(self, input_values: torch.Tensor, attention_mask: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Speech to the decoder's memory: (B, T) to (B, M, D) hidden states and (B, M) mask."""
        return self.aligned(*self.speech_features(input_values, attention_mask))

    def aligned(self, hidden: torch.Tensor, mask: torch.Tensor):
        """Speech features to the memory: as they are, or through the MCAM adapter."""
        if self.prompts is None:
            return hidden, mask
        return self.project(hidden, mask, self.relation_prompts(hidden, mask))

    def memory(self, speech: tuple[torch.Tensor, torch.Tensor] | None,
               text: tuple[torch.Tensor, torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's memory from speech (waveforms, mask), text (token ids, mask) or both.

        A speech-only model takes speech alone (`encode`). A model that reads text gets the
        speech part, then the text part, each marked present or absent (IMAGE)."""
        if not self.takes_text:
            if speech is None or text is not None:
                raise ValueError("this model reads speech only")
            return self.encode(*speech)
        if speech is None and text is None:
            raise ValueError("give speech, text or both")
        batch = (speech or text)[0].shape[0]
        parts = []
        for given, present, absent, features in (
                (speech, SPEECH_PRESENT, SPEECH_ABSENT, self.encode),
                (text, TEXT_PRESENT, TEXT_ABSENT, self._text_memory)):
            if given is None:
                row = self.presence.weight[absent].to(self.dtype)
                device = self.presence.weight.device
                parts.append((row.expand(batch, 1, -1),
                              torch.ones(batch, 1, dtype=torch.bool, device=device)))
            else:
                hidden, mask = features(*given)
                parts.append((hidden + self.presence.weight[present].to(hidden.dtype),
                              mask.bool()))
        return torch.cat([h for h, _ in parts], 1), torch.cat([m for _, m in parts], 1)

    def _text_memory(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        return self.text_features(input_ids, attention_mask), attention_mask

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor,
                decoder_input_ids: torch.Tensor, labels: torch.Tensor | None = None
                ) -> DecoderOutput:
        memory, memory_mask = self.memory((input_values, attention_mask))
        return self.decode(memory, memory_mask, decoder_input_ids, labels)


def _register() -> None:  # AutoConfig/AutoModel (and AutoTokenizer) know the model type
    from transformers import AutoConfig, AutoModel

    AutoConfig.register(MCAMConfig.model_type, MCAMConfig, exist_ok=True)
    AutoModel.register(MCAMConfig, MCAMModel, exist_ok=True)


_register()
