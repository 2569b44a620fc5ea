"""A room's vocabulary: its bounds, how a first transcript spots names and a second pass is
prompted with them (and refused when the prompt takes over), snapping, and the four ways in:
`start`, `PUT /v1/rooms/{room}/vocabulary`, `serve --vocabulary`, `extract`/`eval --vocabulary`.
The real Whisper hearing a name right only with it is in test_default_model.py."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from helpers import of_type, send_json, stream
from websockets.asyncio.client import connect

from streamre import SAMPLE_RATE
from streamre.hearing import HearingOptions, Transcriber
from streamre.hearing.guards import Decoded
from streamre.hearing.vocabulary import (MAX_PHRASES, BadVocabulary, check_vocabulary, merged,
                                         close_runs, read_vocabulary, sound_key, spotted,
                                         written_as)
from streamre.triplets import Extraction, Triplet

NAMES = ["Wojciech Zielinski", "Heineken", "Priya Natarajan"]
MISHEARD = "Our contact at Hineken is YCZ Eloenski."  # what tiny.en hears in flite's slt
RIGHT = "Our contact at Heineken is Wojciech Zielinski."


# -- the vocabulary as data --------------------------------------------------------------------

@pytest.mark.parametrize("value, message", [
    ("Heineken", "JSON list"),
    (["Heineken", 3], "phrase 1 is not a string"),
    (["  "], "phrase 0 is empty"),
    (["x" * 65], "65 characters"),
    ([f"name {i}" for i in range(MAX_PHRASES + 1)], "501 phrases"),
])
def test_a_vocabulary_past_its_bounds_is_refused_with_the_reason(value, message):
    with pytest.raises(BadVocabulary, match=message):
        check_vocabulary(value)


def test_a_vocabulary_keeps_one_spelling_of_each_phrase_in_order(tmp_path):
    assert check_vocabulary([" Priya  Natarajan ", "Infosys", "priya natarajan"]) == (
        "Priya Natarajan", "Infosys")
    assert len(check_vocabulary([f"name {i}" for i in range(MAX_PHRASES)] * 2)) == MAX_PHRASES
    file = tmp_path / "names.txt"
    file.write_text("Priya Natarajan\n\nInfosys\n")
    assert read_vocabulary(file) == ("Priya Natarajan", "Infosys")
    file.write_text("ok\n" + "x" * 70 + "\n")
    with pytest.raises(BadVocabulary, match="names.txt: phrase 1"):
        read_vocabulary(file)
    assert merged(["A", "b"], ["B", "c"], limit=2) == ("A", "b")


def test_names_are_spotted_by_letters_or_sound_and_snapped_only_where_written_as_names():
    assert sound_key("aqia") == sound_key("ikea")
    assert spotted("Anishmet works for Bubble, based in Goth and Bird.",
                   ["Anna Schmidt", "Gothenburg", "Priya Natarajan"], 70) == [
        "Anna Schmidt", "Gothenburg"]
    def snapped(text, phrases, threshold):
        return written_as(text, close_runs(text, phrases, threshold))
    assert snapped("Nadia Ramen flew in from Vaby, Switzerland.", ["Nadia Rahman", "Vevey"],
                   75) == "Nadia Rahman flew in from Vevey, Switzerland."
    # Common words are not names, however they sound.
    assert snapped("I think we should revisit it next week.", ["IKEA", "Anna Schmidt"], 75) \
        == "I think we should revisit it next week."


# -- the second pass ---------------------------------------------------------------------------

class WordWhisper:
    """A backend that writes `first` without previous text and `prompted` after it, one token
    a word, and records the previous text and the beam size of each call. Its ear scores the
    sentences in `preferred` 0, those in `doubted` -5, and every other -20, past any margin."""

    n_mels = 80
    workers = 1

    def __init__(self, first: str, prompted: str, no_speech: float = 0.0,
                 preferred: tuple[str, ...] = (), doubted: tuple[str, ...] = ()) -> None:
        self.first, self.prompted, self.no_speech = first, prompted, no_speech
        self.preferred, self.doubted = preferred, doubted
        self.scored: list[list[str]] = []
        self.encoded = 0  # segments the encoder ran on
        self.words: dict[str, int] = {}
        self.previous: list[str] = []
        self.beams: list[int] = []
        self.vocabulary = self  # hearing asks the backend's vocabulary for previous text

    def _ids(self, text: str) -> list[int]:
        return [self.words.setdefault(w, len(self.words)) for w in text.split()]

    def tokens_of(self, text: str) -> list[int]:
        return self._ids(text)

    def previous_text(self, phrases, budget: int) -> list[int]:
        return self._ids(", ".join(phrases))[:budget]

    def each(self, call, items):
        return [call(item) for item in items]

    def encode(self, features):
        self.encoded += features.shape[0]
        return features

    def decode(self, features, max_new_tokens, previous=(), beam_size=1):
        self.previous.append(self.text(list(previous)))
        self.beams.append(beam_size)
        ids = self._ids(self.prompted if previous else self.first)
        return [Decoded(ids, [-0.2] * len(ids), self.no_speech, True)] * features.shape[0]

    def score(self, states, texts, previous=()):
        self.scored.append(list(texts))
        return [0.0 if t in self.preferred else -5.0 if t in self.doubted else -20.0
                for t in texts]

    def text(self, tokens) -> str:
        by_id = {i: w for w, i in self.words.items()}
        return " ".join(by_id[t] for t in tokens)


def hear(backend: WordWhisper, vocabulary, **options) -> tuple[object, list[str]]:
    counted: list[str] = []
    hearing = Transcriber(backend, HearingOptions(**options), "words", "cpu", counted.append)
    wave = np.zeros(3 * SAMPLE_RATE, np.int16)
    return hearing.transcribe([wave], None if vocabulary is None else [vocabulary])[0], counted


def test_the_names_a_first_transcript_suggests_prompt_a_second_that_is_kept():
    backend = WordWhisper(MISHEARD, RIGHT)
    heard, counted = hear(backend, NAMES)
    assert heard.text == RIGHT and "prompted" in heard.guards and counted == ["prompted"]
    assert backend.encoded == 1  # one encoder run serves both passes
    assert backend.previous[0] == ""
    assert set(backend.previous[1].split(", ")) == {"Wojciech Zielinski", "Heineken"}
    assert backend.beams == [1, HearingOptions().prompted_beam]  # the prompted pass searches
    backend = WordWhisper(MISHEARD, RIGHT)
    assert hear(backend, NAMES, prompted_beam=1)[0].text == RIGHT and backend.beams == [1, 1]
    backend = WordWhisper(MISHEARD, RIGHT)
    assert hear(backend, None)[0].text == MISHEARD and backend.previous == [""]
    assert hear(backend, [])[0].text == MISHEARD and backend.previous == ["", ""]


@pytest.mark.parametrize("prompted", [
    "Wojciech Zielinski, Heineken",  # the prompt read out
    RIGHT + " And he said that we would all go to lunch with the whole team today.",
])
def test_a_prompt_that_takes_over_the_output_leaves_the_first_transcript(prompted):
    heard, counted = hear(WordWhisper(MISHEARD, prompted), NAMES, snap_threshold=0)
    assert heard.text == MISHEARD and counted == ["prompt_rejected"]


PLACES = ["Matteo Bianchi", "Novartis", "Pune", "India", "Heineken"]
MISHEARD_PLACES = "Mateo Bianki of Novartes flew in from tune India, for the kick off."


@pytest.mark.parametrize("prompted, kept", [
    # A city and its country are said back to back: two prompt phrases, as said.
    ("Matteo Bianchi of Novartis flew in from Pune, India, for the kickoff.", True),
    ("Matteo Bianchi, Novartis, Pune, India.", False),  # nothing but the prompt
    ("Matteo Bianchi, Novartis, Pune flew in for the kickoff.", False),  # three in a row
])
def test_prompt_phrases_back_to_back_are_a_read_out_prompt_only_past_two(prompted, kept):
    heard, counted = hear(WordWhisper(MISHEARD_PLACES, prompted), PLACES, snap_threshold=0)
    assert heard.text == (prompted if kept else MISHEARD_PLACES)
    assert counted == ["prompted" if kept else "prompt_rejected"]


def test_silence_is_never_prompted():
    backend = WordWhisper("you", "Heineken Heineken", no_speech=0.99)
    heard, counted = hear(backend, NAMES)
    assert heard.text == "" and counted == ["silence"] and backend.previous == [""]


HEARD_CLOSE = "Our contact at Hineken is Wojciech Zielinsky."


def test_a_heard_name_close_to_a_phrase_is_written_as_the_phrase_where_the_ear_agrees():
    one_name = "Our contact at Heineken is Wojciech Zielinsky."
    other_name = "Our contact at Hineken is Wojciech Zielinski."
    backend = WordWhisper(HEARD_CLOSE, "", preferred=(HEARD_CLOSE, one_name))
    heard, counted = hear(backend, NAMES, vocabulary_prompt="none")
    # Each name is asked about alone, at its run, against the sentence as heard.
    assert backend.scored == [[HEARD_CLOSE, one_name, other_name]] or \
        backend.scored == [[HEARD_CLOSE, other_name, one_name]]
    assert heard.text == one_name and sorted(counted) == ["snap_refused", "snapped"]
    heard, counted = hear(WordWhisper(HEARD_CLOSE, "", preferred=(HEARD_CLOSE, one_name,
                                                                  other_name)),
                          NAMES, vocabulary_prompt="none")
    assert heard.text == RIGHT and counted == ["snapped"]
    # The ear says no to both: 20 below the sentence as heard, past the margin.
    heard, counted = hear(WordWhisper(HEARD_CLOSE, "", preferred=(HEARD_CLOSE,)), NAMES,
                          vocabulary_prompt="none")
    assert heard.text == HEARD_CLOSE and counted == ["snap_refused"] * 2
    heard, _ = hear(WordWhisper(HEARD_CLOSE, "", preferred=(HEARD_CLOSE,)), NAMES,
                    vocabulary_prompt="none", ear_margin=float("-inf"))
    assert heard.text == RIGHT  # without the ear, every close name is written
    heard, _ = hear(WordWhisper(HEARD_CLOSE, "", preferred=(HEARD_CLOSE, one_name)), NAMES,
                    vocabulary_prompt="none", snap_threshold=0)
    assert heard.text == HEARD_CLOSE



def test_a_run_spelling_alone_would_not_write_is_written_only_where_whisper_prefers_it():
    """"grid Solberg" does not begin as a name does, so spelling alone leaves it; the far tier
    asks the ear, and writes the name only where Whisper prefers it (past `far_margin`), not
    where it merely doubts it, as it may a run written as a name."""
    heard = "Police setting grid Solberg killed Leila Karimi."
    right = "Police setting Ingrid Solberg killed Leila Karimi."
    far = dict(vocabulary_prompt="none")  # the far tier as serve has it
    backend = WordWhisper(heard, "", preferred=(right,))
    assert hear(backend, ["Ingrid Solberg"], vocabulary_prompt="none",
                far_threshold=0)[0].text == heard
    assert backend.scored == []  # without it, not asked: no run written as a name is close
    assert hear(WordWhisper(heard, "", preferred=(right,)), ["Ingrid Solberg"],
                **far)[0].text == right
    doubted, counted = hear(WordWhisper(heard, "", preferred=(heard,), doubted=(right,)),
                            ["Ingrid Solberg"], **far)
    assert doubted.text == heard and counted == ["snap_refused"]
    # A run written as a name that Whisper doubts as much is still written (ear_margin -10).
    named = "Police setting Grid Solberg killed Leila Karimi."
    assert hear(WordWhisper(named, "", preferred=(named,), doubted=(right,)),
                ["Ingrid Solberg"], **far)[0].text == right


# -- the server: start, PUT and GET, the journal, what segments are heard with ----------------

class VocabularyRecorder:
    """A speech path that hears with a vocabulary the way the pipeline does, and records
    the vocabularies each segment came with."""

    name, device, asr = "recorder", "cpu", "recorder"

    def __init__(self) -> None:
        self.vocabularies: list[tuple] = []

    def warmup(self) -> None:
        pass

    def window_of(self, waveform) -> int:
        return 10

    def extract(self, waveforms, vocabularies=None):
        self.vocabularies += list(vocabularies or [()] * len(waveforms))
        return [Extraction("Wojciech Zielinski works for Heineken.",
                           [Triplet("Wojciech Zielinski", "Work_For", "Heineken", 0.9)])
                for _ in waveforms]


def put(url: str, body: bytes, content_type: str = "application/json"):
    return send_json(url, body, content_type, method="PUT")


def get(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def test_a_rooms_vocabulary_is_set_read_kept_over_a_restart_and_heard_with(make_server,
                                                                           meeting_audio):
    recorder = VocabularyRecorder()
    server = make_server(lambda: recorder)
    url = server.http + "/v1/rooms/standup/vocabulary"
    assert get(url) == []
    assert put(url, json.dumps(["Priya Natarajan", "Infosys"]).encode()) == (
        200, ["Priya Natarajan", "Infosys"])
    messages, _ = asyncio.run(stream(server.url, meeting_audio, room="standup",
                                     vocabulary=["Wojciech Zielinski"]))
    assert of_type(messages, "ready") and not of_type(messages, "error")
    assert get(url) == ["Priya Natarajan", "Infosys", "Wojciech Zielinski"]
    assert recorder.vocabularies[0][:3] == ("Priya Natarajan", "Infosys", "Wojciech Zielinski")
    # A name only ever heard is listed, least trusted, and never biases hearing: a second
    # meeting in the room hears with what people gave, not with "Heineken".
    asyncio.run(stream(server.url, meeting_audio, room="standup", speaker="Grace Kim"))
    assert "Heineken" not in recorder.vocabularies[-1]
    assert recorder.vocabularies[-1][:4] == ("Priya Natarajan", "Infosys", "Wojciech Zielinski",
                                             "Grace Kim")  # the participant, after the typed
    expected = get(server.http + "/v1/rooms/standup/names")["names"]
    assert {"name": "Heineken", "source": "heard"} in expected
    assert {"name": "Grace Kim", "source": "participant"} in expected
    assert expected[0] == {"name": "Priya Natarajan", "source": "vocabulary"}
    server.stop()
    again = make_server(lambda: VocabularyRecorder())
    assert get(again.http + "/v1/rooms/standup/vocabulary") == [
        "Priya Natarajan", "Infosys", "Wojciech Zielinski"]
    assert put(again.http + "/v1/rooms/standup/vocabulary", b"[]") == (200, [])
    assert get(again.http + "/v1/rooms/standup/vocabulary") == []


@pytest.mark.parametrize("body, content_type, status, code", [
    (b'"Infosys"', "application/json", 400, "bad_vocabulary"),
    (b'["ok", 5]', "application/json", 400, "bad_vocabulary"),
    (json.dumps(["x" * 65]).encode(), "application/json", 400, "bad_vocabulary"),
    (json.dumps([f"n{i}" for i in range(501)]).encode(), "application/json", 400,
     "bad_vocabulary"),
    (b'["Infosys"', "application/json", 400, "bad_json"),
    (b'["Infosys"]', "text/plain", 415, "unsupported_media_type"),
    (b'["' + b"x" * 300_000 + b'"]', "application/json", 413, "bad_vocabulary"),
])
def test_a_bad_vocabulary_is_refused_with_a_clear_4xx(make_server, body, content_type, status,
                                                      code):
    server = make_server(lambda: VocabularyRecorder())
    got, answer = put(server.http + "/v1/rooms/r/vocabulary", body, content_type)
    assert (got, answer["error"]) == (status, code) and answer["message"]
    assert get(server.http + "/v1/rooms/r/vocabulary") == []


def test_start_with_a_bad_vocabulary_is_refused_and_too_many_added_keeps_the_rooms(
        make_server):
    server = make_server(lambda: VocabularyRecorder())

    async def first_messages(vocabulary) -> list[dict]:
        async with connect(server.url) as ws:
            await ws.send(json.dumps({"type": "start", "room": "r", "vocabulary": vocabulary}))
            messages = []
            async with asyncio.timeout(10):
                while not of_type(messages, "error"):
                    messages.append(json.loads(await ws.recv()))
            return messages

    refused = asyncio.run(first_messages(["ok", 7]))
    assert [m["type"] for m in refused] == ["error"] and refused[0]["code"] == "bad_vocabulary"
    assert put(server.http + "/v1/rooms/r/vocabulary",
               json.dumps([f"n{i}" for i in range(MAX_PHRASES)]).encode())[0] == 200
    late = asyncio.run(first_messages(["one more"]))
    assert [m["type"] for m in late][:1] == ["ready"] and late[-1]["code"] == "bad_vocabulary"
    assert len(get(server.http + "/v1/rooms/r/vocabulary")) == MAX_PHRASES


def test_a_segment_whose_names_were_all_heard_as_written_is_not_heard_again():
    backend = WordWhisper(RIGHT, "something else entirely")
    heard, counted = hear(backend, NAMES)
    assert heard.text == RIGHT and counted == [] and backend.previous == [""]
