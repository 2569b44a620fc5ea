"""Settings of `streamre serve`: one declaration, four sources.

Every field of `ServeConfig` has a default, a command-line flag (`--max-sessions`), an environment
variable (`STREAMRE_MAX_SESSIONS`) and a key in the optional TOML file given with `--config`
(`max_sessions = 64`). Precedence, strongest first: flag, environment, file, default.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from streamre.audio.vad import VadConfig
from streamre.graph.room import GraphSettings


ENV_PREFIX = "STREAMRE_"


def _setting(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class ServeConfig:
    # network
    host: str = _setting("127.0.0.1", "address to listen on")
    port: int = _setting(8765, "TCP port for HTTP and the WebSocket (0: any free port)")
    token: str = _setting("", "bearer token required on every request (empty: no auth)")
    allowed_origins: tuple[str, ...] = _setting(
        (), "browser Origins allowed to open the WebSocket, comma separated (empty: any)"
    )
    max_sessions: int = _setting(64, "most concurrent WebSocket sessions; more are closed with 1013")
    max_message_bytes: int = _setting(
        1 << 20, "largest accepted WebSocket message; larger ones close the session with 1009"
    )
    send_queue: int = _setting(
        256, "messages buffered per client before a slow viewer is resynced with a snapshot"
    )
    # model and inference
    model: str = _setting("", "checkpoint folder or hub id (empty: the bundled default model)")
    device: str = _setting("auto", "torch device: auto, cpu, cuda, cuda:N")
    threads: int = _setting(0, "CPU threads for inference (0: torch's default)")
    dtype: str = _setting(
        "auto", "weights and activations: auto (bfloat16 or float16 on a GPU, float32 on the "
        "CPU), float32, bfloat16, float16")
    max_padding: float = _setting(
        0.5, "most padding one model call may carry, as a share of its audio; a batch of very "
        "different lengths is split into calls of similar length")
    max_batch: int = _setting(8, "most segments in one model call")
    gather_ms: int = _setting(20, "how long the batcher waits for more segments after the first")
    session_queue: int = _setting(
        8, "segments a session may have waiting for inference before its audio is read slower"
    )
    lag_warning_s: float = _setting(
        3.0, "queue wait after which a session is sent a 'lagging' warning"
    )
    max_new_tokens: int = _setting(
        192, "longest decoded output per segment (transcript and facts), in tokens; a segment "
        "also stops at 24 plus 10 per second of its audio")
    # voice activity detection (defaults are the segmenter's own)
    vad_aggressiveness: int = _setting(
        VadConfig.aggressiveness, "webrtcvad aggressiveness, 0 (least) to 3 (most)")
    vad_trigger_frames: int = _setting(
        VadConfig.trigger_frames, "frames in the trigger ring (30 ms each)")
    vad_trigger_ratio: float = _setting(
        VadConfig.trigger_ratio, "voiced share of the ring that starts speech")
    pre_roll_ms: int = _setting(
        VadConfig.pre_roll_ms, "audio kept before the detected start of speech")
    hangover_ms: int = _setting(VadConfig.hangover_ms, "silence that ends an utterance")
    min_utterance_ms: int = _setting(
        VadConfig.min_utterance_ms, "voiced span below which an utterance is dropped")
    max_utterance_s: float = _setting(
        VadConfig.max_utterance_s, "longest segment; longer speech is force-split")
    split_overlap_ms: int = _setting(
        VadConfig.split_overlap_ms, "overlap between the two halves of a forced split")
    # the knowledge graph (defaults are the graph's own)
    dedup_window_s: float = _setting(
        GraphSettings.dedup_window_s, "sightings of a fact this close in time are one mention")
    min_confidence: float = _setting(
        GraphSettings.min_confidence, "confidence an edge needs before it is shown")
    max_nodes: int = _setting(GraphSettings.max_nodes, "most nodes per room; then new ones are refused")
    max_edges: int = _setting(GraphSettings.max_edges, "most edges per room; then new ones are refused")
    fuzzy_threshold: float = _setting(
        GraphSettings.fuzzy_threshold, "rapidfuzz ratio (0-100) at which two names are one entity")
    # MQTT
    mqtt: str = _setting("", "broker to publish to: mqtt://[user:pass@]host:port or mqtts://... "
                             "(empty: no MQTT)")
    server_id: str = _setting("", "this server's name in MQTT status topics (empty: host name)")
    mqtt_outbox_max: int = _setting(100000, "messages the persistent MQTT outbox holds while "
                                            "the broker is away; more are refused and counted")
    mqtt_snapshot_interval_s: float = _setting(
        2.0, "a room's retained snapshot is refreshed at most this often")
    # storage and logging
    data_dir: str = _setting("data", "folder for persistent state (the graph journal)")
    log_level: str = _setting("info", "debug, info, warning or error")

    def __post_init__(self) -> None:
        errors = []
        if not 0 <= self.port < 65536:
            errors.append(f"port must be 0..65535, got {self.port}")
        if not 0 <= self.vad_aggressiveness <= 3:
            errors.append(f"vad_aggressiveness must be 0..3, got {self.vad_aggressiveness}")
        if not 0 < self.vad_trigger_ratio <= 1:
            errors.append(f"vad_trigger_ratio must be in (0, 1], got {self.vad_trigger_ratio}")
        for name in ("max_sessions", "max_message_bytes", "send_queue", "max_batch",
                     "session_queue", "max_new_tokens", "vad_trigger_frames", "max_nodes",
                     "max_edges", "mqtt_outbox_max"):
            if getattr(self, name) < 1:
                errors.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_utterance_s * 1000 <= 2 * self.split_overlap_ms:
            errors.append("max_utterance_s must be longer than twice split_overlap_ms")
        if not 0 <= self.min_confidence <= 1 or not 0 <= self.fuzzy_threshold <= 100:
            errors.append("min_confidence must be 0..1 and fuzzy_threshold 0..100")
        from streamre.inference.extractor import DTYPES

        if self.dtype != "auto" and self.dtype not in DTYPES:
            errors.append(f"dtype must be auto, {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.max_padding < 0:
            errors.append("max_padding must not be negative")
        if self.dedup_window_s < 0:
            errors.append("dedup_window_s must not be negative")
        if self.mqtt:
            from streamre.mqtt.broker import BrokerAddress

            try:
                BrokerAddress.parse(self.mqtt)
            except ValueError as e:
                errors.append(str(e))
        if any(c in self.server_id for c in "/+#"):
            errors.append("server_id must not contain '/', '+' or '#'")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            errors.append(f"log_level must be debug, info, warning or error, got {self.log_level!r}")
        if errors:
            raise ConfigError("; ".join(errors))


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it."""


def _fields() -> list[dataclasses.Field]:
    return list(dataclasses.fields(ServeConfig))


def _kind(f: dataclasses.Field) -> type:
    return {"str": str, "int": int, "float": float, "tuple[str, ...]": tuple}[str(f.type)]


def _coerce(f: dataclasses.Field, value: Any, source: str, from_text: bool = True) -> Any:
    """`value` as the field's type; text (flags, environment) is parsed, TOML values must match."""
    kind = _kind(f)
    try:
        if kind is tuple:
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return tuple(value)
            raise ValueError
        if kind is int and isinstance(value, bool):
            raise ValueError
        if kind is float and isinstance(value, int):
            return float(value)
        if isinstance(value, str) and kind is not str and from_text:
            return kind(value)
        if not isinstance(value, kind):
            raise ValueError
        return value
    except ValueError:
        raise ConfigError(f"{source}: {f.name} expects {f.type}, got {value!r}") from None


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--config` and one flag per setting; unset flags stay None so lower sources show."""
    parser.add_argument("--config", metavar="FILE.toml", default=None,
                        help=f"TOML file with settings (env {env_name('config')})")
    for f in _fields():
        shown = ",".join(f.default) if isinstance(f.default, tuple) else f.default
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=None,
            metavar=f.name.upper(),
            help=f"{f.metadata['help']} (default: {shown!r}; env {env_name(f.name)}; "
                 f"TOML key {f.name})",
        )


def load_config(args: argparse.Namespace | None = None,
                environ: Mapping[str, str] | None = None) -> ServeConfig:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = getattr(args, "config", None) or environ.get(env_name("config"))
    if config_file:
        values.update(_read_toml(Path(config_file)))
    for f in _fields():
        if env_name(f.name) in environ:
            values[f.name] = _coerce(f, environ[env_name(f.name)], env_name(f.name))
        flag = getattr(args, f.name, None) if args is not None else None
        if flag is not None:
            values[f.name] = _coerce(f, flag, "--" + f.name.replace("_", "-"))
    return ServeConfig(**values)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    # Settings may sit at the top level or under a [serve] table.
    table = data.get("serve", data) if isinstance(data.get("serve"), dict) else data
    known = {f.name: f for f in _fields()}
    unknown = sorted(set(table) - set(known) - {"serve"})
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s): {', '.join(unknown)}")
    return {k: _coerce(known[k], v, str(path), from_text=False)
            for k, v in table.items() if k in known}
