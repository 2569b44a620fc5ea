"""PROTOCOL.md's session rules on `SessionProtocol` alone: frames in, actions out; no server,
no model, no sockets."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from helpers import pcm_frames
from streamre.audio import VadConfig
from streamre.graph.entries import Mention
from streamre.graph.store import GraphStore
from streamre.mqtt.broker import topic
from streamre.mqtt.mirror import GraphMirror
from streamre.mqtt.subscriber import subscribe
from streamre.protocol import (PROTOCOL_VERSION, Busy, Close, CloseCode, DropSegment, Finish,
                               FindTurns, Infer, InferText, JoinRoom, Limits, Reply, SendSnapshot,
                               SessionProtocol,
                               ping_message, start_message, stop_message, subscribe_message,
                               text_message)
from streamre.triplets import Triplet

LIMITS = Limits(max_message_bytes=65536, max_utterance_s=15.0)


def session() -> SessionProtocol:
    return SessionProtocol("s1", VadConfig(), LIMITS)


def send(protocol: SessionProtocol, message) -> list:
    return protocol.receive_text(message if isinstance(message, str) else json.dumps(message))


def replies(actions: list) -> list[dict]:
    return [a.message for a in actions if isinstance(a, Reply)]


def error_codes(actions: list) -> list[str]:
    return [m["code"] for m in replies(actions) if m["type"] == "error"]


def test_start_joins_then_ready_then_snapshot():
    p = session()
    actions = send(p, start_message("standup", 48000, speaker="alice"))
    assert actions[0] == JoinRoom("standup") and actions[2] == SendSnapshot()
    assert actions[1].message == {
        "type": "ready", "session_id": "s1", "room": "standup", "protocol": PROTOCOL_VERSION,
        "role": "producer", "limits": {"max_message_bytes": 65536, "min_sample_rate": 8000,
                                       "max_sample_rate": 48000, "encodings": ["pcm_s16le"],
                                       "max_utterance_s": 15.0, "max_rooms": 16,
                                       "max_text_chars": 5000, "text_per_minute": 60}}
    assert (p.role, p.room_name, p.speaker, p.sample_rate) == ("producer", "standup", "alice", 48000)


@pytest.mark.parametrize("change, code", [
    ({"encoding": "opus"}, "unsupported_encoding"),
    ({"sample_rate": 96000}, "bad_sample_rate"),
    ({"sample_rate": 7999}, "bad_sample_rate"),
    ({"sample_rate": "16000"}, "bad_sample_rate"),
    ({"sample_rate": True}, "bad_sample_rate"),
    ({"channels": 2}, "unsupported_channels"),
    ({"protocol": 2}, "unsupported_protocol"),
    ({"room": "a/b"}, "bad_room"),
    ({"room": ""}, "bad_room"),
    ({"room": "x" * 65}, "bad_room"),
    ({"room": "abc\n"}, "bad_room"),  # a final newline once passed the rule
    ({"room": "x" * 64 + "\n"}, "bad_room"),
    ({"protocol": True}, "unsupported_protocol"),  # booleans are not numbers
    ({"protocol": 1.0}, "unsupported_protocol"),
    ({"channels": True}, "unsupported_channels"),
    ({"speaker": 5}, "bad_speaker"),
    ({"speaker": "s" * 129}, "bad_speaker"),
])
def test_a_bad_start_is_an_error_then_close_4400(change, code):
    p = session()
    actions = send(p, {**start_message(), **change})
    assert actions == [Reply({"type": "error", "code": code, "message": actions[0].message[
        "message"]}), Close(CloseCode.PROTOCOL_VIOLATION, code)]
    assert p.role is None


def test_audio_before_start_is_a_protocol_violation():
    actions = session().receive_audio(b"\x00\x01" * 160)
    assert error_codes(actions) == ["audio_before_start"]
    assert actions[-1] == Close(CloseCode.PROTOCOL_VIOLATION, "audio_before_start")


def test_bad_text_gets_an_error_and_the_session_goes_on(meeting_audio):
    p = session()
    answers = [send(p, text) for text in
               ["not json", "[1, 2]", '{"type": 5}', '{"type": "dance"}', stop_message(),
                '{"type": "ping", "extra": [1]}']]
    assert [error_codes(a) for a in answers[:-1]] == [
        ["bad_json"], ["bad_message"], ["bad_message"], ["unknown_type"], ["not_streaming"]]
    assert answers[-1] == [Reply({"type": "pong"})]
    assert not any(isinstance(a, Close) for actions in answers for a in actions)

    assert isinstance(send(p, start_message())[0], JoinRoom)
    assert error_codes(send(p, start_message())) == ["already_started"]
    actions = [a for frame in pcm_frames(meeting_audio, 16000) for a in p.receive_audio(frame)]
    assert send(p, stop_message()) == [Finish()]
    actions += p.end_of_stream()
    assert p.receive_audio(b"\x00\x00" * 1600) == []  # after stop: not part of the stream
    assert send(p, stop_message()) == []  # a second stop changes nothing
    kinds = [m["type"] for m in replies(actions)]
    assert kinds == ["vad", "vad", "segment", "vad", "vad", "segment"]
    segments = [a.segment for a in actions if isinstance(a, Infer)]
    assert [s.index for s in segments] == [m["segment_id"] for m in replies(actions)
                                           if m["type"] == "segment"]
    # The segments lie inside the audio accepted, in order.
    seconds = len(meeting_audio) / 16000
    assert 0 < segments[0].start_s < segments[0].end_s < segments[1].start_s \
        < segments[1].end_s <= seconds


def test_too_short_noise_is_dropped_not_sent():
    p = session()
    send(p, start_message())
    burst = (np.random.default_rng(0).standard_normal(16000 // 10) * 8000).astype(np.int16)
    silence = np.zeros(16000, dtype=np.int16)
    actions = [a for frame in pcm_frames(np.concatenate([silence, burst, silence]), 16000)
               for a in p.receive_audio(frame)]
    actions += p.end_of_stream()
    assert [m["event"] for m in replies(actions)] == ["speech_start", "speech_end"]
    assert actions[-1] == DropSegment() and not any(isinstance(a, Infer) for a in actions)


def test_viewer_rooms_and_resync():
    p = session()
    assert send(p, subscribe_message("a"))[0] == JoinRoom("a") and p.role == "viewer"
    assert send(p, subscribe_message("a")) == [SendSnapshot()]  # a resync
    moved = send(p, subscribe_message("b"))
    assert moved[0] == JoinRoom("b") and replies(moved)[0]["role"] == "viewer"
    assert error_codes(send(p, subscribe_message("bad room"))) == ["bad_room"]
    assert error_codes(send(p, start_message())) == ["already_started"]
    assert error_codes(p.receive_audio(b"\x00\x00")) == ["audio_before_start"]
    assert send(p, ping_message()) == [Reply({"type": "pong"})]


def test_a_producer_resyncs_only_its_own_room():
    p = session()
    send(p, start_message("mine"))
    assert send(p, subscribe_message("mine")) == [SendSnapshot()]
    assert error_codes(send(p, subscribe_message("other"))) == ["room_mismatch"]


def test_deep_json_is_bad_json_and_the_session_goes_on():
    p = session()
    deep = '{"type":"ping","a":' + "[" * 50_000 + "]" * 50_000 + "}"
    assert error_codes(send(p, deep)) == ["bad_json"]
    assert error_codes(send(p, '{"type":"ping","a":' + "[" * 33 + "]" * 33 + "}")) == ["bad_json"]
    # Brackets inside strings are text, not nesting; 32 levels are allowed.
    assert send(p, {"type": "ping", "a": "[" * 100}) == [Reply({"type": "pong"})]
    assert send(p, '{"type":"ping","a":' + "[" * 31 + "]" * 31 + "}") == [Reply({"type": "pong"})]


def test_a_frame_over_one_second_is_refused_not_used():
    p = session()
    send(p, start_message(rate=16000))
    actions = p.receive_audio(b"\x00\x10" * 16001)  # 1 s and one sample
    assert error_codes(actions) == ["frame_too_long"] and not any(
        isinstance(a, Close) for a in actions)
    assert p.samples_heard == 0  # not part of the stream
    assert p.receive_audio(b"\x00\x00" * 16000) == []  # 1 s of silence is fine
    assert p.samples_heard == 16000




def test_a_session_joins_a_bounded_number_of_rooms():
    p = SessionProtocol("s1", VadConfig(), Limits(65536, 15.0, max_rooms=3))
    for n in range(3):
        assert isinstance(send(p, subscribe_message(f"r{n}"))[0], JoinRoom)
    assert send(p, subscribe_message("r1"))[0] == JoinRoom("r1")  # back to one it had: fine
    refused = send(p, subscribe_message("r3"))
    assert error_codes(refused) == ["too_many_rooms"] and len(refused) == 1  # not closed
    assert p.room_name == "r1"  # still in its room
    assert isinstance(send(p, ping_message())[0], Reply)


def test_the_server_says_who_it_has_room_for():
    asked = []

    def admit(role, room):
        asked.append((role, room))
        return Busy("server_full", "no producers now") if role == "producer" else \
            Busy("too_many_rooms", "full") if room == "full" else None

    producer = SessionProtocol("s1", VadConfig(), LIMITS, admit)
    actions = send(producer, start_message("standup"))
    assert error_codes(actions) == ["server_full"]
    assert actions[-1] == Close(CloseCode.TRY_AGAIN_LATER, "server_full")
    assert producer.role is None
    viewer = SessionProtocol("s2", VadConfig(), LIMITS, admit)
    actions = send(viewer, subscribe_message("full"))  # a newcomer the server cannot take
    assert actions[-1] == Close(CloseCode.TRY_AGAIN_LATER, "too_many_rooms")
    assert viewer.role is None
    viewer = SessionProtocol("s3", VadConfig(), LIMITS, admit)
    assert isinstance(send(viewer, subscribe_message("a"))[0], JoinRoom)
    assert error_codes(send(viewer, subscribe_message("full"))) == ["too_many_rooms"]
    assert (viewer.role, viewer.room_name) == ("viewer", "a")  # a viewer keeps what it had
    assert asked == [("producer", "standup"), ("viewer", "full"), ("viewer", "a"),
                     (None, "full")]


def test_the_handshake_window_closes_only_a_nobody():
    p = session()
    send(p, ping_message())  # a ping is not a handshake
    actions = p.handshake_expired(5)
    assert error_codes(actions) == ["handshake_timeout"]
    assert actions[-1] == Close(CloseCode.PROTOCOL_VIOLATION, "handshake_timeout")
    started = session()
    send(started, subscribe_message("r"))
    assert started.handshake_expired(5) == []



class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("message, code", [
    ({"type": "text", "text": ""}, "bad_text"),
    ({"type": "text", "text": "  \n "}, "bad_text"),
    ({"type": "text", "text": 5}, "bad_text"),
    ({"type": "text"}, "bad_text"),
    ({"type": "text", "text": "x" * 5001}, "text_too_long"),
    ({"type": "text", "text": "Hi.", "speaker": 7}, "bad_speaker"),
])
def test_bad_text_is_refused_and_the_session_goes_on(message, code):
    p = session()
    send(p, subscribe_message("r"))
    actions = send(p, message)
    assert error_codes(actions) == [code] and len(actions) == 1


def test_text_needs_a_room():
    assert error_codes(send(session(), text_message("David Chen works for the World Bank."))) \
        == ["not_in_room"]


def test_a_note_becomes_one_item_per_sentence_numbered_with_the_audio_segments():
    p = SessionProtocol("s1", VadConfig(min_utterance_ms=100), LIMITS)
    send(p, start_message("r", speaker="alice"))
    speech = (np.random.default_rng(0).standard_normal(16000) * 6000).astype(np.int16)
    actions = []
    for frame in pcm_frames(np.concatenate([speech, np.zeros(16000, np.int16)]), 16000):
        actions += p.receive_audio(frame)
    segments = [a.segment.index for a in actions if isinstance(a, Infer)]
    assert segments == [0]
    note = send(p, text_message("Maria Lopez lives in Boston. Mr. Chen works for the World Bank."))
    assert note == [InferText(1, "Maria Lopez lives in Boston.", "alice"),
                    InferText(2, "Mr. Chen works for the World Bank.", "alice")]
    assert send(p, text_message("Hi.", speaker="bob")) == [InferText(3, "Hi.", "bob")]


def test_a_long_segment_is_numbered_once_its_turns_are_found_each_piece_a_segment():
    p = SessionProtocol("s1", VadConfig(min_utterance_ms=100), LIMITS, turns_from=3 * 16000)
    send(p, start_message("r", speaker="alice"))
    rng = np.random.default_rng(0)
    short, long = (rng.standard_normal(n * 16000) * 6000 for n in (1, 4))
    silence = np.zeros(16000)
    actions = []
    for frame in pcm_frames(np.concatenate([short, silence, long, silence]).astype(np.int16),
                            16000):
        actions += p.receive_audio(frame)
    said = [a for a in actions if isinstance(a, (Reply, Infer, FindTurns))
            and not (isinstance(a, Reply) and a.message["type"] != "segment")]
    assert [type(a) for a in said] == [Reply, Infer, FindTurns]  # the long one waits
    whole = said[2].segment
    assert said[1].segment.index == 0
    pieces = p.turns_found(whole, [16000, 40000])
    assert [type(a) for a in pieces] == [Reply, Infer] * 3
    heard = [a.segment for a in pieces if isinstance(a, Infer)]
    assert [s.index for s in heard] == [1, 2, 3]  # numbered now, in stream order
    assert [(s.start - whole.start, s.end - whole.start) for s in heard] == [
        (0, 16000), (16000, 40000), (40000, len(whole.audio))]
    assert [m["segment_id"] for m in replies(pieces)] == [1, 2, 3]
    assert [m["start"] for m in replies(pieces)] == [s.start_s for s in heard]
    assert send(p, text_message("Hi.")) == [InferText(4, "Hi.", "alice")]
    # A segment of one voice is itself, numbered next.
    [announced, one] = p.turns_found(whole, [])
    assert one.segment.index == 5 and len(one.segment.audio) == len(whole.audio)
    assert announced.message["end"] == whole.end_s


def test_text_has_a_rate_per_session():
    clock = Clock()
    p = SessionProtocol("s1", VadConfig(), LIMITS, clock=clock)
    send(p, subscribe_message("r"))
    answers = [send(p, text_message("Hi.")) for _ in range(11)]
    assert all(isinstance(a[0], InferText) for a in answers[:10])  # a burst of 10
    assert error_codes(answers[10]) == ["text_rate"]
    clock.now = 1.0  # 60 a minute: one more a second
    assert isinstance(send(p, text_message("Hi."))[0], InferText)
    assert error_codes(send(p, text_message("Hi."))) == ["text_rate"]


BAD_ROOMS = ["abc\n", "x" * 65, "", "a/b", "#", "a b", "-lead", 7]


@pytest.mark.parametrize("name", BAD_ROOMS)
def test_one_room_rule_for_the_websocket_store_and_mqtt(name, tmp_path):
    assert error_codes(send(session(), subscribe_message(name))) == ["bad_room"]
    store = GraphStore(tmp_path / "g.db")
    with pytest.raises(ValueError, match="room must be"):
        store.append(name, [Triplet("a", "Work_For", "b")], Mention("s", 0), 0.0)
    store.close()
    with pytest.raises(ValueError, match="room must be"):
        topic(name, "graph/delta")
    with pytest.raises(ValueError):
        GraphMirror().apply({"type": "graph", "op": "snapshot", "room": name, "version": 1,
                             "nodes": [], "edges": []})
    if isinstance(name, str):
        with pytest.raises(ValueError, match="--room"):
            asyncio.run(subscribe("mqtt://127.0.0.1:1", name, str(tmp_path / "m.db")))
