"""`streamre train`: fine-tune the model on manifests, with dev selection, checkpoints and resume.

`--init` names where the weights start: a transformers Whisper folder or hub id (`streamre
import-whisper` writes one; the markers are added to its tokens and the adapter is new), or a
checkpoint of this model to go on from (a baseline checkpoint trained on with `--alignment mcam`
gets a fresh adapter whose projection starts as the identity). Without `--init` a tiny model
is made from scratch, with a tokenizer learnt from the training text (the tests train such
models).

Whisper's encoder learnt from real speech and the training voices are synthetic, so how much
of it moves is a choice: `--encoder-layers-tuned K` trains only its top K layers (0: frozen;
the default, -1, trains all) at `--encoder-lr-scale` times the learning rate; and
`--keep-whisper W` adds W times the KL from the original Whisper's next-token distribution to
the model's on the transcript's tokens, so the decoder learns the facts without unlearning how
to transcribe.

`--orders` writes the facts in element orders (RPG-MoGe), one drawn per example; such a model
is scored on dev with every order voting (`--ensemble`). `--text-batches` and `--both-batches`
teach the model to read text as well (IMAGE: see `streamre.model.mcam`): some batches are
given as text alone or as speech with its text.

The best checkpoint by dev RTE F1 (for a model that reads text, the mean of dev RTE F1 from
speech and from the manifest's text) is written to `--out` as a model folder, with the dev scores
and the transcripts' WER in `training.json`; `--out/last/` holds what `--resume` needs;
`--out/train_log.jsonl` has one line per logged step and per evaluation.

The papers named here: `docs/papers.md`.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from streamre.model.extractor import ModelExtractor
from streamre.whisper.devices import pick_device
from streamre.model.text import ModelTextExtractor
from streamre.model.checkpoint import load_checkpoint, save_float16
from streamre.whisper.features import WHISPER_WINDOW_S
from streamre.model.relation_heads import RelationPrompt
from streamre.training.config import TrainConfig
from streamre.training.data import Collator, Example, read_manifest
from streamre.training.evaluate import evaluate
from streamre.training.model_setup import build_model, load_teacher, optimisation
from streamre.training.objective import inputs_objective, mcam_objective
from streamre.training.seeding import seed_everything


# -- the loop -----------------------------------------------------------------------------------

def train(cfg: TrainConfig) -> dict:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # ours is the only bar
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    train_set, dev_set = _datasets(cfg)
    seed_everything(cfg.seed)
    last = out / "last"
    resuming = cfg.resume and (last / "state.json").is_file()
    if resuming:
        model, tokenizer = load_checkpoint(str(last))
    else:
        model, tokenizer = build_model(cfg, train_set, out / "scratch")
    model.to(device).train()
    teacher = load_teacher(cfg)
    if teacher is not None:
        teacher.to(device)
    optimizer, scheduler, state = optimisation(model, cfg, device, last if resuming else None)
    trainable = [p for group in optimizer.param_groups for p in group["params"]]
    collate = Collator(tokenizer, RelationPrompt.of(model, tokenizer))
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") \
        else contextlib.nullcontext()
    log = open(out / "train_log.jsonl", "a", encoding="utf-8")
    bar = tqdm(total=cfg.max_steps, initial=state["step"], desc="train", unit="step",
               file=sys.stderr, disable=not cfg.progress, dynamic_ncols=True)
    started, seen, stop = time.monotonic(), 0, False
    try:
        while state["step"] < cfg.max_steps and not stop:
            if state["done"] == 0:
                state["epoch"] += 1
            batches = length_grouped_batches(train_set, cfg.batch_size, cfg.seed + state["epoch"])
            for chunk in batches[state["done"]:]:
                with amp:
                    batch = collate(chunk, cfg.orders_at(state["step"], len(chunk))).to(device)
                    losses = inputs_objective(model, batch, cfg.inputs_at(state["step"])) \
                        if model.takes_text else \
                        mcam_objective(model, batch, teacher=teacher, keep=cfg.keep_whisper)
                optimizer.zero_grad(set_to_none=True)
                losses["loss"].backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(trainable, cfg.clip_norm)
                optimizer.step()
                scheduler.step()
                state["step"] += 1
                state["done"] = (state["done"] + 1) % len(batches)
                seen += len(chunk)
                _report(bar, log, cfg, state, losses, grad_norm, scheduler.get_last_lr()[0],
                        seen / max(1e-9, time.monotonic() - started))
                if state["step"] % cfg.eval_every == 0 or state["step"] >= cfg.max_steps:
                    stop = _evaluate_and_save(model, tokenizer, cfg, dev_set, state, log, out)
                    _save_last(model, tokenizer, optimizer, scheduler, state, last)
                    model.train()
                if stop or state["step"] >= cfg.max_steps:
                    break
    finally:
        bar.close()
        log.close()
    return {"step": state["step"], "best": state["best"]}


def _datasets(cfg: TrainConfig) -> tuple[list[Example], list[Example]]:
    """The training set (without utterances longer than Whisper's window) and the dev set."""
    manifests = (cfg.train,) if isinstance(cfg.train, str) else cfg.train
    train_set = [example for path in manifests for example in read_manifest(path)]
    window_s = WHISPER_WINDOW_S  # longer utterances cannot be learnt whole
    too_long = [e for e in train_set if e.duration > window_s]
    if too_long:
        print(f"streamre train: leaving out {len(too_long)} of {len(train_set)} training "
              f"utterances longer than {window_s:.0f} s", file=sys.stderr)
        train_set = [e for e in train_set if e.duration <= window_s]
    return train_set, (read_manifest(cfg.dev) if cfg.dev else train_set)


def _report(bar, log, cfg: TrainConfig, state: dict, losses: dict, grad_norm, lr: float,
            speed: float) -> None:
    bar.set_postfix(loss=f"{losses['loss'].detach().item():.3f}", lr=f"{lr:.2e}",
                    utt_s=f"{speed:.1f}", epoch=state["epoch"])
    bar.update(1)
    if state["step"] % cfg.log_every == 0:
        _log(log, {"step": state["step"], "epoch": state["epoch"], "lr": lr,
                   "utt_per_s": round(speed, 2), "grad_norm": round(float(grad_norm), 4),
                   **{k: round(v.item(), 5) for k, v in losses.items()}})


def length_grouped_batches(examples: list[Example], batch_size: int, seed: int
                           ) -> list[list[Example]]:
    """Shuffled batches of similar length, so little of each batch is padding: a random order
    is cut into pools of 50 batches, each pool sorted by duration, then the batches shuffled."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for first in range(0, len(order), pool):
        group = sorted(order[first:first + pool], key=lambda i: examples[i].duration)
        batches += [[examples[i] for i in group[j:j + batch_size]]
                    for j in range(0, len(group), batch_size)]
    rng.shuffle(batches)
    return batches


def _evaluate_and_save(model, tokenizer, cfg: TrainConfig, dev_set: list[Example], state: dict,
                       log, out: Path) -> bool:
    """Score on dev; keep the best checkpoint (float16 weights) in `out`; True when patience
    has run out."""
    model.eval()
    # A model trained in several orders is chosen as it will serve: every order, voting.
    extractor = ModelExtractor(model, tokenizer, ensemble=len(model.config.orders) > 1)
    scores = evaluate(extractor, dev_set, batch_size=cfg.batch_size, progress=cfg.progress)
    value = scores["RTE"]["f1"]
    if model.takes_text:  # chosen for both inputs: the mean of dev RTE from speech and text
        scores["text"] = evaluate(None, dev_set, text_extractor=ModelTextExtractor(extractor))
        value = (value + scores["text"]["RTE"]["f1"]) / 2
    improved = state["best"] is None or value > state["best"]
    if improved:
        state["best"], state["evals_without_gain"] = value, 0
        save_float16(model, out)
        tokenizer.save_pretrained(out)
        (out / "training.json").write_text(json.dumps(
            {"config": asdict(cfg), "step": state["step"], "epoch": state["epoch"],
             "dev": scores}, indent=2))
    else:
        state["evals_without_gain"] += 1
    _log(log, {"step": state["step"], "eval": scores, "best": improved})
    return state["evals_without_gain"] >= cfg.patience


def _save_last(model, tokenizer, optimizer, scheduler, state: dict, last: Path) -> None:
    last.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(last)
    tokenizer.save_pretrained(last)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
               last / "optimizer.pt")
    (last / "state.json").write_text(json.dumps(state))  # written last: marks a complete save


def _log(log, record: dict) -> None:
    log.write(json.dumps(record) + "\n")
    log.flush()
