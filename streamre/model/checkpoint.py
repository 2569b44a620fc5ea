"""Checkpoint folders: presets, creating a fresh (randomly initialised) one, and loading any.

A checkpoint is a folder with `config.json`, `model.safetensors` and `tokenizer.json`; anything
`from_pretrained` accepts (a folder, or a hub id when a hub is reachable) can be loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from streamre import MODELS_DIR
from streamre.model.linearize import linearize
from streamre.model.mcam import MCAMConfig, MCAMModel
from streamre.model.tokenizer import train_bpe_tokenizer

DEFAULT_MODEL_NAME = "streamre-tiny-untrained"
CONLL04_RELATIONS = ["Work_For", "Kill", "OrgBased_In", "Live_In", "Located_In"]

# Sizes: speech = wav2vec 2.0 (hidden, layers, heads, ffn, conv channels); text = BART (d_model,
# text-encoder layers, projection layers, decoder layers, heads, ffn). `base` has the shapes of
# facebook/wav2vec2-base and facebook/bart-base (6 encoder layers: 3 text + 3 projection).
PRESETS = {
    "tiny": dict(speech=(64, 2, 2, 128, 64), text=(64, 1, 1, 2, 2, 128), vocab=1000),
    "mini": dict(speech=(192, 4, 4, 768, 128), text=(192, 1, 2, 2, 4, 768), vocab=2000),
    "small": dict(speech=(256, 6, 4, 1024, 256), text=(256, 3, 3, 3, 4, 1024), vocab=8000),
    "base": dict(speech=(768, 12, 12, 3072, 512), text=(768, 3, 3, 6, 12, 3072), vocab=50265),
}

# Text a fresh tokenizer learns from when no training data is given.
SEED_TEXTS = [
    "David Chen works for the World Bank in Washington.",
    "The meeting with Maria Lopez of Acme Corporation is in Boston.",
    "John Smith lives in London and works for the BBC.",
    "Oswald killed Kennedy in Dallas, Texas.",
]


def model_config(preset: str, vocab_size: int, relations: list[str], alignment: str = "mcam",
                 special_ids: dict[str, int] | None = None,
                 speech_frontend: str = "wav2vec2") -> MCAMConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    p = PRESETS[preset]
    hidden, layers, heads, ffn, conv = p["speech"]
    d_model, text_layers, projection_layers, decoder_layers, text_heads, text_ffn = p["text"]
    ids = special_ids or {}
    speech = dict(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=ffn, conv_dim=(conv,) * 7, feat_extract_norm="layer",
        num_conv_pos_embeddings=16 if preset == "tiny" else 128,
        num_conv_pos_embedding_groups=4 if preset == "tiny" else 16,
        do_stable_layer_norm=preset != "tiny", mask_time_prob=0.0, layerdrop=0.0)
    bart = dict(
        vocab_size=vocab_size, d_model=d_model, encoder_layers=text_layers + projection_layers,
        decoder_layers=decoder_layers, encoder_attention_heads=text_heads,
        decoder_attention_heads=text_heads, encoder_ffn_dim=text_ffn, decoder_ffn_dim=text_ffn,
        max_position_embeddings=1024, tie_word_embeddings=False, scale_embedding=False,
        pad_token_id=ids.get("pad", 1), bos_token_id=ids.get("bos", 0),
        eos_token_id=ids.get("eos", 2), decoder_start_token_id=ids.get("bos", 0),
        forced_bos_token_id=None, forced_eos_token_id=None)
    # Log-mel frames are 40 ms, wav2vec 2.0's 20 ms: one adapter layer fewer gives the same 80 ms.
    return MCAMConfig(speech_encoder=speech, bart=bart, relations=relations, alignment=alignment,
                      text_encoder_layers=text_layers, speech_frontend=speech_frontend,
                      adapter_layers=1 if speech_frontend == "logmel" else 2)


def create_checkpoint(out_dir: str | Path, preset: str = "tiny", texts: Iterable[str] = (),
                      relations: list[str] | None = None, alignment: str = "mcam",
                      seed: int = 0, speech_frontend: str = "wav2vec2") -> Path:
    """Write a randomly initialised checkpoint (tokenizer trained on `texts`) to `out_dir`."""
    relations = relations or CONLL04_RELATIONS
    texts = list(texts) or SEED_TEXTS
    corpus = texts + [linearize([(r, r, r)]) for r in relations]
    tokenizer = train_bpe_tokenizer(corpus, vocab_size=PRESETS[preset]["vocab"])
    ids = {"pad": tokenizer.pad_token_id, "bos": tokenizer.bos_token_id,
           "eos": tokenizer.eos_token_id}
    torch.manual_seed(seed)
    config = model_config(preset, len(tokenizer), relations, alignment, ids, speech_frontend)
    model = MCAMModel(config)
    configure_generation(model, tokenizer)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def configure_generation(model: MCAMModel, tokenizer) -> None:
    """Decoding starts at <s> and stops at </s>; nothing forced, no length or n-gram rules."""
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    model.bart.config.decoder_start_token_id = bos
    model.bart.generation_config.update(
        decoder_start_token_id=bos, bos_token_id=bos, eos_token_id=eos, pad_token_id=pad,
        forced_bos_token_id=None, forced_eos_token_id=None, max_length=None,
        early_stopping=False, no_repeat_ngram_size=0, num_beams=1, min_length=0)


def resolve_model(name_or_path: str | None) -> str:
    """'' means the bundled default; a bare name found under models/ is that folder."""
    name = name_or_path or DEFAULT_MODEL_NAME
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if (MODELS_DIR / name).is_dir():
        return str(MODELS_DIR / name)
    return name  # a hub id


def load_checkpoint(name_or_path: str | None, device: str = "cpu"):
    """(model, tokenizer) from a folder or hub id, in eval mode on `device`."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    where = resolve_model(name_or_path)
    try:
        model = MCAMModel.from_pretrained(where)
        tokenizer = AutoTokenizer.from_pretrained(where)
    except OSError as e:
        raise FileNotFoundError(
            f"cannot load model {where!r}: not a checkpoint folder, and not a hub id that can be "
            f"fetched from here ({e.__class__.__name__})") from None
    return model.to(device).eval(), tokenizer
