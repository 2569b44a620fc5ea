"""What `streamre train` is told: every setting once, with its help; its flags are made from
these fields (`streamre.settings`)."""

from __future__ import annotations

from dataclasses import dataclass

from streamre.model.checkpoint import PRESETS
from streamre.model.mcam import ALIGNMENTS
from streamre.settings import setting


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
    max_steps: int = setting(2000, "optimiser steps in all")
    batch_size: int = setting(8, "utterances per step")
    lr: float = setting(1e-4, "peak learning rate")
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
        if self.encoder_layers_tuned < -1 or self.encoder_lr_scale < 0:
            raise ValueError("--encoder-layers-tuned is -1 (all), 0 (frozen) or a layer count; "
                             "--encoder-lr-scale is at least 0")
