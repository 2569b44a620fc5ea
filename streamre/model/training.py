"""`streamre train`: the two stages of the paper on a manifest, with checkpoints and resume.

Stage `asr` pre-trains with y = x (the transcript), aligning a random 30 % of tokens; when the
text side starts from pretrained BART it is frozen (the text encoder, projection and decoder), so
speech learns to meet it. Stage `re` fine-tunes everything on the linearised triplets. Run
`--stage asr` and then `--stage re --init OUT_OF_ASR` for the paper's recipe.

The best checkpoint (by dev RTE F1 for `re`, by dev speech-path loss for `asr`) is written to
`--out` as a model folder; `--out/last/` holds what `--resume` needs; `--out/train_log.jsonl`
has one line per logged step and per evaluation.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from streamre.inference.extractor import ModelExtractor, pick_device
from streamre.model.checkpoint import (
    PRESETS, configure_generation, load_checkpoint, model_config)
from streamre.model.data import STAGES, Collator, Example, read_manifest
from streamre.model.evaluate import evaluate, transcript_scores
from streamre.model.linearize import MARKERS
from streamre.model.mcam import MCAMModel
from streamre.model.objective import mcam_objective
from streamre.model.tokenizer import train_bpe_tokenizer

PROJECTION_LAYERS = 3  # top BART encoder layers shared by speech and text (the paper's N)


@dataclass
class TrainConfig:
    train: str | tuple[str, ...]  # one manifest or several, read as one training set
    out: str
    dev: str | None = None
    stage: str = "re"
    preset: str = "tiny"
    alignment: str = "mcam"
    speech_frontend: str = "wav2vec2"
    relations: tuple[str, ...] = ()  # empty: every relation in the training manifest
    asr_ctc_weight: float = 0.0  # > 0: a new model gets a CTC ASR head on its adapter output
    init: tuple[str, ...] = ()
    max_steps: int = 2000
    batch_size: int = 8
    lr: float = 5e-4
    warmup: float = 0.1  # tri-stage schedule: share of steps warming up,
    hold: float = 0.4  # held at the peak, then decaying exponentially to
    final_lr_scale: float = 0.05  # this share of the peak
    clip_norm: float = 10.0
    freeze_ffn: bool = False
    eval_every: int = 200
    patience: int = 5  # evaluations without improvement before stopping
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"--stage must be one of {', '.join(STAGES)}")
        if self.preset not in PRESETS:
            raise ValueError(f"--preset must be one of {', '.join(PRESETS)}")
        if self.max_steps < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError("--max-steps, --batch-size and --eval-every must be positive")
        if self.warmup < 0 or self.hold < 0 or self.warmup + self.hold > 1:
            raise ValueError("--warmup and --hold are shares of the steps: each at least 0, "
                             "together at most 1")


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

def _init_kinds(inits: tuple[str, ...]) -> dict[str, str]:
    """Each --init (folder or hub id) by what it holds: 'mcam', 'wav2vec2' or 'bart'."""
    from transformers import AutoConfig

    from streamre.model.checkpoint import resolve_model

    kinds: dict[str, str] = {}
    for name in inits:
        where = resolve_model(name)
        try:
            model_type = AutoConfig.from_pretrained(where).model_type
        except (OSError, ValueError) as e:
            raise FileNotFoundError(f"--init {name}: cannot read its config ({e})") from None
        kind = {"streamre-mcam": "mcam", "wav2vec2": "wav2vec2", "bart": "bart"}.get(model_type)
        if kind is None:
            raise ValueError(f"--init {name}: a {model_type} model; expected an MCAM checkpoint, "
                             "wav2vec 2.0 or BART")
        if kind in kinds:
            raise ValueError(f"--init names two {kind} models")
        kinds[kind] = where
    if "mcam" in kinds and len(kinds) > 1:
        raise ValueError("--init with an MCAM checkpoint takes nothing else")
    return kinds


def build_model(cfg: TrainConfig, examples: list[Example]):
    """(model, tokenizer, text side pretrained?) from --init and the preset."""
    from transformers import AutoTokenizer, BartForConditionalGeneration, Wav2Vec2Model

    kinds = _init_kinds(cfg.init)
    if "wav2vec2" in kinds and cfg.speech_frontend != "wav2vec2":
        raise ValueError("a pretrained wav2vec 2.0 needs --speech-frontend wav2vec2")
    if "mcam" in kinds:
        model, tokenizer = load_checkpoint(kinds["mcam"])
        return model, tokenizer, bool(getattr(model.config, "text_pretrained", False))

    if "bart" in kinds:
        tokenizer = AutoTokenizer.from_pretrained(kinds["bart"])
        tokenizer.add_special_tokens({"additional_special_tokens": list(MARKERS)})
    else:
        texts = [e.text for e in examples] + [e.target("re") for e in examples]
        tokenizer = train_bpe_tokenizer(texts, vocab_size=PRESETS[cfg.preset]["vocab"])
    relations = list(cfg.relations) or sorted({r for e in examples for _, r, _ in e.triplets}) \
        or ["relation"]
    ids = {"pad": tokenizer.pad_token_id, "bos": tokenizer.bos_token_id,
           "eos": tokenizer.eos_token_id}
    config = model_config(cfg.preset, len(tokenizer), relations, cfg.alignment, ids,
                          cfg.speech_frontend)
    config.asr_ctc_weight = cfg.asr_ctc_weight
    speech = text = None
    if "wav2vec2" in kinds:
        speech = Wav2Vec2Model.from_pretrained(kinds["wav2vec2"])
        config.speech_encoder = speech.config.to_dict()
    if "bart" in kinds:
        text = BartForConditionalGeneration.from_pretrained(kinds["bart"])
        text.resize_token_embeddings(len(tokenizer))
        # Untie the output layer so the checkpoint holds plain, unshared tensors.
        text.lm_head.weight = torch.nn.Parameter(text.lm_head.weight.detach().clone())
        text.config.tie_word_embeddings = False
        config.bart = {**text.config.to_dict(), **{k: v for k, v in config.bart.items()
                                                   if k.endswith("token_id")}}
        config.text_encoder_layers = max(1, text.config.encoder_layers - PROJECTION_LAYERS)
        config.text_pretrained = True
    model = MCAMModel(config)
    if speech is not None:
        model.speech_encoder.load_state_dict(speech.state_dict())
        model.speech_encoder.freeze_feature_encoder()  # the CNN front end stays as pretrained
    if text is not None:
        model.bart.load_state_dict(text.state_dict())
    configure_generation(model, tokenizer)
    return model, tokenizer, text is not None


def _freeze(model: MCAMModel, cfg: TrainConfig, text_pretrained: bool) -> None:
    if cfg.stage == "asr" and text_pretrained:
        for p in model.bart.parameters():
            p.requires_grad = False
    if cfg.freeze_ffn:
        for name, p in model.named_parameters():
            if ".feed_forward." in name or ".fc1." in name or ".fc2." in name:
                p.requires_grad = False


# -- the loop -----------------------------------------------------------------------------------

def train(cfg: TrainConfig) -> dict:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # ours is the only bar
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    manifests = (cfg.train,) if isinstance(cfg.train, str) else cfg.train
    train_set = [example for path in manifests for example in read_manifest(path)]
    dev_set = read_manifest(cfg.dev) if cfg.dev else train_set
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    last = out / "last"
    resuming = cfg.resume and (last / "state.json").is_file()
    if resuming:
        model, tokenizer = load_checkpoint(str(last))
        text_pretrained = bool(getattr(model.config, "text_pretrained", False))
    else:
        model, tokenizer, text_pretrained = build_model(cfg, train_set)
    model.to(device).train()
    _freeze(model, cfg, text_pretrained)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: tri_stage(
        s, cfg.max_steps, cfg.warmup, cfg.hold, cfg.final_lr_scale))
    state = {"step": 0, "best": None, "evals_without_gain": 0, "epoch": 0}
    if resuming:
        state = json.loads((last / "state.json").read_text())
        saved = torch.load(last / "optimizer.pt", map_location=device, weights_only=True)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])

    collate = Collator(tokenizer, cfg.stage, seed=cfg.seed + state["step"])
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") \
        else contextlib.nullcontext()
    log = open(out / "train_log.jsonl", "a", encoding="utf-8")
    bar = tqdm(total=cfg.max_steps, initial=state["step"], desc=f"train {cfg.stage}",
               unit="step", file=sys.stderr, disable=not cfg.progress, dynamic_ncols=True)
    started, seen, stop = time.monotonic(), 0, False
    try:
        while state["step"] < cfg.max_steps and not stop:
            batches = length_grouped_batches(train_set, cfg.batch_size, cfg.seed + state["epoch"])
            state["epoch"] += 1
            for chunk in batches:
                batch = collate(chunk).to(device)
                with amp:
                    losses = mcam_objective(model, batch)
                optimizer.zero_grad(set_to_none=True)
                losses["loss"].backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(trainable, cfg.clip_norm)
                optimizer.step()
                scheduler.step()
                state["step"] += 1
                seen += len(chunk)
                lr = scheduler.get_last_lr()[0]
                speed = seen / max(1e-9, time.monotonic() - started)
                bar.set_postfix(loss=f"{losses['loss'].detach().item():.3f}", lr=f"{lr:.2e}",
                                utt_s=f"{speed:.1f}")
                bar.update(1)
                if state["step"] % cfg.log_every == 0:
                    _log(log, {"step": state["step"], "lr": lr, "utt_per_s": round(speed, 2),
                               "grad_norm": round(float(grad_norm), 4),
                               **{k: round(v.item(), 5) for k, v in losses.items()}})
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
    """Score on dev; keep the best checkpoint in `out`; True when patience has run out."""
    model.eval()
    if cfg.stage == "re":
        extractor = ModelExtractor.from_model(model, tokenizer)
        scores = evaluate(extractor, dev_set, batch_size=cfg.batch_size, progress=cfg.progress)
        value = scores["RTE"]["f1"]
    else:  # transcripts: the speech path's loss on dev, lower is better; CER to read
        collate = Collator(tokenizer, "asr", seed=0)
        with torch.no_grad():
            losses = [mcam_objective(model, collate(dev_set[i:i + cfg.batch_size]).to(
                next(model.parameters()).device))["ce_speech"].item()
                for i in range(0, len(dev_set), cfg.batch_size)]
        transcripts = transcript_scores(model, tokenizer, dev_set, cfg.batch_size)
        scores = {"dev_ce_speech": round(sum(losses) / len(losses), 5),
                  "dev_cer": transcripts["cer"], "dev_samples": transcripts["samples"]}
        value = -scores["dev_ce_speech"]
    improved = state["best"] is None or value > state["best"]
    if improved:
        state["best"], state["evals_without_gain"] = value, 0
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        (out / "training.json").write_text(json.dumps(
            {"config": asdict(cfg), "step": state["step"], "dev": scores}, indent=2))
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
