"""What a training run of the aligned model starts from: the model (from --init, or made from
scratch), the Whisper teacher that --keep-whisper keeps it close to, the optimiser's parameter
groups and the learning-rate schedule. `streamre.training.loop` runs the loop over them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from streamre.model.checkpoint import (
    PRESETS, create_checkpoint, from_whisper, load_checkpoint, resolve_model, with_alignment,
    with_orders, with_relation_heads, with_text)
from streamre.training.config import TrainConfig
from streamre.training.data import Example


def tri_stage(step: int, total: int, warmup: float, hold: float, final: float) -> float:
    """LR scale: linear warm-up from 1 %, hold at 1, exponential decay to `final`."""
    w, h = int(total * warmup), int(total * hold)
    if step < w:
        return 0.01 + 0.99 * step / w
    if step < w + h:
        return 1.0
    decay = max(1, total - w - h)
    return math.exp(math.log(final) * min(1.0, (step - w - h) / decay))


# -- building the model -------------------------------------------------------------------------

def _init_kind(init: str) -> str:
    """'mcam' or 'whisper', by the model type in --init's config."""
    from transformers import AutoConfig

    try:
        model_type = AutoConfig.from_pretrained(resolve_model(init)).model_type
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"--init {init}: cannot read its config ({e})") from None
    kind = {"streamre-mcam": "mcam", "whisper": "whisper"}.get(model_type)
    if kind is None:
        raise ValueError(f"--init {init}: a {model_type} model; expected Whisper (see streamre "
                         "import-whisper) or a checkpoint of this model")
    return kind


def build_model(cfg: TrainConfig, examples: list[Example], scratch: Path):
    """(model, tokenizer) from --init, or a tiny one made from scratch in `scratch`."""
    relations = list(cfg.relations) or sorted({r for e in examples for _, r, _ in e.triplets}) \
        or ["relation"]
    if not cfg.init:
        texts = [e.text for e in examples] + [e.target() for e in examples]
        model, tokenizer = load_checkpoint(str(create_checkpoint(
            scratch, texts, relations, cfg.alignment, cfg.seed, PRESETS[cfg.preset])))
    elif _init_kind(cfg.init) == "mcam":
        model, tokenizer = load_checkpoint(cfg.init)
        model = with_alignment(model, cfg.alignment, relations)
    else:
        model, tokenizer = from_whisper(resolve_model(cfg.init), relations, cfg.alignment)
    if cfg.orders:
        model, tokenizer = with_orders(model, tokenizer, list(cfg.orders))
    if cfg.relation_heads:
        model, tokenizer = with_relation_heads(model, tokenizer)
    return (with_text(model) if cfg.reads_text else model), tokenizer


def load_teacher(cfg: TrainConfig):
    """The original Whisper that --keep-whisper keeps the transcripts close to, or None."""
    if cfg.keep_whisper == 0:
        return None
    source = cfg.teacher or (cfg.init if cfg.init and _init_kind(cfg.init) == "whisper" else "")
    if not source:
        raise ValueError("--keep-whisper needs --teacher: the Whisper folder the model came from")
    if _init_kind(source) != "whisper":
        raise ValueError(f"--teacher {source}: not a Whisper folder (see streamre import-whisper)")
    teacher, _ = from_whisper(resolve_model(source), [], "none")
    for p in teacher.parameters():
        p.requires_grad = False
    return teacher.eval()


def parameter_groups(model, cfg: TrainConfig) -> list[dict]:
    """The optimiser's groups: the tuned encoder layers and the relation heads at their scaled
    rates, the rest at the peak rate; frozen parameters stop asking for gradients."""
    layers = model.encoder.layers
    tuned = len(layers) if cfg.encoder_layers_tuned == -1 else \
        min(cfg.encoder_layers_tuned, len(layers))
    trained_encoder = {id(p) for layer in layers[len(layers) - tuned:] for p in layer.parameters()}
    if tuned == len(layers):
        trained_encoder |= {id(p) for p in model.encoder.parameters()}
    encoder, rest = [], []
    for p in model.encoder.parameters():
        p.requires_grad = id(p) in trained_encoder and cfg.encoder_lr_scale > 0
        if p.requires_grad:
            encoder.append(p)
    heads = list(model.relation_heads.parameters()) if model.relation_heads is not None else []
    apart = {id(p) for p in [*model.encoder.parameters(), *heads]}
    rest = [p for p in model.parameters() if id(p) not in apart and p.requires_grad]
    groups = [{"params": rest, "lr": cfg.lr}]
    if encoder:
        groups.append({"params": encoder, "lr": cfg.lr * cfg.encoder_lr_scale})
    if heads:
        groups.append({"params": heads, "lr": cfg.lr * cfg.relation_heads_lr_scale})
    return groups


def optimisation(model, cfg: TrainConfig, device: str, resume_from: Path | None):
    """Adam over the trainable groups, the tri-stage schedule and the loop's state; as they
    were saved in `resume_from` when given."""
    optimizer = torch.optim.Adam(parameter_groups(model, cfg), betas=(0.9, 0.98), eps=1e-8)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: tri_stage(
        s, cfg.max_steps, cfg.warmup, cfg.hold, cfg.final_lr_scale))
    # epoch: passes begun; done: batches of the current pass already taken (for resume)
    state = {"step": 0, "best": None, "evals_without_gain": 0, "epoch": 0, "done": 0}
    if resume_from is not None:
        state = {**state, **json.loads((resume_from / "state.json").read_text())}
        saved = torch.load(resume_from / "optimizer.pt", map_location=device, weights_only=True)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
    return optimizer, scheduler, state
