"""The page after a spoken meeting, as the page issue measured it (there, 107 s): a two-voice
meeting of 90 s (flite's `slt` and `rms` taking turns, sentences written for this check) played into the
page through Chromium's fake microphone, in real time, to `streamre serve` on the bundled
defaults; a viewer opened on the same room at the end. Reports the nodes and edges drawn and
whether every node's rendered box is inside the graph panel on the producer's page and on the
viewer's, at 1400 × 900, and saves both screenshots.

    .venv/bin/python benchmarks/page_meeting.py

Writes `page_meeting.{json,md}` and the two PNGs under `benchmarks/results/`.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile

from stream_latency import start_server

from streamre.audio import read_audio

OUT = Path(__file__).resolve().parent / "results"
SENTENCES = [  # meeting-style, with the names of people, clients and places a team would say
    "Good morning everyone, let us start with the client updates.",
    "Priya Natarajan works for Infosys in Bangalore.",
    "Our contact at Heineken is Wojciech Zielinski.",
    "Nora Lindqvist lives in Gothenburg and works for Volvo.",
    "Elena Petrova is a data scientist at Spotify.",
    "Spotify is based in Stockholm.",
    "Kofi Boateng joined Siemens last year.",
    "Siemens is based in Munich.",
    "Charlotte Dubois works for Airbus in Toulouse.",
    "Sam Patel works for Infosys as well.",
    "Mateo Rossi lives in Milan and works for Pirelli.",
    "Grace Kim, a manager at Samsung, lives in Seoul.",
    "Hiro Tanaka works for Sony in Tokyo.",
    "Ingrid Larsen moved to Oslo to work for Equinor.",
    "Tariq Haddad is our lawyer at Baker McKenzie.",
    "Baker McKenzie is based in Chicago.",
    "Lena Fischer from Bosch will visit Stuttgart next week.",
    "Diego Garcia works for Telefonica in Madrid.",
    "Can everyone see my screen?",
    "Anna Kowalski leads the team at Allegro in Warsaw.",
    "Thanks everyone, that is all for today.",
]
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--use-fake-ui-for-media-stream",
         "--use-fake-device-for-media-stream"]
INSIDE = """() => cy.nodes(':visible').every((n) => { const b = n.renderedBoundingBox();
    return b.x1 >= -1 && b.y1 >= -1 && b.x2 <= cy.width() + 1 && b.y2 <= cy.height() + 1; })"""


def meeting_wav(folder: Path) -> tuple[Path, float]:
    """The sentences in two alternating voices, a second of silence after each."""
    silence = np.zeros(16000, np.int16)
    parts = [silence]
    for i, text in enumerate(SENTENCES):
        path = folder / f"{i}.wav"
        subprocess.run(["flite", "-voice", ("slt", "rms")[i % 2], "-t", text, "-o", str(path)],
                       check=True)
        parts += [read_audio(path), silence]
    audio = np.concatenate(parts)
    wav = folder / "meeting.wav"
    soundfile.write(wav, audio, 16000, subtype="PCM_16")
    return wav, len(audio) / 16000


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    wav, seconds = meeting_wav(folder)
    server, port = start_server("", 16, [])
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
                *FLAGS, f"--use-file-for-fake-audio-capture={wav}%noloop"])
            producer = browser.new_page(viewport={"width": 1400, "height": 900})
            producer.goto(f"http://127.0.0.1:{port}/?room=meeting&autostart=1")
            time.sleep(seconds + 5)  # the meeting, spoken in real time, then its last answers
            viewer = browser.new_page(viewport={"width": 1400, "height": 900})
            viewer.goto(f"http://127.0.0.1:{port}/?room=meeting&viewer=1")
            viewer.wait_for_timeout(3000)
            result = {"meeting_s": round(seconds, 1)}
            for name, page in (("producer", producer), ("viewer", viewer)):
                result[name] = {"nodes": page.evaluate("cy.nodes().length"),
                                "edges": page.evaluate("cy.edges().length"),
                                "every_node_inside": page.evaluate(INSIDE)}
                page.screenshot(path=str(OUT / f"page_meeting_{name}.png"))
            browser.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/rooms/meeting/graph") as r:
            graph = json.loads(r.read())
        result["server"] = {"nodes": len(graph["nodes"]), "edges": len(graph["edges"])}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "page_meeting.json").write_text(json.dumps(result, indent=2))
    table = (f"A {result['meeting_s']:.0f} s two-voice meeting spoken into the page (fake "
             "microphone, real time), bundled defaults, 1400 × 900:\n\n"
             "| page | nodes | edges | every node inside the panel |\n|---|---|---|---|\n"
             + "".join(f"| {name} | {result[name]['nodes']} | {result[name]['edges']} | "
                       f"{result[name]['every_node_inside']} |\n"
                       for name in ("producer", "viewer"))
             + f"\nThe server's graph: {result['server']['nodes']} nodes, "
               f"{result['server']['edges']} edges.\n")
    (OUT / "page_meeting.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
