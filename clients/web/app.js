// The browser client: microphone to /v1/stream; snapshot + deltas into a live cytoscape graph;
// the room's transcript (history, then live), each line linked to the facts it stated. A person
// may correct a line in place and rename or merge an entity; every page of the room follows.
"use strict";
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const token = params.get("token");
const nodes = new Map();
const edges = new Map();
let version = 0;
let ws = null;
let audio = null;
let mode = null;  // "talk" | "view"
let retryDelay = 1000;
let lagTimer = null;
let sessionId = "";  // this connection's, from "ready": the key of our transcript lines
let replaying = null;  // the version the graph view shows instead of the live one, or null
// Instances of one cluster (`?servers=ws://a:8765,ws://b:8765`, or host:port): a lost connection
// goes on with the next. Without it, the page's own server (or the proxy in front of them).
const servers = (params.get("servers") || "").split(",").map((s) => s.trim()).filter(Boolean);
let serverIndex = 0;
let failovers = 0;  // servers tried since the last one that answered

if (params.get("room")) $("room").value = params.get("room");

// -- the graph view ---------------------------------------------------------------------------

// A node's colour says what its readers tagged it as (PROTOCOL.md's node `type`); the legend
// in the page (#legend) shows the same colours.
const TYPE_COLOURS = { person: "#4a7bd0", organisation: "#2e9e6a", location: "#b5651d", other: "#8a8a8a" };
for (const item of document.querySelectorAll("#legend [data-type]")) {
  item.querySelector(".swatch").style.background = TYPE_COLOURS[item.dataset.type];
}

const cy = window.cytoscape ? cytoscape({
  container: $("graph"),
  wheelSensitivity: 0.3,
  maxZoom: 1.5,  // a two-node graph should not fill the screen with giant labels
  minZoom: 0.05,
  style: [
    // Nodes grow with their mentions, and so do their labels: hubs stay readable zoomed out.
    { selector: "node", style: { label: "data(label)", "font-size": "mapData(mentions, 1, 10, 11, 18)",
      "min-zoomed-font-size": 5, "background-color": TYPE_COLOURS.other,
      width: "mapData(mentions, 1, 10, 16, 40)", height: "mapData(mentions, 1, 10, 16, 40)" } },
    ...Object.entries(TYPE_COLOURS).map(([type, colour]) => (
      { selector: `node[type = "${type}"]`, style: { "background-color": colour } })),
    // An edge's label shows from zoom 1 on, or while the pointer is on it.
    { selector: "edge", style: { label: "data(caption)", "font-size": 9, "min-zoomed-font-size": 9,
      "curve-style": "bezier", "target-arrow-shape": "triangle", "line-color": "#999",
      "target-arrow-color": "#999", width: "mapData(mentions, 1, 10, 1, 6)",
      opacity: "mapData(confidence, 0, 1, 0.35, 1)", "text-rotation": "autorotate" } },
    { selector: "edge.hover", style: { "min-zoomed-font-size": 0, "font-size": 12, "z-index": 10,
      "text-background-color": "#fff", "text-background-opacity": 0.8 } },
    { selector: ".match", style: { "background-color": "#e0731f", "font-weight": "bold" } },
    { selector: ".faded", style: { opacity: 0.15 } },
    { selector: ".filtered", style: { display: "none" } },
    { selector: "edge.stated", style: { "line-color": "#e0731f", "target-arrow-color": "#e0731f", width: 5 } },
  ],
}) : null;
window.cy = cy;  // what is drawn, for tests and people's own scripts
if (!cy) $("graph").textContent = "graph view unavailable (run npm ci in clients/web); the table below still updates";

// A fact's count as people can check it against its lines (the dedup window makes repeats close
// together one mention): "×2", or "×1 · 2 lines".
function counted(e) {
  const lines = e.segment_count ?? e.mentions;
  return lines > e.mentions ? `${e.mentions} (${lines} lines)` : `${e.mentions}`;
}

function caption(e) {
  const lines = e.segment_count ?? e.mentions;
  return `${e.relation} ${e.confidence.toFixed(2)} ×${e.mentions}` + (lines > e.mentions ? ` · ${lines} lines` : "");
}

// The view follows the graph as it grows (fitted after each change) until the user pans or
// zooms; *Fit* (or the f key) brings every node back into view and follows again.
let following = true;

function drawGraph(changedNodes, changedEdges, reset, removed = []) {
  if (!cy) return;
  if (reset) cy.elements().remove();
  for (const id of removed) cy.getElementById(id).remove();  // a correction's or merge's
  const added = [];
  // Each new node's neighbour by the new edges (a snapshot is laid out whole instead).
  const neighbour = new Map();
  if (!reset) {
    for (const e of changedEdges) {
      if (!neighbour.has(e.source)) neighbour.set(e.source, e.target);
      if (!neighbour.has(e.target)) neighbour.set(e.target, e.source);
    }
  }
  cy.batch(() => {
    for (const n of changedNodes) {
      const data = { id: n.id, label: n.label, mentions: n.mentions, type: n.type || "other" };
      const el = cy.getElementById(n.id);
      if (el.nonempty()) { el.data(data); continue; }
      // A new node goes beside a neighbour already drawn, where there is room.
      const other = neighbour.has(n.id) ? cy.getElementById(neighbour.get(n.id)) : null;
      const position = reset ? { x: 0, y: 0 }
        : placeNear(other && other.nonempty() ? other.position() : edgeOfDrawing());
      added.push(cy.add({ group: "nodes", data, position }));
    }
    for (const e of changedEdges) {
      const data = { id: e.id, source: e.source, target: e.target, relation: e.relation,
                     confidence: e.confidence, mentions: e.mentions, caption: caption(e),
                     speakers: e.speakers || [] };
      const el = cy.getElementById(e.id);
      if (el.nonempty()) el.data(data); else cy.add({ group: "edges", data });
    }
  });
  if (reset) arrange();
  applyFilter();
  if (following && !reset && (removed.length || added.some(outOfView))) cy.fit(cy.nodes(":visible"), 30);
  highlight();
}

// Where a new node goes: around `anchor`, at the closest of 36 spots with room for it and its
// label (80 units from every node drawn), or else the roomiest; the others never move. Close
// spots keep the drawing compact, so the view stays zoomed in enough to read.
function placeNear(anchor) {
  const drawn = cy.nodes().map((n) => n.position());
  let best = anchor, score = -Infinity;
  for (let k = 0; k < 12; k++) {
    const angle = (Math.PI * k) / 6 + Math.random() * 0.3;
    for (const r of [90, 140, 200]) {
      const spot = { x: anchor.x + r * Math.cos(angle), y: anchor.y + r * Math.sin(angle) };
      let nearest = Infinity;
      for (const o of drawn) nearest = Math.min(nearest, Math.hypot(o.x - spot.x, o.y - spot.y));
      const value = Math.min(nearest, 80) * 10 - r;
      if (value > score) { score = value; best = spot; }
    }
  }
  return best;
}

// Where a node with no drawn neighbour starts from: beside what is drawn, on the side that keeps
// the drawing's shape closest to the panel's (right of it when it is taller than the panel is,
// else below it), somewhere along that side.
function edgeOfDrawing() {
  if (!cy.nodes().length) return { x: 0, y: 0 };
  const box = cy.nodes().boundingBox({ includeLabels: false });
  const along = Math.random();
  if (box.w / Math.max(box.h, 1) < cy.width() / Math.max(cy.height(), 1)) {
    return { x: box.x2, y: box.y1 + along * box.h };
  }
  return { x: box.x1 + along * box.w, y: box.y2 };
}

// The whole graph laid out again (a snapshot, or *Arrange*): by force for a meeting's graph; a
// big room, which must open in a second or two, with its hubs (most connected) in the middle.
function arrange() {
  const big = cy.nodes().length > 200;
  cy.layout(big ? { name: "concentric", animate: false, fit: true, padding: 30, minNodeSpacing: 8,
                    avoidOverlap: false, concentric: (n) => n.degree(), levelWidth: () => 2 }
    : { name: "cose", animate: false, fit: true, padding: 30, idealEdgeLength: 80,
        numIter: cy.nodes().length > 80 ? 300 : 1000, nodeRepulsion: 8000,
        nodeDimensionsIncludeLabels: true }).run();
}

// Whether a node (with room for its label) is outside the view: only then is it fitted again,
// which in a big room costs more than the rest of an update.
function outOfView(node) {
  const view = cy.extent(), p = node.position(), margin = 40 / cy.zoom();
  return p.x - margin < view.x1 || p.x + margin > view.x2 || p.y - margin < view.y1 || p.y + margin > view.y2;
}

function fitAll() {
  following = true;
  if (cy) cy.fit(cy.nodes(":visible"), 30);
}

if (cy) {
  cy.on("dragpan scrollzoom pinchzoom", () => { following = false; });
  cy.on("mouseover", "edge", (event) => event.target.addClass("hover"));
  cy.on("mouseout", "edge", (event) => event.target.removeClass("hover"));
}
$("fit").onclick = fitAll;
$("arrange").onclick = () => { if (cy) { following = true; arrange(); } };
document.addEventListener("keydown", (event) => {
  const typing = event.target.closest("input, textarea, select, [contenteditable='true']");
  if (event.key === "f" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) fitAll();
});

// A search (or a tap on a node) marks the entities it finds, dims the rest and centres them.
let highlighted = false;  // whether anything is marked or dimmed now

function highlight(centre = false) {
  if (!cy) return;
  const q = $("search").value.trim().toLowerCase();
  if (!q && !highlighted) return;  // nothing to undo: an update costs nothing here
  cy.elements().removeClass("match faded");
  highlighted = Boolean(q);
  if (!q) return;
  const hits = cy.nodes().filter((n) => n.data("label").toLowerCase().includes(q));
  hits.addClass("match");
  cy.elements().difference(hits.closedNeighborhood()).addClass("faded");
  if (centre && hits.length) {
    following = false;
    cy.center(hits);
  }
}
$("search").addEventListener("input", () => highlight(true));

// -- the filter: one relation, one type of entity, or one speaker's facts -----------------------

function filterOptions() {
  const relations = new Set(), types = new Set(), speakers = new Set();
  for (const e of edges.values()) {
    relations.add(e.relation);
    for (const who of e.speakers || []) speakers.add(who);
  }
  for (const n of nodes.values()) types.add(n.type || "other");
  const select = $("filter");
  const chosen = select.value;
  const options = [["", "everything"],
    ...[...relations].sort().map((r) => [`relation:${r}`, `relation: ${r}`]),
    ...[...types].sort().map((t) => [`type:${t}`, `type: ${t}`]),
    ...[...speakers].sort().map((w) => [`speaker:${w}`, `said by ${w}`])];
  if (select.options.length === options.length && options.every(([v], i) => select.options[i].value === v)) return;
  select.replaceChildren(...options.map(([value, text]) => new Option(text, value)));
  select.value = options.some(([v]) => v === chosen) ? chosen : "";
}

let filtering = false;  // whether a filter hides anything now

function applyFilter() {
  if (!cy) return;
  const [kind, ...rest] = $("filter").value.split(":");
  if (!kind && !filtering) return;
  filtering = Boolean(kind);
  const value = rest.join(":");
  cy.batch(() => {
    cy.elements().removeClass("filtered");
    if (!kind) return;
    const keep = cy.edges().filter((e) => kind === "relation" ? e.data("relation") === value
      : kind === "speaker" ? e.data("speakers").includes(value)
      : e.source().data("type") === value || e.target().data("type") === value);
    cy.edges().difference(keep).addClass("filtered");
    cy.nodes().difference(keep.connectedNodes()).addClass("filtered");
  });
}
$("filter").addEventListener("change", () => { applyFilter(); fitAll(); });

const rows = new Map();  // edge id -> its row of the table

function tableRow(e) {
  let row = rows.get(e.id);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.edge = e.id;
    row.onclick = () => showEvidence(e.id);
    for (let i = 0; i < 5; i++) row.append(document.createElement("td"));
    rows.set(e.id, row);
  }
  const values = [nodes.get(e.source)?.label ?? e.source, e.relation,
                  nodes.get(e.target)?.label ?? e.target, e.confidence.toFixed(2), counted(e)];
  values.forEach((v, i) => { if (row.cells[i].textContent !== `${v}`) row.cells[i].textContent = v; });
  return row;
}

// The table of facts: rebuilt whole for a snapshot (`changed` null), else only the rows a delta
// touched (its edges, the edges of its nodes, whose labels may have changed, and what left).
function renderTable(changed = null) {
  const body = $("edges").tBodies[0];
  if (changed === null) {
    rows.clear();
    body.replaceChildren(...[...edges.values()].map(tableRow));
  } else {
    for (const id of changed.removed) { rows.get(id)?.remove(); rows.delete(id); }
    const touched = new Set(changed.nodes.map((n) => n.id));
    if (touched.size) {
      for (const e of edges.values()) {
        if (rows.has(e.id) && (touched.has(e.source) || touched.has(e.target))) tableRow(e);
      }
    }
    for (const e of changed.edges) {
      const had = rows.has(e.id);
      const row = tableRow(e);
      if (!had) body.append(row);
    }
  }
  const stats = $("stats");
  stats.dataset.nodes = nodes.size;
  stats.dataset.edges = edges.size;
  stats.dataset.version = version;
  stats.textContent = `${nodes.size} nodes · ${edges.size} edges`;
  filterOptions();
  const timeline = $("timeline");
  timeline.max = version;
  if (replaying === null) timeline.value = version;
  $("timeline-state").textContent = replaying === null ? `live · v${version}` : `v${replaying} of ${version}`;
}

// -- the transcript: one line per segment, marked with the facts it gave --------------------------
// Every page asks for the room's transcript (`history`): the lines said before it joined, then
// each new one. A producer's own lines also come from its `triplets` messages, a little sooner.

const lines = new Map();  // "session/segment" -> {item, facts: Set, edges: []}
const MAX_LINES = 20000;  // a very long meeting; the oldest lines leave the page past it
const unlabelled = new Set();  // lines whose facts' edges have not reached this page yet

// The list follows the newest line unless the reader scrolled up; then "new lines" says more came.
// Where the reader is is kept from their scrolling (reading it per line would lay the page out
// per line), and the list is scrolled once a frame. The list's own scrolling is not the reader's:
// its scroll event comes a frame later, when a burst of lines may already have grown the list.
function nearBottom(list) { return list.scrollHeight - list.scrollTop - list.clientHeight < 40; }
let followLines = true;
let scrollPending = false;
let scrolledTo = null;  // where the list last scrolled itself

function showNewestLine() {
  if (!followLines) { $("new-lines").hidden = false; return; }
  if (scrollPending) return;
  scrollPending = true;
  requestAnimationFrame(() => {
    scrollPending = false;
    if (!followLines) return;  // the reader scrolled up meanwhile
    const list = $("transcript");
    list.scrollTop = list.scrollHeight;
    scrolledTo = list.scrollTop;
  });
}

// A <span> of `className`, with `text` if given.
function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

function transcriptLine(key, when, text) {
  let line = lines.get(key);
  if (!line) {
    const item = document.createElement("li");
    item.dataset.segment = key;
    const [number, speaker, voice, stamp, words] = ["number", "speaker", "voice", "when", "text"]
      .map((name) => span(name));
    const edit = document.createElement("button");
    edit.className = "edit";
    edit.textContent = "edit";
    edit.title = "correct this line: its facts are read again, and the room learns the names";
    const facts = document.createElement("div");
    facts.className = "facts";
    item.append(number, speaker, voice, stamp, words, edit, facts);
    line = { key, item, facts: new Set(), edges: [] };
    item.onclick = () => highlightLine(line);
    edit.onclick = (event) => { event.stopPropagation(); editLine(line); };
    speaker.onclick = (event) => {
      if (line.voice === undefined) return;  // a line whose voice was not told apart
      event.stopPropagation();
      nameVoice(line);
    };
    lines.set(key, line);
    const list = $("transcript");
    list.insertBefore(item, list.querySelector("li.partial"));  // captions stay at the end
    while (list.children.length > MAX_LINES) {
      if (list.firstChild.classList.contains("silent")) silentLines -= 1;
      unlabelled.delete(lines.get(list.firstChild.dataset.segment));
      lines.delete(list.firstChild.dataset.segment);
      list.firstChild.remove();
    }
    showNewestLine();
  }
  if (when) line.item.querySelector(".when").textContent = when;
  if (text !== undefined) {
    line.item.querySelector(".text").textContent = text;
    // A segment with no words is no line: hidden, and counted. Lines are numbered as they
    // first show, once (a number is never reused or shifted).
    const silent = !text.trim();
    if (silent !== line.item.classList.contains("silent") || !line.item.dataset.seen) {
      if (line.item.dataset.seen && !silent) silentLines -= 1;
      if (silent) silentLines += 1;
      line.item.classList.toggle("silent", silent);
      line.item.dataset.seen = "1";
      const number = line.item.querySelector(".number");
      if (!silent && !number.textContent) number.textContent = `${++shownLines}`;
      $("silent").textContent = silentLines
        ? `${silentLines} segment${silentLines === 1 ? "" : "s"} with no words hidden` : "";
    }
  }
  return line;
}

let shownLines = 0;  // lines numbered so far
let silentLines = 0;  // segments hidden for having no words

$("transcript").addEventListener("scroll", () => {
  const list = $("transcript");
  if (list.scrollTop === scrolledTo) return;  // where the list put itself
  scrolledTo = null;
  followLines = nearBottom(list);
  if (followLines) $("new-lines").hidden = true;
});
$("new-lines").onclick = () => {
  followLines = true;
  $("new-lines").hidden = true;
  showNewestLine();
};

function markFacts(line, facts) {
  const box = line.item.querySelector(".facts");
  box.querySelector(".none")?.remove();
  for (const f of facts) {
    const label = `${f.head} · ${f.relation} · ${f.tail}`;
    if (line.facts.has(label)) continue;
    line.facts.add(label);
    box.append(span("fact", label));
  }
  if (!line.facts.size) {
    box.append(span("none", "no facts"));
  }
}

// -- live captions: what is being said now, in grey, until its final line replaces it -------------
// A `partial` replaces the speaker's previous one; the final line of the same utterance (or of a
// later one) ends it. A final of an earlier utterance does not: its words were already said.
const captions = new Map();  // session id -> {item, start}

function onPartial(msg) {
  let caption = captions.get(msg.session_id);
  if (!caption) {
    const item = document.createElement("li");
    item.className = "partial";
    item.append(span("speaker"), span("text"));
    caption = { item };
    captions.set(msg.session_id, caption);
    $("transcript").append(item);
  }
  caption.start = msg.start;
  caption.item.dataset.start = msg.start;
  caption.item.querySelector(".speaker").textContent = msg.speaker || "";
  caption.item.querySelector(".text").textContent = msg.text;
  showNewestLine();
}

function endCaption(session, start) {
  const caption = captions.get(session);
  if (!caption || start === undefined || start === null || caption.start > start + 0.001) return;
  caption.item.remove();
  captions.delete(session);
}

function onTriplets(msg) {
  // The room's transcript line for it (speaker and clock time) comes first; this marks it
  // with the facts as the model read them, or stands in for it if it has not come.
  endCaption(sessionId, msg.start);
  const key = `${sessionId}/${msg.segment_id}`;
  const when = lines.has(key) ? "" : msg.source === "text" ? "typed"
    : `${msg.start.toFixed(1)}–${msg.end.toFixed(1)} s`;
  const line = transcriptLine(key, when, msg.text || "");
  markVoice(line, sessionId, msg.voice);
  markFacts(line, msg.triplets);
  if (msg.error) feed(`segment ${msg.segment_id}: ${msg.message}`, "warning");
}

function clock(t) { return new Date(t * 1000).toLocaleTimeString(); }

function factOf(edgeId) {
  const e = edges.get(edgeId);
  return e && { head: nodes.get(e.source)?.label ?? e.source, relation: e.relation,
                tail: nodes.get(e.target)?.label ?? e.target };
}

function onTranscript(msg) {
  endCaption(msg.session_id, msg.start);
  const key = `${msg.session_id}/${msg.segment_id}`;
  const shown = lines.get(key)?.item.dataset.edges;  // its edges as a transcript message gave them
  const rewritten = shown !== undefined && (msg.heard !== undefined || shown !== msg.edges.join(" "));
  const line = transcriptLine(key, `${clock(msg.time)}${msg.source === "text" ? " · typed" : ""}`,
                              msg.text || "");
  line.item.querySelector(".speaker").textContent = msg.speaker || "unknown speaker";
  markVoice(line, msg.session_id, msg.voice);
  if (msg.heard !== undefined) {  // a person corrected it: say so, and what was heard
    line.item.classList.add("corrected");
    line.item.querySelector(".text").title = `heard: ${msg.heard}` +
      (msg.corrected_by ? ` · corrected by ${msg.corrected_by}` : "");
  }
  line.edges = msg.edges;
  line.item.dataset.edges = msg.edges.join(" ");
  if (rewritten) {  // its facts are the ones read again: mark them afresh
    line.facts.clear();
    line.item.querySelector(".facts").replaceChildren();
  }
  labelFacts(line);
}

// Editing in place: Enter (or leaving it) sends the new text with `send(text)` (a fetch);
// Escape gives up. A refused edit puts the old text back and says why (`what` not saved).
function editInPlace(element, what, send) {
  if (element.isContentEditable) return;
  const before = element.textContent;
  element.contentEditable = "true";
  element.focus();
  let done = false;
  const finish = async (keep) => {
    if (done) return;
    done = true;
    element.contentEditable = "false";
    const text = element.textContent.trim();
    if (!keep || !text || text === before) { element.textContent = before; return; }
    const response = await send(text);
    if (!response.ok) {
      element.textContent = before;
      const answer = await response.json().catch(() => ({}));
      feed(`${what} not saved: ${answer.message || `HTTP ${response.status}`}`, "warning");
    }
  };
  element.onkeydown = (event) => {
    if (event.key === "Enter") { event.preventDefault(); finish(true); }
    if (event.key === "Escape") finish(false);
  };
  element.onblur = () => finish(true);
}

function putJson(url, body) {
  return fetch(url, { method: "PUT", headers: { "Content-Type": "application/json" },
                      body: JSON.stringify(body) });
}

// A corrected line: the server answers every page of the room with the line as corrected and
// the graph's change.
function editLine(line) {
  const [session, segment] = [line.key.slice(0, line.key.lastIndexOf("/")),
                              line.key.slice(line.key.lastIndexOf("/") + 1)];
  editInPlace(line.item.querySelector(".text"), "correction", (text) => putJson(
    roomUrl(`transcript/${encodeURIComponent(session)}/${segment}`),
    { text, by: params.get("speaker") || undefined }));
}

// -- voices: one microphone, several people ------------------------------------------------------
// A line the server told the voice of is coloured by it; while a session has shown more than one
// voice, each line also says which. Clicking the speaker names the voice: every line of it, past
// and future, on every page, takes the name.
const voicesOf = new Map();  // session id -> the voices its lines showed
const VOICE_COLOURS = 8;  // style.css's .voice-1 ... .voice-8

function markVoice(line, session, voice) {
  if (voice === undefined || voice === null) return;
  line.session = session;
  line.voice = voice;
  line.item.dataset.voice = voice;
  line.item.classList.add(`voice-${(voice - 1) % VOICE_COLOURS + 1}`);
  line.item.querySelector(".speaker").title = "name this voice: every line of it takes the name";
  const seen = voicesOf.get(session) || new Set();
  voicesOf.set(session, seen.add(voice));
  if (seen.size > 1) {  // a shared microphone: every line of it says its voice
    for (const other of lines.values()) {
      if (other.session === session) {
        other.item.querySelector(".voice").textContent = `voice ${other.voice}`;
      }
    }
  }
}

function nameVoice(line) {
  editInPlace(line.item.querySelector(".speaker"), "voice's name", (speaker) => putJson(
    roomUrl(`voices/${encodeURIComponent(line.session)}/${line.voice}`),
    { speaker, by: params.get("speaker") || undefined }));
}

function labelFacts(line) {
  if (line.facts.size) return;  // a producer's own line, marked from its triplets
  const facts = line.edges.map(factOf).filter(Boolean);
  if (facts.length < line.edges.length) unlabelled.add(line); else unlabelled.delete(line);
  markFacts(line, facts);
}

// Clicking a line marks the facts it stated in the graph; clicking it again clears them.
function highlightLine(line) {
  const on = !line.item.classList.contains("selected");
  for (const item of $("transcript").querySelectorAll(".selected")) item.classList.remove("selected");
  if (cy) cy.edges().removeClass("stated");
  if (!on) return;
  line.item.classList.add("selected");
  if (cy) for (const id of line.edges) cy.getElementById(id).addClass("stated");
}

// Clicking an edge (in the graph or the table) lists every line that stated it.
async function showEvidence(edgeId) {
  const fact = factOf(edgeId);
  const url = roomUrl("transcript");
  url.searchParams.set("edge", edgeId);
  const response = await fetch(url);
  const box = $("evidence");
  box.hidden = false;
  $("evidence-fact").textContent = fact ? `${fact.head} · ${fact.relation} · ${fact.tail}` : edgeId;
  if (!response.ok) { $("evidence-lines").replaceChildren(); feed(`evidence: HTTP ${response.status}`, "warning"); return; }
  const page = await response.json();
  $("evidence-lines").replaceChildren(...page.segments.map((s) => {
    const item = document.createElement("li");
    item.textContent = `${s.speaker || "unknown"} · ${clock(s.time)}: ${s.text}`;
    return item;
  }));
}
if (cy) cy.on("tap", "edge", (event) => showEvidence(event.target.id()));

// -- renaming or merging an entity ----------------------------------------------------------------
// Tapping a node names it in the form; "into" is another entity (a merge) or a new name (a rename).

if (cy) {
  cy.on("tap", "node", (event) => {
    $("merge-from").value = $("search").value = event.target.data("label");
    highlight(true);
  });
  cy.on("tap", (event) => {
    if (event.target === cy) { $("search").value = ""; highlight(); }  // the background: clear
  });
}

$("merge").onsubmit = async (event) => {
  event.preventDefault();
  const from = $("merge-from").value.trim();
  const into = $("merge-into").value.trim();
  if (!from || !into) return;
  const response = await fetch(roomUrl("entities/merge"), {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ from, into }) });
  const answer = await response.json().catch(() => ({}));
  $("merge-state").textContent = response.ok ? `${from} is now ${into}` : `not merged: ${answer.message || response.status}`;
  if (response.ok) $("merge-into").value = "";
};

// -- the timeline: the graph as it was at any version -------------------------------------------

async function replay(target) {
  if (target >= version) { live(); return; }
  const url = roomUrl("graph");
  url.searchParams.set("version", target);
  const response = await fetch(url);
  if (!response.ok) { feed(`timeline: HTTP ${response.status}`, "warning"); return; }
  const graph = await response.json();
  replaying = graph.version;
  drawGraph(graph.nodes, graph.edges, true);
  renderTable();
}

function live() {
  replaying = null;
  drawGraph([...nodes.values()], [...edges.values()], true);
  renderTable();
}
$("timeline").addEventListener("change", () => replay(Number($("timeline").value)));
$("timeline-live").onclick = live;

function onGraph(msg) {
  const reset = msg.op === "snapshot";
  if (reset) {
    nodes.clear();
    edges.clear();
  } else if (msg.version <= version) {
    return;  // already shown
  } else if (msg.version !== version + 1) {
    send({ type: "subscribe", room: currentRoom() });  // a gap: ask for a fresh snapshot
    return;
  }
  const removed = [...(msg.removed_edges || []), ...(msg.removed_nodes || [])];
  for (const id of msg.removed_edges || []) edges.delete(id);
  for (const id of msg.removed_nodes || []) nodes.delete(id);
  for (const n of msg.nodes) nodes.set(n.id, n);
  for (const e of msg.edges) edges.set(e.id, e);
  version = msg.version;
  if (replaying === null) drawGraph(msg.nodes, msg.edges, reset, removed);
  renderTable(reset ? null : { edges: msg.edges, nodes: msg.nodes, removed: msg.removed_edges || [] });
  if (reset) performance.mark("snapshot-drawn");  // how soon a room opens (benchmarks/page_scale.py)
  for (const line of [...unlabelled]) labelFacts(line);
}

// -- the connection -----------------------------------------------------------------------------

function currentRoom() { return $("room").value.trim() || "default"; }
function setState(text) { $("state").textContent = text; }
function send(msg) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg)); }

function streamUrl() {
  let server = location.href;
  if (servers.length) {
    const s = servers[serverIndex % servers.length];
    server = s.includes("://") ? s : `${location.protocol === "https:" ? "wss" : "ws"}://${s}`;
  }
  const url = new URL("/v1/stream", server);
  url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
  if (token) url.searchParams.set("token", token);
  url.searchParams.set("room", currentRoom());  // for a proxy that spreads rooms (deploy/)
  return url;
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
    case "ready":
      retryDelay = 1000;
      failovers = 0;
      sessionId = msg.session_id;
      for (const caption of captions.values()) caption.item.remove();  // said before we came back
      captions.clear();
      loadVocabulary();
      loadContext();
      // A producer asks for the room's transcript too (a viewer did with its subscribe).
      if (mode === "talk") send({ type: "subscribe", room: msg.room, history: true });
      if (mode === "talk" && audio && audio.context.state !== "running") break;  // keep the hint
      setState(`${mode === "talk" ? "streaming to" : "viewing"} room ${msg.room}`);
      break;
    case "graph": onGraph(msg); break;
    case "vad": $("speech").classList.toggle("on", msg.event === "speech_start"); break;
    case "triplets": onTriplets(msg); break;
    case "transcript": onTranscript(msg); break;
    case "partial": onPartial(msg); break;
    case "warning":
      feed(`warning: ${msg.message || msg.code}`, "warning");
      if (msg.code === "lagging") {
        $("lag").hidden = false;
        clearTimeout(lagTimer);
        lagTimer = setTimeout(() => { $("lag").hidden = true; }, 10000);
      }
      break;
    case "error": feed(`error ${msg.code}: ${msg.message}`, "warning"); break;
  }
}

function firstMessage() {
  if (mode === "view") return { type: "subscribe", room: currentRoom(), history: true };
  return { type: "start", protocol: 1, room: currentRoom(), sample_rate: audio.context.sampleRate,
           encoding: "pcm_s16le", channels: 1 };
}

function connect() {
  if (ws) { ws.onclose = null; ws.close(); }
  version = 0;
  ws = new WebSocket(streamUrl());
  ws.binaryType = "arraybuffer";
  ws.onopen = () => send(firstMessage());
  ws.onmessage = onMessage;
  ws.onclose = (e) => {
    if (e.code === 4400 || e.code === 1008) { setState(`refused (${e.code}): ${e.reason}`); return; }
    // Lost (server restart, network): the next server of a cluster at once, else back off
    // and come back; the snapshot (and the transcript's history) resyncs the page.
    if (servers.length > 1 && failovers < servers.length - 1) {
      failovers += 1;
      serverIndex += 1;
      setState(`disconnected (${e.code}); going on with ${streamUrl().host}`);
      setTimeout(connect, 300);
      return;
    }
    failovers = 0;
    serverIndex += servers.length > 1 ? 1 : 0;
    setState(`disconnected (${e.code}); retrying in ${Math.round(retryDelay / 1000)} s`);
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 30000);
  };
}

async function talk() {
  if (!audio) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
    const context = new AudioContext();  // the native rate: the server resamples
    await context.audioWorklet.addModule("pcm-worklet.js");
    const source = context.createMediaStreamSource(stream);
    // No outputs: a sink node, so the browser runs it without routing it to the speakers.
    const framer = new AudioWorkletNode(context, "pcm-framer", { numberOfOutputs: 0 });
    framer.port.onmessage = (e) => {
      if (!ws || ws.readyState !== WebSocket.OPEN || mode !== "talk") return;
      ws.send(e.data);
      // About 30 s of 48 kHz audio waiting: the network cannot keep up; say so.
      if (ws.bufferedAmount > 3 << 20) setState("connection slow: audio is queued in the browser");
    };
    source.connect(framer);
    audio = { context, stream, source, framer };  // held: unreferenced nodes may be collected
  }
  mode = "talk";
  connect();
  // Browsers hold audio until the page is clicked (Firefox does even with ?autostart=1);
  // resume() may stay pending until then, so it is not awaited.
  audio.context.resume().catch(() => {});
  setTimeout(() => {
    if (mode === "talk" && audio.context.state !== "running") {
      setState("the browser holds the microphone until you click Start microphone");
    }
  }, 1000);
}

function view() { mode = "view"; connect(); }

// -- exports ------------------------------------------------------------------------------------

function roomUrl(what) {
  const url = new URL(`/v1/rooms/${encodeURIComponent(currentRoom())}/${what}`, location.href);
  if (token) url.searchParams.set("token", token);
  return url;
}

// `what` is graph, transcript or export; `format` its format; `name` the file's.
async function download(what, format, name) {
  const url = roomUrl(what);
  url.searchParams.set("format", format);
  const response = await fetch(url);
  if (!response.ok) { feed(`download failed: HTTP ${response.status}`, "warning"); return; }
  save(await response.blob(), `${currentRoom()}${name}`);
}

function save(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

$("export-json").onclick = () => download("graph", "json", ".json");
$("export-graphml").onclick = () => download("graph", "graphml", ".graphml");
$("download-srt").onclick = () => download("transcript", "srt", ".srt");
$("download-md").onclick = () => download("transcript", "md", "-transcript.md");
$("download-minutes").onclick = () => download("export", "md", "-minutes.md");
$("export-png").onclick = () => { if (cy) save(cy.png({ full: true, bg: "#ffffff", output: "blob" }), `${currentRoom()}.png`); };

// A chat line or note goes on the same connection; its facts come back like a segment's.
$("chat").onsubmit = (event) => {
  event.preventDefault();
  const text = $("chat-text").value.trim();
  if (!text) return;
  if (!ws || ws.readyState !== WebSocket.OPEN || !sessionId) {
    feed("join a room first (Start microphone or View only) to send text", "warning");
    return;
  }
  send({ type: "text", text });
  $("chat-text").value = "";
};

// -- the room's vocabulary: names Whisper should expect ---------------------------------------

async function loadVocabulary() {
  let response;
  try {
    response = await fetch(roomUrl("vocabulary"));
  } catch (error) {  // the page's own server is gone (a cluster's page goes on elsewhere)
    $("vocabulary-state").textContent = "vocabulary unavailable";
    return;
  }
  if (!response.ok) return;
  const phrases = await response.json();
  $("vocabulary-text").value = phrases.join("\n");
  $("vocabulary-state").textContent = `${phrases.length} phrases`;
}

$("vocabulary").onsubmit = async (event) => {
  event.preventDefault();
  const phrases = $("vocabulary-text").value.split("\n").map((p) => p.trim()).filter(Boolean);
  const response = await putJson(roomUrl("vocabulary"), phrases);
  const answer = await response.json();
  $("vocabulary-state").textContent = response.ok ? `saved: ${answer.length} phrases`
    : `not saved: ${answer.message}`;
};

// -- the meeting's context: an invitation or agenda, whose names the room expects -------------

function showContext(answer) {
  const names = answer.names.length;
  $("context-state").textContent = names ? `${names} names: ${answer.names.slice(0, 8).join(", ")}`
    + (names > 8 ? ", …" : "") : "no names";
}

async function loadContext() {
  let response;
  try {
    response = await fetch(roomUrl("context"));
  } catch (error) {
    $("context-state").textContent = "context unavailable";
    return;
  }
  if (!response.ok) return;
  const answer = await response.json();
  $("context-text").value = answer.text;
  showContext(answer);
}

$("context").onsubmit = async (event) => {
  event.preventDefault();
  $("context-state").textContent = "reading…";
  const response = await fetch(roomUrl("context"), {
    method: "PUT", headers: { "Content-Type": "text/plain; charset=utf-8" },
    body: $("context-text").value });
  const answer = await response.json();
  if (response.ok) showContext(answer);
  else $("context-state").textContent = `not saved: ${answer.message}`;
};

$("talk").onclick = () => talk().catch((e) => setState(`microphone: ${e.message}`));
$("view").onclick = view;
if (params.get("viewer") === "1") view();
else if (params.get("autostart") === "1") $("talk").click();
