"""`streamre` entry point: one sub-command per job; exit 0 on success, else a one-line reason."""

from __future__ import annotations

import argparse
import asyncio
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


def _init_model(args: argparse.Namespace) -> int:
    from streamre.model import create_checkpoint

    out = create_checkpoint(args.out, preset=args.preset, alignment=args.alignment, seed=args.seed)
    print(out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from streamre.config import add_arguments

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

    init = sub.add_parser("init-model", help="write a randomly initialised checkpoint folder")
    init.add_argument("--out", required=True)
    init.add_argument("--preset", default="tiny", choices=["tiny", "small", "base"])
    init.add_argument("--alignment", default="mcam", choices=["mcam", "none"])
    init.add_argument("--seed", type=int, default=0)
    init.set_defaults(run=_init_model)
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
