"""Voices on one microphone: the online clusterer and the scoring with data alone; the real
speaker encoder (Resemblyzer's packaged weights) on two synthetic engines' voices; and a real
`streamre serve` telling two voices of one stream apart, a voice named over HTTP for its past
and future lines, kept over a restart."""

from __future__ import annotations

import asyncio
import json
import signal

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from websockets.asyncio.client import connect

from helpers import (VOICE_ONE as ONE, VOICE_OTHER as OTHER, http_get, of_type, pcm_frames,
                     send_json, shared_microphone, speak, start_server, start_text, voice_says,
                     wire)
from streamre.graph import GraphSettings, Mention, RoomGraph
from streamre.graph.entries import VoiceName
from streamre.graph.ops import Op, change_op
from streamre.graph.store import GraphStore
from streamre.protocol import stop_message
from streamre.server.facts import LocalFacts
from streamre.triplets import Triplet
from streamre.voices import encoder as voice_encoder
from streamre.voices.clusterer import VoiceClusterer, VoiceSettings
from streamre.voices.encoder import (N_MELS, EncoderMissing, SpeakerEncoder, raised,
                                    window_mels, window_starts)
from streamre.whisper.features import HOP, N_FFT, mel_filters
from streamre.voices.scoring import Line, Turn, best_matching, score
from streamre.voices import turns as voice_turns
from streamre.voices.turns import change_points, cut_samples, quietest
from streamre.audio import Segment

def unit(*values: float) -> np.ndarray:
    v = np.array(values, np.float32)
    return v / np.linalg.norm(v)


# -- the clusterer, with data alone ------------------------------------------------------------

def test_a_new_voice_opens_below_the_threshold_and_a_known_one_is_joined():
    voices = VoiceClusterer(VoiceSettings(threshold=0.8))
    assert voices.assign(unit(1, 0, 0), 3.0) == 1
    assert voices.assign(unit(0, 1, 0), 3.0) == 2
    assert voices.assign(unit(0.95, 0.1, 0), 3.0) == 1
    assert voices.assign(unit(0.1, 0.95, 0.1), 3.0) == 2
    assert voices.voices == 2


def test_a_short_segment_never_opens_a_voice():
    voices = VoiceClusterer(VoiceSettings(threshold=0.8, min_open_s=1.0))
    assert voices.assign(unit(0, 0, 1), 0.5) == 1  # the first line has a voice however short
    assert voices.assign(unit(1, 0, 0), 0.6) == 1  # far from it, but too short to be sure of
    assert voices.voices == 1
    assert voices.assign(unit(1, 0, 0), 1.5) == 2


def test_past_the_most_voices_a_segment_joins_the_closest():
    voices = VoiceClusterer(VoiceSettings(threshold=0.99, max_per_session=2))
    assert [voices.assign(unit(*v), 2.0) for v in ((1, 0, 0), (0, 1, 0), (0.2, 0.1, 1))] \
        == [1, 2, 1]
    assert voices.voices == 2


@pytest.mark.parametrize("bad", [dict(threshold=1.5), dict(min_open_s=-1),
                                 dict(max_per_session=0)])
def test_bad_voice_settings_are_refused(bad):
    with pytest.raises(ValueError):
        VoiceSettings(**bad)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(st.floats(-1, 1), min_size=4, max_size=4),
                          st.floats(0, 5)), min_size=1, max_size=30),
       st.floats(-1, 1))
def test_voices_are_numbered_from_one_in_the_order_they_open(segments, threshold):
    voices = VoiceClusterer(VoiceSettings(threshold=threshold))
    opened = 0
    for values, seconds in segments:
        v = np.array(values, np.float32) + np.float32(1e-3)  # never the zero vector
        voice = voices.assign(v / np.linalg.norm(v), seconds)
        assert 1 <= voice <= opened + 1  # an old number, or the next one
        opened = max(opened, voice)
        assert voices.voices == opened


# -- a voice's name, in the graph, the journal and the cluster's ops ---------------------------

def said_by_voices(facts: LocalFacts) -> list:
    """Three lines of one shared microphone: voices 1, 2, 1, each with a fact."""
    return [facts.record(Mention("s1", i, "Room 4", text=f"line {i}", voice=voice),
                         [Triplet(f"Person {i}", "Work_For", "Acme", 0.9)], 100.0 + i,
                         100.0 + i, float(i), i + 1.0)
            for i, voice in enumerate((1, 2, 1))]


def speakers(graph: RoomGraph) -> dict[str, list[str]]:
    labels = {n["id"]: n["label"] for n in graph.to_json()["nodes"]}
    return {labels[e["source"]]: e["speakers"] for e in graph.to_json()["edges"]}


def test_a_named_voice_renames_its_facts_past_and_future_and_is_replayed(tmp_path):
    facts = LocalFacts(RoomGraph("r", GraphSettings(dedup_window_s=0)))
    store = GraphStore(tmp_path / "g.db")
    for recorded in said_by_voices(facts):
        store.record("r", recorded.said, recorded.triplets, recorded.mention, recorded.at, 0.0)
    assert [r.said.voice for r in said_by_voices(LocalFacts(RoomGraph("x")))] == [1, 2, 1]
    named = VoiceName("s1", 2, "Grace Kim", 110.0, by="ana")
    changed = facts.change(named)
    assert changed.delta is not None and changed.learnt == ()
    store.change("r", named, 0.0, changed.restated)
    assert speakers(facts.graph) == {"Person 0": ["Room 4"], "Person 1": ["Grace Kim"],
                                     "Person 2": ["Room 4"]}
    later = facts.record(Mention("s1", 3, "Room 4", text="line 3", voice=2), [], 104.0, 104.0,
                         3.0, 4.0)
    assert later.said.speaker == "Grace Kim" and later.said.voice == 2
    store.record("r", later.said, [], later.mention, later.at, 0.0)
    assert [(s.voice, s.speaker) for _, s in store.transcript.lines("r")] == [
        (1, "Room 4"), (2, "Grace Kim"), (1, "Room 4"), (2, "Grace Kim")]
    assert speakers(store.load("r", GraphSettings(dedup_window_s=0))) == speakers(facts.graph)
    store.close()


def test_a_voice_name_travels_as_an_op_and_a_segment_op_keeps_its_voice():
    op = change_op("r", "a-1", 4, 1000.0, VoiceName("s1", 2, "Grace Kim", 999.0, "ana"))
    back = Op.from_json(json.loads(json.dumps(op.to_json())))
    assert back == op and back.change == VoiceName("s1", 2, "Grace Kim", 999.0, "ana")
    segment = Op("r", "a-1", 5, 1001.0, "s1", 7, "Room 4", "speech", False, 1.0, 2.0, 999.0,
                 999.5, "hello", (), voice=3)
    assert Op.from_json(json.loads(json.dumps(segment.to_json()))).voice == 3


# -- scoring -----------------------------------------------------------------------------------

TURNS = [Turn(0.5, 3.0, "ana"), Turn(4.0, 6.0, "bo"), Turn(7.0, 9.5, "ana")]


def test_lines_are_scored_under_the_best_one_to_one_naming():
    # Lines off their turns' edges by less than the collar: nothing is wrong by time.
    right = score(TURNS, [Line(0.4, 3.2, 2), Line(3.9, 6.1, 1), Line(6.8, 9.6, 2)])
    assert (right.lines_right, right.voices, right.speakers) == (3, 2, 2)
    assert right.der == 0.0
    merged = score(TURNS, [Line(0.4, 3.2, 1), Line(3.9, 6.1, 1), Line(6.8, 9.6, 1)])
    assert (merged.lines_right, merged.voices) == (2, 1)
    assert merged.der == pytest.approx(1.5 / 5.5, abs=0.01)  # bo's scored time given to ana
    late = score(TURNS, [Line(0.4, 3.7, 2), Line(3.9, 6.1, 1), Line(6.8, 9.6, 2)])
    assert late.der == pytest.approx(0.45 / 5.5, abs=0.01)  # speech where there was none


def test_a_voice_past_the_speakers_count_matches_nobody():
    assert best_matching([(1, "ana"), (2, "bo"), (3, "ana"), (1, "ana")]) == {1: "ana", 2: "bo"}


def test_a_line_over_a_change_of_speaker_is_counted():
    found = score(TURNS[:2], [Line(0.2, 6.5, 1)])
    assert found.turn_changes_inside == 1


def test_windows_spread_over_a_segment_at_most_twice():
    assert window_starts(50) == [0]
    assert window_starts(320) == [0, 160]
    starts = window_starts(3000)
    assert len(starts) == 2 and starts[0] == 0 and starts[-1] + 0.75 * 160 <= 3000  # padded
    assert window_starts(3000, most=4) == [0, 960, 1920, 2880]


# -- turns inside a segment, with data alone ---------------------------------------------------

A, B, C = unit(1, 0, 0), unit(0, 1, 0), unit(0.3, 0.2, 1)


def windows_over(turns: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """The windows `voice_turns.window_starts` takes over a segment whose voices speak for the
    given frames each, each window's embedding its voices mixed by how long each speaks in it."""
    owner = np.concatenate([[i] * frames for i, (_, frames) in enumerate(turns)])
    starts = voice_turns.window_starts(len(owner) * HOP)
    out = []
    for start in starts:
        held = owner[start:start + 160]
        mixed = sum(turns[i][0] * np.mean(held == i) for i in range(len(turns)))
        out.append(mixed / np.linalg.norm(mixed))
    return np.stack(out)


def test_a_change_of_voice_is_found_where_it_is_and_one_voice_is_never_cut():
    assert change_points(windows_over([(A, 700)]), 0.74) == []
    assert change_points(windows_over([(A, 320), (B, 400)]), 0.74) == [320]
    assert change_points(windows_over([(A, 300), (B, 400)]), 0.74) in ([280], [320])  # 0.4 s
    assert change_points(windows_over([(A, 320), (B, 320), (C, 360)]), 0.74) == [320, 640]
    near = unit(1, 0.3, 0)  # 0.96 alike: the same voice for this threshold
    assert change_points(windows_over([(A, 320), (near, 400)]), 0.74) == []
    # No cut closer than 2.4 s to an end, nor closer than 1.6 s to another.
    for first in (40, 120, 200):
        found = change_points(windows_over([(A, first), (B, 700 - first)]), 0.74)
        assert all(240 <= p <= 460 for p in found)
    found = change_points(windows_over([(A, 300), (B, 100), (C, 300)]), 0.74)
    assert found and all(b - a >= 160 for a, b in zip(found[:-1], found[1:], strict=True))
    # A segment too short to hold a change on both sides is not looked in.
    assert voice_turns.window_starts(voice_turns.SHORTEST_LOOKED_AT - 1) == []


def test_a_cut_moves_to_the_quiet_between_the_voices():
    rng = np.random.default_rng(5)
    audio = (rng.standard_normal(16000 * 6) * 3000).astype(np.int16)
    audio[50_000:51_200] //= 100  # a breath, 0.12 s after the change point
    assert 50_000 <= quietest(audio, 48_000) + 240 <= 51_200  # a 30 ms frame, mostly breath
    assert cut_samples(audio, [300]) == [quietest(audio, 48_000)]
    assert quietest(audio[:200], 100) == 100  # shorter than a quiet frame: where it is


def test_a_segment_cut_in_pieces_keeps_its_edges_on_its_first_and_last():
    whole = Segment(7, 16000, 16000 + 9000, np.arange(9000, dtype=np.int16), forced_split=True,
                    overlap=480, voiced_end=16000 + 8000)
    first, middle, last = whole.pieces([3000, 6000])
    assert [(p.start, p.end, len(p.audio)) for p in (first, middle, last)] == [
        (16000, 19000, 3000), (19000, 22000, 3000), (22000, 25000, 3000)]
    assert middle.audio[0] == 3000 and all(p.index == 7 for p in (first, middle, last))
    assert (first.overlap, middle.overlap, last.overlap) == (480, 0, 0)
    assert (first.voiced_end, middle.voiced_end, last.voiced_end) == (None, None, 16000 + 8000)
    assert (first.forced_split, middle.forced_split, last.forced_split) == (True, False, True)
    assert [p.turn_edges for p in (first, middle, last)] == [
        (False, True), (True, True), (True, False)]
    # Each piece's voice is taken from it less the 0.2 s next to a cut.
    left_out = voice_turns.LEFT_OUT
    long = Segment(0, 0, 48000, np.arange(48000, dtype=np.int16))
    head, tail = long.pieces([20000])
    assert np.array_equal(voice_turns.voice_audio(head), head.audio[:20000 - left_out])
    assert np.array_equal(voice_turns.voice_audio(tail), tail.audio[left_out:])
    assert voice_turns.voice_audio(long) is long.audio
    [alone] = whole.pieces([])
    assert (alone.start, alone.end, alone.overlap, alone.voiced_end, alone.forced_split,
            alone.turn_edges) == (whole.start, whole.end, whole.overlap, whole.voiced_end,
                                  whole.forced_split, (False, False))


# -- the real encoder --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


@pytest.fixture(scope="module")
def two_voices() -> dict[str, list[np.ndarray]]:
    return {spec: [voice_says(spec, i) for i in range(4)] for spec in (ONE, OTHER)}


def test_the_encoder_tells_two_engines_voices_apart_and_keeps_one_voice_one(encoder,
                                                                             two_voices):
    turns = [two_voices[ONE][0], two_voices[OTHER][0], two_voices[ONE][1],
             two_voices[OTHER][1], two_voices[ONE][2], two_voices[ONE][3],
             two_voices[OTHER][2], two_voices[OTHER][3]]
    embedded = encoder.embed(turns)
    assert embedded.shape == (8, 256)
    assert np.allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)
    voices = VoiceClusterer()
    assert [voices.assign(e, len(a) / 16000) for e, a in zip(embedded, turns, strict=True)] \
        == [1, 2, 1, 2, 1, 1, 2, 2]


def test_one_voice_alone_stays_one(encoder, two_voices):
    voices = VoiceClusterer()
    for audio in two_voices[OTHER] + two_voices[OTHER][::-1]:
        assert voices.assign(encoder.embed([audio])[0], len(audio) / 16000) == 1


def test_turns_said_without_a_pause_are_cut_between_the_voices_and_one_voice_is_not(
        encoder, two_voices):
    threshold = VoiceSettings().turn_threshold
    for first, second in ((ONE, OTHER), (OTHER, ONE)):
        said = np.concatenate([two_voices[first][0], two_voices[second][1]])
        [windows] = encoder.embed_windows([said], voice_turns.window_starts)
        [cut] = cut_samples(said, change_points(windows, threshold))
        assert abs(cut - len(two_voices[first][0])) < 0.5 * 16000
    for voice in (ONE, OTHER):
        said = np.concatenate([two_voices[voice][0], two_voices[voice][1], two_voices[voice][2]])
        [windows] = encoder.embed_windows([said], voice_turns.window_starts)
        assert change_points(windows, threshold) == []


def test_a_batch_embeds_each_segment_as_it_would_alone(encoder, two_voices):
    audio = two_voices[ONE][:3]
    together = encoder.embed(audio)
    alone = np.stack([encoder.embed([a])[0] for a in audio])
    assert np.allclose(together, alone, atol=1e-4)


def whole_mels(x: np.ndarray) -> torch.Tensor:
    """A segment's mel power as one centred STFT of all of it gives it: (frames, 40)."""
    spectrum = torch.stft(torch.from_numpy(x), N_FFT, HOP, window=torch.hann_window(N_FFT),
                          center=True, pad_mode="constant", return_complex=True)
    return (mel_filters(N_MELS) @ spectrum.abs().pow(2)).T


def test_a_windows_mel_bands_are_the_whole_segments_at_its_frames():
    x = raised(np.random.default_rng(3).normal(0, 2000, 16000 * 5).astype(np.int16))
    short = raised(np.random.default_rng(4).normal(0, 2000, 16000 * 2).astype(np.int16))
    whole, whole_short = whole_mels(x), whole_mels(short)
    assert whole.shape == (501, 40) and whole_short.shape == (201, 40)
    # All windows of several segments at once: the same frames, silence past a segment's end.
    windows = [(x, 0), (x, 170), (x, 341), (x, 450), (short, 0), (short, 100)]
    together = window_mels(windows)
    assert together.shape == (6, 160, 40)
    for row, (segment, first) in enumerate(windows):
        frames = (whole if segment is x else whole_short)[first:first + 160]
        assert torch.allclose(together[row, :len(frames)], frames, rtol=1e-4, atol=1e-6)
        assert not together[row, len(frames):].any()
    assert together[5, :101].sum(-1).gt(0).all()  # the short segment's last window: 101 frames


def test_missing_weights_say_what_to_install(monkeypatch):
    monkeypatch.setattr(voice_encoder.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EncoderMissing, match="pip install --no-deps resemblyzer"):
        voice_encoder.weights_path()


# -- a real server -----------------------------------------------------------------------------

async def produce(url: str, before: np.ndarray, between, after: np.ndarray) -> list[dict]:
    """One producer: `before`, then (once its lines are answered) `between()`, then `after`;
    every message it got."""
    async with connect(url, max_size=None) as ws:
        await ws.send(start_text("table", speaker="Room 4"))
        messages: list[dict] = []

        async def answered(n: int) -> None:
            while sum(m["type"] == "triplets" for m in messages) < n:
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))

        for frame in pcm_frames(before, 16000):
            await ws.send(frame)
        await answered(4)
        between(messages)
        for frame in pcm_frames(after, 16000):
            await ws.send(frame)
        await ws.send(wire(stop_message()))
        async for raw in ws:
            messages.append(json.loads(raw))
    return messages


def transcript(http: str) -> list[dict]:
    status, _, body = http_get(f"{http}/v1/rooms/table/transcript")
    assert status == 200
    return json.loads(body)["segments"]


@pytest.mark.slow
def test_a_shared_microphone_gets_its_voices_and_a_named_voice_keeps_its_name(tmp_path):
    before = shared_microphone([(ONE, 0), (OTHER, 0), (ONE, 1), (OTHER, 1)])
    after = shared_microphone([(OTHER, 2), (ONE, 2)])
    data = ("--data-dir", str(tmp_path / "data"))
    process, port = start_server(*data)
    http, url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/v1/stream"
    named = {}

    def name_the_second_voice(messages: list[dict]) -> None:
        session = next(m for m in messages if m["type"] == "ready")["session_id"]
        named["answer"] = send_json(f"{http}/v1/rooms/table/voices/{session}/2",
                                    json.dumps({"speaker": "Grace Kim"}).encode(), method="PUT")
        named["missing"] = send_json(f"{http}/v1/rooms/table/voices/{session}/9",
                                     json.dumps({"speaker": "Nobody"}).encode(), method="PUT")
        named["bad"] = send_json(f"{http}/v1/rooms/table/voices/{session}/1",
                                 json.dumps({"speaker": " "}).encode(), method="PUT")

    try:
        messages = asyncio.run(produce(url, before, name_the_second_voice, after))
        said = [m for m in messages if m["type"] == "triplets"]
        assert [m.get("voice") for m in said] == [1, 2, 1, 2, 2, 1]
        assert named["answer"] == (200, {"speaker": "Grace Kim", "lines": 2,
                                         "version": named["answer"][1]["version"]})
        assert named["missing"][0] == 404 and named["missing"][1]["error"] == "no_such_voice"
        assert named["bad"][0] == 400 and named["bad"][1]["error"] == "bad_speaker"
        lines = transcript(http)
        assert [(s["voice"], s["speaker"]) for s in lines] == [
            (1, "Room 4"), (2, "Grace Kim"), (1, "Room 4"), (2, "Grace Kim"),
            (2, "Grace Kim"), (1, "Room 4")]  # past and future lines of voice 2
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    process, port = start_server(*data)
    http = f"http://127.0.0.1:{port}"
    try:
        assert [s["speaker"] for s in transcript(http)] == [
            "Room 4", "Grace Kim", "Room 4", "Grace Kim", "Grace Kim", "Room 4"]
        status, _, body = http_get(f"{http}/v1/rooms/table/export?format=json")
        participants = {p["speaker"]: p["segments"] for p in json.loads(body)["participants"]}
        assert participants == {"Room 4": 3, "Grace Kim": 3}
        status, _, body = http_get(f"{http}/v1/rooms/table/export?format=md")
        assert "- Grace Kim: 3 line(s)" in body.decode()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


@pytest.mark.slow
def test_voices_that_answer_without_a_pause_are_cut_into_lines_of_their_own():
    silence = np.zeros(16000, np.int16)
    answered = np.concatenate([voice_says(ONE, 0), voice_says(OTHER, 1)])  # no pause
    audio = np.concatenate([silence, answered, silence, voice_says(OTHER, 2), silence])
    process, port = start_server("--voice-turns", "on")
    try:
        messages = asyncio.run(speak(f"ws://127.0.0.1:{port}/v1/stream", audio, "table",
                                     pace=4.0))
        segments, said = of_type(messages, "segment"), of_type(messages, "triplets")
        assert [m["segment_id"] for m in segments] == [0, 1, 2]
        change = 1.0 + len(voice_says(ONE, 0)) / 16000  # where the other voice begins
        assert abs(segments[0]["end"] - change) < 0.5
        assert segments[1]["start"] == segments[0]["end"]  # one utterance, cut once
        assert [(m["segment_id"], m.get("voice")) for m in said] == [(0, 1), (1, 2), (2, 2)]
        assert all(m["text"].strip() for m in said)
        metrics = http_get(f"http://127.0.0.1:{port}/metrics")[2].decode()
        assert "streamre_voice_turn_cuts_total 1.0" in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
