"""Property tests: `SessionProtocol` driven by random sequences of text and binary frames.

Whatever arrives, it never raises; every bad input is answered with the contract's error, and
only a fatal one closes (with 4400, right after its error); and the segments it hands to the
model are exactly the audio it accepted, in order, each at most the longest utterance.
"""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamre.audio import VadConfig
from streamre.protocol import (Busy, Close, CloseCode, DropSegment, Finish, Infer, InferText,
                               JoinRoom, Limits,
                               Reply, SendSnapshot, SessionProtocol, start_message,
                               subscribe_message)

VAD = VadConfig(max_utterance_s=1.5, split_overlap_ms=200, min_utterance_ms=100)
ERROR_CODES = {"bad_json", "bad_message", "unknown_type", "not_streaming", "already_started",
               "unsupported_protocol", "unsupported_encoding", "unsupported_channels",
               "bad_sample_rate", "bad_speaker", "bad_vocabulary", "bad_room", "room_mismatch",
               "audio_before_start", "frame_too_long", "not_in_room", "bad_text",
               "text_too_long", "text_rate"}
REPLY_TYPES = {"ready", "error", "pong", "vad", "segment"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)
message_types = st.sampled_from(["start", "subscribe", "stop", "ping", "text", "dance", "",
                                 "START"])
field_values = {
    "protocol": st.sampled_from([1, 2, 1.0, True, "1", None]),
    "sample_rate": st.sampled_from([16000, 8000, 48000, 7999, 96000, "16000", True, 16000.0]),
    "encoding": st.sampled_from(["pcm_s16le", "opus", 5]),
    "channels": st.sampled_from([1, 2, 0]),
    "room": st.sampled_from(["default", "r1", "a/b", "", "x" * 65, 7, None]),
    "speaker": st.sampled_from(["alice", 5, "s" * 129, None]),
    "text": st.sampled_from(["David Chen works for the World Bank.", "", 5, "x" * 6000, None,
                             "One. Two! Three?"]),
}
messages = st.builds(
    lambda kind, fields, extra: {"type": kind, **fields, **extra},
    message_types, st.fixed_dictionaries({}, optional=field_values),
    st.dictionaries(st.sampled_from(["x", "extra", "meta"]), json_values, max_size=2))
texts = (messages.map(json.dumps)
         | json_values.map(json.dumps)
         | st.text(max_size=40)
         | st.just(json.dumps(start_message()))
         | st.integers(1, 3000).map(lambda n: '{"type":"ping","a":' + "[" * n + "]" * n + "}"))


@st.composite
def audio(draw) -> bytes:
    """Silence, noise loud enough to be heard as speech, or raw bytes of any length."""
    kind = draw(st.sampled_from(["silence", "noise", "raw"]))
    if kind == "raw":
        return draw(st.binary(max_size=801))
    samples = draw(st.integers(0, 12000))
    if kind == "silence":
        return bytes(2 * samples)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    return (rng.standard_normal(samples) * 6000).astype("<i2").tobytes()


frames = st.lists(st.one_of(texts, audio()), max_size=25)


def run(frame_list: list) -> tuple[list, list[bytes], bool]:
    """Feed the frames to a fresh session that first starts at 16 kHz; stop at a Close."""
    p = SessionProtocol("s", VAD, Limits(65536, VAD.max_utterance_s))
    actions = p.receive_text(json.dumps(start_message()))
    accepted: list[bytes] = []
    closed = False
    for frame in frame_list:
        if isinstance(frame, bytes):
            if not p.finishing:
                accepted.append(frame)
            new = p.receive_audio(frame)
        else:
            new = p.receive_text(frame)
        actions += new
        if any(isinstance(a, Close) for a in new):
            closed = True
            break
    if not closed:
        actions += p.end_of_stream()
    return actions, accepted, closed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames)
def test_never_raises_and_answers_by_the_contract(frame_list):
    actions, _, closed = run(frame_list)
    for i, action in enumerate(actions):
        assert isinstance(action, (Reply, JoinRoom, SendSnapshot, Infer, InferText, DropSegment,
                                   Finish, Close))
        if isinstance(action, Reply):
            assert action.message["type"] in REPLY_TYPES
            if action.message["type"] == "error":
                assert action.message["code"] in ERROR_CODES
                assert isinstance(action.message["message"], str) and action.message["message"]
        if isinstance(action, Close):
            assert action.code == CloseCode.PROTOCOL_VIOLATION and i == len(actions) - 1
            assert actions[i - 1].message["type"] == "error"
    assert closed == any(isinstance(a, Close) for a in actions)
    assert sum(isinstance(a, Finish) for a in actions) <= 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(audio(), min_size=1, max_size=25), st.lists(texts, max_size=5))
def test_segments_are_exactly_the_audio_accepted(audio_frames, noise_texts):
    # Text frames (which may be bad) go first; a fatal one closes the session before any audio.
    actions, accepted, closed = run(noise_texts + audio_frames)
    segments = [a.segment for a in actions if isinstance(a, Infer)]
    if closed:
        assert not segments
        return
    stream = np.frombuffer(b"".join(accepted)[:len(b"".join(accepted)) // 2 * 2], "<i2")
    previous_end = 0
    for s in segments:
        assert s.end - s.start == len(s.audio) <= VAD.max_samples
        assert np.array_equal(s.audio, stream[s.start:s.end])  # 16 kHz: no resampling
        assert s.start >= previous_end - s.overlap and s.overlap >= 0
        assert s.end <= len(stream)
        previous_end = s.end
    announced = [a.message["segment_id"] for a in actions
                 if isinstance(a, Reply) and a.message["type"] == "segment"]
    assert announced == [s.index for s in segments]
    # Audio segments and typed sentences draw ids from one counter: unique, in order, from 0.
    ids = [a.segment.index if isinstance(a, Infer) else a.item_id
           for a in actions if isinstance(a, (Infer, InferText))]
    assert ids == list(range(len(ids)))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([f"r{n}" for n in range(8)]), st.booleans()),
                max_size=30))
def test_a_viewer_joins_a_bounded_number_of_rooms_and_keeps_its_room_when_refused(requests):
    """Subscribes to random rooms, each refused by the server (busy) or not."""
    busy_now = [False]
    p = SessionProtocol("s", VAD, Limits(65536, 15.0, max_rooms=3),
                        lambda role, room: Busy("too_many_rooms", "full") if busy_now[0] else None)
    room = None
    for name, busy in requests:
        busy_now[0] = busy
        actions = p.receive_text(json.dumps(subscribe_message(name)))
        joined = [a.room_name for a in actions if isinstance(a, JoinRoom)]
        closes = [a for a in actions if isinstance(a, Close)]
        if joined:
            room = joined[0]
        if closes:  # only a newcomer the server cannot take is closed, and with 1013
            assert room is None and closes[0].code == CloseCode.TRY_AGAIN_LATER
            return
        assert p.room_name == room and len(p.rooms_joined) <= 3
        errors = [a.message["code"] for a in actions
                  if isinstance(a, Reply) and a.message["type"] == "error"]
        assert set(errors) <= {"too_many_rooms"} and (not errors or not joined)
