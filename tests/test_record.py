"""The meeting's record: every segment journaled with its facts, served as a transcript (JSON,
SRT, WebVTT, Markdown), the graph rebuilt as it was at any version or time, the minutes, the
transcript for late viewers, and each bad query answered with a 4xx and a code."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import time
import urllib.parse
from datetime import datetime, timezone

import numpy as np
import pytest
from websockets.asyncio.client import connect

from helpers import (FACT, FACT_TEXT, http_get, noise, of_type, pcm_frames, receive_all, run,
                     start_server, start_text, stream, wait_for, wire)
from streamre.graph import GraphSettings, Mention, RoomGraph
from streamre.graph.store import GraphStore
from streamre.graph.transcript import Said, minutes, minutes_markdown, srt, vtt
from streamre.protocol import stop_message, subscribe_message
from streamre.server.record import Retention
from streamre.triplets import Triplet

SRT_CUE = re.compile(r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})\n(.+)\n")


def parse_srt(text: str) -> list[tuple[int, float, float, str]]:
    """(index, start, end, text) of every cue; fails on anything that is not a cue."""
    cues, rest = [], text
    while rest.strip():
        match = SRT_CUE.match(rest)
        assert match, f"not an SRT cue: {rest[:80]!r}"
        g = match.groups()
        start = int(g[1]) * 3600 + int(g[2]) * 60 + int(g[3]) + int(g[4]) / 1000
        end = int(g[5]) * 3600 + int(g[6]) * 60 + int(g[7]) + int(g[8]) / 1000
        cues.append((int(g[0]), start, end, g[9]))
        rest = rest[match.end():].lstrip("\n")
    return cues


def said(i: int, t: float, speaker: str | None = "ana", text: str = "hello there",
         edges: tuple[str, ...] = ()) -> Said:
    return Said("s1", i, speaker, "speech", 1.0 * i, 1.0 * i + 0.8, t, text, edges)


# -- the writers, with data alone -------------------------------------------------------------

def test_subtitles_place_lines_in_the_order_said_relative_to_the_first():
    lines = [said(0, 100.0), said(2, 103.5, "bo", "later <b>bold</b> --> x"),
             said(1, 101.0, None, "no one"), said(3, 104.0, text="  ")]
    cues = parse_srt(srt(lines))
    assert [c[0] for c in cues] == [1, 2, 3]  # the silent line is left out
    assert [c[1] for c in cues] == [0.0, 1.0, 3.5]
    assert all(b - a == pytest.approx(0.8) for _, a, b, _ in cues)
    assert [c[3] for c in cues] == ["ana: hello there", "no one", "bo: later <b>bold</b> --> x"]
    web = vtt(lines, origin=99.0)
    assert web.startswith("WEBVTT\n")
    assert "00:00:01.000 --> 00:00:01.800\n<v ana>hello there" in web
    assert "<v bo>later &lt;b&gt;bold&lt;/b&gt; --&gt; x" in web  # no markup, no cue arrow


def test_minutes_group_facts_by_entity_with_the_lines_that_stated_them():
    graph = RoomGraph("m", GraphSettings(dedup_window_s=0))
    stated = []
    for i, (text, fact) in enumerate([("Ana works for Acme.", ("Ana", "Work_For", "Acme")),
                                      ("Bo lives in Oslo.", ("Bo", "Live_In", "Oslo")),
                                      ("Ana is at Acme.", ("Ana", "Work_For", "Acme"))]):
        _, edges = graph.apply_stating([Triplet(*fact)], Mention("s", i, "ana", text=text),
                                       float(i))
        stated.append(said(i, 1000.0 + i, "ana" if i != 1 else "bo", text, tuple(edges)))
    data = minutes(graph.to_json(), stated)
    assert [p["speaker"] for p in data["participants"]] == ["ana", "bo"]
    assert data["participants"][0]["segments"] == 2
    ana = next(e for e in data["entities"] if e["label"] == "Ana")
    assert [f["tail"] for f in ana["facts"]] == ["Acme"]
    assert [line["text"] for line in ana["facts"][0]["lines"]] == ["Ana works for Acme.",
                                                                  "Ana is at Acme."]
    assert {e["label"] for e in data["entities"]} == {"Ana", "Acme", "Bo", "Oslo"}
    text = minutes_markdown(data)
    assert text.startswith("# Minutes of m\n") and "### Ana" in text
    assert "  - `1970-01-01T00:16:42.000Z` ana: Ana is at Acme." in text
    assert "Ana · Work\\_For · Acme (confidence 1.00, 2 mentions)" in text


def test_a_fact_stated_by_more_lines_than_mentions_says_why_in_the_minutes():
    graph = RoomGraph("m", GraphSettings(dedup_window_s=30))
    stated = []
    for i, t in enumerate((0.0, 26.0, 100.0)):  # the first two within the window: one mention
        _, edges = graph.apply_stating([Triplet("Helena Petrov", "Work_For", "Spotify")],
                                       Mention("s", i, "ana", text=f"line {i}"), t)
        stated.append(said(i, 1000.0 + t, "ana", f"line {i}", tuple(edges)))
    (edge,) = graph.edges_json()
    assert (edge["mentions"], edge["segment_count"]) == (2, 3)
    data = minutes(graph.to_json(), stated, 30.0)
    fact = data["entities"][0]["facts"][0]
    assert (fact["mentions"], fact["stated_by"], len(fact["lines"])) == (2, 3, 3)
    assert "3 lines, 2 mentions (repeats within 30 s count once)" in minutes_markdown(data)
    assert "3 lines, 2 mentions (repeats close together count once)" in minutes_markdown(
        minutes(graph.to_json(), stated))  # a mirror's: its window is the server's, unknown


# -- the journal ------------------------------------------------------------------------------

def test_the_journal_pages_filters_and_rebuilds_any_version(tmp_path):
    store = GraphStore(tmp_path / "streamre.db")
    graph = RoomGraph("r", GraphSettings(dedup_window_s=0))
    versions = []
    for i in range(6):
        triplets = [Triplet(f"P{i % 3}", "Work_For", "Acme")] if i % 2 == 0 else []
        mention = Mention("s", i, "ana" if i < 3 else "bo", text=f"line {i}")
        _, edges = graph.apply_stating(triplets, mention, float(i))
        store.record("r", said(i, 50.0 + i, mention.speaker, mention.text, tuple(edges)),
                     triplets, mention, float(i), wall=1000.0 + i)
        versions.append((graph.version, graph.to_json()))
    rows = store.transcript.lines("r")
    assert [s.segment_id for _, s in rows] == list(range(6))
    page = store.transcript.lines("r", after=rows[1][0], limit=2)
    assert [s.segment_id for _, s in page] == [2, 3]
    assert [s.segment_id for _, s in store.transcript.lines("r", speaker="bo")] == [3, 4, 5]
    edge = rows[0][1].edges[0]
    assert [s.segment_id for _, s in store.transcript.lines("r", edge=edge)] == [0]
    for version, expected in versions:
        assert store.load("r", version=version).to_json() == expected
    assert store.load("r", version=99) is None
    assert store.load("r", version=0).to_json()["edges"] == []
    assert store.load("r", written_by=1002.5).to_json() == versions[2][1]
    assert store.began("r") == 50.0
    assert store.transcript.forget_before(52.5) == 3
    assert [s.segment_id for _, s in store.transcript.lines("r")] == [3, 4, 5]
    assert store.load("r").to_json() == versions[-1][1]  # the facts stay
    store.close()


def test_a_journal_from_before_the_transcript_opens_and_replays(tmp_path):
    path = tmp_path / "streamre.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE facts (room TEXT NOT NULL, seq INTEGER NOT NULL, t REAL NOT NULL, "
                "mention TEXT NOT NULL, triplets TEXT NOT NULL, PRIMARY KEY (room, seq))")
    old.execute("INSERT INTO facts VALUES ('r', 0, 10.0, ?, ?)", (
        json.dumps(Mention("s", 0, text="x").to_json()), json.dumps([["A", "Kill", "B", 0.9]])))
    old.commit()
    old.close()
    store = GraphStore(path)
    assert store.rooms() == ["r"] and store.load("r").version == 1
    assert store.load("r", written_by=9.0).version == 0  # counted by its meeting time
    assert store.transcript.lines("r") == []
    store.close()


# -- the server, from outside ----------------------------------------------------------------

def get_json(url: str) -> tuple[int, dict]:
    status, _, body = http_get(url)
    return status, json.loads(body)


def rebuilt(deltas: list[dict], version: int) -> dict:
    """The graph the deltas up to `version` rebuild, as a viewer would."""
    nodes, edges = {}, {}
    for d in deltas:
        if d["version"] <= version:
            nodes.update({n["id"]: n for n in d["nodes"]})
            edges.update({e["id"]: e for e in d["edges"]})
    return {"nodes": sorted(nodes.values(), key=lambda n: n["id"]),
            "edges": sorted(edges.values(), key=lambda e: e["id"])}


def same_graph(graph: dict) -> dict:
    return {"nodes": sorted(graph["nodes"], key=lambda n: n["id"]),
            "edges": sorted(graph["edges"], key=lambda e: e["id"])}


def test_the_transcript_and_history_endpoints_and_their_bad_queries(make_server, meeting_audio):
    server = make_server(graph=GraphSettings(dedup_window_s=0))
    messages, _ = asyncio.run(stream(server.url, meeting_audio, room="rec", speaker="ana"))
    messages += asyncio.run(stream(server.url, noise(1.5, 3), room="rec", speaker="bo"))[0]
    live = of_type(messages, "triplets")
    deltas = [m for m in messages if m["type"] == "graph" and m["op"] == "delta"]
    base = f"{server.http}/v1/rooms/rec"

    status, page = get_json(base + "/transcript")
    assert status == 200 and page["next"] is None and page["room"] == "rec"
    lines = page["segments"]
    assert [(s["segment_id"], s["text"]) for s in lines] == \
        [(m["segment_id"], m["text"]) for m in live]
    assert [s["speaker"] for s in lines] == ["ana", "ana", "bo"]
    assert all(s["source"] == "speech" and s["start"] < s["end"] for s in lines)
    times = [s["time"] for s in lines]  # meeting time: a file sent fast keeps its own pace
    assert times[0] < times[1] and all(abs(t - time.time()) < 120 for t in times)
    edge = lines[0]["edges"][0]
    # Pages, filters, and the edge's every line.
    first = get_json(base + "/transcript?limit=2")[1]
    assert len(first["segments"]) == 2 and first["next"] is not None
    rest = get_json(base + f"/transcript?limit=2&after={first['next']}")[1]
    assert first["segments"] + rest["segments"] == lines and rest["next"] is None
    assert [s["speaker"] for s in get_json(base + "/transcript?speaker=bo")[1]["segments"]] == \
        ["bo"]
    by_edge = get_json(base + f"/transcript?edge={edge}")[1]["segments"]
    graph = get_json(base + "/graph")[1]
    edge_json = next(e for e in graph["edges"] if e["id"] == edge)
    assert len(by_edge) == edge_json["segment_count"] == 3
    assert edge_json["segments"] == [f"{s['session_id']}/{s['segment_id']}" for s in by_edge]
    # Files: SRT parses with increasing times; VTT and Markdown carry every line.
    status, headers, body = http_get(base + "/transcript?format=srt")
    assert status == 200 and headers["Content-Type"].startswith("application/x-subrip")
    cues = parse_srt(body.decode())
    said_order = sorted(lines, key=lambda s: s["time"])
    assert [c[3] for c in cues] == [f"{s['speaker']}: {s['text']}" for s in said_order]
    assert all(a[1] <= b[1] for a, b in zip(cues, cues[1:], strict=False))
    status, headers, body = http_get(base + "/transcript?format=srt&limit=1")
    assert len(parse_srt(body.decode())) == 1 and 'rel="next"' in headers["Link"]
    assert body.decode().count(FACT_TEXT) == 1
    assert http_get(base + "/transcript?format=vtt")[2].decode().count(FACT_TEXT) == 3
    assert http_get(base + "/transcript?format=md")[2].decode().count(FACT_TEXT) == 3
    # The graph at each version is what the deltas up to it rebuild; at a time, likewise.
    for d in deltas:
        status, then = get_json(base + f"/graph?version={d['version']}")
        assert status == 200 and then["version"] == d["version"]
        assert same_graph(then) == rebuilt(deltas, d["version"])
    now = datetime.now(timezone.utc).isoformat()
    assert get_json(base + "/graph?at=" + urllib.parse.quote(now))[1] == graph
    assert "graphml" in http_get(base + "/graph?version=1&format=graphml")[2].decode()
    # The minutes.
    status, data = get_json(base + "/export?format=json")
    assert status == 200 and {p["speaker"] for p in data["participants"]} == {"ana", "bo"}
    assert data["entities"][0]["facts"][0]["lines"][0]["text"] == FACT_TEXT
    assert len(data["transcript"]) == 3
    status, headers, body = http_get(base + "/export")
    assert headers["Content-Type"].startswith("text/markdown")
    assert body.decode().startswith("# Minutes of rec\n")
    # Bad queries: a 4xx with a code, never a 500.
    bad = {
        "/transcript?format=xml": (400, "bad_format"),
        "/transcript?limit=0": (400, "bad_limit"),
        "/transcript?limit=-5": (400, "bad_limit"),
        "/transcript?limit=1000000000": (400, "bad_limit"),
        "/transcript?limit=ten": (400, "bad_limit"),
        "/transcript?after=-1": (400, "bad_after"),
        "/transcript?after=" + "9" * 30: (400, "bad_after"),
        "/graph?version=" + "9" * 30: (404, "no_such_version"),
        "/graph?at=": (400, "bad_time"),
        "/graph?version=99": (404, "no_such_version"),
        "/graph?version=-1": (400, "bad_version"),
        "/graph?version=1&at=2026-01-01T00:00:00Z": (400, "bad_query"),
        "/graph?at=yesterday": (400, "bad_time"),
        "/graph?at=2001-01-01T00:00:00Z": (404, "before_room"),
        "/export?format=pdf": (400, "bad_format"),
    }
    for path, (code, error) in bad.items():
        status, answer = get_json(base + path)
        assert (status, answer["error"]) == (code, error), path
        assert answer.get("message"), path
    for what in ("transcript", "export", "graph?version=1"):
        assert get_json(f"{server.http}/v1/rooms/nope/{what}")[0] == 404
        status, answer = get_json(f"{server.http}/v1/rooms/b%20d/{what}")
        assert status in (400, 404) and answer["error"] in ("bad_room", "no_such_room")
    assert get_json(f"{server.http}/v1/rooms/b%20d/transcript")[1]["error"] == "bad_room"


def test_a_late_viewer_gets_the_transcript_then_the_live_lines(make_server, meeting_audio):
    server = make_server(graph=GraphSettings(dedup_window_s=0))
    asyncio.run(stream(server.url, meeting_audio, room="late"))

    async def late_viewer():
        async with connect(server.url) as viewer:
            await viewer.send(wire(subscribe_message("late", history=True)))
            got = [json.loads(await viewer.recv()) for _ in range(4)]
            await stream(server.url, noise(1.5, 4), room="late", speaker="cy")
            async with asyncio.timeout(30):
                while True:
                    message = json.loads(await viewer.recv())
                    got.append(message)
                    if message["type"] == "transcript":
                        break
            await viewer.send(json.dumps({"type": "subscribe", "room": "late",
                                          "history": "yes"}))
            got.append(json.loads(await viewer.recv()))
            return got

    got = asyncio.run(late_viewer())
    assert [m["type"] for m in got[:4]] == ["ready", "graph", "transcript", "transcript"]
    assert [m["segment_id"] for m in got[2:4]] == [0, 1]
    assert all(m["text"] == FACT_TEXT and m["edges"] for m in got[2:4])
    assert got[-2]["type"] == "transcript" and got[-2]["speaker"] == "cy"
    assert sum(m["type"] == "transcript" for m in got) == 3  # none twice
    assert got[-1]["type"] == "error" and got[-1]["code"] == "bad_history"


def test_retention_deletes_old_lines_and_keeps_the_facts(make_server, meeting_audio, tmp_path):
    data = str(tmp_path / "kept")
    server = make_server(graph=GraphSettings(dedup_window_s=0), data_dir=data)
    asyncio.run(stream(server.url, meeting_audio, room="old"))
    server.stop()
    aged = sqlite3.connect(tmp_path / "kept" / "streamre.db")
    aged.execute("UPDATE segments SET time = time - 2 * 86400 WHERE segment_id = 0")
    aged.commit()
    aged.close()
    # A server with a one-day retention deletes the two-day-old line as it starts.
    server = make_server(graph=GraphSettings(dedup_window_s=0), data_dir=data,
                         transcript_retention_days=1)
    url = f"{server.http}/v1/rooms/old/transcript"
    wait_for(lambda: len(get_json(url)[1]["segments"]) == 1)
    assert get_json(url)[1]["segments"][0]["segment_id"] == 1
    assert get_json(f"{server.http}/v1/rooms/old/graph")[1]["version"] == 2


def test_retention_looks_again_only_when_due(tmp_path):
    store = GraphStore(tmp_path / "streamre.db")
    now = [0.0]
    retention = Retention(store, days=1, every_s=60, clock=lambda: now[0])
    store.record("r", said(0, time.time() - 3 * 86400), [], Mention("s", 0), 0.0)
    assert retention.apply_when_due() == 1
    store.record("r", said(1, time.time() - 3 * 86400), [], Mention("s", 1), 0.0)
    now[0] = 59.0
    assert retention.apply_when_due() == 0  # not yet
    now[0] = 60.0
    assert retention.apply_when_due() == 1
    assert Retention(store, days=0).apply_when_due() == 0  # kept forever
    store.close()


def test_the_record_is_exported_from_the_journal(make_server, meeting_audio, tmp_path, capsys):
    """`streamre graph export` from a server's journal: once as a real command, then its other
    formats in this process (the same entry point)."""
    from streamre.cli.main import main

    server = make_server(graph=GraphSettings(dedup_window_s=0), data_dir=str(tmp_path / "d"))
    asyncio.run(stream(server.url, meeting_audio, room="cli", speaker="ana"))
    expected = get_json(f"{server.http}/v1/rooms/cli/transcript")[1]
    server.stop()
    db = str(tmp_path / "d" / "streamre.db")
    out = run("graph", "export", "--db", db, "--room", "cli", "--format", "transcript")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == expected

    def export(fmt: str) -> tuple[int, str, str]:
        try:
            status = main(["graph", "export", "--db", db, "--room", "cli", "--format", fmt])
        except SystemExit as e:  # argparse refuses a bad choice this way
            status = e.code
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    cues = parse_srt(export("srt")[1])
    assert [c[3] for c in cues] == [f"ana: {FACT_TEXT}"] * 2
    minutes_md = export("minutes-md")[1]
    assert minutes_md.startswith("# Minutes of cli\n")
    assert f"ana: {FACT_TEXT}" in minutes_md
    status, _, err = export("pdf")
    assert status == 2 and "invalid choice" in err


@pytest.mark.slow
def test_a_56_s_meeting_killed_and_restarted_keeps_its_whole_record(fact_checkpoint,
                                                                     meeting_audio, tmp_path):
    """The issue's target: a 56 s meeting (streamed at four times real time: the record does
    not depend on the pace), the server killed with SIGKILL, then every segment comes back in
    order with its live id and text, the SRT parses with increasing times, and every version
    seen live is what its deltas rebuild."""
    repeats = int(np.ceil(56 * 16000 / len(meeting_audio)))
    audio = np.tile(meeting_audio, repeats)[: 56 * 16000]
    args = ("--model", str(fact_checkpoint), "--speech-facts", "speech", "--text-model", "none", "--data-dir",
            str(tmp_path / "data"), "--graph-dedup-window-s", "0")
    server, port = start_server(*args)
    url = f"ws://127.0.0.1:{port}/v1/stream"

    async def meeting():
        async with connect(url, max_size=None) as ws:
            await ws.send(start_text("kill", speaker="ana"))
            received = asyncio.create_task(receive_all(ws, timeout=120))  # read as it comes
            for frame in pcm_frames(audio, 16000):
                await ws.send(frame)
                await asyncio.sleep(0.025)  # four times real time
            await ws.send(wire(stop_message()))
            return await received

    try:
        messages = asyncio.run(meeting())
        server.send_signal(signal.SIGKILL)
        assert server.wait(30) == -signal.SIGKILL
    finally:
        server.kill()
        server.stderr.close()
    live = of_type(messages, "triplets")
    deltas = [m for m in messages if m["type"] == "graph" and m["op"] == "delta"]
    assert len(live) >= 10 and all(not m.get("error") for m in live)

    server, port = start_server(*args)
    base = f"http://127.0.0.1:{port}/v1/rooms/kill"
    try:
        lines = get_json(base + "/transcript")[1]["segments"]
        assert [(s["segment_id"], s["text"]) for s in lines] == \
            [(m["segment_id"], m["text"]) for m in live]
        cues = parse_srt(http_get(base + "/transcript?format=srt")[2].decode())
        assert len(cues) == len(lines)
        assert all(a[1] < b[1] and a[2] <= b[2] for a, b in zip(cues, cues[1:], strict=False))
        for d in deltas:
            then = get_json(base + f"/graph?version={d['version']}")[1]
            assert same_graph(then) == rebuilt(deltas, d["version"])
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
        server.stderr.close()


def test_edges_keep_a_bounded_list_of_their_segments_and_count_all():
    graph = RoomGraph("r", GraphSettings(dedup_window_s=0))
    for i in range(25):
        graph.apply([Triplet(*FACT)], Mention("s", i, text="x"), float(i))
    (edge,) = graph.edges_json()
    assert edge["segment_count"] == 25 and edge["mentions"] == 25
    assert edge["segments"] == [f"s/{i}" for i in range(15, 25)]


def test_a_segment_the_journal_refuses_is_answered_and_never_shown(make_server, meeting_audio):
    server = make_server(graph=GraphSettings(dedup_window_s=0))
    store = server.server.store
    keep = store.record

    def full_disk(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    store.record = full_disk  # the fault: what SQLite raises when the disk is full
    messages, code = asyncio.run(stream(server.url, meeting_audio, room="full"))
    answers = of_type(messages, "triplets")
    assert code == 1000 and len(answers) == 2
    assert all(a["error"] == "journal_failed" and a["triplets"] == [] for a in answers)
    assert not [m for m in messages if m["type"] == "graph" and m["op"] == "delta"]
    assert get_json(f"{server.http}/v1/rooms/full/graph")[1]["version"] == 0
    store.record = keep  # the disk has room again: the room goes on from the journal
    messages, _ = asyncio.run(stream(server.url, meeting_audio, room="full"))
    assert [m["version"] for m in messages if m["type"] == "graph" and m["op"] == "delta"] \
        == [1, 2]
    assert len(get_json(f"{server.http}/v1/rooms/full/transcript")[1]["segments"]) == 2
