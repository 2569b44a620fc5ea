"""The shipped models listen: the default path (unmodified Whisper, then the bundled text model)
and the aligned model kept for `--speech-facts speech`. Six new sentences spoken by flite's
`slt`, a voice kept out of their training, come back close to their transcripts, and some with
their facts.

The aligned model's bars are floors at its measured level, not the level a product needs: on CoNLL04
test in `slt` its WER is about a third and it finds whole facts at RTE F1 0.17, because names it
does not know come back misspelt (its model card has the numbers). A random model, or one that
writes the same answer whatever it hears, passes neither bar."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from streamre.audio import read_audio
from streamre.graph.canonical import entity_key
from streamre.training.scores import word_error_rate

# Sentences written for this test, in CoNLL04's relations; none is in its data.
SPOKEN = [
    ("Maria Lopez lives in Boston.", ("Maria Lopez", "Live_In", "Boston")),
    ("John Smith works for the World Bank.", ("John Smith", "Work_For", "World Bank")),
    ("Lee Harvey Oswald killed President Kennedy.",
     ("Lee Harvey Oswald", "Kill", "President Kennedy")),
    ("Anna Berg was born in Oslo.", ("Anna Berg", "Live_In", "Oslo")),
    ("The Red Cross is based in Geneva.", ("Red Cross", "OrgBased_In", "Geneva")),
    ("Paul Adams, a reporter for the Boston Globe, spoke.",
     ("Paul Adams", "Work_For", "Boston Globe")),
]


def facts_found(answers: list[list], spoken=SPOKEN) -> int:
    """How many sentences' facts are among their answers, names compared as the graph merges
    them: case, punctuation and articles set aside."""
    found = 0
    for (_, (head, relation, tail)), triplets in zip(spoken, answers, strict=True):
        given = {(entity_key(t.head), t.relation, entity_key(t.tail)) for t in triplets}
        found += (entity_key(head), relation, entity_key(tail)) in given
    return found


# Meeting-style sentences written for this test: in no data set here, nor in the evaluation sets.
HEARD = [
    ("Emma Wilson works for Microsoft.", ("Emma Wilson", "Work_For", "Microsoft")),
    ("David Miller lives in Chicago.", ("David Miller", "Live_In", "Chicago")),
    ("Amazon is based in Seattle.", ("Amazon", "OrgBased_In", "Seattle")),
    ("Laura Chen, a manager at Intel, lives in Denver.", ("Laura Chen", "Work_For", "Intel")),
    ("Peter Brown joined Siemens last year.", ("Peter Brown", "Work_For", "Siemens")),
]
NO_FACT = "Can everyone see my screen?"


def speak(text: str, path) -> object:
    if shutil.which("flite") is None:
        pytest.fail("flite is not installed (./dev.sh test installs it)")
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(path)], check=True)
    return read_audio(path)


@pytest.fixture(scope="module")
def default_path():
    from streamre.inference.speech_path import SpeechPath, SpeechSettings

    return SpeechPath(SpeechSettings(device="cpu")).load_speech()  # what serve runs by default


def test_the_default_path_is_unmodified_whisper_then_the_bundled_text_model(default_path):
    assert default_path.name == "whisper-tiny.en (ctranslate2 int8)+streamre-minilm-meetings"


def test_whisper_hears_new_sentences_in_the_unseen_voice_and_the_text_model_reads_them(
        default_path, tmp_path):
    waves = [speak(text, tmp_path / f"{i}.wav") for i, (text, _) in enumerate(HEARD)]
    answers = default_path.extract(waves + [speak(NO_FACT, tmp_path / "no-fact.wav")])
    heard = [a.text for a in answers]
    # Measured: WER 0.20 (Emma Wilson and "joined" misheard); 3 of 5 facts.
    assert word_error_rate(heard[:-1], [text for text, _ in HEARD]) <= 0.3, heard
    assert facts_found([a.triplets for a in answers[:-1]], HEARD) >= 3, heard
    assert heard[-1].rstrip("?").lower() == NO_FACT.rstrip("?").lower()
    assert answers[-1].triplets == []


# A short meeting whose names are in its invitation alone; each sentence with the fact it states.
MEETING = [("Priya Natarajan works for Infosys in Bangalore.",
            ("Priya Natarajan", "Work_For", "Infosys")),
           ("Our contact at Heineken is Wojciech Zielinski.",
            ("Wojciech Zielinski", "Work_For", "Heineken")),
           ("Nora Lindqvist lives in Gothenburg.", ("Nora Lindqvist", "Live_In", "Gothenburg"))]
INVITATION = """Subject: Vendor review, Monday 9:00

Invited: Priya Natarajan (Infosys), Wojciech Zielinski (Heineken), Nora Lindqvist (IKEA).
Offices: Gothenburg, Bangalore.
Thanks, Sam
"""


def test_a_meetings_names_given_only_in_its_context_are_heard_and_their_facts_read(
        default_path, make_server, tmp_path):
    import asyncio
    import urllib.request

    import numpy as np
    from helpers import of_type, stream

    silence = np.zeros(16000, np.int16)
    audio = np.concatenate([silence, *(np.concatenate([speak(t, tmp_path / f"n{i}.wav"), silence])
                                       for i, (t, _) in enumerate(MEETING))])
    server = make_server(lambda: default_path)
    urllib.request.urlopen(urllib.request.Request(
        server.http + "/v1/rooms/vendors/context", INVITATION.encode(),
        {"Content-Type": "text/plain"}, method="PUT"), timeout=30)
    messages, _ = asyncio.run(stream(server.url, audio, room="vendors"))
    answers = of_type(messages, "triplets")
    heard = " ".join(m["text"] for m in answers)
    for name in ("Priya Natarajan", "Infosys", "Heineken", "Wojciech Zielinski",
                 "Nora Lindqvist", "Gothenburg"):
        assert name in heard, heard
    found = {(entity_key(t["head"]), t["relation"], entity_key(t["tail"]))
             for m in answers for t in m["triplets"]}
    for _, (head, relation, tail) in MEETING:
        assert (entity_key(head), relation, entity_key(tail)) in found, (heard, found)


def test_a_context_name_whisper_does_not_prefer_is_not_forced_in(tmp_path):
    from streamre.inference.speech_path import SpeechPath, SpeechSettings

    (tmp_path / "context.txt").write_text("Agenda: the Kenya launch.\n")
    path = SpeechPath(SpeechSettings(device="cpu", context=str(tmp_path / "context.txt")))
    heard = path.load_speech().extract(
        [speak("Can you share your screen, please?", tmp_path / "s.wav")])[0].text
    # "Can" is spelled and sounds close to "Kenya"; Whisper's ear plainly says no.
    assert heard.startswith("Can you share your screen"), heard


def test_silence_is_heard_as_nothing(default_path):
    import numpy as np

    quiet = np.random.default_rng(0).normal(0, 30, 3 * 16000).astype(np.int16)
    answers = default_path.extract([np.zeros(2 * 16000, np.int16), quiet])
    assert [(a.text, a.triplets) for a in answers] == [("", []), ("", [])]


@pytest.fixture(scope="module")
def text_extractor():
    from streamre.inference.text_extractor import TextExtractor, resolve_text_model

    return TextExtractor.load(resolve_text_model(""), "cpu")  # the bundled text model


@pytest.fixture(scope="module")
def aligned_model():
    from streamre.model.extractor import ModelExtractor

    return ModelExtractor.load(None, "cpu")  # the bundled aligned model (--speech-facts speech)


def test_the_bundled_aligned_model_is_the_shipped_one(aligned_model):
    from streamre.model import DEFAULT_ALIGNED_MODEL

    assert aligned_model.name == DEFAULT_ALIGNED_MODEL
    assert aligned_model.model.config.whisper["d_model"] == 384  # Whisper tiny, not a test model


def test_the_aligned_model_hears_unseen_voice_sentences_and_their_facts(aligned_model,
                                                                      text_extractor, tmp_path):
    if shutil.which("flite") is None:
        pytest.fail("flite is not installed (./dev.sh test installs it)")
    waves = []
    for i, (text, _) in enumerate(SPOKEN):
        path = tmp_path / f"{i}.wav"
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(path)], check=True)
        waves.append(read_audio(path))
    answers = aligned_model.extract(waves)
    heard = [answer.text for answer in answers]
    assert word_error_rate(heard, [text for text, _ in SPOKEN]) <= 0.35, heard
    assert facts_found([a.triplets for a in answers]) >= 2, [(a.text, a.triplets)
                                                            for a in answers]
    # The pipeline: the transcripts read by the bundled text model (measured: 3 of 6).
    assert facts_found(text_extractor.extract(heard)) >= 2


def test_the_bundled_text_model_reads_facts_from_written_sentences(text_extractor):
    assert text_extractor.name == "streamre-minilm-meetings"
    assert text_extractor.model.config.encoder["hidden_size"] == 384  # MiniLM, not a test model
    # Measured: all six; a model that ignores its input finds at most one.
    assert facts_found(text_extractor.extract([text for text, _ in SPOKEN])) >= 5


ELENA = "Elena Petrova, a data scientist at Spotify, lives in Stockholm."


def test_a_name_corrected_once_is_heard_right_later_in_the_meeting_and_counts_again(
        default_path, make_server, tmp_path):
    """The issue's meeting, in `slt`'s voice: a line with a name misheard (or not) is
    corrected once; its facts join the graph; said again later, the sentence comes back with
    the name, and its facts count a second mention."""
    import asyncio
    import json
    import urllib.request

    import numpy as np
    from helpers import of_type, send_json, stream

    from streamre.graph import GraphSettings

    silence = np.zeros(16000, np.int16)
    audio = np.concatenate([silence, speak(ELENA, tmp_path / "elena.wav"), silence])
    server = make_server(lambda: default_path, text_model="",
                         graph=GraphSettings(dedup_window_s=0))
    first = of_type(asyncio.run(stream(server.url, audio, room="meet"))[0], "triplets")
    assert len(first) == 1
    url = f"{server.http}/v1/rooms/meet/transcript/"
    with urllib.request.urlopen(server.http + "/v1/rooms/meet/transcript", timeout=30) as r:
        (line,) = json.loads(r.read())["segments"]
    status, fixed = send_json(f"{url}{line['session_id']}/{line['segment_id']}",
                              json.dumps({"text": ELENA}).encode(), method="PUT")
    assert status == 200, fixed

    def elena_facts() -> dict:
        with urllib.request.urlopen(server.http + "/v1/rooms/meet/graph", timeout=30) as r:
            graph = json.loads(r.read())
        labels = {n["id"]: n["label"] for n in graph["nodes"]}
        return {(labels[e["source"]], e["relation"], labels[e["target"]]): e["mentions"]
                for e in graph["edges"] if labels[e["source"]] == "Elena Petrova"}
    corrected = elena_facts()
    assert corrected and set(corrected.values()) == {1}, corrected
    again = of_type(asyncio.run(stream(server.url, audio, room="meet"))[0], "triplets")
    assert "Elena Petrova" in again[0]["text"], (line["text"], again[0]["text"])
    later = elena_facts()
    assert all(later.get(fact) == 2 for fact in corrected), (corrected, later)
