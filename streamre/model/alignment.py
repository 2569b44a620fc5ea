"""The MCAM alignment adapter's parts, and the attention biases every path of the model uses.

The papers named here: `docs/papers.md`.
"""

from __future__ import annotations

import torch
from torch import nn

from streamre import SAMPLE_RATE
from streamre.whisper.features import HOP, log_mel


def padding_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, S) True-where-real to an additive attention bias (B, 1, 1, S)."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
        ~mask.bool(), torch.finfo(dtype).min)[:, None, None, :]


def causal_bias(length: int, past: int, dtype: torch.dtype, device,
                real: torch.Tensor | None = None) -> torch.Tensor | None:
    """(1, 1, L, past + L): each new token sees the past and itself; None for one token.
    With `real` (B, past + L; False at left padding): (B, 1, L, past + L), padding unseen."""
    future = torch.ones(length, past + length, dtype=torch.bool, device=device).triu(past + 1)
    if real is not None:
        hidden = future[None] | ~real.bool()[:, None, :]
        return torch.zeros(hidden.shape, dtype=dtype, device=device).masked_fill(
            hidden, torch.finfo(dtype).min)[:, None]
    if length == 1:
        return None
    return torch.zeros(future.shape, dtype=dtype, device=device).masked_fill(
        future, torch.finfo(dtype).min)[None, None]


class LengthAdapter(nn.Module):
    """Conv1d stack, stride 2 per layer: (B, S, D) to (B, ceil(S / 2**layers), D); the identity
    with no layers (Whisper's 20 ms frames already suit the decoder)."""

    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(dim, dim, kernel_size=3, stride=2, padding=1) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)
        for conv in self.convs:
            x = nn.functional.gelu(conv(x))
        return x.transpose(1, 2)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for _ in self.convs:
            lengths = torch.div(lengths - 1, 2, rounding_mode="floor") + 1
        return lengths


class RelationQueries(nn.Module):
    """R learnable relation queries attend over a sequence: (B, S, D) to (B, R, D)."""

    def __init__(self, dim: int, relations: int, heads: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(relations, dim) * dim ** -0.5)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, hidden: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        queries = self.queries.unsqueeze(0).expand(hidden.shape[0], -1, -1).to(hidden.dtype)
        prompts, _ = self.attention(queries, hidden, hidden, key_padding_mask=padding,
                                    need_weights=False)
        return self.norm(prompts + queries)


def encode_own_length(encoder, input_values: torch.Tensor, attention_mask: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Whisper's encoder on each segment's own length: (B, S, D) and the (B, S) mask."""
    features, frames = log_mel(input_values, attention_mask.sum(-1), encoder.num_mel_bins)
    dtype = encoder.conv1.weight.dtype
    real = torch.arange(features.shape[-1], device=features.device)[None, :] < frames[:, None]
    # Zero what lies past each end after the first convolution too, so the second one sees
    # the same zeros there as a segment alone would: batching never changes a segment.
    x = nn.functional.gelu(encoder.conv1(features.to(dtype))) * real[:, None, :]
    x = nn.functional.gelu(encoder.conv2(x)).transpose(1, 2)
    if x.shape[1] > encoder.max_source_positions:
        window = encoder.max_source_positions * 2 * HOP / SAMPLE_RATE
        raise ValueError(f"a segment of {x.shape[1] * 2 * HOP / SAMPLE_RATE:.1f} s is longer "
                         f"than the model's {window:.0f} s window")
    lengths = torch.div(frames - 1, 2, rounding_mode="floor") + 1
    mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
    hidden = x + encoder.embed_positions.weight[: x.shape[1]]
    bias = padding_bias(mask, hidden.dtype)
    for layer in encoder.layers:
        hidden = layer(hidden, bias)
    return encoder.layer_norm(hidden), mask
