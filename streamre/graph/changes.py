"""What people changed in a room, in force on its graph: the latest correction of each line, the
name each merged entity is, and the names given to voices. Plain state: `RoomGraph` replays its
batches through it (`as_changed`), so a change reaches every line, heard before it or after."""

from __future__ import annotations

from dataclasses import replace

from streamre.graph.canonical import entity_key
from streamre.graph.entries import Batch, Correction, Mention, VoiceName
from streamre.triplets import Triplet


class ChangesInForce:
    def __init__(self) -> None:
        self.corrections: dict[str, Correction] = {}  # by segment ref, the latest
        self.meant: dict[str, str] = {}  # entity key -> the name a merge said it is
        self.voice_names: dict[tuple[str, int], str] = {}  # (session, voice) -> speaker

    def meant_name(self, name: str) -> str:
        """The name a person said `name` is (a merge), or `name`."""
        return self.meant.get(entity_key(name), name)

    def speaker_of(self, mention: Mention) -> str | None:
        """Who said a line: the name given to its voice, or the producer's speaker."""
        if mention.voice is None:
            return mention.speaker
        return self.voice_names.get((mention.session_id, mention.voice), mention.speaker)

    def as_changed(self, batch: Batch) -> tuple[Mention, tuple[Triplet, ...]]:
        """A batch as the graph takes it: its line as corrected, said by its voice's name."""
        mention, triplets = batch.mention, batch.triplets
        correction = self.corrections.get(mention.segment_ref)
        if correction is not None:
            mention, triplets = correction.mention, correction.triplets
        speaker = self.speaker_of(mention)
        return (mention if speaker == mention.speaker else replace(mention, speaker=speaker),
                triplets)

    def name_voice(self, change: VoiceName) -> None:
        self.voice_names[change.session_id, change.voice] = change.speaker

    def merge(self, sources: set[str], into: str) -> None:
        """Every key in `sources` is `into` from now on, and so is every name that was one of
        them (no chains)."""
        self.meant = {key: (into if entity_key(name) in sources else name)
                      for key, name in self.meant.items()}
        self.meant.update(dict.fromkeys(sources, into))
