// The live page: one EventSource on /events; "snapshot" redraws the tables, "lines" appends
// to the event log. Topic names, client ids and payloads come from MQTT clients: they are only
// ever set as text (textContent, attribute values), never parsed as HTML.
"use strict";

const maxLines = 500; // event lines kept in the page
const svgNS = "http://www.w3.org/2000/svg";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

// cell is a table cell whose text is never broken inside a word (an id, an address, a time): a
// text too long for it ends in "…" and shows whole as the cell's tooltip.
function cell(text) {
  const td = el("td");
  td.title = String(text);
  td.appendChild(el("span", text, "cut"));
  return td;
}

function row(cells, attrs) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.appendChild(c instanceof Node ? c : cell(c));
  for (const [k, v] of Object.entries(attrs || {})) tr.setAttribute(k, v);
  return tr;
}

// word returns the singular of [singular, plural] for 1, else the plural.
function word(n, [one, many]) {
  return n === 1 ? one : many;
}

// fill replaces the rows of section id's table; .more says how many were left out, of what
// ([singular, plural]).
function fill(id, rows, total, what, emptyText) {
  const section = document.getElementById(id);
  const body = section.querySelector("tbody");
  if (rows.length === 0) {
    const td = el("td", emptyText);
    td.colSpan = section.querySelectorAll("th").length;
    rows = [row([td], { class: "empty" })];
  }
  body.replaceChildren(...rows);
  const shown = section.querySelectorAll("tbody tr:not(.empty)").length;
  section.querySelector(".more").textContent =
    total > shown ? `${total - shown} more ${word(total - shown, what)} not shown` : "";
}

function since(t) {
  const d = new Date(t);
  const secs = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
  const ago = secs < 60 ? `${secs}s` : secs < 3600 ? `${Math.floor(secs / 60)}m` : `${Math.floor(secs / 3600)}h`;
  return `${d.toTimeString().slice(0, 8)} (${ago} ago)`;
}

// chart draws the per-second counts of the last minute as a line.
function chart(rates) {
  const w = 120, h = 24;
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("class", "rate");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const base = document.createElementNS(svgNS, "line");
  base.setAttribute("x1", 0); base.setAttribute("x2", w);
  base.setAttribute("y1", h - 0.5); base.setAttribute("y2", h - 0.5);
  svg.appendChild(base);
  const top = Math.max(1, ...rates);
  const step = w / Math.max(1, rates.length - 1);
  const pts = rates.map((r, i) => `${(i * step).toFixed(1)},${(h - 1 - (r / top) * (h - 3)).toFixed(1)}`);
  const line = document.createElementNS(svgNS, "polyline");
  line.setAttribute("points", pts.join(" "));
  svg.appendChild(line);
  const title = document.createElementNS(svgNS, "title");
  title.textContent = `most in one second: ${top}`;
  svg.appendChild(title);
  return svg;
}

function render(s) {
  const access = document.getElementById("access");
  access.textContent = s.open
    ? "Open: anyone who can reach this address sees every topic and payload. Start mqttserver with -auth to require a user."
    : "Signed in with a user of the -auth file.";
  access.className = s.open ? "access open" : "access";
  for (const [id, n] of [["n-clients", s.clientsTotal], ["n-subscriptions", s.subscriptionsTotal],
    ["n-topics", s.topicsTotal], ["n-retained", s.retainedTotal], ["n-received", s.received], ["n-sent", s.sent]]) {
    const b = document.getElementById(id);
    b.textContent = n;
    const label = b.nextElementSibling; // "1 subscription", "2 subscriptions"
    if (label && label.dataset.one) label.textContent = word(n, [label.dataset.one, label.dataset.many]);
  }

  fill("clients", (s.clients || []).map(c => row(
    [c.id, c.user || "—", c.remote, c.protocol, c.clean ? "yes" : "no", since(c.since)],
    c.id === watching ? { "data-client": c.id, class: "watched", title: "its packets are drawn below" }
      : { "data-client": c.id, title: "click: see its packets" })), s.clientsTotal, ["client", "clients"], "no client connected");
  document.getElementById("client-ids").replaceChildren(...(s.clients || []).map(c => {
    const o = document.createElement("option");
    o.value = c.id;
    return o;
  }));

  fill("subscriptions", (s.subscriptions || []).map(f => {
    const td = el("td", undefined, "list");
    f.subscribers.forEach((sub, i) => {
      if (i > 0) td.appendChild(document.createTextNode(", "));
      const span = el("span", `${sub.client} (QoS ${sub.qos})`, sub.connected ? "cut" : "cut offline");
      span.title = span.textContent;
      td.appendChild(span);
    });
    return row([f.filter, td], { "data-filter": f.filter });
  }), s.subscriptionsTotal, ["filter", "filters"], "no subscription");

  const topics = (s.topics || []).map(t => {
    const rate = el("td", undefined, "rate");
    rate.appendChild(chart(t.rates));
    const now = t.rates.length ? t.rates[t.rates.length - 1] : 0; // the last whole second
    rate.appendChild(el("span", `${t.lastMinute} · ${now}/s now`, "rate-text"));
    const count = el("td", t.count, "num count");
    return row([t.topic, count, rate, t.payload], { "data-topic": t.topic });
  });
  if (s.otherMessages > 0) topics.push(row([el("td", "(other topics)"), el("td", s.otherMessages, "num"), "", ""]));
  fill("topics", topics, s.topicsTotal, ["topic", "topics"], "no message yet");

  fill("retained", (s.retained || []).map(r => row(
    [r.topic, r.payload, el("td", r.bytes, "num"), r.qos], { "data-topic": r.topic })),
    s.retainedTotal, ["retained message", "retained messages"], "no retained message");
}

// addLines appends console lines ("15:04:05.000 TAG text"), coloured by their tag.
function addLines(lines) {
  const box = document.getElementById("lines");
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  for (const line of lines) {
    const tag = line.split(/\s+/)[1] || "";
    const div = el("div", line, /^[A-Z-]+$/.test(tag) ? "tag-" + tag : "");
    box.appendChild(div);
  }
  while (box.childElementCount > maxLines) box.firstElementChild.remove();
  if (atBottom) box.scrollTop = box.scrollHeight;
}

// The packet flow: the client watched is in the address (#watch=ID), so a reload or a link
// shows it again; the stream is opened with ?watch=ID and sends "packets" events.
const maxFlow = 50; // packets drawn, as many as the broker keeps
let watching = watchFromHash();
let flow = [];        // the packets drawn, oldest first
let flowFresh = true; // the next "packets" event is a new stream's: it sends all the broker kept
let stream = null;

function watchFromHash() {
  const m = location.hash.match(/^#watch=(.+)$/);
  if (!m) return "";
  try { return decodeURIComponent(m[1]); } catch (e) { return ""; }
}

function watch(id) {
  location.hash = id ? "watch=" + encodeURIComponent(id) : "";
}

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = String(text);
  return e;
}

// clip cuts a text drawn on one line of the diagram; the whole is its tooltip.
function clip(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

function flowLabel(p) {
  let s = p.type;
  if (p.id) s += ` id ${p.id}`;
  if (p.type === "PUBLISH") {
    s += ` · QoS ${p.qos || 0}`;
    if (p.dup) s += " · DUP (resend)";
    if (p.retain) s += " · retain";
  }
  return s;
}

function flowDetail(p) {
  if (p.type !== "PUBLISH" && p.type !== "WILL") return p.detail || "";
  let s = `${p.topic || ""} · ${p.bytes || 0} B`;
  if (p.hidden) s += " · payload hidden: you may not read this topic";
  else if (p.bytes) s += ` · ${p.payload}`;
  return s;
}

// qos2Groups finds the QoS 2 exchanges: PUBLISH, PUBREC, PUBREL, PUBCOMP under one id, the
// PUBLISH's sender's (the client and the broker number their PUBLISHes apart).
function qos2Groups(pks) {
  const open = new Map(), groups = [];
  const other = d => (d === "in" ? "out" : "in");
  pks.forEach((p, i) => {
    let key;
    if (p.type === "PUBLISH" && p.qos === 2) {
      key = `${p.dir}:${p.id}`;
      if (!open.has(key)) open.set(key, { start: i, id: p.id, dir: p.dir });
      return;
    }
    if (p.type === "PUBREC" || p.type === "PUBCOMP") key = `${other(p.dir)}:${p.id}`;
    else if (p.type === "PUBREL") key = `${p.dir}:${p.id}`;
    else return;
    const g = open.get(key);
    if (g && p.type === "PUBCOMP") {
      groups.push({ ...g, end: i, done: true });
      open.delete(key);
    }
  });
  for (const g of open.values()) groups.push({ ...g, end: pks.length - 1, done: false });
  return groups;
}

// drawFlow draws the packets as a sequence diagram: the client's lifeline on the left, the
// broker's on the right, one arrow per packet, the oldest on top; QoS 2 exchanges boxed,
// resends (DUP) dashed and red, the broker's own notes (a will, the connection closing) boxed.
function drawFlow() {
  document.getElementById("flow-client").textContent = watching ? `· client ${watching}` : "";
  document.getElementById("unwatch").disabled = !watching;
  const box = document.getElementById("flow-box");
  if (!watching) {
    box.replaceChildren(el("p", "No client watched: pick one to see its packets.", "dim"));
    return;
  }
  if (flow.length === 0) {
    box.replaceChildren(el("p", `No packet yet: waiting for ${watching} to send or receive one…`, "dim"));
    return;
  }
  const old = box.querySelector(".flow-scroll");
  const atBottom = !old || old.scrollTop + old.clientHeight >= old.scrollHeight - 4;
  const W = 960, left = 190, right = 730, top = 8, rowH = 38, headH = 40;
  const h = top + flow.length * rowH + 8;
  // The lifelines' names stay in view above the arrows, which scroll.
  const head = svgEl("svg", { class: "flow", width: W, height: headH, viewBox: `0 0 ${W} ${headH}` });
  head.appendChild(svgEl("text", { class: "actor", x: left, y: 16 }, "client"));
  head.appendChild(svgEl("text", { class: "actor", x: left, y: 32 }, clip(watching, 40)));
  head.appendChild(svgEl("text", { class: "actor", x: right, y: 24 }, "broker"));
  for (const x of [left, right]) head.appendChild(svgEl("line", { class: "lifeline", x1: x, x2: x, y1: 36, y2: headH }));
  const svg = svgEl("svg", { class: "flow", width: W, height: h, viewBox: `0 0 ${W} ${h}` });
  const defs = svgEl("defs");
  for (const c of ["in", "out", "dup"]) {
    const m = svgEl("marker", { id: "head-" + c, class: c, viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 9, markerHeight: 9, orient: "auto" });
    m.appendChild(svgEl("path", { d: "M0,1 L10,5 L0,9 z" }));
    defs.appendChild(m);
  }
  svg.appendChild(defs);
  for (const g of qos2Groups(flow)) {
    const grp = svgEl("g", { class: g.done ? "qos2" : "qos2 open", "data-id": g.id, "data-dir": g.dir,
      "data-first": flow[g.start].seq, "data-last": flow[g.end].seq });
    grp.appendChild(svgEl("rect", { x: left - 24, y: top + g.start * rowH + 3, width: right - left + 48,
      height: (g.end - g.start + 1) * rowH - 6, rx: 6 }));
    grp.appendChild(svgEl("text", { x: right + 32, y: top + g.start * rowH + 20 },
      `QoS 2 exchange, id ${g.id}` + (g.done ? "" : " (open)")));
    svg.appendChild(grp);
  }
  for (const x of [left, right]) svg.appendChild(svgEl("line", { class: "lifeline", x1: x, x2: x, y1: 0, y2: h }));
  flow.forEach((p, i) => {
    const y = top + i * rowH + 20;
    svg.appendChild(svgEl("text", { class: "time", x: 4, y: y + 4 }, new Date(p.time).toTimeString().slice(0, 8) +
      "." + String(new Date(p.time).getMilliseconds()).padStart(3, "0")));
    const detail = flowDetail(p);
    if (p.dir === "note") {
      const g = svgEl("g", { class: "note", "data-type": p.type, "data-seq": p.seq });
      const text = p.type === "WILL" ? `broker publishes the will: ${detail}` : detail;
      g.appendChild(svgEl("rect", { x: left + 40, y: y - 13, width: right - left - 80, height: 22, rx: 4 }));
      g.appendChild(svgEl("text", { x: (left + right) / 2, y: y + 3 }, clip(text, 70)));
      g.appendChild(svgEl("title", {}, text));
      svg.appendChild(g);
      return;
    }
    const kind = p.dup ? "dup" : p.dir;
    const g = svgEl("g", { class: `pkt ${p.dir}` + (p.dup ? " dup" : ""), "data-type": p.type,
      "data-id": p.id || 0, "data-dir": p.dir, "data-dup": p.dup ? "true" : "false", "data-seq": p.seq });
    const [x1, x2] = p.dir === "in" ? [left, right] : [right, left];
    g.appendChild(svgEl("line", { x1, x2, y1: y, y2: y, "marker-end": `url(#head-${kind})` }));
    g.appendChild(svgEl("text", { class: "label", x: (left + right) / 2, y: y - 6 }, flowLabel(p)));
    if (detail) g.appendChild(svgEl("text", { class: "detail", x: (left + right) / 2, y: y + 13 }, clip(detail, 80)));
    g.appendChild(svgEl("title", {}, `${flowLabel(p)}\n${detail}`));
    svg.appendChild(g);
  });
  const scroll = el("div", undefined, "flow-scroll");
  scroll.appendChild(svg);
  box.replaceChildren(head, scroll);
  if (atBottom) scroll.scrollTop = scroll.scrollHeight;
  else scroll.scrollTop = old.scrollTop;
}

function addFlow(f) {
  if (f.client !== watching) return;
  if (flowFresh) {
    flow = [];
    flowFresh = false;
  }
  flow.push(...f.packets);
  if (flow.length > maxFlow) flow = flow.slice(flow.length - maxFlow);
  document.getElementById("flow-note").textContent =
    f.skipped ? `${f.skipped} ${word(f.skipped, ["packet", "packets"])} too many to keep came in between` : "";
  drawFlow();
}

function connect() {
  const status = document.getElementById("status");
  const es = new EventSource(watching ? "events?watch=" + encodeURIComponent(watching) : "events");
  stream = es;
  es.addEventListener("open", () => {
    flowFresh = true;
    status.textContent = "live: updated every second";
    status.className = "status live";
  });
  es.addEventListener("error", () => {
    // EventSource reconnects by itself after a broker restart, but not after a refusal (429:
    // too many pages open from this address or for this user; 401; 503).
    status.textContent = es.readyState === EventSource.CLOSED
      ? "the broker refused the live stream (too many pages open from here?): close one and reload"
      : "disconnected from the broker: retrying…";
    status.className = "status down";
  });
  es.addEventListener("snapshot", e => render(JSON.parse(e.data)));
  es.addEventListener("lines", e => addLines(JSON.parse(e.data)));
  es.addEventListener("packets", e => addFlow(JSON.parse(e.data)));
}

// Another client watched: a new stream, which sends the event lines again from the start.
window.addEventListener("hashchange", () => {
  const id = watchFromHash();
  if (id === watching) return;
  watching = id;
  flow = [];
  document.getElementById("flow-note").textContent = "";
  document.getElementById("watch-id").value = id;
  stream.close();
  document.getElementById("lines").replaceChildren();
  drawFlow();
  connect();
});
document.querySelector("#clients tbody").addEventListener("click", e => {
  const tr = e.target.closest("tr[data-client]");
  if (tr) watch(tr.getAttribute("data-client"));
});
document.getElementById("watch-form").addEventListener("submit", e => {
  e.preventDefault();
  watch(document.getElementById("watch-id").value);
});
document.getElementById("unwatch").addEventListener("click", () => watch(""));
document.getElementById("watch-id").value = watching;
drawFlow();
connect();
