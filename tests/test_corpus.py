"""`streamre synth`: sources, voices, augmentation, and real espeak-ng / flite rendering."""

from __future__ import annotations

import json
import random
import shutil
from itertools import pairwise

import numpy as np
import pytest

from streamre.cli.main import main
from streamre.corpus import (
    HELD_OUT_VOICE,
    Augmentation,
    SourceError,
    VoiceError,
    augment,
    parse_voice,
    plan,
    read_sentences,
    run,
    swap_entities,
    training_voice,
)
from streamre.corpus.augment import add_noise
from streamre.corpus.sources import detokenize
from streamre.training.data import read_manifest

SPERT = [
    {"tokens": ["Oswald", "killed", "Kennedy", "in", "Dallas", ",", "Texas", "."],
     "entities": [{"type": "Peop", "start": 0, "end": 1}, {"type": "Peop", "start": 2, "end": 3},
                  {"type": "Loc", "start": 4, "end": 5}, {"type": "Loc", "start": 6, "end": 7}],
     "relations": [{"type": "Kill", "head": 0, "tail": 1},
                   {"type": "Located_In", "head": 2, "tail": 3}]},
    {"tokens": ["``", "Maria", "Lopez", "''", "(", "Acme", "Corp.", ")", "lives", "in", "Boston",
                "."],
     "entities": [{"type": "Peop", "start": 1, "end": 3}, {"type": "Loc", "start": 10, "end": 11}],
     "relations": [{"type": "Live_In", "head": 0, "tail": 1}]},
]
CASREL = [{"text": "Aarhus Airport serves the city of Aarhus , Denmark .",
           "triple_list": [["Aarhus Airport", "cityServed", "Aarhus , Denmark"],
                           ["Aarhus", "country", "Greenland"]]}]


@pytest.fixture()
def sources(tmp_path):
    (tmp_path / "conll04").mkdir()
    spert = tmp_path / "conll04" / "conll04_dev.json"
    spert.write_text(json.dumps(SPERT))
    casrel = tmp_path / "webnlg_val.json"
    casrel.write_text(json.dumps(CASREL))
    return spert, casrel


def test_detokenize_writes_text_as_people_do():
    text, spans = detokenize(["Kennedy", "'s", "aide", ",", "(", "Dr.", "Li", ")", "said", "."])
    assert text == "Kennedy's aide, (Dr. Li) said."
    assert [text[a:b] for a, b in spans] == ["Kennedy", "'s", "aide", ",", "(", "Dr.", "Li", ")",
                                              "said", "."]


def test_spert_and_casrel_sentences_keep_facts_and_spans(sources):
    spert, casrel = sources
    first, second = read_sentences(spert)
    assert first.id == "conll04/dev/0"
    assert first.text == "Oswald killed Kennedy in Dallas, Texas."
    assert first.triplets == (("Oswald", "Kill", "Kennedy"), ("Dallas", "Located_In", "Texas"))
    assert second.text == '" Maria Lopez " (Acme Corp.) lives in Boston.'  # quotes stay tokens
    for sentence in (first, second):
        assert all(sentence.text[e.start:e.end] == e.text for e in sentence.entities)
    assert second.entities[0].type == "Peop"
    (web,) = read_sentences(casrel)
    assert web.text == "Aarhus Airport serves the city of Aarhus, Denmark."
    assert web.triplets[0] == ("Aarhus Airport", "cityServed", "Aarhus, Denmark")
    # "Greenland" is not said: no span for it, the fact is kept.
    assert [e.text for e in web.entities] == ["Aarhus Airport", "Aarhus, Denmark", "Aarhus"]


@pytest.mark.parametrize("content, needle", [
    ("[1, 2", "not JSON"),
    ('{"tokens": []}', "JSON list"),
    ('[{"x": 1}]', "neither SpERT"),
    ('[{"tokens": ["a"], "entities": [{"start": 0, "end": 5}], "relations": []}]', "item 0"),
])
def test_bad_sources_are_named(tmp_path, content, needle):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(SourceError, match=needle):
        read_sentences(path)


def test_voice_specs_round_trip_and_reject_nonsense():
    for spec in ("espeak:en-us+f3:s160:p60", "flite:awb:s1.1:p120", "flite:slt"):
        assert parse_voice(spec).spec == spec
    for bad in ("festival:kal", "espeak", "flite:awb:x3", "espeak:en:s-5"):
        with pytest.raises(VoiceError):
            parse_voice(bad)


def test_the_training_pool_never_draws_the_held_out_voice():
    voices = [training_voice(random.Random(i)) for i in range(3000)]
    assert HELD_OUT_VOICE not in {v.speaker for v in voices}
    assert {v.engine for v in voices} == {"espeak", "flite"}
    assert len({v.speaker for v in voices}) > 50


def test_noise_is_added_at_the_asked_snr():
    rng = np.random.default_rng(0)
    speech = np.sin(np.arange(32000) / 10).astype(np.float32) * 0.3
    noisy = add_noise(speech, 10.0, rng)
    snr = 10 * np.log10(np.mean(speech ** 2) / np.mean((noisy - speech) ** 2))
    assert abs(snr - 10.0) < 0.2


def test_augmentation_is_deterministic_and_does_what_it_records():
    aug = Augmentation(fraction=1.0, speed=(1.2, 1.2), gain_db=(-6.0, -6.0), snr_db=(40, 40))
    samples = (np.sin(np.arange(16000) / 5) * 10000).astype(np.int16)
    params = aug.draw(np.random.default_rng(3))
    assert params == {"speed": 1.2, "gain_db": -6.0, "snr_db": 40.0}
    a = augment(samples, params, np.random.default_rng(1))
    b = augment(samples, params, np.random.default_rng(1))
    assert np.array_equal(a, b)
    assert abs(len(a) - 16000 / 1.2) < 5  # faster speech is shorter
    def rms(x):
        return np.sqrt(np.mean(x.astype(np.float64) ** 2))
    assert abs(rms(a) / rms(samples) - 10 ** (-6 / 20)) < 0.02
    assert Augmentation(fraction=0.0).draw(np.random.default_rng(0)) == {}
    with pytest.raises(ValueError):
        Augmentation(speed=(1.2, 0.8))


def _engines_or_fail():
    missing = [p for p in ("espeak-ng", "flite") if shutil.which(p) is None]
    if missing:
        pytest.fail(f"not installed: {missing} (./dev.sh test installs them)")


def test_synth_is_deterministic_resumable_and_gives_a_training_manifest(sources, tmp_path):
    _engines_or_fail()
    spert, casrel = sources
    sentences = read_sentences(spert) + read_sentences(casrel)
    aug = Augmentation(fraction=0.5, speed=(0.9, 1.1), gain_db=(-3, 3), snr_db=(20, 30))
    one = run(plan(sentences, tmp_path / "one", "train", copies=2, seed=7, augmentation=aug),
              jobs=1, progress=False)
    two = run(plan(sentences, tmp_path / "two", "train", copies=2, seed=7, augmentation=aug),
              jobs=2, progress=False)
    lines = [json.loads(x) for x in one.read_text().splitlines()]
    assert one.read_text() == two.read_text()
    assert len(lines) == 6 and all(line["speaker"] != HELD_OUT_VOICE for line in lines)
    for line in lines:
        assert (one.parent / line["audio"]).read_bytes() == (two.parent / line["audio"]).read_bytes()

    examples = read_manifest(one)
    assert examples[0].text == "Oswald killed Kennedy in Dallas, Texas."
    assert examples[0].entity_spans() == [(0, 6), (14, 21), (25, 31), (33, 38)]
    assert abs(len(examples[0].samples) / 16000 - lines[0]["duration_s"]) < 1e-3
    assert 1.0 < lines[0]["duration_s"] < 10.0

    # Resume: one file lost (and the manifest) is rendered again; the others are not touched.
    lost = one.parent / lines[3]["audio"]
    kept = one.parent / lines[0]["audio"]
    before = kept.stat().st_mtime_ns
    lost.unlink()
    one.unlink()
    again = run(plan(sentences, tmp_path / "one", "train", copies=2, seed=7, augmentation=aug),
                jobs=2, progress=False)
    assert again.read_text() == two.read_text()
    assert lost.read_bytes() == (two.parent / lines[3]["audio"]).read_bytes()
    assert kept.stat().st_mtime_ns == before


def test_synth_cli_renders_the_held_out_voice_and_reports_errors(sources, tmp_path, capsys):
    _engines_or_fail()
    spert, _ = sources
    assert main(["synth", str(spert), "--out", str(tmp_path / "slt"), "--voices", "flite:slt",
                 "--manifest", "test.jsonl", "--audio", "wav", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["utterances"] == 2
    lines = [json.loads(x) for x in (tmp_path / "slt" / "test.jsonl").read_text().splitlines()]
    assert {line["speaker"] for line in lines} == {HELD_OUT_VOICE}
    assert all(line["audio"].endswith(".wav") for line in lines)

    assert main(["synth", str(tmp_path / "missing.json"), "--out", str(tmp_path / "x")]) == 2
    assert "source not found" in capsys.readouterr().err
    assert main(["synth", str(spert), "--out", str(tmp_path / "x"), "--voices", "festival:kal"]) == 2
    assert "bad voice" in capsys.readouterr().err
    assert main(["synth", str(spert), "--out", str(tmp_path / "x"), "--snr-db", "20,30"]) == 2
    assert "--augment-fraction" in capsys.readouterr().err


def test_entity_swaps_keep_the_sentence_and_move_the_facts(sources):
    spert, casrel = sources
    sentences = read_sentences(spert)
    swapped = swap_entities(sentences, 3, seed=1)
    assert len(swapped) == 6 and swapped == swap_entities(sentences, 3, seed=1)
    assert swap_entities(read_sentences(casrel), 2) == []  # untyped entities: nothing to swap
    # An entity in no fact keeps its name.
    unnamed = [(o, s) for o in sentences for s in swapped if s.id.startswith(o.id + "/")]
    assert all(len(o.entities) == len(s.entities) for o, s in unnamed)
    for s in swapped:
        original = next(o for o in sentences if s.id.startswith(o.id + "/swap"))
        named = {x for o in sentences for h, _, t in o.triplets for x in (h, t)}
        for e in s.entities:  # spans still name the entities, each from its type's pool
            assert s.text[e.start:e.end] == e.text
            assert e.text in {x.text for o in sentences for x in o.entities if x.type == e.type
                              and x.text in named}
        names = {o.text: n.text for o, n in zip(original.entities, s.entities, strict=True)}
        assert s.triplets == tuple((names[h], r, names[t]) for h, r, t in original.triplets)
        # Only the names change: the words between them are the original's.
        rest = [original.text[a.end:b.start] for a, b in pairwise(original.entities)]
        assert rest == [s.text[a.end:b.start] for a, b in pairwise(s.entities)]
    # Both people of "Oswald killed Kennedy" are drawn from the other people of the source.
    assert {s.entities[0].text for s in swapped if s.id.startswith("conll04/dev/0/")} <= \
        {"Kennedy", "Maria Lopez"}


def test_a_heard_sentence_keeps_the_facts_whose_names_were_heard_and_where_they_stand():
    from streamre.corpus.heard import HeardStats, heard_sentence

    entities = [{"text": "Anna Schmidt", "type": "Peop"}, {"text": "Volvo", "type": "Org"},
                {"text": "Gothenburg", "type": "Loc"}]
    facts = [["Anna Schmidt", "Work_For", "Volvo"], ["Volvo", "OrgBased_In", "Gothenburg"]]
    stats = HeardStats()
    item = heard_sentence("Anishmet works for Bubble, based in Goth and Bird.", entities, facts,
                          75, stats)
    spans = {e["type"]: " ".join(item["tokens"][e["start"]:e["end"]]) for e in item["entities"]}
    assert spans == {"Peop": "Anishmet", "Loc": "Goth and Bird"}  # "Bubble" is not "Volvo"
    assert item["relations"] == []  # both facts lost an end
    item = heard_sentence("Anna Schmidt works for Volvo in Gothenburg.", entities, facts, 75,
                          stats)
    named = [" ".join(item["tokens"][e["start"]:e["end"]]) for e in item["entities"]]
    assert [(named[r["head"]], r["type"], named[r["tail"]]) for r in item["relations"]] == [
        tuple(f) for f in facts]
    assert (stats.facts, stats.facts_kept, stats.entities_found) == (4, 2, 5)
