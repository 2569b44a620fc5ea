"""The aligned speech-to-triplet model (MCAM), in the Hugging Face shape.

    waveform (B, T) ──wav2vec 2.0 (or log-mel + its transformer)──▶ (B, S, H_w) ──length adapter
    (Conv1d, stride 2 per layer)──▶
    (B, S', D) ──R relation queries, one attention layer──▶ R prompt vectors, prepended ──▶
    (B, R + S', D) ──top N BART encoder layers (shared semantic projection)──▶ BART decoder ──▶ text

The BART encoder holds `text_encoder_layers` lower layers (the text encoder, used in training
only: its input is the transcript) and, above them, the N projection layers shared by speech and
text. Training runs three paths through the projection and the decoder: text (H_t), speech (H_s)
and mixed (H_t with entity tokens replaced by their speech features); `streamre.model.objective`
combines them into the paper's loss. With `alignment="none"` the prompts and the projection are
skipped: the adapter output goes straight to the decoder (the LNA-ED baseline).

`speech_frontend="logmel"` swaps wav2vec 2.0's waveform CNN for 80 log-mel bands and two stride-2
convolutions in front of the same wav2vec 2.0 transformer: several times cheaper to train from
scratch on a CPU. Pretrained wav2vec 2.0 checkpoints use "wav2vec2".
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import BartConfig, BartForConditionalGeneration, PretrainedConfig, PreTrainedModel
from transformers import Wav2Vec2Config, Wav2Vec2Model
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import BaseModelOutput

ALIGNMENTS = ("mcam", "none")
FRONTENDS = ("wav2vec2", "logmel")


class MCAMConfig(PretrainedConfig):
    model_type = "streamre-mcam"

    def __init__(
        self,
        speech_encoder: dict[str, Any] | None = None,
        bart: dict[str, Any] | None = None,
        adapter_layers: int = 2,
        relations: list[str] | None = None,
        alignment: str = "mcam",
        text_encoder_layers: int = 0,
        speech_frontend: str = "wav2vec2",
        asr_ctc_weight: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
        if speech_frontend not in FRONTENDS:
            raise ValueError(f"speech_frontend must be one of {FRONTENDS}, got {speech_frontend!r}")
        self.speech_frontend = speech_frontend
        self.asr_ctc_weight = asr_ctc_weight
        self.speech_encoder = dict(speech_encoder or {})
        self.bart = dict(bart or {})
        self.adapter_layers = adapter_layers
        self.relations = list(relations or [])
        self.alignment = alignment
        self.text_encoder_layers = text_encoder_layers
        if self.bart and text_encoder_layers >= self.bart.get("encoder_layers", 12):
            raise ValueError("text_encoder_layers must leave at least one projection layer")

    @property
    def speech_encoder_config(self) -> Wav2Vec2Config:
        return Wav2Vec2Config(**self.speech_encoder)

    @property
    def bart_config(self) -> BartConfig:
        return BartConfig(**self.bart)


@functools.lru_cache(maxsize=4)
def mel_filterbank(n_fft: int, n_mels: int, rate: int) -> torch.Tensor:
    """Triangular filters on the HTK mel scale, (n_mels, n_fft // 2 + 1), 1 at their centres
    (low filters, narrower than an FFT bin, peak lower where their centre falls between bins)."""
    def mel(hz):
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(0.0), mel(rate / 2), n_mels + 2))
    bins = np.linspace(0, rate / 2, n_fft // 2 + 1)
    rising = (bins[None, :] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    falling = (edges[2:, None] - bins[None, :]) / (edges[2:, None] - edges[1:-1, None])
    return torch.tensor(np.clip(np.minimum(rising, falling), 0.0, None), dtype=torch.float32)


class LogMelSpeechEncoder(nn.Module):
    """Waveform to 80 log-mel bands (25 ms windows every 10 ms), normalised per utterance; two
    stride-2 convolutions (40 ms frames); the wav2vec 2.0 transformer encoder. In training, time
    and frequency masks (SpecAugment) are applied to the bands."""

    N_FFT, HOP, N_MELS = 400, 160, 80

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        from transformers.models.wav2vec2.modeling_wav2vec2 import (
            Wav2Vec2Encoder,
            Wav2Vec2EncoderStableLayerNorm,
        )

        self.config = config
        if config._attn_implementation is None:  # no PreTrainedModel here to choose one
            config._attn_implementation = "sdpa"
        hidden = config.hidden_size
        self.convs = nn.ModuleList([nn.Conv1d(self.N_MELS, hidden, 3, stride=2, padding=1),
                                    nn.Conv1d(hidden, hidden, 3, stride=2, padding=1)])
        self.norm = nn.LayerNorm(hidden)
        self.encoder = (Wav2Vec2EncoderStableLayerNorm(config) if config.do_stable_layer_norm
                        else Wav2Vec2Encoder(config))

    def band_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """Samples to log-mel frames (windows wholly inside the audio; at least one)."""
        return torch.div((lengths - self.N_FFT).clamp(min=0), self.HOP, rounding_mode="floor") + 1

    def _get_feat_extract_output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        lengths = self.band_frames(lengths)
        for _ in self.convs:
            lengths = torch.div(lengths - 1, 2, rounding_mode="floor") + 1
        return lengths

    def log_mel(self, values: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) to normalised (B, n_mels, F) bands; frames past an utterance's end are zero."""
        if values.shape[1] < self.N_FFT:
            values = nn.functional.pad(values, (0, self.N_FFT - values.shape[1]))
        # Window and filters are made here, not kept as buffers: from_pretrained leaves
        # non-persistent buffers uninitialised.
        window = torch.hann_window(self.N_FFT, device=values.device)
        spectrum = torch.stft(values.float(), self.N_FFT, self.HOP, window=window,
                              center=False, return_complex=True).abs().pow(2)
        mel = mel_filterbank(self.N_FFT, self.N_MELS, 16000).to(values.device)
        bands = torch.log(torch.matmul(mel, spectrum) + 1e-6)
        frames = self.band_frames(attention_mask.sum(-1))
        valid = (torch.arange(bands.shape[-1], device=bands.device)[None, :] < frames[:, None])
        valid = valid[:, None, :].to(bands.dtype)
        count = valid.sum(-1, keepdim=True)
        mean = (bands * valid).sum(-1, keepdim=True) / count
        std = (((bands - mean) ** 2 * valid).sum(-1, keepdim=True) / count).sqrt()
        bands = (bands - mean) / (std + 1e-5) * valid
        if self.training:
            bands = spec_augment(bands, frames)
        return bands

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor) -> BaseModelOutput:
        x = self.log_mel(input_values, attention_mask).to(self.convs[0].weight.dtype)
        for conv in self.convs:
            x = nn.functional.gelu(conv(x))
        hidden = self.norm(x.transpose(1, 2))
        lengths = self._get_feat_extract_output_lengths(attention_mask.sum(-1))
        mask = torch.arange(hidden.shape[1], device=hidden.device)[None, :] < lengths[:, None]
        return self.encoder(hidden, attention_mask=mask)


def spec_augment(bands: torch.Tensor, frames: torch.Tensor, freq_masks: int = 2,
                 freq_width: int = 15, time_masks: int = 2, time_share: float = 0.05
                 ) -> torch.Tensor:
    """Zero random bands and random stretches of frames in each utterance (SpecAugment)."""
    bands = bands.clone()
    for b in range(bands.shape[0]):
        for _ in range(freq_masks):
            width = int(torch.randint(0, freq_width + 1, ()))
            start = int(torch.randint(0, bands.shape[1] - width + 1, ()))
            bands[b, start:start + width, :] = 0
        longest = max(1, int(frames[b] * time_share))
        for _ in range(time_masks):
            width = int(torch.randint(0, longest + 1, ()))
            start = int(torch.randint(0, max(1, int(frames[b]) - width + 1), ()))
            bands[b, :, start:start + width] = 0
    return bands


class LengthAdapter(nn.Module):
    """Conv1d stack, stride 2 per layer: (B, S, in_dim) to (B, ceil(S / 2**layers), out_dim)."""

    def __init__(self, in_dim: int, out_dim: int, layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [out_dim] * layers
        self.convs = nn.ModuleList(
            nn.Conv1d(dims[i], dims[i + 1], kernel_size=3, stride=2, padding=1) for i in range(layers))
        self.proj = nn.Linear(in_dim, out_dim) if layers == 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is not None:
            return self.proj(x)
        x = x.transpose(1, 2)
        for conv in self.convs:
            x = nn.functional.gelu(conv(x))
        return x.transpose(1, 2)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for _ in self.convs:
            lengths = torch.div(lengths - 1, 2, rounding_mode="floor") + 1
        return lengths


class RelationPrompts(nn.Module):
    """R learnable relation queries attend over the speech sequence: (B, S, D) to (B, R, D)."""

    def __init__(self, dim: int, relations: int, heads: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(relations, dim) * dim ** -0.5)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, speech: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        queries = self.queries.unsqueeze(0).expand(speech.shape[0], -1, -1)
        prompts, _ = self.attention(queries, speech, speech, key_padding_mask=padding,
                                    need_weights=False)
        return self.norm(prompts + queries)


class MCAMModel(PreTrainedModel):
    config_class = MCAMConfig
    base_model_prefix = "mcam"
    main_input_name = "input_values"

    def __init__(self, config: MCAMConfig) -> None:
        super().__init__(config)
        bart_config = config.bart_config
        self.speech_encoder = (LogMelSpeechEncoder(config.speech_encoder_config)
                               if config.speech_frontend == "logmel"
                               else Wav2Vec2Model(config.speech_encoder_config))
        self.adapter = LengthAdapter(config.speech_encoder_config.hidden_size, bart_config.d_model,
                                     config.adapter_layers)
        self.prompts = (RelationPrompts(bart_config.d_model, max(1, len(config.relations)),
                                        bart_config.encoder_attention_heads)
                        if config.alignment == "mcam" else None)
        # The CTC "blank" entry beside the batch's text token features (training only).
        self.ctc_blank = (nn.Parameter(torch.randn(bart_config.d_model) * 0.02)
                          if config.alignment == "mcam" else None)
        # An ASR head on the adapter output, CTC against the transcript (training only).
        self.asr_ctc = (nn.Linear(bart_config.d_model, bart_config.vocab_size)
                        if config.asr_ctc_weight > 0 else None)
        # BART: lower encoder layers = text encoder, upper = shared projection; its decoder.
        self.bart = BartForConditionalGeneration(bart_config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # Sub-models initialise themselves; the adapter and prompts keep torch's defaults.
        pass

    @staticmethod
    def prepare_waveforms(waveforms: list[np.ndarray], device: torch.device | str = "cpu"
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """int16 or float waveforms at 16 kHz to normalised, padded (B, T) values and mask."""
        longest = max(len(w) for w in waveforms)
        values = torch.zeros(len(waveforms), longest)
        mask = torch.zeros(len(waveforms), longest, dtype=torch.long)
        for i, w in enumerate(waveforms):
            x = torch.as_tensor(np.asarray(w), dtype=torch.float32)
            if np.asarray(w).dtype == np.int16:
                x = x / 32768.0
            x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
            values[i, : len(x)] = x
            mask[i, : len(x)] = 1
        return values.to(device), mask.to(device)

    # -- the parts of every path ------------------------------------------------------------

    def speech_features(self, input_values: torch.Tensor, attention_mask: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) waveforms to adapter output H_s (B, S, D) and its (B, S) boolean mask."""
        speech = self.speech_encoder(input_values, attention_mask=attention_mask).last_hidden_state
        lengths = self.speech_encoder._get_feat_extract_output_lengths(attention_mask.sum(-1))
        hidden = self.adapter(speech)
        lengths = self.adapter.output_lengths(lengths).clamp(min=1, max=hidden.shape[1])
        mask = torch.arange(hidden.shape[1], device=hidden.device)[None, :] < lengths[:, None]
        return hidden, mask

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Transcript tokens through the lower BART encoder layers: H_t (B, T, D)."""
        encoder = self.bart.model.encoder
        embeds = encoder.embed_tokens(input_ids)
        hidden = encoder.layernorm_embedding(embeds + encoder.embed_positions(embeds[:, :, -1]))
        hidden = nn.functional.dropout(hidden, p=encoder.dropout, training=self.training)
        return self._run_layers(encoder.layers[: self.config.text_encoder_layers], hidden,
                                attention_mask)

    def relation_prompts(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.prompts(hidden, ~mask.bool())

    def project(self, hidden: torch.Tensor, mask: torch.Tensor, prompts: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepend the R prompts, run the shared projection layers: the decoder's memory."""
        mask = mask.long()
        if prompts is not None:
            hidden = torch.cat([prompts, hidden], dim=1)
            mask = torch.cat([torch.ones(mask.shape[0], prompts.shape[1], dtype=mask.dtype,
                                         device=mask.device), mask], dim=1)
        layers = self.bart.model.encoder.layers[self.config.text_encoder_layers:]
        return self._run_layers(layers, hidden, mask), mask

    def _run_layers(self, layers, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if len(layers) == 0:
            return hidden
        attention = create_bidirectional_mask(config=self.bart.config, inputs_embeds=hidden,
                                              attention_mask=mask.long())
        for layer in layers:
            hidden = layer(hidden, attention)
        return hidden

    def decode(self, memory: torch.Tensor, memory_mask: torch.Tensor, labels: torch.Tensor):
        """Teacher-forced decoder pass; `.logits` (B, L, V) and `.loss` (mean CE)."""
        return self.bart(encoder_outputs=BaseModelOutput(last_hidden_state=memory),
                         attention_mask=memory_mask.long(), labels=labels)

    # -- the speech path (inference) --------------------------------------------------------

    def encode(self, input_values: torch.Tensor, attention_mask: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Speech to the decoder's memory: (B, T) to (B, L, D) hidden states and (B, L) mask."""
        hidden, mask = self.speech_features(input_values, attention_mask)
        if self.prompts is None:
            return hidden, mask.long()
        return self.project(hidden, mask, self.relation_prompts(hidden, mask))

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor | None = None,
                decoder_input_ids: torch.Tensor | None = None):
        memory, memory_mask = self.encode(input_values, attention_mask)
        return self.bart(encoder_outputs=BaseModelOutput(last_hidden_state=memory),
                         attention_mask=memory_mask, labels=labels,
                         decoder_input_ids=decoder_input_ids)

    @torch.inference_mode()
    def generate_tokens(self, input_values: torch.Tensor, attention_mask: torch.Tensor,
                        max_new_tokens: int = 96, num_beams: int = 1
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched decoding with the KV cache: (B, N) token ids and (B, N) log-probabilities."""
        memory, memory_mask = self.encode(input_values, attention_mask)
        out = self.bart.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=memory),
            attention_mask=memory_mask, max_new_tokens=max_new_tokens, num_beams=num_beams,
            do_sample=False, output_scores=True, return_dict_in_generate=True)
        scores = self.bart.compute_transition_scores(
            out.sequences, out.scores, getattr(out, "beam_indices", None), normalize_logits=True)
        generated = out.sequences[:, -scores.shape[1]:]
        return generated, scores


# So AutoConfig/AutoModel (and AutoTokenizer, which reads config.json) know the model type.
def _register() -> None:
    from transformers import AutoConfig, AutoModel

    AutoConfig.register(MCAMConfig.model_type, MCAMConfig, exist_ok=True)
    AutoModel.register(MCAMConfig, MCAMModel, exist_ok=True)


_register()
