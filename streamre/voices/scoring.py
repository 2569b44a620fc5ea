"""How well a stream's lines were given their voices: pure scoring against who really spoke.

A stream's truth is its turns (start, end, who); its answer is each line's span and voice
number. A line's true speaker is the one who spoke most of its span. Voice numbers are matched
to speakers one to one, the matching that gets the most lines right (numbers beyond the
speakers' count match nobody). Reported: the share of lines right, the voices opened, and the
diarization error rate by time (missed speech, speech where there was none, and speech given
the wrong speaker, over the time people spoke), on a 10 ms grid, with the usual collar: 0.25 s
either side of each turn's edges is not scored (a line's pre-roll and hangover are silence).
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

import numpy as np

GRID_S = 0.01
COLLAR_S = 0.25


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class Line:
    start: float
    end: float
    voice: int


@dataclass(frozen=True)
class VoiceScore:
    lines: int
    lines_right: int
    speakers: int
    voices: int
    der: float
    turn_changes_inside: int  # lines over which the speaker changed (no pause between them)

    @property
    def line_accuracy(self) -> float:
        return self.lines_right / self.lines if self.lines else 1.0

    def to_json(self) -> dict:
        return {"lines": self.lines, "lines_right": self.lines_right,
                "line_accuracy": round(self.line_accuracy, 4), "speakers": self.speakers,
                "voices": self.voices, "der": round(self.der, 4),
                "turn_changes_inside": self.turn_changes_inside}


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def true_speakers(turns: list[Turn], lines: list[Line]) -> list[tuple[str | None, int]]:
    """Each line's true speaker (None: nobody spoke in it) and how many speakers it holds."""
    out = []
    for line in lines:
        spoken = Counter()
        for t in turns:
            spoken[t.speaker] += overlap(line.start, line.end, t.start, t.end)
        held = [s for s, d in spoken.items() if d > 0.2]  # a word's worth, not a brush
        out.append((max(spoken, key=spoken.get) if spoken and max(spoken.values()) > 0 else None,
                    len(held)))
    return out


def best_matching(pairs: list[tuple[int, str | None]]) -> dict[int, str]:
    """Voice -> speaker, one to one, with the most (voice, speaker) pairs agreeing."""
    counts = Counter((v, s) for v, s in pairs if s is not None)
    voices = sorted({v for v, _ in pairs})
    speakers = sorted({s for _, s in pairs if s is not None})
    slots = speakers + [None] * max(0, len(voices) - len(speakers))
    best: dict[int, str] = {}
    best_right = -1
    for chosen in itertools.permutations(slots, len(voices)):
        right = sum(counts[(v, s)] for v, s in zip(voices, chosen, strict=True) if s is not None)
        if right > best_right:
            best_right = right
            best = {v: s for v, s in zip(voices, chosen, strict=True) if s is not None}
    return best


def score(turns: list[Turn], lines: list[Line]) -> VoiceScore:
    truth = true_speakers(turns, lines)
    named = best_matching([(line.voice, who) for line, (who, _) in zip(lines, truth, strict=True)])
    right = sum(1 for line, (who, _) in zip(lines, truth, strict=True)
                if who is not None and named.get(line.voice) == who)
    end = max([t.end for t in turns] + [line.end for line in lines] + [0.0])
    frames = int(np.ceil(end / GRID_S)) + 1
    gold = np.full(frames, "", dtype=object)
    for t in turns:
        gold[int(t.start / GRID_S):int(t.end / GRID_S)] = t.speaker
    said = np.full(frames, "", dtype=object)
    for line in lines:
        said[int(line.start / GRID_S):int(line.end / GRID_S)] = \
            named.get(line.voice, f"voice {line.voice}")
    scored = np.ones(frames, dtype=bool)
    collar = int(COLLAR_S / GRID_S)
    for t in turns:
        for edge in (int(t.start / GRID_S), int(t.end / GRID_S)):
            scored[max(0, edge - collar):edge + collar] = False
    spoken = (gold != "") & scored
    errors = np.sum(spoken & (said == "")) + np.sum(scored & (gold == "") & (said != "")) \
        + np.sum(spoken & (said != "") & (said != gold))
    return VoiceScore(len(lines), right, len({t.speaker for t in turns}),
                      len({line.voice for line in lines}),
                      float(errors / max(1, np.sum(spoken))),
                      sum(1 for _, held in truth if held > 1))
