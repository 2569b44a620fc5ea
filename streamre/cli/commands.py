"""What each `streamre` sub-command does, given its parsed flags; each returns the exit
status. Heavy imports wait until a command runs, so `--help` stays fast."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
from collections import Counter
from pathlib import Path


def serve(args: argparse.Namespace) -> int:
    from streamre.config import load_config
    from streamre.server.app import StreamServer

    config = load_config(args)
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.log_level.lower() != "debug":  # uvicorn's own start and stop lines are detail
        logging.getLogger("uvicorn").setLevel(logging.WARNING)
    return asyncio.run(StreamServer(config).run_until_signal())


def stream(args: argparse.Namespace) -> int:
    from streamre.cli.stream import stream_file

    urls = args.url or ["ws://127.0.0.1:8765/v1/stream"]
    return asyncio.run(stream_file(args.file, urls, room=args.room, realtime=args.realtime,
                                   token=args.token, speaker=args.speaker,
                                   frame_ms=args.frame_ms))


def extract(args: argparse.Namespace) -> int:
    from streamre.cli.extract import ExtractSettings, extract_files
    from streamre.settings import build

    return extract_files(args.files, build(ExtractSettings, args), batch_size=args.batch_size)


def train(args: argparse.Namespace) -> int:
    from streamre.settings import build
    from streamre.training.config import TrainConfig
    from streamre.training.loop import train

    result = train(build(TrainConfig, args))
    print(json.dumps({"out": args.out, **result}))
    return 0


def train_text(args: argparse.Namespace) -> int:
    from streamre.settings import build
    from streamre.training.text import TextTrainConfig, train_text

    result = train_text(build(TextTrainConfig, args))
    print(json.dumps({"out": args.out, **result["dev"]}))
    return 0


def eval(args: argparse.Namespace) -> int:
    from streamre.inference.speech_path import ResearchSettings, SpeechPath, SpeechSettings
    from streamre.settings import build
    from streamre.training.data import read_manifest
    from streamre.training.evaluate import evaluate

    settings = build(SpeechSettings, args)
    if args.text_reads_speech_model:
        settings = dataclasses.replace(settings, speech_facts="speech")
    guards: Counter[str] = Counter()  # how often each hearing guard acted (loops retried, ...)
    path = SpeechPath(settings, build(ResearchSettings, args), on_guard=lambda guard: guards.update([guard]))
    examples = read_manifest(args.data)
    reads_text = args.input == "text" or args.text_reads_speech_model
    text_extractor = path.load_text() if reads_text else None
    if reads_text and text_extractor is None:
        raise ValueError("reading text needs a text model (--text-model)")
    if args.input == "text":
        extractor = None
    elif args.text_reads_speech_model:
        extractor = path.load_speech_model()
    else:
        extractor = path.load_speech()
    summary = evaluate(extractor, examples, args.batch_size, args.predictions,
                       progress=not args.no_progress, text_extractor=text_extractor)
    if guards:
        summary["guards"] = dict(sorted(guards.items()))
    print(json.dumps(summary))
    return 0


def eval_voices(args: argparse.Namespace) -> int:
    from streamre.voices.clusterer import VoiceSettings
    from streamre.voices.evaluate import evaluate

    default = VoiceSettings()
    choices = [VoiceSettings(threshold=t, heard_once=h, turns=args.turns, turn_threshold=c)
               for t in args.threshold or [default.threshold]
               for h in args.heard_once or [default.heard_once] if h <= t
               for c in args.turn_threshold or [default.turn_threshold]]
    result = evaluate(args.streams, choices, progress=not args.no_progress)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result["kinds"]))
    return 0


def graph_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamre.graph import transcript as record
    from streamre.graph.export import graphml
    from streamre.graph.store import GraphStore
    from streamre.mqtt.mirror_store import MirrorStore

    if not Path(args.db).exists():
        raise FileNotFoundError(f"no such database: {args.db}")
    journal, mirror = GraphStore(args.db), MirrorStore(args.db)
    try:  # a server's journal, or a subscriber's mirror
        if args.room in journal.rooms():
            graph = journal.load(args.room)
            data, window = graph.to_json(), graph.settings.dedup_window_s
            lines = [said for _, said in journal.transcript.lines(args.room)]
            origin = journal.transcript.first_said(args.room)
        elif args.room in mirror.rooms():
            data, window = mirror.load(args.room).to_json(), None  # the server's, unknown
            lines = mirror.transcript(args.room)
            origin = None  # its first line
        else:
            known = ", ".join(sorted(set(journal.rooms()) | set(mirror.rooms()))) or "none"
            raise ValueError(f"no room {args.room!r} in {args.db} (rooms: {known})")
    finally:
        journal.close()
        mirror.close()
    writers = {
        "json": lambda: json.dumps(data, indent=2),
        "graphml": lambda: graphml(data),
        "transcript": lambda: json.dumps({"room": args.room, "segments": [
            s.to_json() for s in lines], "next": None}, indent=2),
        "srt": lambda: record.srt(lines, origin),
        "vtt": lambda: record.vtt(lines, origin),
        "transcript-md": lambda: record.transcript_markdown(args.room, lines),
        "minutes": lambda: json.dumps(record.minutes(data, lines, window), indent=2),
        "minutes-md": lambda: record.minutes_markdown(record.minutes(data, lines, window)),
    }
    text = writers[args.format]()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        print(text, end="" if text.endswith("\n") else "\n")
    return 0


def subscribe(args: argparse.Namespace) -> int:
    from streamre.mqtt.subscriber import subscribe

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(subscribe(args.mqtt, args.room, args.db, args.client_id))


def init_model(args: argparse.Namespace) -> int:
    from streamre.model import create_checkpoint

    print(create_checkpoint(args.out, alignment=args.alignment, seed=args.seed))
    return 0


def import_whisper(args: argparse.Namespace) -> int:
    from streamre.whisper.weights import import_whisper

    print(import_whisper(args.source, args.out))
    return 0


def synth(args: argparse.Namespace) -> int:
    from streamre.corpus import Augmentation, plan, read_sentences, run, swap_entities

    sentences = [s for path in args.inputs for s in read_sentences(path, args.format)]
    if args.limit:
        sentences = sentences[:args.limit]
    if args.swap_entities:
        swapped = swap_entities(sentences, args.swap_entities, args.seed)
        if not swapped:
            raise ValueError("--swap-entities needs sentences with typed entities (SpERT)")
        sentences = swapped if args.only_swapped else sentences + swapped
    elif args.only_swapped:
        raise ValueError("--only-swapped goes with --swap-entities")
    voices = "train" if args.voices == "train" else args.voices.split(",")
    asked = args.speed != (1.0, 1.0) or args.gain_db != (0.0, 0.0) or args.snr_db is not None
    if asked and args.augment_fraction == 0:
        raise ValueError("--speed, --gain-db and --snr-db act on --augment-fraction of the "
                         "utterances; give it (e.g. --augment-fraction 0.3)")
    augmentation = Augmentation(args.augment_fraction, args.speed, args.gain_db, args.snr_db)
    synth = plan(sentences, args.out, voices, args.copies, args.seed, args.audio, augmentation)
    manifest = run(synth, args.manifest, args.jobs, progress=not args.no_progress)
    print(json.dumps({"manifest": str(manifest), "utterances": len(synth.utterances),
                      "sentences": len(sentences)}))
    return 0
