"""The browser client in a real headless Chromium: a fake microphone plays speech synthesised
here, segments reach the server, and the page's #stats and drawing match the room graph."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import (CHROMIUM_FLAGS, FACT, FACT_TEXT, TEXT_SENTENCES, http_get, noise,
                     send_json, stream, viewer_page)
from streamre.graph import GraphSettings

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def room_graph(server, room: str) -> dict | None:
    status, _, body = http_get(f"{server.http}/v1/rooms/{room}/graph")
    return json.loads(body) if status == 200 else None


def stats(page) -> tuple[int, int]:
    return (int(page.get_attribute("#stats", "data-nodes")),
            int(page.get_attribute("#stats", "data-edges")))


def test_microphone_page_and_viewer_match_the_room_graph(make_server, meeting_wav, tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed (./dev.sh test installs it)")
    server = make_server(graph=GraphSettings(dedup_window_s=0))
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS + [
            f"--use-file-for-fake-audio-capture={meeting_wav}"])
        try:
            page = browser.new_page(accept_downloads=True)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server.http}/?room=web&autostart=1")
            viewer = browser.new_page()
            viewer.on("pageerror", lambda e: errors.append(str(e)))
            viewer.goto(f"{server.http}/?room=web&viewer=1")

            # Both utterances of the fake microphone reach the server and are answered.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                graph = room_graph(server, "web")
                if graph and graph["version"] >= 2:
                    break
                time.sleep(0.2)
            else:
                raise AssertionError("no segments reached the room graph")

            # The page shows exactly the room's graph (polled: the microphone keeps looping).
            def matches(p) -> bool:
                graph = room_graph(server, "web")
                return stats(p) == (len(graph["nodes"]), len(graph["edges"])) and \
                    int(p.get_attribute("#stats", "data-version")) == graph["version"]

            for p_ in (page, viewer):
                deadline = time.monotonic() + 20
                while not matches(p_):
                    assert time.monotonic() < deadline, "the page never matched the room graph"
                    time.sleep(0.2)
            assert page.evaluate("cy.nodes().length") == stats(page)[0]
            assert page.evaluate("cy.edges().length") == stats(page)[1]
            # The live transcript: each line the sentence heard, marked with its fact; the
            # viewer's lines come from the room's transcript.
            for p_ in (page, viewer):
                line = p_.locator("#transcript li").first
                assert line.locator(".text").inner_text() == FACT_TEXT
                assert line.locator(".fact").all_inner_texts() == [" · ".join(FACT)]
            # Every line is stamped with its clock time, the producer's own ones too.
            for p_ in (page, viewer):
                assert re.search(r"\d+:\d\d:\d\d", p_.locator("#transcript li .when").first
                                 .inner_text())
            assert "streaming to room web" in page.inner_text("#state")
            assert "viewing room web" in viewer.inner_text("#state")

            # Export as JSON: the room graph as the server has it.
            with page.expect_download() as download:
                page.click("#export-json")
            exported = json.loads(Path(download.value.path()).read_text())
            assert exported["room"] == "web" and exported["edges"]

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "browser.png"))
        finally:
            browser.close()
    assert not errors, errors


def test_the_chat_box_sends_text_into_the_room_graph(make_server, text_checkpoint):
    server = make_server(text_model=str(text_checkpoint))
    with viewer_page(server, "chat") as page:
        page.fill("#chat-text", FACT_TEXT)
        page.click("#chat-send")
        line = page.locator("#transcript li").first
        line.locator(".fact").first.wait_for(timeout=20000)
        assert line.locator(".text").inner_text() == FACT_TEXT
        assert line.locator(".when").inner_text().endswith("typed")
        assert line.locator(".fact").all_inner_texts() == [" · ".join(FACT)]
        assert page.input_value("#chat-text") == ""
        graph = room_graph(server, "chat")
        assert [(e["relation"]) for e in graph["edges"]] == [FACT[1]]


def test_the_vocabulary_box_reads_and_saves_the_rooms_vocabulary(make_server):
    server = make_server()
    url = server.http + "/v1/rooms/names/vocabulary"
    assert send_json(url, b'["Priya Natarajan"]', method="PUT")[0] == 200
    with viewer_page(server, "names") as page:
        page.wait_for_function("document.querySelector('#vocabulary-text').value"
                               " === 'Priya Natarajan'", timeout=20000)
        page.click("#vocabulary-box summary")
        page.fill("#vocabulary-text", "Priya Natarajan\n\n  Infosys \n")
        page.click("#vocabulary-save")
        page.wait_for_function("document.querySelector('#vocabulary-state').textContent"
                               " === 'saved: 2 phrases'", timeout=20000)
        page.fill("#vocabulary-text", "x" * 70)
        page.click("#vocabulary-save")
        page.wait_for_function("document.querySelector('#vocabulary-state').textContent"
                               ".startsWith('not saved: phrase 0 has 70 characters')",
                               timeout=20000)
    with urllib.request.urlopen(url, timeout=10) as r:
        assert json.loads(r.read()) == ["Priya Natarajan", "Infosys"]


def test_the_context_box_saves_an_invitation_and_shows_its_names(make_server):
    server = make_server()
    with viewer_page(server, "invite") as page:
        page.click("#context-box summary")
        page.fill("#context-text", "Hi all, please join us. Invited: Priya Natarajan (Infosys).")
        page.click("#context-save")
        page.wait_for_function("document.querySelector('#context-state').textContent"
                               ".startsWith('2 names: ')", timeout=20000)
        assert page.inner_text("#context-state") == "2 names: Priya Natarajan, Infosys"
    url = server.http + "/v1/rooms/invite/context"
    with urllib.request.urlopen(url, timeout=10) as r:
        assert json.loads(r.read())["names"] == ["Priya Natarajan", "Infosys"]
    with viewer_page(server, "invite") as page:  # a page opened later shows what was saved
        page.wait_for_function("document.querySelector('#context-text').value"
                               ".startsWith('Hi all')", timeout=20000)


def test_a_late_viewer_sees_every_line_and_can_follow_facts_and_time(make_server, meeting_audio):
    """A viewer who joins after the talk: every line said before, each edge's lines, each
    line's facts, the graph replayed through its versions, and the downloads."""
    server = make_server(graph=GraphSettings(dedup_window_s=0))
    asyncio.run(stream(server.url, meeting_audio, room="after", speaker="ana"))
    asyncio.run(stream(server.url, noise(1.5, 5), room="after", speaker="bo"))
    said = json.loads(http_get(f"{server.http}/v1/rooms/after/transcript")[2])["segments"]
    graph = room_graph(server, "after")
    assert len(said) == 3 and graph["version"] == 3
    with viewer_page(server, "after") as page:
        page.wait_for_function(f"document.querySelectorAll('#transcript li').length === "
                               f"{len(said)}", timeout=20000)
        items = page.locator("#transcript li")
        assert items.locator(".text").all_inner_texts() == [s["text"] for s in said]
        assert items.locator(".speaker").all_inner_texts() == [s["speaker"] for s in said]
        assert items.first.locator(".fact").all_inner_texts() == [" · ".join(FACT)]
        # An edge's lines: all three that stated it, with speaker and time.
        page.click("#edges tbody tr")
        page.wait_for_function("document.querySelectorAll('#evidence-lines li').length === 3",
                               timeout=20000)
        evidence = page.locator("#evidence-lines li").all_inner_texts()
        assert [e.split(" · ")[0] for e in evidence] == ["ana", "ana", "bo"]
        assert all(e.endswith(FACT_TEXT) for e in evidence)
        # A line's facts, marked in the graph.
        items.first.locator(".when").click()
        edge = said[0]["edges"][0]
        assert page.evaluate("cy.edges('.stated').map((e) => e.id())") == [edge]
        # The timeline: version 0 is the empty graph, back to live shows it all.
        page.eval_on_selector("#timeline", "(el) => { el.value = 0; "
                              "el.dispatchEvent(new Event('change')); }")
        page.wait_for_function("document.querySelector('#timeline-state').textContent"
                               " === 'v0 of 3'", timeout=20000)
        assert page.evaluate("cy.nodes().length") == 0
        page.click("#timeline-live")
        assert page.evaluate("cy.nodes().length") == len(graph["nodes"])
        assert page.inner_text("#timeline-state") == "live · v3"
        # Downloads: the SRT and the minutes, as the server writes them.
        with page.expect_download() as download:
            page.click("#download-srt")
        subtitles = Path(download.value.path()).read_text()
        assert subtitles.count(FACT_TEXT) == 3 and subtitles.startswith("1\n00:00:00,000 --> ")
        with page.expect_download() as download:
            page.click("#download-minutes")
        assert Path(download.value.path()).read_text().startswith("# Minutes of after\n")


PERSON_COLOUR = "rgb(74,123,208)"  # TYPE_COLOURS.person in app.js


def test_a_line_corrected_and_an_entity_renamed_in_one_page_change_every_page(
        make_server, text_checkpoint, meeting_audio):
    """Two viewers of a meeting: one corrects a line in place, the other renames the entity
    it named and corrects the other line; both pages follow every change, colour the nodes by
    type with a legend, and show each line's speaker."""
    server = make_server(text_model=str(text_checkpoint))
    asyncio.run(stream(server.url, meeting_audio, room="fix", speaker="ana"))
    maria = list(TEXT_SENTENCES)[1]

    def shows(page, nodes: int, edges: int) -> None:
        page.wait_for_function(f"document.querySelector('#stats').dataset.nodes === '{nodes}' && "
                               f"document.querySelector('#stats').dataset.edges === '{edges}'",
                               timeout=20000)

    with viewer_page(server, "fix") as one:
        two = one.open_viewer()
        for page in (one, two):
            page.wait_for_function("document.querySelectorAll('#transcript li').length === 2",
                                   timeout=20000)
            assert page.locator("#transcript .speaker").all_inner_texts() == ["ana", "ana"]
            assert page.locator("#legend [data-type]").all_inner_texts() == [
                "person", "organisation", "location", "other"]
        first = one.locator("#transcript li").first
        first.locator(".edit").click()
        first.locator(".text").fill(maria)
        first.locator(".text").press("Enter")
        for page in (one, two):
            shows(page, 4, 2)  # the spoken fact, still said by the second line, and Maria's
            line = page.locator("#transcript li").first
            page.wait_for_function("document.querySelector('#transcript li')"
                                   ".classList.contains('corrected')", timeout=20000)
            assert line.locator(".text").inner_text() == maria
            assert line.locator(".fact").all_inner_texts() == ["Maria Lopez · Live_In · Boston"]
            assert page.evaluate("cy.getElementById('maria lopez').style('background-color')"
                                 ).replace(" ", "") == PERSON_COLOUR
        two.fill("#merge-from", "Maria Lopez")
        two.fill("#merge-into", "Maria Lopes")
        two.click("#merge-apply")
        last = two.locator("#transcript li").last
        last.locator(".edit").click()
        last.locator(".text").fill("The weather was fine.")
        last.locator(".text").press("Enter")
        for page in (one, two):
            shows(page, 2, 1)
            assert page.evaluate("cy.nodes().map((n) => n.data('label')).sort()") == [
                "Boston", "Maria Lopes"]
            assert page.locator("#edges tbody td").first.inner_text() == "Maria Lopes"
        graph = room_graph(server, "fix")
        assert {n["label"] for n in graph["nodes"]} == {"Boston", "Maria Lopes"}
