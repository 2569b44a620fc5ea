"""Checkpoint folders: a model from imported Whisper weights, a fresh tiny one, and loading any.

A checkpoint is a folder with `config.json`, `model.safetensors` and `tokenizer.json`; anything
`from_pretrained` accepts (a folder, or a hub id when a hub is reachable) can be loaded.

The papers named here: `docs/papers.md`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from streamre.model.linearize import target_text
from streamre.model.mcam import MCAMConfig, MCAMModel
from streamre.model.relation_heads import prompt_tokens
from streamre.model.tokenizer import prompt_ids, train_bpe_tokenizer, with_markers
from streamre.pretrained import load_pretrained, resolve_folder

DEFAULT_ALIGNED_MODEL = "streamre-whisper-tiny-conll04"
CONLL04_RELATIONS = ["Work_For", "Kill", "OrgBased_In", "Live_In", "Located_In"]



@dataclass(frozen=True)
class Preset:
    """The shape of a Whisper-like model made from scratch."""
    d_model: int
    encoder_layers: int
    decoder_layers: int
    heads: int
    ffn: int  # feed-forward width
    vocab: int  # tokenizer entries

    def whisper(self) -> dict:
        return dict(d_model=self.d_model, encoder_layers=self.encoder_layers,
                    decoder_layers=self.decoder_layers, encoder_attention_heads=self.heads,
                    decoder_attention_heads=self.heads, encoder_ffn_dim=self.ffn,
                    decoder_ffn_dim=self.ffn, max_source_positions=1500,
                    max_target_positions=448, num_mel_bins=80)


# Shapes for a model made from scratch; tiny is small enough to make and train in a test.
TINY = Preset(d_model=64, encoder_layers=2, decoder_layers=2, heads=2, ffn=128, vocab=1000)
PRESETS = {
    "tiny": TINY,
    "small": Preset(d_model=256, encoder_layers=4, decoder_layers=4, heads=4, ffn=1024,
                    vocab=4000),
    "base": Preset(d_model=512, encoder_layers=6, decoder_layers=6, heads=8, ffn=2048,
                   vocab=8000),
}

# Text a fresh tokenizer learns from when no training data is given.
SEED_TEXTS = [
    "David Chen works for the World Bank in Washington.",
    "The meeting with Maria Lopez of Acme Corporation is in Boston.",
    "John Smith lives in London and works for the BBC.",
    "Oswald killed Kennedy in Dallas, Texas.",
]


def mcam_config(whisper: dict, tokenizer, relations: list[str], alignment: str
                ) -> MCAMConfig:
    """The model's config around a Whisper config (a dict), for this tokenizer."""
    eos, prompt = tokenizer.eos_token_id, prompt_ids(tokenizer)
    whisper = {**whisper, "vocab_size": len(tokenizer), "eos_token_id": eos,
               "pad_token_id": eos, "bos_token_id": eos, "decoder_start_token_id": prompt[0]}
    return MCAMConfig(whisper=whisper, alignment=alignment, relations=relations,
                      decoder_prompt=prompt)


def create_checkpoint(out_dir: str | Path, texts: Iterable[str] = (),
                      relations: list[str] | None = None, alignment: str = "mcam",
                      seed: int = 0, preset: Preset = TINY) -> Path:
    """Write a randomly initialised checkpoint of the preset's shape (tiny by default; its
    tokenizer trained on `texts`) to `out_dir`."""
    relations = relations or CONLL04_RELATIONS
    texts = list(texts) or SEED_TEXTS
    corpus = texts + [target_text(r, [(r, r, r)]) for r in relations]
    tokenizer = train_bpe_tokenizer(corpus, vocab_size=preset.vocab)
    torch.manual_seed(seed)
    model = MCAMModel(mcam_config(preset.whisper(), tokenizer, relations, alignment))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def grown_table(table: torch.Tensor, rows: int) -> torch.Tensor:
    """A token table grown to `rows`: new tokens (markers) start at the mean embedding, a
    little apart from each other."""
    generator = torch.Generator().manual_seed(0)
    extra = rows - table.shape[0]
    return torch.cat([table, table.mean(0) + 0.01 * torch.randn(extra, table.shape[1],
                                                                generator=generator)])


def from_whisper(where: str, relations: list[str], alignment: str):
    """(model, tokenizer) from a transformers Whisper folder or hub id (`streamre
    import-whisper` writes one): its encoder and decoder, the markers added to its tokens."""
    from transformers import AutoTokenizer, WhisperForConditionalGeneration

    whisper = load_pretrained(WhisperForConditionalGeneration, where, dtype=torch.float32)
    tokenizer = with_markers(AutoTokenizer.from_pretrained(where))
    model = MCAMModel(mcam_config(whisper.config.to_dict(), tokenizer, relations, alignment))
    model.encoder.load_state_dict(whisper.model.encoder.state_dict())
    table = whisper.model.decoder.embed_tokens.weight.detach()
    state = whisper.model.decoder.state_dict()
    state["embed_tokens.weight"] = grown_table(table, len(tokenizer))
    model.decoder.load_state_dict(state)
    return model, tokenizer


def with_alignment(model: MCAMModel, alignment: str, relations: list[str]) -> MCAMModel:
    """The same Whisper encoder and decoder under another alignment: a baseline given a fresh
    MCAM adapter (its projection the identity at start), or MCAM without its adapter."""
    if model.config.alignment == alignment:
        return model
    config = MCAMConfig(**{**model.config.to_dict(), "alignment": alignment,
                           "relations": relations or model.config.relations})
    other = MCAMModel(config)
    for part in ("encoder", "decoder", "relation_heads"):
        if getattr(model, part) is not None:
            getattr(other, part).load_state_dict(getattr(model, part).state_dict())
    return other


def with_text(model: MCAMModel) -> MCAMModel:
    """The same model made to read text as well as speech (IMAGE): every weight kept, the
    text path (when the model had none) and the presence embeddings new."""
    if model.takes_text:
        return model
    other = MCAMModel(MCAMConfig(**{**model.config.to_dict(), "modalities": ["speech", "text"]}))
    missing, unexpected = other.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("text_encoder.", "presence.")) for k in missing)
    return other


def with_orders(model: MCAMModel, tokenizer, orders: list[str]):
    """(model, tokenizer) that write the facts in these orders (RPG-MoGe): each order's token
    added to the tokenizer and to the decoder's table (at the table's mean, a little apart)."""
    if model.config.orders == list(orders):
        return model, tokenizer
    if model.config.orders:
        raise ValueError(f"the model writes its facts in the orders {model.config.orders}; "
                         f"it cannot learn {list(orders)} instead")
    return _grown(model, with_markers(tokenizer, orders), orders=list(orders))


def with_relation_heads(model: MCAMModel, tokenizer):
    """(model, tokenizer) with relation heads and their prompt (RPG-MoGe): the heads new, the
    prompt's tokens added to the tokenizer and to the decoder's table."""
    if model.config.relation_heads:
        return model, tokenizer
    tokens = prompt_tokens(model.config.relations)
    return _grown(model, with_markers(tokenizer, extra=tokens), relation_heads=True)


def _grown(model: MCAMModel, tokenizer, **changes) -> tuple[MCAMModel, object]:
    """The model with these config changes and a token table grown to the tokenizer's size;
    every weight kept, new parts (relation heads) as made."""
    whisper = {**model.config.whisper, "vocab_size": len(tokenizer)}
    other = MCAMModel(MCAMConfig(**{**model.config.to_dict(), "whisper": whisper, **changes}))
    state = model.state_dict()
    state["decoder.embed_tokens.weight"] = grown_table(state["decoder.embed_tokens.weight"],
                                                       len(tokenizer))
    missing, unexpected = other.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("relation_heads.") for k in missing)
    return other, tokenizer


def save_float16(model, folder: str | Path) -> None:
    """`model` (any transformers model) saved with float16 weights, through a copy, so the
    model in training keeps its float32 weights."""
    half = type(model)(model.config)
    half.load_state_dict(model.state_dict())
    half.half().save_pretrained(folder)


def resolve_model(name_or_path: str | None) -> str:
    """'' means the bundled default; a bare name found under models/ is that folder."""
    return resolve_folder(name_or_path or DEFAULT_ALIGNED_MODEL)


def load_checkpoint(name_or_path: str | None, device: str = "cpu"):
    """(model, tokenizer) from a folder or hub id, in float32 and eval mode on `device`."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    where = resolve_model(name_or_path)
    try:
        model = load_pretrained(MCAMModel, where, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(where)
    except OSError as e:
        raise FileNotFoundError(
            f"cannot load model {where!r}: not a checkpoint folder, and not a hub id that can be "
            f"fetched from here ({e.__class__.__name__})") from None
    return model.to(device).eval(), tokenizer
