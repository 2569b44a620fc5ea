"""What `streamre train` is told: every setting once, with its help; its flags are made from
these fields (`streamre.settings`).

The papers named here: `docs/papers.md`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from streamre.model.checkpoint import PRESETS
from streamre.model.mcam import ALIGNMENTS
from streamre.model.orders import ORDERS
from streamre.settings import setting


# A pretrained Whisper is nudged; a tiny model made from scratch (the tests' kind) starts from
# nothing, and at the fine-tuning rate had not learnt four utterances after 400 steps
# (docs/training.md has the runs).
FINE_TUNING_LR = 1e-4
FROM_SCRATCH_LR = 3e-3


@dataclass
class TrainConfig:
    train: str | tuple[str, ...] = setting(
        (), "one or more manifests, read as one training set", required=True, nargs="+",
        metavar="M.jsonl")
    out: str = setting("", "folder for the best checkpoint (--out/last/ is for --resume)",
                       required=True, metavar="DIR")
    dev: str | None = setting(None, "manifest for model selection (default: --train)",
                              metavar="M.jsonl")
    alignment: str = setting("mcam", "mcam: the paper's alignment adapter; none: the LNA-ED "
                             "baseline", choices=list(ALIGNMENTS))
    preset: str = setting("tiny", "the shape of a model made from scratch (without --init)",
                          choices=list(PRESETS))
    relations: tuple[str, ...] = setting(
        (), "relation prompts (default: every relation in --train)", metavar="R1,R2,...")
    init: str = setting("", "a Whisper folder or hub id (see import-whisper), or a checkpoint "
                        "of this model (default: a tiny model from scratch, for tests)",
                        metavar="MODEL")
    encoder_layers_tuned: int = setting(
        -1, "train only the encoder's top K layers (0: frozen; -1: all)", metavar="K")
    encoder_lr_scale: float = setting(1.0, "the tuned encoder layers learn at S times --lr",
                                      metavar="S")
    keep_whisper: float = setting(
        0.0, "add W times the KL from the original Whisper to the model on the transcript's "
        "tokens (keeps its hearing; 0: off)", metavar="W")
    teacher: str = setting("", "the original Whisper for --keep-whisper (default: --init)",
                           metavar="WHISPER")
    text_batches: float = setting(
        0.0, "share of steps whose batch is given as text alone; with --both-batches above 0 "
        "the model learns to read text as well as speech (IMAGE)", metavar="SHARE")
    both_batches: float = setting(0.0, "share of steps whose batch is given as speech and "
                                  "its text together", metavar="SHARE")
    orders: tuple[str, ...] = setting(
        (), "write the facts in these element orders, one drawn for each example (RPG-MoGe; "
        "all: the six; default: REBEL's one order)", metavar="hrt,htr,...")
    relation_heads: bool = setting(
        False, "CNN heads over the speech encoder guess the relations, given to the decoder as "
        "a prompt before the facts (RPG-MoGe's relation prompts)")
    relation_heads_lr_scale: float = setting(
        10.0, "the relation heads learn at S times --lr: they start untrained (the speech model "
        "card has the probe that chose 10)", metavar="S")
    max_steps: int = setting(2000, "optimiser steps in all")
    batch_size: int = setting(8, "utterances per step")
    lr: float | None = setting(
        None, f"peak learning rate (default: {FINE_TUNING_LR} fine-tuning what --init names, "
        f"{FROM_SCRATCH_LR} for a model made from scratch)")
    warmup: float = setting(0.1, "share of --max-steps warming up to the peak learning rate",
                            metavar="SHARE")
    hold: float = setting(0.4, "share of --max-steps held at the peak before the decay",
                          metavar="SHARE")
    final_lr_scale: float = setting(0.05, "the decay ends at this share of the peak")
    clip_norm: float = setting(10.0, "gradients are clipped to this norm")
    eval_every: int = setting(200, "steps between dev evaluations", metavar="STEPS")
    patience: int = setting(5, "stop after this many evaluations without a better dev score",
                            metavar="EVALS")
    log_every: int = setting(10, "steps between lines of --out/train_log.jsonl")
    seed: int = setting(0, "seed of the data order and the fresh weights")
    device: str = setting("auto", "torch device: auto, cpu, cuda, cuda:N")
    resume: bool = setting(False, "go on from --out/last/")
    progress: bool = setting(True, "show a progress bar")

    def __post_init__(self) -> None:
        if self.lr is None:
            self.lr = FINE_TUNING_LR if self.init else FROM_SCRATCH_LR
        if self.lr < 0:
            raise ValueError("--lr must not be negative")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"--alignment must be one of {', '.join(ALIGNMENTS)}")
        if self.preset not in PRESETS:
            raise ValueError(f"--preset must be one of {', '.join(PRESETS)}")
        if self.max_steps < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError("--max-steps, --batch-size and --eval-every must be positive")
        if self.warmup < 0 or self.hold < 0 or self.warmup + self.hold > 1:
            raise ValueError("--warmup and --hold are shares of the steps: each at least 0, "
                             "together at most 1")
        if self.keep_whisper < 0:
            raise ValueError("--keep-whisper is a weight, at least 0")
        if min(self.text_batches, self.both_batches) < 0 or \
                self.text_batches + self.both_batches >= 1:
            raise ValueError("--text-batches and --both-batches are shares of the steps: each at "
                             "least 0, together under 1 (the rest are speech alone)")
        if self.reads_text and self.keep_whisper > 0:
            raise ValueError("--keep-whisper does not go with --text-batches or --both-batches")
        if self.reads_text and self.alignment != "none":
            raise ValueError("--text-batches and --both-batches need --alignment none (the MCAM "
                             "adapter has a text path of its own, for training only)")
        if self.reads_text and self.relation_heads:
            raise ValueError("--relation-heads does not go with --text-batches or --both-batches")
        if self.orders == ("all",):
            self.orders = ORDERS
        if not set(self.orders) <= set(ORDERS) or len(set(self.orders)) != len(self.orders):
            raise ValueError(f"--orders: distinct, each one of {', '.join(ORDERS)}, or all")
        if self.relation_heads_lr_scale <= 0:
            raise ValueError("--relation-heads-lr-scale is above 0")
        if self.encoder_layers_tuned < -1 or self.encoder_lr_scale < 0:
            raise ValueError("--encoder-layers-tuned is -1 (all), 0 (frozen) or a layer count; "
                             "--encoder-lr-scale is at least 0")

    @property
    def reads_text(self) -> bool:
        """Whether the model trained learns to read text too."""
        return self.text_batches + self.both_batches > 0

    def inputs_at(self, step: int) -> str:
        """What the batch of `step` is given: "speech", "text" or "both" (the same on resume)."""
        draw = random.Random(self.seed * 1_000_003 + step).random()
        if draw < self.text_batches:
            return "text"
        return "both" if draw < self.text_batches + self.both_batches else "speech"

    def orders_at(self, step: int, rows: int) -> list[str] | None:
        """Each row's element order in the batch of `step` (the same on resume); None
        without --orders."""
        if not self.orders:
            return None
        draw = random.Random(self.seed * 1_000_003 + step + 1)
        return [draw.choice(self.orders) for _ in range(rows)]
