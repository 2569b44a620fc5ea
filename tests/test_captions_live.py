"""Live captions on a real server: the shipped Whisper hears the open utterance while it is
spoken, in real time; every session of the room sees the partials, in order, and never one
after its final line; under load partials thin out and every final still comes."""

from __future__ import annotations

import asyncio
import json
import re

from websockets.asyncio.client import connect

from conftest import SENTENCES
from helpers import http_get, of_type, speak, wire
from streamre.protocol import subscribe_message

async def watch(url: str, room: str, until: asyncio.Event) -> list[dict]:
    async with connect(url, max_size=None) as ws:
        await ws.send(wire(subscribe_message(room, history=True)))
        messages: list[dict] = []
        while not until.is_set() or len(of_type(messages, "transcript")) < len(SENTENCES):
            try:
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 0.5)))
            except TimeoutError:
                continue
        return messages


def caption_order(messages: list[dict], final_kind: str) -> list[dict]:
    """The partials, checked against the finals (`triplets` or `transcript`) in `messages`:
    each partial's utterance closes after it, and none comes after its utterance's final."""
    partials = []
    finals_seen: list[float] = []
    for m in messages:
        if m["type"] == final_kind and m.get("start") is not None:
            finals_seen.append(m["start"])
        elif m["type"] == "partial":
            assert all(m["start"] > start for start in finals_seen), \
                f"a partial came after its final line: {m}"
            partials.append(m)
    finals = [m["start"] for m in messages if m["type"] == final_kind]
    assert all(p["start"] in finals for p in partials), (partials, finals)
    return partials


def test_partials_come_while_speaking_in_order_and_never_after_the_final_line(
        make_server, text_checkpoint, meeting_audio):
    server = make_server(model="", speech_facts="text", text_model=str(text_checkpoint),
                         partial_every_s=0.5)

    async def scenario():
        done = asyncio.Event()
        viewer = asyncio.create_task(watch(server.url, "captions", done))
        await asyncio.sleep(0.3)
        produced = await speak(server.url, meeting_audio, "captions")
        done.set()
        return produced, await asyncio.wait_for(viewer, 60)

    produced, viewed = asyncio.run(scenario())
    finals = of_type(produced, "triplets")
    assert [f["text"] for f in finals if f["text"]], "nothing was heard"
    # The producer and the viewer each see captions before the lines (every utterance's, on a
    # machine fast enough: partials are dropped before finals wait).
    for messages, final_kind in ((produced, "triplets"), (viewed, "transcript")):
        partials = caption_order(messages, final_kind)
        assert partials and {p["start"] for p in partials} <= {f["start"] for f in finals}
        assert all(p["text"] and p["speaker"] == "Ana" for p in partials)
        session = of_type(produced, "ready")[0]["session_id"]
        assert {p["session_id"] for p in partials} == {session}
    # A partial is the utterance so far: one of the first utterance never holds the second's
    # words, and its final says at least what the partials did.
    first = [p["text"] for p in of_type(produced, "partial") if p["start"] == finals[0]["start"]]
    assert not any("Boston" in text for text in first)
    # Everyone gets the same captions (a newer one may replace one still queued for a client).
    said = iter(of_type(produced, "partial"))
    assert all(p in said for p in of_type(viewed, "partial"))
    # Partials are never journaled: the transcript holds the two lines alone.
    status, _, body = http_get(f"{server.http}/v1/rooms/captions/transcript")
    assert status == 200 and len(json.loads(body)["segments"]) == len(finals)
    metrics = http_get(server.http + "/metrics")[2].decode()
    sent = re.search(r'streamre_partials_total\{outcome="sent"\} (\S+)', metrics)
    assert float(sent.group(1)) >= len(of_type(produced, "partial"))


def test_under_load_partials_thin_out_and_every_final_comes_in_order(
        make_server, text_checkpoint, meeting_audio):
    server = make_server(model="", speech_facts="text", text_model=str(text_checkpoint),
                         partial_every_s=0.3, max_batch=4)
    producers = 6

    async def scenario():
        return await asyncio.gather(*(speak(server.url, meeting_audio, f"load{i}", pace=2.0)
                                      for i in range(producers)))

    everyone = asyncio.run(scenario())
    for messages in everyone:
        finals = of_type(messages, "triplets")
        assert len(finals) == len(of_type(messages, "segment")) == len(SENTENCES)
        assert messages[-1]["type"] == "done" and not any("error" in f for f in finals)
        caption_order(messages, "triplets")
        assert [f["segment_id"] for f in finals] == sorted(f["segment_id"] for f in finals)
    metrics = http_get(server.http + "/metrics")[2].decode()
    dropped = re.search(r'streamre_partials_total\{outcome="dropped"\} (\S+)', metrics)
    assert float(dropped.group(1)) > 0, "the load never made partials thin out"


def test_a_final_is_heard_next_however_many_partials_wait(text_checkpoint, meeting_audio):
    """The real engine on the shipped Whisper: while a batch of partials is heard, more wait
    and a final comes; the final is the next model call, and the waiting partials are dropped."""
    from streamre.inference.engine import InferenceEngine
    from streamre.inference.speech_path import SpeechPath, SpeechSettings

    extractor = SpeechPath(SpeechSettings(text_model=str(text_checkpoint))).load_speech()
    calls: list[str] = []
    hear, extract = extractor.hear, extractor.extract

    def heard(waveforms, vocabularies=None):  # the real calls, in the order they are made
        if not calls or calls[-1] != "in final":  # a final's own hearing is part of it
            calls.append(f"{len(waveforms)} partials")
        return hear(waveforms, vocabularies)

    def extracted(waveforms, vocabularies=None):
        calls.append("in final")
        answer = extract(waveforms, vocabularies)
        calls[-1] = f"{len(waveforms)} final"
        return answer

    extractor.hear, extractor.extract = heard, extracted
    speech = meeting_audio[16000:48000]

    async def scenario():
        engine = InferenceEngine(lambda: extractor, max_batch=2, gather_ms=0)
        await engine.start()
        first = [asyncio.create_task(engine.submit_partial(f"p{i}", speech)) for i in range(2)]
        while not calls:  # the first batch of partials is being heard
            await asyncio.sleep(0.001)
        waiting = [asyncio.create_task(engine.submit_partial(f"q{i}", speech)) for i in range(4)]
        await asyncio.sleep(0)
        final = await engine.submit("f", speech)
        results = await asyncio.gather(*first, *waiting)
        await engine.close()
        return final, results

    final, results = asyncio.run(scenario())
    assert calls == ["2 partials", "1 final"], (calls, results)
    assert all(results[:2]) and results[2:] == [None] * 4
    assert final.text
