"""The aligned speech-to-triplet model (MCAM) on a Whisper backbone, in the Hugging Face shape.

    waveform (B, T) ──log-mel (80 bands, 10 ms)──▶ (B, 80, F) ──Whisper encoder, on the
    segment's own length──▶ H (B, S, D), S = F / 2 ──alignment──▶ memory ──Whisper decoder──▶
    PROMPT transcript <facts> <triplet> HEAD<subj> TAIL<obj> RELATION … <|endoftext|>

`alignment="none"` (the LNA-ED baseline): the decoder reads the encoder output, as in Whisper.
`alignment="mcam"` (the paper's adapter): a length adapter, R relation queries whose outputs are
prepended as a soft prompt, and shared projection layers that read speech as well as text.
Training adds a text path (the transcript's tokens, embedded with the decoder's own table,
through a small text encoder) and a mixed path; `streamre.training.objective` combines them. The
projection starts as the identity (residual branches zeroed) and the length adapter has no
layers by default, so at first the decoder reads Whisper's encoder output with only the R prompt
vectors before it, and training moves it from there.

Whisper is trained on 30 s windows; here the encoder runs on each segment's own frames
(positions sliced), with padding masked in every attention, so batching never changes a
segment's output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, WhisperConfig
from transformers.models.whisper.modeling_whisper import (
    WhisperDecoder, WhisperEncoder, WhisperEncoderLayer)

from streamre import SAMPLE_RATE
from streamre.model.alignment import LengthAdapter, RelationPrompts, causal_bias, padding_bias
from streamre.model.decoding import repeating_tail
from streamre.model.features import HOP, log_mel, prepare_waveforms

ALIGNMENTS = ("mcam", "none")
MAX_TOKENS_PER_SECOND = 10  # decoding budget: generous for speech, a cap for a looping decoder


class MCAMConfig(PretrainedConfig):
    """The model's config, saved as `config.json`.

    Args:
        whisper: the `WhisperConfig` of the backbone, as a dict.
        alignment: "mcam" (the adapter) or "none" (encoder straight to decoder).
        relations: the relation labels, one relation prompt each.
        adapter_layers: stride-2 convolutions of the length adapter (0: none).
        text_encoder_layers: layers of the training-only text path.
        projection_layers: shared projection layers after the adapter.
        decoder_prompt: token ids the decoder is given before it writes.
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

    @property
    def whisper_config(self) -> WhisperConfig:
        config = WhisperConfig(**self.whisper)
        config._attn_implementation = "sdpa"
        return config


@dataclass
class DecoderOutput:
    logits: torch.Tensor  # (B, L, V)
    loss: torch.Tensor | None  # mean cross-entropy over the labelled tokens


class MCAMModel(PreTrainedModel):
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
            self.prompts = RelationPrompts(d_model, max(1, len(config.relations)),
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
        self.post_init()

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
        encoder = self.encoder
        features, frames = log_mel(input_values, attention_mask.sum(-1), encoder.num_mel_bins)
        dtype = encoder.conv1.weight.dtype
        real = torch.arange(features.shape[-1], device=features.device)[None, :] < frames[:, None]
        # Zero what lies past each end after the first convolution too, so the second one sees
        # the same zeros there as a segment alone would: batching never changes a segment.
        x = nn.functional.gelu(encoder.conv1(features.to(dtype))) * real[:, None, :]
        x = nn.functional.gelu(encoder.conv2(x)).transpose(1, 2)
        if x.shape[1] > encoder.max_source_positions:
            raise ValueError(f"a segment of {x.shape[1] * 2 * HOP / SAMPLE_RATE:.1f} s is longer "
                             f"than the model's {self.window_samples / SAMPLE_RATE:.0f} s window")
        lengths = torch.div(frames - 1, 2, rounding_mode="floor") + 1
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
        hidden = x + encoder.embed_positions.weight[: x.shape[1]]
        bias = padding_bias(mask, hidden.dtype)
        for layer in encoder.layers:
            hidden = layer(hidden, bias)
        return encoder.layer_norm(hidden), mask

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
                       memory_mask: torch.Tensor, cache=None) -> torch.Tensor:
        """Whisper's decoder over (B, L) tokens reading the memory; with `cache` (an
        `EncoderDecoderCache`), only the new tokens are given and the cache grows."""
        decoder = self.decoder
        past = cache.get_seq_length() if cache is not None else 0
        hidden = decoder.embed_tokens(input_ids) + \
            decoder.embed_positions.weight[past: past + input_ids.shape[1]]
        causal = causal_bias(input_ids.shape[1], past, hidden.dtype, hidden.device)
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
        hidden, mask = self.speech_features(input_values, attention_mask)
        if self.prompts is None:
            return hidden, mask
        return self.project(hidden, mask, self.relation_prompts(hidden, mask))

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor,
                decoder_input_ids: torch.Tensor, labels: torch.Tensor | None = None
                ) -> DecoderOutput:
        memory, memory_mask = self.encode(input_values, attention_mask)
        return self.decode(memory, memory_mask, decoder_input_ids, labels)

    @torch.inference_mode()
    def generate_tokens(self, input_values: torch.Tensor, attention_mask: torch.Tensor,
                        max_new_tokens: int = 192) -> tuple[list[list[int]], list[list[float]]]:
        """Greedy, batched decoding with a key/value cache, after the decoder prompt.

        Each segment may write at most `MAX_TOKENS_PER_SECOND` per second of its audio (and
        `max_new_tokens` in all), and a segment whose output starts repeating itself stops, the
        repeats cut off (`repeating_tail`). Returns each segment's tokens up to, not including,
        the end token, and their log-probabilities.
        """
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        memory, memory_mask = self.encode(input_values, attention_mask)
        batch = memory.shape[0]
        eos = self.config.whisper["eos_token_id"]
        seconds = attention_mask.sum(-1).float() / SAMPLE_RATE
        # The decoder has positions for its prompt and this many tokens after it.
        room = self.decoder.max_target_positions - len(self.config.decoder_prompt)
        budgets = [min(max_new_tokens, room, int(24 + MAX_TOKENS_PER_SECOND * s))
                   for s in seconds.tolist()]
        prompt = torch.tensor([self.config.decoder_prompt] * batch, device=memory.device)
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        tokens: list[list[int]] = [[] for _ in range(batch)]
        scores: list[list[float]] = [[] for _ in range(batch)]
        live = list(range(batch))
        step_input = prompt
        while live:
            hidden = self.decoder_hidden(step_input, memory, memory_mask, cache)[:, -1]
            logprobs = (hidden @ self.decoder.embed_tokens.weight.T).float().log_softmax(-1)
            best, chosen = logprobs.max(-1)
            for b in list(live):
                token = int(chosen[b])
                if token == eos:
                    live.remove(b)
                    continue
                tokens[b].append(token)
                scores[b].append(float(best[b]))
                cut = repeating_tail(tokens[b])
                if cut or len(tokens[b]) >= budgets[b]:
                    del tokens[b][len(tokens[b]) - cut:], scores[b][len(scores[b]) - cut:]
                    live.remove(b)
            # Finished segments keep being fed their end token; their outputs are not read.
            step_input = torch.where(
                torch.tensor([b in live for b in range(batch)], device=chosen.device),
                chosen, torch.full_like(chosen, eos))[:, None]
        return tokens, scores


# So AutoConfig/AutoModel (and AutoTokenizer, which reads config.json) know the model type.
def _register() -> None:
    from transformers import AutoConfig, AutoModel

    AutoConfig.register(MCAMConfig.model_type, MCAMConfig, exist_ok=True)
    AutoModel.register(MCAMConfig, MCAMModel, exist_ok=True)


_register()
