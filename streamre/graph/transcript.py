"""A room's record: every segment said or typed in it, and the ways it is written out.

A `Said` is one segment as the journal keeps it (PROTOCOL.md's transcript fields). The writers
here are pure: a list of segments in, SRT, WebVTT, Markdown or the meeting's minutes out, so
the server's endpoints and `streamre graph export` write the same files.

Times: `start` and `end` are seconds of the segment's own stream (none for typed text);
`time` is the meeting time (Unix seconds) at which it began. Subtitles place each segment at
`time` relative to the first segment of the room, so cues from several speakers interleave as
they were said.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone

TEXT_CUE_S = 2.0  # how long a typed line shows in subtitles (it has no duration of its own)


@dataclass(frozen=True)
class Said:
    """One journaled segment of a room."""
    session_id: str
    segment_id: int
    speaker: str | None
    source: str  # "speech" or "text"
    start: float | None  # stream seconds (speech only)
    end: float | None
    time: float  # meeting time it began, Unix seconds
    text: str
    edges: tuple[str, ...] = ()  # the ids of the edges it stated
    heard: str | None = None  # what was heard, once a person corrected `text`
    corrected_by: str | None = None
    voice: int | None = None  # which of its session's voices said it (None: not told apart)

    @property
    def duration(self) -> float:
        if self.start is None or self.end is None:
            return TEXT_CUE_S
        return max(0.0, self.end - self.start)

    def corrected(self, text: str, by: str | None) -> Said:
        """This line as a person corrected it: `text` shown, what was heard kept."""
        return replace(self, text=text, heard=self.text if self.heard is None else self.heard,
                       corrected_by=by)

    def to_json(self) -> dict:
        data = asdict(self)
        data["edges"] = list(self.edges)
        if self.heard is None:  # PROTOCOL 1.3: only a corrected line says what was heard
            del data["heard"], data["corrected_by"]
        if self.voice is None:  # PROTOCOL 1.3: only where voices were told apart
            del data["voice"]
        return data

    def message(self) -> dict:
        """The WebSocket and MQTT `transcript` message."""
        return {"type": "transcript", **self.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> Said:
        return cls(str(data["session_id"]), int(data["segment_id"]), data.get("speaker"),
                   str(data.get("source", "speech")), data.get("start"), data.get("end"),
                   float(data["time"]), str(data.get("text", "")),
                   tuple(str(e) for e in data.get("edges") or ()), data.get("heard"),
                   data.get("corrected_by"), data.get("voice"))


def iso_time(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def shared_microphones(segments: list[Said]) -> set[tuple[str, str | None]]:
    """(session, speaker) of every session whose lines carry one speaker over several voices:
    voices told apart and not named yet, whose lines say which voice as well."""
    voices: dict[tuple[str, str | None], set[int]] = defaultdict(set)
    for s in segments:
        if s.voice is not None:
            voices[s.session_id, s.speaker].add(s.voice)
    return {key for key, heard in voices.items() if len(heard) > 1}


def who(s: Said, shared: set[tuple[str, str | None]]) -> str | None:
    """Who said a line, as people read it: its speaker, and its voice where one speaker's
    microphone was heard with several not named yet ("Room 4 (voice 2)")."""
    if (s.session_id, s.speaker) in shared:
        return f"{s.speaker or 'unknown'} (voice {s.voice})"
    return s.speaker


def _cues(segments: list[Said], origin: float | None) -> list[tuple[float, float, Said]]:
    """(start, end, segment) relative to `origin` (default: the first segment), in the order
    they were said; segments with no words are left out."""
    spoken = sorted((s for s in segments if s.text.strip()), key=lambda s: s.time)
    if not spoken:
        return []
    origin = spoken[0].time if origin is None else origin
    return [(s.time - origin, s.time - origin + s.duration, s) for s in spoken]


def _cue_text(s: Said, shared: set) -> str:
    words = " ".join(s.text.split())
    speaker = who(s, shared)
    return f"{speaker}: {words}" if speaker else words


def srt(segments: list[Said], origin: float | None = None) -> str:
    """SubRip: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, the speaker before the words."""
    shared = shared_microphones(segments)
    blocks = [f"{i}\n{_clock(a, ',')} --> {_clock(b, ',')}\n{_cue_text(s, shared)}\n"
              for i, (a, b, s) in enumerate(_cues(segments, origin), 1)]
    return "\n".join(blocks)


def vtt(segments: list[Said], origin: float | None = None) -> str:
    """WebVTT, with each speaker as a voice span."""
    blocks = ["WEBVTT\n"]
    shared = shared_microphones(segments)
    for a, b, s in _cues(segments, origin):
        words = " ".join(s.text.split())
        speaker = who(s, shared)
        if speaker:
            words = f"<v {_vtt_escape(speaker)}>{_vtt_escape(words)}"
        else:
            words = _vtt_escape(words)
        blocks.append(f"{_clock(a, '.')} --> {_clock(b, '.')}\n{words}\n")
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") \
        .replace("-->", "--&gt;")


def _md_escape(text: str) -> str:
    return "".join("\\" + c if c in "\\`*_[]<>#|" else c for c in " ".join(text.split()))


def _md_line(s: Said, shared: set) -> str:
    speaker = who(s, shared)
    name = f"**{_md_escape(speaker)}**" if speaker else "*unknown*"
    typed = " (typed)" if s.source == "text" else ""
    return f"- `{iso_time(s.time)}` {name}{typed}: {_md_escape(s.text)}"


def transcript_markdown(room: str, segments: list[Said]) -> str:
    lines = [f"# Transcript of {room}", ""]
    shared = shared_microphones(segments)
    lines += [_md_line(s, shared) for s in sorted(segments, key=lambda s: s.time)
              if s.text.strip()]
    return "\n".join(lines) + "\n"


def minutes(graph: dict, segments: list[Said], window_s: float | None = None) -> dict:
    """The meeting as minutes: who took part (each voice of a shared microphone apart, until
    it is named) with their lines and facts, each entity's facts with the lines that stated
    them, and the transcript. `graph` is node-link JSON (`RoomGraph.to_json`, or a mirror's);
    `window_s` the dedup window its mentions were counted with, if known: a fact stated by
    more lines than it has mentions says why."""
    stated = defaultdict(list)
    for s in segments:
        for edge in s.edges:
            stated[edge].append(s)
    shared = shared_microphones(segments)
    said_by = Counter(who(s, shared) for s in segments if s.text.strip())
    times, facts = defaultdict(list), defaultdict(set)
    for s in segments:
        times[who(s, shared)].append(s.time)
        facts[who(s, shared)].update(s.edges)
    participants = [{"speaker": name, "segments": said_by[name], "facts": len(facts[name]),
                     "first": iso_time(min(times[name])), "last": iso_time(max(times[name]))}
                    for name in sorted(times, key=lambda w: (w is None, min(times[w])))]
    labels = {n["id"]: n.get("label", n["id"]) for n in graph["nodes"]}
    facts_of = defaultdict(list)
    for e in graph["edges"]:
        fact = {"edge": e["id"], "head": labels.get(e["source"], e["source"]),
                "relation": e["relation"], "tail": labels.get(e["target"], e["target"]),
                "confidence": e["confidence"], "mentions": e["mentions"],
                "stated_by": e.get("segment_count", e["mentions"]),
                "lines": [_line(s, shared) for s in sorted(stated.get(e["id"], []),
                                                    key=lambda s: s.time)]}
        facts_of[e["source"]].append(fact)
        if e["target"] != e["source"]:
            facts_of[e["target"]].append(fact)
    entities = [{"id": n["id"], "label": labels[n["id"]], "type": n.get("type"),
                 "mentions": n.get("mentions", 0),
                 "facts": sorted(facts_of[n["id"]], key=lambda f: (-f["mentions"], f["edge"]))}
                for n in graph["nodes"] if facts_of[n["id"]]]
    entities.sort(key=lambda x: (-x["mentions"], x["label"].casefold()))
    return {"room": graph["room"], "version": graph["version"], "dedup_window_s": window_s,
            "participants": participants,
            "entities": entities,
            "transcript": [s.to_json() for s in sorted(segments, key=lambda s: s.time)]}


def _line(s: Said, shared: set) -> dict:
    return {"session_id": s.session_id, "segment_id": s.segment_id, "speaker": who(s, shared),
            "time": s.time, "text": s.text}


def counted(mentions: int, lines: int, window_s: float | None) -> str:
    """A fact's count as people can check it against its lines: "2 mentions", or, where the
    dedup window made repeats one, "2 lines, 1 mention (repeats within 60 s count once)"."""
    plural = "" if mentions == 1 else "s"
    if lines <= mentions:
        return f"{mentions} mention{plural}"
    within = f"within {window_s:g} s" if window_s is not None else "close together"
    return f"{lines} lines, {mentions} mention{plural} (repeats {within} count once)"


def minutes_markdown(data: dict) -> str:
    out = [f"# Minutes of {data['room']}", "", "## Participants", ""]
    for p in data["participants"]:
        name = _md_escape(p["speaker"]) if p["speaker"] else "*unnamed speaker*"
        out.append(f"- {name}: {p['segments']} line(s), {p['facts']} fact(s), {p['first']} to "
                   f"{p['last']}")
    out += ["", "## Facts by entity", ""]
    for entity in data["entities"]:
        out += [f"### {_md_escape(entity['label'])}", ""]
        for f in entity["facts"]:
            out.append(f"- {_md_escape(f['head'])} · {_md_escape(f['relation'])} · "
                       f"{_md_escape(f['tail'])} (confidence {f['confidence']:.2f}, "
                       f"{counted(f['mentions'], f['stated_by'], data['dedup_window_s'])})")
            for line in f["lines"]:
                speaker = _md_escape(line["speaker"]) if line["speaker"] else "unknown"
                out.append(f"  - `{iso_time(line['time'])}` {speaker}: "
                           f"{_md_escape(line['text'])}")
        out.append("")
    out += ["## Transcript", ""]
    said = [Said.from_json(s) for s in data["transcript"]]
    shared = shared_microphones(said)
    out += [_md_line(s, shared) for s in said if s.text.strip()]
    return "\n".join(out) + "\n"
