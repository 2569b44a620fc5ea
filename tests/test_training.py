"""Training, evaluation and their data: real CLI runs on espeak-ng speech made here."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from conftest import synthesize
from streamre.model.data import Collator, Example, ManifestError, read_manifest
from streamre.model.metrics import character_error_rate, edit_distance, score
from streamre.model.training import TrainConfig, build_model, tri_stage

UTTERANCES = [
    ("David Chen works for the World Bank.", [["David Chen", "Work_For", "World Bank"]]),
    ("Maria Lopez lives in Boston.", [["Maria Lopez", "Live_In", "Boston"]]),
    ("Oswald killed Kennedy.", [["Oswald", "Kill", "Kennedy"]]),
    ("Acme is based in Paris.", [["Acme", "OrgBased_In", "Paris"]]),
]


@pytest.fixture(scope="session")
def manifest(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    with open(folder / "train.jsonl", "w") as f:
        for i, (text, triplets) in enumerate(UTTERANCES):
            synthesize(text, folder / f"u{i}.wav")
            f.write(json.dumps({"audio": f"u{i}.wav", "text": text, "triplets": triplets}) + "\n")
    return folder / "train.jsonl"


def streamre(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamre", *args], capture_output=True,
                          text=True, timeout=600)


def test_tiny_model_memorises_four_utterances(manifest, tmp_path):
    out = tmp_path / "model"
    trained = streamre("train", "--train", str(manifest), "--out", str(out), "--preset", "tiny",
                       "--max-steps", "100", "--batch-size", "4", "--lr", "3e-3",
                       "--eval-every", "50")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "loss" in r]
    assert {"loss", "lr", "utt_per_s", "ce_speech", "kl_speech", "contrastive", "ctc"} <= set(steps[0])
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert "train re" in trained.stderr  # the progress bar

    evaluated = streamre("eval", "--model", str(out), "--data", str(manifest),
                         "--predictions", str(tmp_path / "p.jsonl"))
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    summary = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert summary["n"] == 4 and summary["RTE"]["f1"] >= 0.9
    predictions = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(predictions) == 4 and all("predicted" in p and "gold" in p for p in predictions)


def test_resume_goes_on_from_the_last_step(manifest, tmp_path):
    from streamre.model.training import train

    cfg = TrainConfig(train=str(manifest), out=str(tmp_path / "m"), max_steps=4, batch_size=2,
                      eval_every=2, log_every=1, progress=False)
    train(cfg)
    assert json.loads((tmp_path / "m" / "last" / "state.json").read_text())["step"] == 4
    result = train(replace(cfg, max_steps=6, resume=True))
    assert result["step"] == 6
    steps = [json.loads(line)["step"] for line in
             (tmp_path / "m" / "train_log.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == [1, 2, 3, 4, 5, 6]  # not restarted from 1


def test_pretrained_submodels_from_local_folders(manifest, tmp_path, monkeypatch):
    from transformers import BartConfig, BartForConditionalGeneration, Wav2Vec2Config, Wav2Vec2Model

    from streamre.model.tokenizer import train_bpe_tokenizer
    from streamre.model.training import train

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network: local folders only
    speech = Wav2Vec2Model(Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32,) * 7, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer"))
    speech.save_pretrained(tmp_path / "w2v")
    tokenizer = train_bpe_tokenizer([t for t, _ in UTTERANCES], vocab_size=300)
    text = BartForConditionalGeneration(BartConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=4, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_position_embeddings=256))
    text.save_pretrained(tmp_path / "bart")
    tokenizer.save_pretrained(tmp_path / "bart")

    cfg = TrainConfig(train=str(manifest), out=str(tmp_path / "asr"), stage="asr",
                      init=(str(tmp_path / "w2v"), str(tmp_path / "bart")), max_steps=2,
                      batch_size=2, eval_every=2, progress=False)
    model, _, text_pretrained = build_model(cfg, read_manifest(manifest))
    assert text_pretrained and model.config.text_encoder_layers == 1  # 4 - 3 projection layers
    for name, p in speech.state_dict().items():
        assert torch.equal(model.speech_encoder.state_dict()[name], p)
    assert torch.equal(model.bart.model.decoder.layers[0].fc1.weight,
                       text.model.decoder.layers[0].fc1.weight)

    # Stage asr trains speech to meet the frozen pretrained text side.
    train(cfg)
    from streamre.model import load_checkpoint

    after, _ = load_checkpoint(str(tmp_path / "asr"))
    assert torch.equal(after.bart.model.decoder.layers[0].fc1.weight,
                       text.model.decoder.layers[0].fc1.weight)
    assert not torch.equal(after.adapter.convs[0].weight, model.adapter.convs[0].weight)


@pytest.mark.parametrize("line, needle", [
    ("not json", ":1: not JSON"),
    ('{"audio": "u0.wav"}', "needs string fields"),
    ('{"audio": "missing.wav", "text": "x"}', "audio file not found"),
    ('{"audio": "u0.wav", "text": "x", "triplets": [["a", "b"]]}', "triplets"),
    ('{"audio": "u0.wav", "text": "xy", "entities": [{"start": 1, "end": 5}]}', "outside the text"),
    ('{"audio": "u0.wav", "text": "xy", "entities": [{"begin": 0}]}', "'entities' must be"),
])
def test_bad_manifests_are_named_by_line(manifest, line, needle):
    bad = manifest.parent / "bad.jsonl"
    bad.write_text(line + "\n")
    with pytest.raises(ManifestError, match=needle):
        read_manifest(bad)


def test_length_grouped_batches_use_every_example_once_with_little_padding(tmp_path):
    from streamre.model.training import length_grouped_batches

    rng = random.Random(0)
    examples = [Example(tmp_path / f"{i}.wav", "t", [], duration_s=rng.uniform(1, 20))
                for i in range(1000)]
    batches = length_grouped_batches(examples, 8, seed=3)
    assert sorted(id(e) for b in batches for e in b) == sorted(id(e) for e in examples)
    padding = sum(max(e.duration for e in b) * len(b) - sum(e.duration for e in b) for b in batches)
    assert padding / sum(e.duration for e in examples) < 0.05  # random batches: about 70 %
    assert batches != length_grouped_batches(examples, 8, seed=4)  # a new order each epoch


def test_scores_by_hand():
    gold = [[("A", "Kill", "B")], [("C", "Live_In", "D"), ("C", "Work_For", "E")]]
    predicted = [[("A", "Kill", "B"), ("A", "Kill", "X")], [("C", "Live_In", "D")]]
    s = score(predicted, gold)
    # RTE: 2 right of 3 predicted, of 3 gold.
    assert s["RTE"] == {"p": round(2 / 3, 4), "r": round(2 / 3, 4), "f1": round(2 / 3, 4)}
    # ER, per sample sets: {A,B,X} vs {A,B}; {C,D} vs {C,D,E}: 4 right, 5 predicted, 5 gold.
    assert s["ER"]["p"] == 0.8 and s["ER"]["r"] == 0.8
    # RP: {Kill} vs {Kill}; {Live_In} vs {Live_In, Work_For}: 2 right, 2 predicted, 3 gold.
    assert s["RP"]["p"] == 1.0 and s["RP"]["r"] == round(2 / 3, 4)
    assert s["n"] == 2


def test_character_error_rate_by_hand():
    assert edit_distance("kitten", "sitting") == 3  # two substitutions and an insertion
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "abc") == 0
    # One edit in each reference of 3 characters: 2 of 6.
    assert character_error_rate(["abd", "xy"], ["abc", "xyz"]) == pytest.approx(2 / 6)
    with pytest.raises(ValueError):
        character_error_rate(["a"], [])


def test_asr_stage_reports_the_dev_character_error_rate(manifest, tmp_path):
    out = tmp_path / "asr"
    trained = streamre("train", "--stage", "asr", "--train", str(manifest), "--out", str(out),
                       "--preset", "tiny", "--max-steps", "150", "--batch-size", "4",
                       "--lr", "3e-3", "--warmup", "0.05", "--hold", "0.6", "--eval-every", "75",
                       "--no-progress")
    assert trained.returncode == 0, trained.stderr[-2000:]
    evals = [json.loads(line)["eval"] for line in (out / "train_log.jsonl").read_text()
             .splitlines() if "eval" in line]
    assert len(evals) == 2 and {s["ref"] for s in evals[-1]["dev_samples"]} <= \
        {text for text, _ in UTTERANCES}
    # Four utterances memorised: the greedy transcripts are (nearly) the references.
    assert evals[-1]["dev_cer"] < 0.1


def test_train_refuses_a_schedule_longer_than_its_steps(manifest, tmp_path):
    failed = streamre("train", "--train", str(manifest), "--out", str(tmp_path / "m"),
                      "--warmup", "0.7", "--hold", "0.5")
    assert failed.returncode == 2 and "--warmup and --hold" in failed.stderr


def test_tri_stage_schedule():
    values = [tri_stage(s, 100, 0.1, 0.4, 0.05) for s in range(101)]
    assert values[0] == pytest.approx(0.01) and values[10] == 1.0 and values[49] == 1.0
    assert values[100] == pytest.approx(0.05) and values[75] < 1.0
    assert all(a >= b for a, b in zip(values[50:], values[51:], strict=False))


def test_collator_marks_entity_tokens(manifest, tiny_checkpoint):
    from streamre.model import load_checkpoint

    _, tokenizer = load_checkpoint(str(tiny_checkpoint))
    examples = read_manifest(manifest)
    batch = Collator(tokenizer, "re")(examples[:1])
    marked = tokenizer.decode(batch.text_ids[0][batch.entity_mask[0]])
    assert "David" in marked and "Bank" in marked and "works" not in marked
    target = tokenizer.decode(batch.labels[0][batch.labels[0] != -100])
    assert "<triplet>" in target and "Work_For" in target
    asr = Collator(tokenizer, "asr", seed=3)(examples)
    share = asr.entity_mask.sum().item() / asr.text_mask.sum().item()
    assert 0.1 < share < 0.4


def test_early_stopping_when_dev_stops_improving(manifest, tmp_path):
    from streamre.model.training import train

    # With a zero learning rate the dev score never changes: patience 2 stops after 3 evals.
    result = train(TrainConfig(train=str(manifest), out=str(tmp_path / "m"), max_steps=50,
                               batch_size=4, lr=0.0, eval_every=1, patience=2, progress=False))
    assert result["step"] == 3


def test_freeze_ffn_freezes_only_feed_forward_layers(manifest, tmp_path):
    from streamre.model.training import _freeze

    cfg = TrainConfig(train=str(manifest), out=str(tmp_path), freeze_ffn=True)
    model, _, pretrained = build_model(cfg, read_manifest(manifest))
    _freeze(model, cfg, pretrained)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(".fc1." in n or ".fc2." in n or ".feed_forward." in n for n in frozen)
    assert model.bart.model.decoder.layers[0].self_attn.q_proj.weight.requires_grad
