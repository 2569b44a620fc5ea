"""The browser client in a real headless Chromium: a fake microphone plays speech synthesised
here, segments reach the server, and the page's #stats and drawing match the room graph."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
import json
import re
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import (CHROMIUM_FLAGS, FACT, FACT_TEXT, TEXT_SENTENCES, VOICE_ONE, VOICE_OTHER,
                     http_get, noise, send_json, shared_microphone, speak, stream, viewer_page)
from streamre.graph import GraphSettings

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def room_graph(server, room: str) -> dict | None:
    status, _, body = http_get(f"{server.http}/v1/rooms/{room}/graph")
    return json.loads(body) if status == 200 else None


def stats(page) -> tuple[int, int]:
    return (int(page.get_attribute("#stats", "data-nodes")),
            int(page.get_attribute("#stats", "data-edges")))


# Whether every shown node's drawn box is inside the graph panel (a page function).
INSIDE = """() => cy.nodes(':visible').every((n) => { const b = n.renderedBoundingBox();
    return b.x1 >= -1 && b.y1 >= -1 && b.x2 <= cy.width() + 1 && b.y2 <= cy.height() + 1; })"""


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
            for p_ in (page, viewer):  # the producer's page and the viewer's keep it in view
                assert p_.evaluate(INSIDE), "a node was drawn outside the graph panel"
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


# The transcript as a viewer's page shows it: ("partial", its start) for a live caption, ("line",
# its words) for a final line, in page order.
SHOWN_LINES = """() => [...document.querySelectorAll('#transcript li:not(.silent)')].map((li) =>
    li.classList.contains('partial') ? ['partial', Number(li.dataset.start)]
                                     : ['line', li.querySelector('.text').textContent])"""


def test_a_live_caption_shows_while_speaking_and_its_final_line_replaces_it(
        make_server, text_checkpoint, meeting_audio):
    server = make_server(model="", speech_facts="text", text_model=str(text_checkpoint),
                         partial_every_s=0.5)
    with viewer_page(server, "captions") as page, ThreadPoolExecutor(1) as pool:
        spoken = pool.submit(asyncio.run, speak(server.url, meeting_audio, "captions"))
        seen: list[list] = []
        while not spoken.done() or len([s for s in seen[-1] if s[0] == "line"]) < 2:
            seen.append(page.evaluate(SHOWN_LINES))
            time.sleep(0.05)
        starts = [m["start"] for m in spoken.result() if m["type"] == "triplets"]
    # An utterance is captioned in grey before its line comes (on a slow machine an utterance
    # may get none: partials are dropped before finals wait); the caption is always the last
    # item of the list, and once its line shows the caption is gone.
    captioned = [start for start in starts if any(["partial", start] in shown for shown in seen)]
    assert captioned, "no utterance was captioned"
    for start in captioned:
        shown_at = [i for i, shown in enumerate(seen) if ["partial", start] in shown]
        assert all(seen[i].index(["partial", start]) == len(seen[i]) - 1 for i in shown_at)
        lines_then = len([s for s in seen[shown_at[0]] if s[0] == "line"])
        assert all(["partial", start] not in shown for shown in seen[shown_at[-1] + 1:])
        assert len([s for s in seen[shown_at[-1] + 1] if s[0] == "line"]) == lines_then + 1
    assert [s for s in seen[-1] if s[0] == "partial"] == []
    assert all(words for kind, words in seen[-1] if kind == "line")


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


# Each line of the transcript: its speaker, the voice it says, and the voice it is coloured by.
VOICED_LINES = """() => [...document.querySelectorAll('#transcript li:not(.silent)')].map((li) =>
    [li.querySelector('.speaker').textContent, li.querySelector('.voice').textContent,
     li.dataset.voice || ''])"""


def test_a_shared_microphones_voices_are_told_apart_and_one_is_named_on_the_page(make_server):
    """Two people at one microphone: every page colours and labels each line by its voice;
    naming a voice on one page renames its lines on every page."""
    server = make_server()
    audio = shared_microphone([(VOICE_ONE, 0), (VOICE_OTHER, 0), (VOICE_ONE, 1),
                               (VOICE_OTHER, 1)])
    asyncio.run(stream(server.url, audio, room="table", speaker="Room 4"))
    with viewer_page(server, "table") as one:
        two = one.open_viewer()
        for page in (one, two):
            page.wait_for_function("document.querySelectorAll('#transcript li').length === 4",
                                   timeout=20000)
            assert page.evaluate(VOICED_LINES) == [
                ["Room 4", "voice 1", "1"], ["Room 4", "voice 2", "2"],
                ["Room 4", "voice 1", "1"], ["Room 4", "voice 2", "2"]]
            colours = page.evaluate("[...document.querySelectorAll('#transcript li')].map("
                                    "(li) => getComputedStyle(li).borderLeftColor)")
            assert colours[0] == colours[2] != colours[1] == colours[3]
        speaker = one.locator("#transcript li .speaker").nth(1)
        speaker.click()
        speaker.fill("Grace Kim")
        speaker.press("Enter")
        for page in (one, two):
            page.wait_for_function("[...document.querySelectorAll('#transcript .speaker')]"
                                   ".map((s) => s.textContent).join('|') === "
                                   "'Room 4|Grace Kim|Room 4|Grace Kim'", timeout=20000)
    said = json.loads(http_get(f"{server.http}/v1/rooms/table/transcript")[2])["segments"]
    assert [s["speaker"] for s in said] == ["Room 4", "Grace Kim", "Room 4", "Grace Kim"]


def journal_meeting(data_dir: Path, room: str) -> dict:
    """A long meeting written straight into a server's journal, as a server would have: 110
    lines, a line every 20 s, among 43 entities (each fact said again 700 s later), four
    segments with no words, and one line said twice 20 s apart (one mention, two lines)."""
    from streamre.graph import Mention, RoomGraph
    from streamre.graph.store import DB_NAME, GraphStore
    from streamre.server.facts import LocalFacts
    from streamre.triplets import Triplet

    data_dir.mkdir(parents=True, exist_ok=True)
    store = GraphStore(data_dir / DB_NAME)
    facts = LocalFacts(RoomGraph(room, GraphSettings()))
    t0 = 1_764_000_000.0
    said: list[tuple[str, list]] = []
    for i in range(105):
        person, org, city = f"Person {i % 35:03d}", f"Company {i % 9:02d}", f"City {i % 6:02d}"
        fact = Triplet(person, "Work_For", org, .9, "person", "organisation") if i % 3 else \
            Triplet(person, "Live_In", city, .9, "person", "location")
        said.append((f"{fact.head} {fact.relation} {fact.tail}.", [fact]))
        if i % 30 == 5:
            said.append(("", []))
    said.insert(20, (said[19][0], said[19][1]))  # the same line again, 20 s later
    for n, (text, triplets) in enumerate(said):
        mention = Mention("s1", n, "ana" if n % 2 else "bo", text=text)
        at = t0 + 20 * n
        recorded = facts.record(mention, triplets, at, at, 20.0 * n, 20.0 * n + 3)
        store.record(room, recorded.said, triplets, mention, at, at)
    store.close()
    return facts.graph.to_json()


def test_a_long_meetings_graph_stays_in_view_and_its_lines_and_counts_read_right(
        make_server, meeting_audio, tmp_path):
    """A viewer opens a room with 110 lines and 43 entities, then the meeting goes on
    (speech into the same room): every node stays inside the panel, the old ones where they
    were; after the user zooms, Fit brings all back; numbers never clip, silent segments are
    hidden and counted, a fact said twice in the window reads "2 (3 lines)" (said again later
    too), and the filter shows one relation, type or speaker."""
    graph = journal_meeting(tmp_path / "data", "long")
    server = make_server()
    with viewer_page(server, "long") as page:
        page.wait_for_function(f"document.querySelector('#stats').dataset.nodes === "
                               f"'{len(graph['nodes'])}'", timeout=30000)
        assert page.evaluate("window.cy.nodes().length") == len(graph["nodes"])
        assert page.evaluate(INSIDE)
        # The transcript: 106 numbered lines, none clipped, four silent segments hidden.
        page.wait_for_function("document.querySelectorAll('#transcript li:not(.silent)')"
                               ".length === 106", timeout=20000)
        assert page.inner_text("#silent") == "4 segments with no words hidden"
        clipped = page.evaluate("""() => [...document.querySelectorAll(
            '#transcript li:not(.silent) .number')].filter((n) => n.scrollWidth > n.clientWidth
            || n.getBoundingClientRect().left < n.closest('ol').getBoundingClientRect().left)
            .length""")
        assert clipped == 0
        numbers = page.locator("#transcript li:not(.silent) .number").all_inner_texts()
        assert numbers == [str(n) for n in range(1, 107)]
        # Counts people can check: the fact said twice within the window.
        (repeated,) = [e for e in graph["edges"] if e["segment_count"] > e["mentions"]]
        folded = [r for r in page.locator("#edges tbody tr").all_inner_texts() if "lines)" in r]
        assert len(folded) == 1 and folded[0].startswith(repeated["source"].title())
        assert folded[0].endswith(f"{repeated['mentions']} ({repeated['segment_count']} lines)")
        # Lines come in a burst: the list keeps following them. Its own scrolling is not the
        # reader's, even when more lines came before that scroll's event.
        assert page.evaluate("""async () => {
            const frame = () => new Promise((done) => requestAnimationFrame(done));
            const say = (n) => onTranscript({session_id: 'burst', segment_id: n, speaker: 'cy',
                text: `burst line ${n}`, time: 1764003000 + n, start: n, edges: []});
            say(0); await frame();  // the list is scrolled to its end in this frame...
            for (let n = 1; n < 6; n++) say(n);  // ...and these come before that scroll's event
            await frame(); say(6); await frame(); await frame();
            return followLines && document.querySelector('#new-lines').hidden;
        }""")
        # The reader scrolls back up: the list stays there, and says when new lines come.
        page.evaluate("document.querySelector('#transcript').scrollTop = 0")
        page.wait_for_function("!followLines", timeout=5000)
        assert page.is_hidden("#new-lines")
        # The meeting goes on: the new nodes join near their neighbours; the old stay put.
        before = page.evaluate("cy.nodes().map((n) => [n.id(), n.position('x'), "
                               "n.position('y')])")
        with ThreadPoolExecutor(1) as pool:  # playwright's loop runs in this thread
            pool.submit(asyncio.run, stream(server.url, meeting_audio, room="long",
                                            speaker="ana")).result(120)
        page.wait_for_function(f"document.querySelector('#stats').dataset.nodes === "
                               f"'{len(graph['nodes']) + 2}'", timeout=30000)
        after = dict((i, (x, y)) for i, x, y in page.evaluate(
            "cy.nodes().map((n) => [n.id(), n.position('x'), n.position('y')])"))
        assert all(abs(after[i][0] - x) < 0.5 and abs(after[i][1] - y) < 0.5
                   for i, x, y in before)
        assert page.evaluate(INSIDE)
        assert page.locator("#edges tbody tr").count() == len(graph["edges"]) + 1  # its row too
        assert page.is_visible("#new-lines") and page.evaluate(
            "document.querySelector('#transcript').scrollTop") == 0
        page.click("#new-lines")
        page.wait_for_function("(() => { const l = document.querySelector('#transcript'); "
                               "return l.scrollHeight - l.scrollTop - l.clientHeight < 40; })()",
                               timeout=5000)
        assert page.is_hidden("#new-lines")
        # A tap on an entity centres it and dims what is not its neighbourhood; an edge's label
        # shows under the pointer.
        page.evaluate("cy.getElementById('person 007').emit('tap')")
        assert page.input_value("#search") == "Person 007"
        near = {e["source"] for e in graph["edges"] if e["target"] == "person 007"} | \
            {e["target"] for e in graph["edges"] if e["source"] == "person 007"}
        assert page.evaluate("cy.nodes('.faded').length") == len(graph["nodes"]) + 2 - 1 - len(near)
        centre = page.evaluate("""() => { const p = cy.getElementById('person 007')
            .renderedPosition(); return [p.x - cy.width() / 2, p.y - cy.height() / 2]; }""")
        assert abs(centre[0]) < 20 and abs(centre[1]) < 20  # its box, label included, centred
        page.evaluate("cy.edges()[0].emit('mouseover')")
        assert page.evaluate("cy.edges()[0].hasClass('hover')")
        page.keyboard.press("f")
        # The user drags the view aside: it stops following; Fit (the f key) brings all back.
        box = page.locator("#graph").bounding_box()
        page.mouse.move(box["x"] + 4, box["y"] + 4)  # the background, inside the fit's margin
        page.mouse.down()
        page.mouse.move(box["x"] + 300, box["y"] + 200, steps=10)
        page.mouse.up()
        page.wait_for_function("!(" + INSIDE + ")()", timeout=10000)
        assert not page.evaluate("following")
        page.locator("#stats").click()
        page.keyboard.press("f")
        page.wait_for_function("(" + INSIDE + ")()", timeout=10000)
        # One relation at a time.
        page.select_option("#filter", "relation:Live_In")
        assert page.evaluate("cy.edges(':visible').map((e) => e.data('relation'))") == \
            ["Live_In"] * sum(e["relation"] == "Live_In" for e in graph["edges"])
        assert page.evaluate(INSIDE)
        page.select_option("#filter", "type:location")  # facts that touch a place
        assert set(page.evaluate("cy.edges(':visible').map((e) => e.data('relation'))")) == \
            {"Live_In"}
        page.select_option("#filter", "speaker:bo")
        shown = page.evaluate("cy.edges(':visible').map((e) => e.id())")
        assert shown and sorted(shown) == sorted(e["id"] for e in graph["edges"]
                                                 if "bo" in e["speakers"])
