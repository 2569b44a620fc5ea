// The browser client: microphone to /v1/stream, snapshot + deltas to a live table of facts.
"use strict";
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const token = params.get("token");
const nodes = new Map();
const edges = new Map();
let version = 0;
let ws = null;
let audio = null;

if (params.get("room")) $("room").value = params.get("room");

function streamUrl() {
  const url = new URL("/v1/stream", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (token) url.searchParams.set("token", token);
  return url;
}

function setState(text) { $("state").textContent = text; }

function render() {
  const body = $("edges").tBodies[0];
  body.replaceChildren(...[...edges.values()].map((e) => {
    const row = document.createElement("tr");
    for (const v of [nodes.get(e.source)?.label ?? e.source, e.relation,
                     nodes.get(e.target)?.label ?? e.target, e.confidence.toFixed(2), e.mentions]) {
      const cell = document.createElement("td");
      cell.textContent = v;
      row.append(cell);
    }
    return row;
  }));
  const stats = $("stats");
  stats.dataset.nodes = nodes.size;
  stats.dataset.edges = edges.size;
  stats.dataset.version = version;
  stats.textContent = `${nodes.size} nodes · ${edges.size} edges`;
}

function onGraph(msg) {
  if (msg.op === "snapshot") {
    nodes.clear();
    edges.clear();
  } else if (msg.version !== version + 1) {
    ws.send(JSON.stringify({ type: "subscribe", room: $("room").value }));  // gap: resync
    return;
  }
  for (const n of msg.nodes) nodes.set(n.id, n);
  for (const e of msg.edges) edges.set(e.id, e);
  version = msg.version;
  render();
}

function feed(text, cls) {
  const item = document.createElement("li");
  item.textContent = text;
  if (cls) item.className = cls;
  $("feed").prepend(item);
}

function onMessage(event) {
  const msg = JSON.parse(event.data);
  switch (msg.type) {
    case "ready": setState(`connected to room ${msg.room}`); break;
    case "graph": onGraph(msg); break;
    case "vad": $("speech").classList.toggle("on", msg.event === "speech_start"); break;
    case "triplets": {
      const facts = msg.triplets.map((t) => `${t.head} —${t.relation}→ ${t.tail} (${t.confidence.toFixed(2)})`);
      feed(`${msg.start.toFixed(1)}–${msg.end.toFixed(1)} s: ${facts.join("; ") || "no facts"}`);
      break;
    }
    case "warning": feed(`warning: ${msg.message || msg.code}`, "warning"); break;
    case "error": feed(`error ${msg.code}: ${msg.message}`, "warning"); break;
  }
}

function connect(first) {
  ws = new WebSocket(streamUrl());
  ws.binaryType = "arraybuffer";
  ws.onopen = () => ws.send(JSON.stringify(first));
  ws.onmessage = onMessage;
  ws.onclose = (e) => setState(`disconnected (${e.code})`);
  return ws;
}

async function talk() {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  const context = new AudioContext();  // native rate: the server resamples
  await context.audioWorklet.addModule("pcm-worklet.js");
  const source = context.createMediaStreamSource(stream);
  // No outputs: a sink node, so the browser runs it without routing it to the speakers.
  const framer = new AudioWorkletNode(context, "pcm-framer", { numberOfOutputs: 0 });
  connect({ type: "start", protocol: 1, room: $("room").value, sample_rate: context.sampleRate,
            encoding: "pcm_s16le", channels: 1 });
  framer.port.onmessage = (e) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    ws.send(e.data);  // never drop captured audio: a gap would corrupt the utterance
    // About 30 s of 48 kHz audio waiting: the network cannot keep up; say so.
    if (ws.bufferedAmount > 3 << 20) setState("connection slow: audio is queued in the browser");
  };
  source.connect(framer);
  audio = { context, stream, source, framer };  // held: unreferenced nodes may be collected
}

$("talk").onclick = () => talk().catch((e) => setState(`microphone: ${e.message}`));
$("view").onclick = () => connect({ type: "subscribe", room: $("room").value });
if (params.get("autostart") === "1") $("talk").click();
