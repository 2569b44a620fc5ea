"""Relation prompts (after RPG-MoGe): CNN heads over the speech encoder's output say which
relations an utterance holds, and the relations they hear are written into the decoder's input
as a prompt, so the facts it writes lean toward relations that are there.

The heads treat the encoder output (B, S, D) as a one-channel image, time by feature: four
blocks of 3x3 convolution, batch norm, ReLU and 2x2 max pooling (16, 32, 64, 128 channels),
then a mean over what is left and a linear layer, one logit per relation, trained with binary
cross-entropy beside the decoder's loss (the paper's facts). A relation is heard when its
probability passes 0.5; the prompt is one token per heard relation (`<rel:Work_For>`), or
`<rel:none>`, placed after `<facts>` (and before an order's token), so the transcript is
written as before and only the facts read the prompt. In training, as in the paper, the prompt
is what the heads predict at that step, not the gold relations.

Padding is zeroed after every block and pooling keeps a last odd frame (ceil mode), so a
segment's logits do not depend on what it is batched with (in eval mode).

The papers named here: `docs/papers.md`.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from streamre.model.linearize import FACTS

NO_RELATION = "<rel:none>"
CHANNELS = (16, 32, 64, 128)
THRESHOLD = 0.5  # the paper's


def relation_token(relation: str) -> str:
    return f"<rel:{relation}>"


def prompt_tokens(relations: Sequence[str]) -> list[str]:
    """Every token a relation prompt may hold, for a model with these relations."""
    return [relation_token(r) for r in relations] + [NO_RELATION]


class RelationHeads(nn.Module):
    """(B, S, D) features and their (B, S) mask to (B, R) relation logits."""

    def __init__(self, relations: int) -> None:
        super().__init__()
        blocks, before = [], 1
        for channels in CHANNELS:
            blocks.append(nn.ModuleDict({
                "conv": nn.Conv2d(before, channels, kernel_size=3, padding=1),
                "norm": nn.BatchNorm2d(channels)}))
            before = channels
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Linear(before, relations)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.bool()
        x = (hidden * mask[..., None]).unsqueeze(1)  # (B, 1, S, D)
        for block in self.blocks:
            x = torch.relu(block["norm"](block["conv"](x))) * mask[:, None, :, None]
            x = nn.functional.max_pool2d(x, 2, ceil_mode=True)
            mask = mask[:, ::2]  # a pooled frame is real when its first frame is
        real = mask[:, None, :, None].to(x.dtype)
        pooled = (x * real).sum((2, 3)) / (real.sum((2, 3)) * x.shape[-1]).clamp(min=1)
        return self.out(pooled)


class RelationPrompt:
    """The prompt's token ids in a tokenizer, for a model whose heads score `relations`."""

    def __init__(self, tokenizer, relations: Sequence[str]) -> None:
        ids = tokenizer.convert_tokens_to_ids(prompt_tokens(relations))
        if tokenizer.unk_token_id in ids and tokenizer.unk_token_id is not None:
            raise ValueError("the tokenizer lacks the relation prompt's tokens")
        self.relations = list(relations)
        self.relation_ids, self.none_id = ids[:-1], ids[-1]
        self.facts, self.pad = tokenizer.convert_tokens_to_ids(FACTS), tokenizer.pad_token_id

    @classmethod
    def of(cls, model, tokenizer) -> "RelationPrompt | None":
        """The prompt of a model with relation heads; None for a model without."""
        return cls(tokenizer, model.config.relations) if model.config.relation_heads else None

    def chosen(self, logits: torch.Tensor, threshold: float = THRESHOLD) -> list[list[int]]:
        """Each row's prompt: the tokens of the relations heard, or the no-relation token."""
        heard = logits.float().sigmoid() > threshold
        return [[self.relation_ids[r] for r in row.nonzero().flatten().tolist()] or
                [self.none_id] for row in heard]

    def targets(self, triplets_per_example: Sequence[Sequence[tuple]]) -> torch.Tensor:
        """(B, R) multi-hot: which of the relations each example's triplets hold."""
        index = {r: i for i, r in enumerate(self.relations)}
        out = torch.zeros(len(triplets_per_example), len(self.relations))
        for b, triplets in enumerate(triplets_per_example):
            for _, relation, _ in triplets:
                if relation in index:
                    out[b, index[relation]] = 1.0
        return out


def insert_after(marker: int, prompts: list[list[int]], decoder_ids: torch.Tensor,
                 labels: torch.Tensor, *masks: torch.Tensor, pad: int, ignore: int):
    """Teacher-forced rows with each row's prompt put right after its first `marker` in the
    decoder's input, not learnt (its labels `ignore`); rows without the marker are unchanged.
    Every (B, L) tensor in `masks` (bool, aligned with the labels) gets False there. Returns
    the new decoder ids, labels and masks, right-padded with `pad`, `ignore` and False."""
    rows = []
    for b, prompt in enumerate(prompts):
        ids = decoder_ids[b].tolist()
        at = ids.index(marker) + 1 if marker in ids else len(ids)
        if at == len(ids):
            prompt = []
        n = len(prompt)
        rows.append((ids[:at] + prompt + ids[at:],
                     labels[b, :at - 1].tolist() + [ignore] * n + labels[b, at - 1:].tolist(),
                     [m[b, :at - 1].tolist() + [False] * n + m[b, at - 1:].tolist()
                      for m in masks]))
    width = max(len(r[0]) for r in rows)

    def padded(values, fill, like):
        return torch.tensor([v + [fill] * (width - len(v)) for v in values], dtype=like.dtype,
                            device=like.device)

    return (padded([r[0] for r in rows], pad, decoder_ids),
            padded([r[1] for r in rows], ignore, labels),
            *(padded([r[2][k] for r in rows], False, m) for k, m in enumerate(masks)))
