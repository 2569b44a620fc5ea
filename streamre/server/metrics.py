"""Prometheus metrics of one server, on a registry of its own (several servers per process in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from streamre.hearing.transcriber import GUARDS

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.sessions_active = Gauge("streamre_sessions_active", "Open sessions", ["role"], registry=r)
        self.sessions_total = Counter("streamre_sessions", "Sessions opened", ["role"], registry=r)
        self.sessions_rejected = Counter("streamre_sessions_rejected", "Connections refused",
                                         ["reason"], registry=r)
        self.audio_seconds = Counter("streamre_audio_seconds", "Audio received, 16 kHz seconds",
                                     registry=r)
        self.segments = Counter("streamre_segments", "Segments closed and queued", ["forced_split"],
                                registry=r)
        self.segments_dropped = Counter("streamre_segments_dropped_short",
                                        "Utterances dropped as shorter than the minimum", registry=r)
        self.triplets = Counter("streamre_triplets", "Triplets extracted", registry=r)
        self.hearing_guards = Counter(
            "streamre_hearing_guards", "Segments a hearing guard acted on (capped: hit the token "
            "cap; loop_retried: decoded again at 30 s; repeats_cut; silence: nothing said)",
            ["guard"], registry=r)
        for guard in GUARDS:  # shown at 0 before the first
            self.hearing_guards.labels(guard)
        self.errors = Counter("streamre_errors", "Error messages sent to clients", ["code"],
                              registry=r)
        self.facts_refused = Counter("streamre_graph_facts_refused",
                                     "New facts refused because a room reached its caps",
                                     registry=r)
        self.mqtt_outbox = Gauge("streamre_mqtt_outbox", "MQTT messages waiting for the broker",
                                 registry=r)
        self.mqtt_refused = Counter("streamre_mqtt_refused",
                                    "MQTT messages refused because the outbox was full",
                                    registry=r)
        self.mqtt_published = Counter("streamre_mqtt_published", "MQTT messages acknowledged",
                                      registry=r)
        self.mqtt_reconnects = Counter("streamre_mqtt_reconnects",
                                       "Failed MQTT connection attempts", registry=r)
        self.changes = Counter("streamre_changes",
                               "Corrections, merges and voices' names people made here",
                               ["kind"], registry=r)
        self.lagging = Counter("streamre_lagging_warnings", "Lagging warnings sent", registry=r)
        self.viewer_resyncs = Counter("streamre_viewer_resyncs",
                                      "Slow clients whose queued graph updates were replaced by a snapshot",
                                      registry=r)
        self.latency = Histogram("streamre_segment_latency_seconds",
                                 "Segment end to its triplets message", buckets=LATENCY_BUCKETS,
                                 registry=r)
        self.queue_seconds = Histogram("streamre_inference_queue_seconds",
                                       "Wait before the model call", buckets=LATENCY_BUCKETS, registry=r)
        self.infer_seconds = Histogram("streamre_inference_seconds", "Model call per batch",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("streamre_inference_batch_size", "Segments per model call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.real_time_factor = Histogram("streamre_inference_real_time_factor",
                                          "Model time over audio time per batch",
                                          buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
                                          registry=r)
        self.inference_queue = Gauge("streamre_inference_queue", "Segments waiting for the model",
                                     registry=r)
        self._cluster(r)
        self._captions(r)
        # Set to count the serving loop's tasks when the server starts (leaks show here).
        self.event_loop_tasks = Gauge("streamre_event_loop_tasks",
                                      "asyncio tasks alive on the serving event loop", registry=r)

    def _captions(self, r: CollectorRegistry) -> None:
        """Live captions: partials by outcome, and finals that took a partial's words."""
        self.partials = Counter(
            "streamre_partials", "Live captions of open utterances: sent (to the room), dropped "
            "(finals waited, or the stream's previous one was not heard yet), late (its final "
            "line came first)", ["outcome"], registry=r)
        for outcome in ("sent", "dropped", "late"):
            self.partials.labels(outcome)
        self.finals_from_partials = Counter(
            "streamre_finals_from_partials", "Finals whose words their last partial had heard "
            "(read, not heard again)", registry=r)
        self.voice_turn_cuts = Counter(
            "streamre_voice_turn_cuts", "Cuts made inside segments where their voice changed "
            "(`--voice-turns on`)", registry=r)

    def _cluster(self, r: CollectorRegistry) -> None:
        """In a cluster (`serve --cluster`): ops by outcome (local, merged from another
        instance, duplicate, bad, failed), rooms replayed in order, ops resent, who is there."""
        self.cluster_ops = Counter("streamre_cluster_ops", "Cluster ops by outcome", ["outcome"],
                                   registry=r)
        self.cluster_replays = Counter("streamre_cluster_replays",
                                       "Rooms replayed because an op came out of order",
                                       registry=r)
        self.cluster_repairs = Counter("streamre_cluster_repairs",
                                       "Ops resent to an instance that lacked them", registry=r)
        self.cluster_members = Gauge("streamre_cluster_members",
                                     "Other instances of the cluster online", registry=r)
        self.cluster_lead = Gauge("streamre_cluster_lead",
                                  "1 while this instance publishes the rooms' graphs",
                                  registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
