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
    { "data-client": c.id })), s.clientsTotal, ["client", "clients"], "no client connected");

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

function connect() {
  const status = document.getElementById("status");
  const es = new EventSource("events");
  es.addEventListener("open", () => {
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
}

connect();
