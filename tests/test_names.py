"""The names a room expects: where each came from, the meeting's context (PUT, GET, `start`,
the journal), names typed in chat, and that no name only heard biases hearing."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from helpers import of_type, send_json, stream
from streamre.hearing.names import (MAX_CONTEXT_BYTES, BadContext, MeetingNames, Source,
                                    capitalised_names, check_context, context_names,
                                    expected_names, rewriting)
from test_vocabulary import VocabularyRecorder, get, put

INVITATION = """Subject: Steering meeting, Tuesday 10:30

Hi all,
Attendees: Priya Natarajan; Kofi Boateng (optional); Bank of America's Jean-Luc Picard.
Accounts: Infosys, IKEA and Dangote Cement. Offices in Aarhus and New Zealand.

Best regards,
Daniel
"""


def test_names_are_found_in_a_context_as_a_person_writes_it():
    found = capitalised_names(INVITATION)
    for name in ("Priya Natarajan", "Kofi Boateng", "Bank of America", "Jean-Luc Picard",
                 "Infosys", "IKEA", "Dangote Cement", "Aarhus", "New Zealand"):
        assert name in found
    assert not {"Hi", "Subject", "Tuesday", "Attendees", "Accounts", "Best", "Infosys, IKEA",
                "Bank of America's", "IKEA and Dangote Cement"} & set(found)
    # The tagger's names first; a part of a longer name found is left out.
    names = context_names(INVITATION, ["Dangote", "Kofi Boateng", "Priya"])
    assert names[0] == "Kofi Boateng" and "Dangote" not in names and "Priya" not in names
    assert "Dangote Cement" in names and "Priya Natarajan" in names


@pytest.mark.parametrize("body, why", [
    (b"\xff\xfe broken", "UTF-8"),
    (b"x" * (MAX_CONTEXT_BYTES + 1), "more than"),
    (b"a\x00b", "NUL"),
])
def test_a_bad_context_is_refused_with_its_reason(body, why):
    with pytest.raises(BadContext, match=why):
        check_context(body)


def test_every_source_ranks_by_trust_and_a_name_only_heard_never_rewrites():
    names = expected_names({Source.HEARD: ["Hoboken", "infosys"],
                            Source.PARTICIPANT: ["Grace Kim"],
                            Source.CONTEXT: ["Infosys", "Priya  Natarajan"],
                            Source.VOCABULARY: ["IKEA"]})
    assert [(n.name, n.source.value) for n in names] == [
        ("IKEA", "vocabulary"), ("Infosys", "context"), ("Priya Natarajan", "context"),
        ("Grace Kim", "participant"), ("Hoboken", "heard")]
    assert rewriting(names) == ("IKEA", "Infosys", "Priya Natarajan", "Grace Kim")
    room = MeetingNames(vocabulary=("IKEA",))
    assert room.typed(["Sam Patel", "IKEA", "Sam Patel"]) and not room.typed(["sam patel"])
    room.joined("Grace Kim")
    room.joined("grace kim")
    assert [n.source for n in room.expected(["Hoboken"])] == [
        Source.VOCABULARY, Source.CHAT, Source.PARTICIPANT, Source.HEARD]


def put_text(url: str, body: bytes):
    return put(url, body, "text/plain; charset=utf-8")


def test_a_rooms_context_is_put_read_heard_with_kept_and_adds_no_fact(make_server,
                                                                      meeting_audio):
    recorder = VocabularyRecorder()
    server = make_server(lambda: recorder)
    url = server.http + "/v1/rooms/standup/context"
    assert get(url) == {"room": "standup", "text": "", "names": []}
    status, answer = put_text(url, INVITATION.encode())
    assert status == 200 and answer["text"] == INVITATION
    assert "Priya Natarajan" in answer["names"] and "Dangote Cement" in answer["names"]
    assert get(server.http + "/v1/rooms/standup/graph")["edges"] == []  # no fact from it
    asyncio.run(stream(server.url, meeting_audio, room="standup"))
    assert "Priya Natarajan" in recorder.vocabularies[0]  # heard with its names
    sources = {n["name"]: n["source"] for n in get(server.http + "/v1/rooms/standup/names")[
        "names"]}
    assert sources["Kofi Boateng"] == "context" and sources["Heineken"] == "heard"
    server.stop()
    again = make_server(lambda: VocabularyRecorder())
    assert get(again.http + "/v1/rooms/standup/context") == answer  # kept over a restart
    assert put_text(again.http + "/v1/rooms/standup/context", b"") == (
        200, {"room": "standup", "text": "", "names": []})
    assert get(again.http + "/v1/rooms/standup/context")["names"] == []


@pytest.mark.parametrize("body", [b"\xff\xfe not text", b"x" * (MAX_CONTEXT_BYTES + 1)])
def test_a_bad_context_gets_400_and_the_room_keeps_its_own(make_server, body):
    server = make_server(lambda: VocabularyRecorder())
    url = server.http + "/v1/rooms/r/context"
    assert put_text(url, b"Priya Natarajan")[0] == 200
    status, answer = put_text(url, body)
    assert (status, answer["error"]) == (400, "bad_context") and answer["message"]
    assert get(url)["names"] == ["Priya Natarajan"]
    assert put_text(server.http + "/v1/rooms/bad%20room/context", b"x")[1]["error"] == "bad_room"


def test_start_gives_the_room_its_context_and_a_bad_one_is_refused(make_server, meeting_audio):
    recorder = VocabularyRecorder()
    server = make_server(lambda: recorder)
    messages, _ = asyncio.run(stream(server.url, meeting_audio, room="kickoff",
                                     context="Invited: Nora Lindqvist of IKEA."))
    assert not of_type(messages, "error")
    assert {"Nora Lindqvist", "IKEA"} <= set(recorder.vocabularies[0])
    assert get(server.http + "/v1/rooms/kickoff/context")["names"] == ["Nora Lindqvist", "IKEA"]

    async def refused() -> dict:
        async with connect(server.url) as ws:
            await ws.send(json.dumps({"type": "start", "room": "kickoff", "context": 5}))
            return json.loads(await ws.recv())
    assert asyncio.run(refused())["code"] == "bad_context"


def test_names_typed_in_chat_join_what_the_room_hears_with(make_server, text_checkpoint,
                                                           meeting_audio):
    recorder = VocabularyRecorder()
    server = make_server(lambda: recorder, text_model=str(text_checkpoint))
    status, _ = send_json(server.http + "/v1/rooms/chat/notes", json.dumps(
        {"text": "Maria Lopez lives in Boston.", "speaker": "Sam"}).encode())
    assert status == 200
    expected = get(server.http + "/v1/rooms/chat/names")["names"]
    assert {"name": "Maria Lopez", "source": "chat"} in expected
    assert {"name": "Sam", "source": "participant"} in expected
    asyncio.run(stream(server.url, meeting_audio, room="chat"))
    assert "Maria Lopez" in recorder.vocabularies[0]
    server.stop()
    again = make_server(lambda: VocabularyRecorder(), text_model=str(text_checkpoint))
    assert {"name": "Maria Lopez", "source": "chat"} in get(
        again.http + "/v1/rooms/chat/names")["names"]
