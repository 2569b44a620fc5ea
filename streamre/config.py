"""Settings of `streamre serve`: one declaration, four sources.

Every setting of `ServeConfig` has a default, a command-line flag (`--max-sessions`), an
environment variable (`STREAMRE_MAX_SESSIONS`) and a key in the optional TOML file given with
`--config` (`max_sessions = 64`). The VAD's and the graph's own settings sit in `vad` and
`graph`, declared where they are used: `--vad-hangover-ms`, `STREAMRE_VAD_HANGOVER_MS`, and
`hangover_ms` in the file's `[vad]` table. Precedence, strongest first: flag, environment, file,
default.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from streamre.audio.partials import NO_PARTIALS, PartialPacing
from streamre.audio.vad import VadConfig
from streamre.graph.settings import GraphSettings
from streamre.inference.speech_path import ResearchSettings, SpeechSettings, path_errors
from streamre.room_name import valid_room
from streamre.voices.clusterer import VoiceSettings
from streamre.settings import (ConfigError, add_flags, build, env_name, nested, setting,
                               unknown_keys)


@dataclass(frozen=True)
class ServeConfig(ResearchSettings, SpeechSettings):
    """Every setting of `streamre serve`, each with its default and help: which models hear and
    read (`SpeechSettings`, shared with `extract` and `eval`), the aligned model's, read only
    with `speech_facts = speech` (`ResearchSettings`), then the server's own; `vad` and `graph`
    are the segmenter's and the room graph's own settings objects."""

    # network
    host: str = setting("127.0.0.1", "address to listen on")
    port: int = setting(8765, "TCP port for HTTP and the WebSocket (0: any free port)")
    token: str = setting("", "bearer token required on every request (empty: no auth)")
    allowed_origins: tuple[str, ...] = setting(
        (), "browser Origins allowed to open the WebSocket, comma separated (empty: any)"
    )
    # admission: what a connection may take (SECURITY.md)
    max_sessions: int = setting(
        320, "most open WebSocket connections of any kind; a new one past it closes the oldest "
        "connection still waiting to start or subscribe, or else is closed itself (1013)")
    max_pending: int = setting(
        32, "connections that have not sent start or subscribe yet; a new one past it closes "
        "the oldest of them (1013), so idle sockets never lock out a producer")
    handshake_timeout_s: float = setting(
        5.0, "seconds a connection has to send start or subscribe before it is closed (4400)")
    max_producers: int = setting(32, "most concurrent audio producers; a start past it gets "
                                     "an error (server_full) and 1013")
    max_viewers: int = setting(256, "most concurrent viewers; a subscribe past it gets an "
                                    "error (server_full) and 1013")
    max_rooms: int = setting(
        1000, "rooms held in memory; past it the room idle longest is let go (rooms with facts "
        "stay in the journal and load again on demand), or, if every room has a client, a new "
        "room is refused (too_many_rooms)")
    max_rooms_per_session: int = setting(16, "rooms one connection may join over its life")
    room_idle_s: float = setting(
        60.0, "a room with no clients and no facts is forgotten after this many seconds")
    max_message_bytes: int = setting(
        1 << 20, "largest accepted WebSocket message; larger ones close the session with 1009"
    )
    send_queue: int = setting(
        256, "messages buffered per client before a slow viewer is resynced with a snapshot"
    )
    # inference (which models, and how, are `SpeechSettings`)
    max_batch: int = setting(8, "most segments in one model call")
    gather_ms: int = setting(20, "how long the batcher waits for more segments after the first")
    session_queue: int = setting(
        8, "segments a session may have waiting for inference before its audio is read slower"
    )
    lag_warning_s: float = setting(
        3.0, "queue wait after which a session is sent a 'lagging' warning"
    )
    # live captions
    partials: str = setting(
        "on", "live captions: while someone speaks, hear the open utterance again and send a "
        "partial to the room (dropped whenever finals wait)", choices=["on", "off"])
    partial_every_s: float = setting(
        1.0, "stream audio between two partials of one utterance, in seconds")
    partial_settle_ms: int = setting(
        180, "silence after speech that asks for one more partial: if the utterance then "
        "ends, its final takes that partial's words instead of hearing it again (0: never)")
    # voices: several people on one microphone
    voices: str = setting(
        "on", "tell apart the voices one microphone hears: each line gets its voice (1, 2, ...) "
        "and people can name them (needs Resemblyzer's weights: pip install --no-deps "
        "resemblyzer==0.1.4)", choices=["on", "off"])
    voice: VoiceSettings = nested(VoiceSettings, "telling the voices of a session apart")
    # written text: chat lines and notes
    max_text_chars: int = setting(5000, "longest text message or posted note, in characters")
    text_per_minute: int = setting(
        60, "text messages one session may send a minute (after a burst of 10); posted notes "
        "share ten times this, server-wide")
    # voice activity detection and the knowledge graph, declared by their cores
    vad: VadConfig = nested(VadConfig, "voice activity detection")
    graph: GraphSettings = nested(GraphSettings, "the knowledge graph of each room")
    # MQTT
    mqtt: str = setting("", "broker to publish to: mqtt://[user:pass@]host:port or mqtts://... "
                             "(empty: no MQTT)")
    server_id: str = setting("", "this server's name in MQTT status topics (empty: host name)")
    mqtt_outbox_max: int = setting(100000, "messages the persistent MQTT outbox holds while "
                                            "the broker is away; more are refused and counted")
    mqtt_snapshot_interval_s: float = setting(
        2.0, "a room's retained snapshot is refreshed at most this often")
    cluster: str = setting(
        "", "share rooms with every instance given the same --mqtt broker and this cluster "
        "name (empty: this instance alone); docs/cluster.md")
    cluster_idle_s: float = setting(
        86400.0, "in a cluster, a room with no new op for this long leaves the heads this "
        "instance publishes (retained, expiring after this long): peers that join later "
        "catch up the rooms active within it")
    # storage and logging
    data_dir: str = setting("data", "folder for persistent state (the graph journal)")
    transcript_retention_days: float = setting(
        0.0, "transcript lines older than this many days are deleted from the journal, "
        "checked every minute (0: kept forever); the graph's facts are kept")
    log_level: str = setting("info", "debug, info, warning or error")

    @property
    def partial_pacing(self) -> PartialPacing:
        """How often producers' open utterances are heard for captions (`--partials`)."""
        if self.partials == "off":
            return NO_PARTIALS
        return PartialPacing(self.partial_every_s, self.partial_settle_ms)

    def __post_init__(self) -> None:
        errors = []
        if not 0 <= self.port < 65536:
            errors.append(f"port must be 0..65535, got {self.port}")
        for name in ("max_sessions", "max_pending", "max_producers", "max_viewers", "max_rooms",
                     "max_rooms_per_session", "max_text_chars", "text_per_minute",
                     "max_message_bytes", "send_queue", "max_batch",
                     "session_queue", "mqtt_outbox_max"):
            if getattr(self, name) < 1:
                errors.append(f"{name} must be at least 1, got {getattr(self, name)}")
        errors += path_errors(self, self)
        if self.transcript_retention_days < 0:
            errors.append("transcript_retention_days must not be negative (0: keep forever)")
        if self.partial_every_s <= 0 or self.partial_settle_ms < 0:
            errors.append("partial_every_s must be positive and partial_settle_ms not negative")
        if self.handshake_timeout_s <= 0 or self.room_idle_s < 0:
            errors.append("handshake_timeout_s must be positive and room_idle_s not negative")
        if self.mqtt:
            from streamre.mqtt.broker import BrokerAddress

            try:
                BrokerAddress.parse(self.mqtt)
            except ValueError as e:
                errors.append(str(e))
        if any(c in self.server_id for c in "/+#"):
            errors.append("server_id must not contain '/', '+' or '#'")
        if self.cluster and not (self.mqtt and valid_room(self.cluster)):
            errors.append("cluster needs an MQTT broker (mqtt) and a name of 1-64 letters, "
                          "digits, '_', '.', '-'")
        if self.cluster_idle_s <= 0:
            errors.append("cluster_idle_s must be positive")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            errors.append(f"log_level must be debug, info, warning or error, got {self.log_level!r}")
        if errors:
            raise ConfigError("; ".join(errors))


__all__ = ["ConfigError", "ServeConfig", "add_arguments", "load_config"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--config` and one flag per setting; unset flags stay None so lower sources show."""
    parser.add_argument("--config", metavar="FILE.toml", default=None,
                        help=f"TOML file with settings (env {env_name('config')})")
    add_flags(parser, ServeConfig)


def load_config(args: argparse.Namespace | None = None,
                environ: Mapping[str, str] | None = None) -> ServeConfig:
    environ = os.environ if environ is None else environ
    config_file = getattr(args, "config", None) or environ.get(env_name("config"))
    table = _read_toml(Path(config_file)) if config_file else {}
    return build(ServeConfig, args, environ, table)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    # Settings may sit at the top level or under a [serve] table.
    table = data["serve"] if isinstance(data.get("serve"), dict) else data
    unknown = [k for k in unknown_keys(ServeConfig, table) if k != "serve"]
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s): {', '.join(unknown)}")
    return table
