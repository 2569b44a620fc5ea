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

from helpers import synthesize
from streamre.model import load_checkpoint
from streamre.training.data import Collator, Example, ManifestError, read_manifest
from streamre.training.scores import edit_distance, score, word_error_rate
from streamre.training.config import TrainConfig
from streamre.training.model_setup import build_model, parameter_groups, tri_stage

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


def evaluate_cli(capsys, *args: str) -> dict:
    """`streamre eval` through its entry point, in this process (trainings above run as
    processes; an interpreter for each evaluation as well would only add its start-up)."""
    from streamre.cli.main import main

    capsys.readouterr()
    status = main(["eval", "--speech-facts", "speech", "--no-progress", *args])
    out, err = capsys.readouterr()
    assert status == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def test_tiny_model_memorises_four_utterances(manifest, tmp_path, capsys):
    # On the defaults: a model made from scratch learns at its own rate, not fine-tuning's.
    out = tmp_path / "model"
    trained = streamre("train", "--train", str(manifest), "--out", str(out), "--max-steps", "120",
                       "--batch-size", "4", "--eval-every", "60")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "loss" in r]
    assert {"loss", "lr", "utt_per_s", "ce_speech", "kl_speech", "contrastive", "ctc"} <= set(steps[0])
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert "train" in trained.stderr  # the progress bar
    assert json.loads((out / "training.json").read_text())["dev"]["WER"] < 0.2

    summary = evaluate_cli(capsys, "--model", str(out), "--data", str(manifest),
                           "--predictions", str(tmp_path / "p.jsonl"))
    assert summary["n"] == 4 and summary["RTE"]["f1"] >= 0.9 and summary["WER"] < 0.2
    predictions = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(predictions) == 4
    assert all({"predicted", "gold", "transcript"} <= set(p) for p in predictions)


def test_resume_goes_on_from_the_last_step(manifest, tmp_path):
    from streamre.training.loop import train

    cfg = TrainConfig(train=str(manifest), out=str(tmp_path / "m"), max_steps=4, batch_size=1,
                      eval_every=3, log_every=1, progress=False)
    train(cfg)
    state = json.loads((tmp_path / "m" / "last" / "state.json").read_text())
    assert state["step"] == 4 and state["done"] == 0 and state["epoch"] == 1
    train(replace(cfg, max_steps=6, eval_every=5))  # not resumed: starts again at 1
    result = train(replace(cfg, max_steps=9, resume=True, eval_every=2))
    assert result["step"] == 9
    steps = [json.loads(line)["step"] for line in
             (tmp_path / "m" / "train_log.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == [1, 2, 3, 4] + [1, 2, 3, 4, 5, 6] + [7, 8, 9]
    # In the middle of an epoch (4 utterances, batches of 1) it goes on with the next batch.
    assert json.loads((tmp_path / "m" / "last" / "state.json").read_text())["done"] == 1


def test_whisper_init_from_an_imported_folder(manifest, tmp_path, monkeypatch):
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from streamre.model.checkpoint import SEED_TEXTS
    from streamre.model.tokenizer import train_bpe_tokenizer
    from streamre.training.loop import train
    from streamre.whisper.weights import import_whisper

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network: local folders only
    tokenizer = train_bpe_tokenizer(SEED_TEXTS + [t for t, _ in UTTERANCES], vocab_size=300)
    # Its table lacks the four markers, which come last in the tokenizer, as they would be new.
    whisper = WhisperForConditionalGeneration(WhisperConfig(
        vocab_size=len(tokenizer) - 4, d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_source_positions=1500, max_target_positions=448,
        pad_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>")))
    whisper.save_pretrained(tmp_path / "hf")
    tokenizer.save_pretrained(tmp_path / "hf")
    imported = import_whisper(str(tmp_path / "hf"), tmp_path / "whisper")

    cfg = TrainConfig(train=str(manifest), out=str(tmp_path / "m"), init=str(imported),
                      alignment="none", encoder_layers_tuned=0, max_steps=2, batch_size=2,
                      eval_every=2, progress=False)
    model, tok = build_model(cfg, read_manifest(manifest), tmp_path / "scratch")
    for name, p in whisper.model.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[name], p)
    table = model.decoder.embed_tokens.weight
    assert len(tok) == table.shape[0] and torch.equal(table[:-4], whisper.proj_out.weight)
    assert tok.convert_tokens_to_ids("<facts>") >= whisper.config.vocab_size
    # A frozen encoder stays as imported; the decoder learns.
    train(cfg)
    after, _ = load_checkpoint(str(tmp_path / "m" / "last"))
    assert torch.equal(after.encoder.layers[1].fc1.weight, whisper.model.encoder.layers[1].fc1.weight)
    assert not torch.equal(after.decoder.layers[0].fc1.weight,
                           whisper.model.decoder.layers[0].fc1.weight)


def test_encoder_tuning_choices(manifest, tmp_path):
    model, _ = build_model(TrainConfig(train=str(manifest), out=str(tmp_path)),
                           read_manifest(manifest), tmp_path / "scratch")
    encoder = {id(p) for p in model.encoder.parameters()}

    def grouped(**choice):
        groups = parameter_groups(model, TrainConfig(train=str(manifest), out=str(tmp_path),
                                                     lr=1e-3, **choice))
        return [(g["lr"], {id(p) for p in g["params"]}) for g in groups]

    (rest_lr, rest), = grouped(encoder_layers_tuned=0)  # frozen: one group, no encoder
    assert rest_lr == 1e-3 and not rest & encoder
    assert not any(p.requires_grad for p in model.encoder.parameters())
    (_, rest), (top_lr, top) = grouped(encoder_layers_tuned=1, encoder_lr_scale=0.1)
    assert top_lr == pytest.approx(1e-4) and top == {id(p) for p in model.encoder.layers[-1].parameters()}
    (_, _), (_, whole) = grouped()  # the default: all of it, at the peak rate
    assert whole == encoder
    model, _ = build_model(TrainConfig(train=str(manifest), out=str(tmp_path), alignment="none",
                                       relation_heads=True), read_manifest(manifest),
                           tmp_path / "scratch2")
    (_, rest), (heads_lr, heads) = grouped(encoder_layers_tuned=0, relation_heads_lr_scale=10)
    assert heads_lr == pytest.approx(1e-2) and not rest & heads
    assert heads == {id(p) for p in model.relation_heads.parameters()}


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
    from streamre.training.loop import length_grouped_batches

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


def test_word_error_rate_by_hand():
    assert edit_distance("kitten", "sitting") == 3  # two substitutions and an insertion
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "abc") == 0
    # Case and punctuation do not count; one wrong word of four, one missing of two: 2 of 6.
    assert word_error_rate(["David chen works, for", "at"], ["David Chen works for", "at IBM."]) \
        == pytest.approx(1 / 6)
    assert word_error_rate(["a b x d", "y"], ["a b c d", "y z"]) == pytest.approx(2 / 6)
    with pytest.raises(ValueError):
        word_error_rate(["a"], [])


def test_train_refuses_a_schedule_longer_than_its_steps(manifest, tmp_path):
    failed = streamre("train", "--train", str(manifest), "--out", str(tmp_path / "m"),
                      "--warmup", "0.7", "--hold", "0.5")
    assert failed.returncode == 2 and "--warmup and --hold" in failed.stderr


def test_tri_stage_schedule():
    values = [tri_stage(s, 100, 0.1, 0.4, 0.05) for s in range(101)]
    assert values[0] == pytest.approx(0.01) and values[10] == 1.0 and values[49] == 1.0
    assert values[100] == pytest.approx(0.05) and values[75] < 1.0
    assert all(a >= b for a, b in zip(values[50:], values[51:], strict=False))


def test_collator_marks_entity_tokens_and_learns_no_prompt(manifest, tiny_checkpoint):
    _, tokenizer = load_checkpoint(str(tiny_checkpoint))
    examples = read_manifest(manifest)
    batch = Collator(tokenizer)(examples[:2])
    marked = tokenizer.decode(batch.text_ids[0][batch.entity_mask[0]])
    assert "David" in marked and "Bank" in marked and "works" not in marked
    target = tokenizer.decode(batch.labels[0][batch.labels[0] != -100])
    assert target.startswith(" David Chen works") and "<facts>" in target
    assert target.endswith("Work_For<|endoftext|>")
    # The decoder is given its prompt (<|startoftranscript|><|notimestamps|>), never taught it.
    assert tokenizer.convert_ids_to_tokens(batch.decoder_ids[0, :2].tolist()) == \
        ["<|startoftranscript|>", "<|notimestamps|>"]
    assert batch.labels[0, 0] == -100 and batch.labels[0, 1] != -100
    assert torch.equal(batch.decoder_ids[:, 1:][batch.labels[:, :-1] != -100],
                       batch.labels[:, :-1][batch.labels[:, :-1] != -100])


def test_early_stopping_when_dev_stops_improving(manifest, tmp_path):
    from streamre.training.loop import train

    # With a zero learning rate the dev score never changes: patience 2 stops after 3 evals.
    result = train(TrainConfig(train=str(manifest), out=str(tmp_path / "m"), max_steps=50,
                               batch_size=4, lr=0.0, eval_every=1, patience=2, progress=False))
    assert result["step"] == 3


def test_a_baseline_checkpoint_goes_on_with_a_fresh_mcam_adapter(manifest, tmp_path):
    from streamre.model import create_checkpoint

    baseline, _ = load_checkpoint(str(create_checkpoint(tmp_path / "none", alignment="none")))
    cfg = TrainConfig(train=str(manifest), out=str(tmp_path / "m"), init=str(tmp_path / "none"),
                      alignment="mcam")
    model, _ = build_model(cfg, read_manifest(manifest), tmp_path / "scratch")
    assert model.config.alignment == "mcam" and model.prompts is not None
    assert model.config.relations == ["Kill", "Live_In", "OrgBased_In", "Work_For"]
    assert all(torch.equal(a, b) for a, b in zip(model.decoder.state_dict().values(),
                                                 baseline.decoder.state_dict().values(),
                                                 strict=True))
    hidden = torch.randn(1, 5, model.config.whisper["d_model"])
    projected, _ = model.project(hidden, torch.ones(1, 5, dtype=torch.bool), None)
    assert torch.equal(projected, hidden)  # the projection starts as the identity


def test_a_model_taught_to_read_text_answers_from_text_and_from_speech(manifest, tmp_path, capsys):
    out = tmp_path / "image"
    trained = streamre("train", "--train", str(manifest), "--out", str(out), "--max-steps", "150",
                       "--batch-size", "4", "--lr", "3e-3", "--eval-every", "75",
                       "--alignment", "none", "--text-batches", "0.4", "--both-batches", "0.2",
                       "--no-progress")
    assert trained.returncode == 0, trained.stderr[-2000:]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    given = {key for r in log for key in r if key.startswith("ce_")}
    assert given == {"ce_speech", "ce_text", "ce_both"}
    chosen = json.loads((out / "training.json").read_text())["dev"]
    assert {"RTE", "WER", "text"} <= set(chosen)
    for extra in ([], ["--text-model", str(out), "--input", "text"]):  # speech, then the text
        summary = evaluate_cli(capsys, "--model", str(out), "--data", str(manifest), *extra)
        assert summary["n"] == 4 and summary["RTE"]["f1"] >= 0.9, (extra, summary)


@pytest.mark.parametrize("flags, needle", [
    (dict(text_batches=0.6, both_batches=0.4), "together under 1"),
    (dict(text_batches=-0.1), "at least 0"),
    (dict(text_batches=0.3, alignment="mcam"), "--alignment none"),
    (dict(both_batches=0.3, alignment="none", keep_whisper=1.0), "--keep-whisper"),
    (dict(text_batches=0.3, alignment="none", relation_heads=True), "--relation-heads"),
    (dict(relation_heads_lr_scale=0), "above 0"),
])
def test_text_batch_shares_are_checked(flags, needle):
    with pytest.raises(ValueError, match=needle):
        TrainConfig(train="t.jsonl", out="o", **flags)


def test_what_each_step_is_given_is_drawn_by_share_and_the_same_on_resume():
    cfg = TrainConfig(train="t.jsonl", out="o", alignment="none", text_batches=0.3,
                      both_batches=0.2)
    drawn = [cfg.inputs_at(step) for step in range(2000)]
    assert drawn == [cfg.inputs_at(step) for step in range(2000)]
    assert abs(drawn.count("text") / 2000 - 0.3) < 0.05
    assert abs(drawn.count("both") / 2000 - 0.2) < 0.05
    assert TrainConfig(train="t.jsonl", out="o").inputs_at(7) == "speech"


def test_a_model_trained_in_every_order_finds_the_facts_alone_and_by_vote(manifest, tmp_path, capsys):
    out = tmp_path / "orders"
    trained = streamre("train", "--train", str(manifest), "--out", str(out), "--max-steps", "150",
                       "--batch-size", "4", "--lr", "3e-3", "--eval-every", "75",
                       "--alignment", "none", "--orders", "all", "--no-progress")
    assert trained.returncode == 0, trained.stderr[-2000:]
    model, tokenizer = load_checkpoint(str(out))
    assert model.config.orders == ["hrt", "htr", "rht", "rth", "thr", "trh"]
    assert "<order:thr>" in tokenizer.get_vocab()
    for extra in ([], ["--ensemble"], ["--ensemble", "--ensemble-votes", "6"]):
        summary = evaluate_cli(capsys, "--model", str(out), "--data", str(manifest),
                               "--predictions", str(tmp_path / "p.jsonl"), *extra)
        assert summary["n"] == 4 and summary["RTE"]["f1"] >= 0.9 and summary["WER"] < 0.2, extra


def test_relation_heads_learn_the_relations_and_prompt_the_facts(manifest, tmp_path, capsys):
    out = tmp_path / "heads"
    trained = streamre("train", "--train", str(manifest), "--out", str(out), "--max-steps", "150",
                       "--batch-size", "4", "--lr", "3e-3", "--eval-every", "75",
                       "--alignment", "none", "--relation-heads", "--orders", "hrt,trh",
                       "--no-progress")
    assert trained.returncode == 0, trained.stderr[-2000:]
    model, tokenizer = load_checkpoint(str(out))
    assert model.config.relation_heads and model.relation_heads is not None
    assert {"<rel:Kill>", "<rel:none>"} <= set(tokenizer.get_vocab())
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    heard = [r["relations"] for r in log if "relations" in r]
    assert heard[-1] < heard[0] / 4  # the heads learnt which relations each utterance holds
    for extra in ([], ["--ensemble"]):
        summary = evaluate_cli(capsys, "--model", str(out), "--data", str(manifest), *extra)
        assert summary["n"] == 4 and summary["RTE"]["f1"] >= 0.9 and summary["WER"] < 0.2, extra
