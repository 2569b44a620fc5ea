"""The batching policy, with no I/O: which queued work the model does next, and when.

Segments are queued per session and taken round-robin across sessions (a busy session cannot
starve a quiet one). A batch waits up to `gather_s` after its first segment for more, unless
every live producer already has a segment queued: nobody else could join, so waiting would only
add latency (a single stream never waits). With hearing's windows (`window_of`), a batch holds
segments of one window size; a session whose next segment needs another keeps its turn.

Typed sentences (chat, notes) queue apart and never hold up audio: a batch of them goes when
no segment is waiting, or when the oldest has waited `text_max_wait_s` (a sentence batch costs
milliseconds, a segment batch hundreds).

Finals come first. A final whose words its last partial already heard (`HeardJob`) is only read,
before anything else. Partials (`PartialJob`, live captions) run only when nothing else waits: one
is refused while segments are queued, and queued ones are dropped as soon as a segment arrives, so
a partial never delays a final by more than the batch already running. Partials may also be
held to `partial_share` of the model's time (all of it by default; see PARTIAL_SHARE): after a
batch of them took T seconds, the next waits until the model has had T·(1 − share)/share
seconds for anything else, so on a slow model (or under load) partials thin out instead of
filling every gap a final could arrive in. A
partial heard at a pause does not rest: it is the final's hearing, done early.

`BatchPolicy.decide(now, live_producers)` is the whole contract: it returns `RunSpeech`,
`RunRead`, `RunText` or `RunPartials` (the jobs leave the queues), `DropPartials` (answer them
with nothing), `Wait` (call again by `until`, or sooner when work arrives), or None (nothing
queued). The asyncio engine only carries out what it decides.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

TEXT_MAX_WAIT_S = 0.5
PARTIAL_SHARE = 1.0  # no rest: at 0.5, eight streams ending together had finals heard again
# Partials not at a pause in one call: a short call, so a final (or a pause's partial, its
# hearing done early) that comes while it runs waits little.
REGULAR_PARTIALS = 2


@dataclass
class SpeechJob:
    session_id: str
    waveform: np.ndarray
    submitted: float  # on the monotonic clock
    future: object = field(default=None, repr=False)
    vocabulary: tuple[str, ...] = ()  # the phrases its room expects to hear


@dataclass
class PartialJob:
    """An open utterance so far, heard for a caption (no facts)."""
    session_id: str
    waveform: np.ndarray
    submitted: float
    future: object = field(default=None, repr=False)
    vocabulary: tuple[str, ...] = ()
    at_pause: bool = False  # heard at a pause: its words may be the final's, so it never rests


@dataclass
class HeardJob:
    """A final whose words were already heard (by its last partial): it is only read."""
    session_id: str
    text: str
    submitted: float
    future: object = field(default=None, repr=False)


@dataclass
class TextJob:
    session_id: str
    sentence: str
    submitted: float
    future: object = field(default=None, repr=False)


@dataclass(frozen=True)
class RunSpeech:
    jobs: list[SpeechJob]


@dataclass(frozen=True)
class RunText:
    jobs: list[TextJob]


@dataclass(frozen=True)
class RunRead:
    jobs: list[HeardJob]


@dataclass(frozen=True)
class RunPartials:
    jobs: list[PartialJob]


@dataclass(frozen=True)
class DropPartials:
    jobs: list[PartialJob]


@dataclass(frozen=True)
class Wait:
    until: float


class BatchPolicy:
    """Args:
        max_batch: most jobs in one model call.
        gather_s: how long a speech batch may wait for more after its first segment.
        window_of: the window a segment is heard in (None: any segments may share a batch).
        text_max_wait_s: how long a sentence may wait behind audio.
        partial_share: the most of the model's time that partials may take.
    """

    def __init__(self, max_batch: int = 8, gather_s: float = 0.02,
                 window_of: Callable[[np.ndarray], int] | None = None,
                 text_max_wait_s: float = TEXT_MAX_WAIT_S,
                 partial_share: float = PARTIAL_SHARE) -> None:
        self.max_batch = max_batch
        self.gather_s = gather_s
        self.window_of = window_of
        self.text_max_wait_s = text_max_wait_s
        self.partial_share = partial_share
        self._partials_from = 0.0  # partials rest until then (their share of the model's time)
        self.speech: OrderedDict[str, deque[SpeechJob]] = OrderedDict()
        self.text: deque[TextJob] = deque()
        self.heard: deque[HeardJob] = deque()
        self.partials: OrderedDict[str, PartialJob] = OrderedDict()  # one per session at most
        self._gather_until: float | None = None

    @property
    def pending(self) -> int:
        """Segments queued."""
        return sum(len(q) for q in self.speech.values())

    def add_speech(self, job: SpeechJob) -> None:
        self.speech.setdefault(job.session_id, deque()).append(job)

    def add_text(self, job: TextJob) -> None:
        self.text.append(job)

    def add_heard(self, job: HeardJob) -> None:
        self.heard.append(job)

    def add_partial(self, job: PartialJob) -> bool:
        """Queue a partial; False (refused, never queued) while segments wait for the model
        or the session already has one queued."""
        if self.speech or job.session_id in self.partials:
            return False
        self.partials[job.session_id] = job
        return True

    def partials_took(self, now: float, seconds: float) -> None:
        """A batch of partials ended at `now` after `seconds`: they rest for their share."""
        self._partials_from = now + seconds * (1 - self.partial_share) / self.partial_share

    def withdraw_partial(self, session_id: str) -> PartialJob | None:
        """The session's queued partial taken back before it runs (its segment closed and
        will queue as a final, ahead of partials), or None when none is queued."""
        return self.partials.pop(session_id, None)

    def drain(self) -> list[SpeechJob | TextJob | HeardJob | PartialJob]:
        """Every queued job, the queues emptied (when nothing can serve them)."""
        jobs = [*(j for q in self.speech.values() for j in q), *self.text, *self.heard,
                *self.partials.values()]
        self.speech.clear()
        self.text.clear()
        self.heard.clear()
        self.partials.clear()
        return jobs

    def decide(self, now: float, live_producers: int | None = None, closing: bool = False
               ) -> RunSpeech | RunRead | RunText | RunPartials | DropPartials | Wait | None:
        """What to do at `now`. `live_producers`: how many producers are streaming (None:
        unknown, so someone may still join); `closing`: finish what is queued, wait for nothing."""
        if self.heard:
            count = min(self.max_batch, len(self.heard))
            return RunRead([self.heard.popleft() for _ in range(count)])
        if self.partials and (self.speech or closing):
            dropped = list(self.partials.values())
            self.partials.clear()
            return DropPartials(dropped)
        if self.text and (not self.speech or self._text_overdue(now)):
            count = min(self.max_batch, len(self.text))
            return RunText([self.text.popleft() for _ in range(count)])
        if not self.speech:
            if not self.partials:
                return None
            resting = now < self._partials_from
            if resting and not any(j.at_pause for j in self.partials.values()):
                return Wait(self._partials_from)
            return self._take_partials(only_at_pause=resting)
        if not closing and self._worth_gathering(live_producers):
            if self._gather_until is None:
                self._gather_until = now + self.gather_s
            if now < self._gather_until:
                until = self._gather_until
                if self.text:  # a sentence must not wait past its bound
                    until = min(until, self.text[0].submitted + self.text_max_wait_s)
                return Wait(until)
        self._gather_until = None
        return RunSpeech(self._take_batch())

    def _take_partials(self, only_at_pause: bool = False) -> RunPartials:
        """Queued partials of one window: those heard at a pause first, then the others,
        oldest first, at most `REGULAR_PARTIALS` of them (none while partials rest)."""
        batch: list[PartialJob] = []
        regular = 0
        for session_id, job in sorted(self.partials.items(), key=lambda kv: not kv[1].at_pause):
            if len(batch) == self.max_batch:
                break
            if not job.at_pause and (only_at_pause or regular == REGULAR_PARTIALS):
                continue
            if self.window_of is None or not batch or \
                    self.window_of(job.waveform) == self.window_of(batch[0].waveform):
                batch.append(self.partials.pop(session_id))
                regular += not job.at_pause
        return RunPartials(batch)

    def _text_overdue(self, now: float) -> bool:
        return now - self.text[0].submitted >= self.text_max_wait_s

    def _worth_gathering(self, live_producers: int | None) -> bool:
        if self.pending >= self.max_batch or self.gather_s <= 0:
            return False
        return live_producers is None or live_producers > len(self.speech)

    def _take_batch(self) -> list[SpeechJob]:
        batch: list[SpeechJob] = []
        window = None
        waiting: set[str] = set()  # sessions whose next segment needs another window
        while len(batch) < self.max_batch:
            session_id = next((s for s in self.speech if s not in waiting), None)
            if session_id is None:
                break
            queue = self.speech[session_id]
            if self.window_of is not None:
                size = self.window_of(queue[0].waveform)
                window = size if window is None else window
                if size != window:
                    waiting.add(session_id)  # keeps its place for the next batch
                    continue
            batch.append(queue.popleft())
            # Rotate: this session goes to the back of the line.
            del self.speech[session_id]
            if queue:
                self.speech[session_id] = queue
        return batch
