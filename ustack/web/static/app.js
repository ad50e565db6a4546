// The live page: it only draws what ustack/web/feed.py sends (server-sent events from /events).
// No library: plain DOM and SVG, so that it works offline and can be read by a student.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const connections = new Map();   // key -> {title, rows, states, last, lines, samples, ended, truncated}
let limits = {packet_lines: 500, samples: 600};
let selected = null;             // the key of the connection followed
let chosenByUser = false;        // until someone clicks, the newest connection is followed
let table = [];
let other = [];                  // packets of no followed connection
// For tests and the curious: the ladder sizes drawn for each connection, in order.
window.ustack = {ladderSizes: {}, messages: 0};

function el(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function entry(key) {
  if (!connections.has(key)) {
    connections.set(key, {title: key, rows: [], states: {}, last: null, lines: [], samples: [], ended: false, truncated: 0});
  }
  return connections.get(key);
}

function keep(list, item, limit) {
  list.push(item);
  if (list.length > limit) list.splice(0, list.length - limit);
}

// --- messages -------------------------------------------------------------------------------------
function handle(message) {
  window.ustack.messages += 1;
  switch (message.type) {
    case "hello":
      connections.clear();
      limits = message.limits;
      document.getElementById("title").textContent = message.title;
      document.title = `${message.title} — live`;
      for (const connection of message.connections) {
        Object.assign(entry(connection.key), connection);
        noteSize(connection.key, connection.rows.length);
      }
      other = message.other;
      table = message.table;
      if (!chosenByUser || !connections.has(selected)) selectNewest();
      drawAll();
      break;
    case "ladder": {
      const connection = entry(message.key);
      Object.assign(connection, {title: message.title, rows: message.rows, states: message.states,
                                 last: message.last, ended: message.ended, truncated: message.truncated});
      noteSize(message.key, message.rows.length);
      if (!chosenByUser) selected = [...connections.keys()].pop();
      if (message.key === selected) later("ladder", "diagram", "table");
      break;
    }
    case "packet":
      if (message.key === "other") keep(other, message, limits.packet_lines);
      else keep(entry(message.key).lines, message, limits.packet_lines);
      if (message.key === selected || selected === null) { keep(newPackets, message, limits.packet_lines); later(); }
      break;
    case "table":
      table = message.rows;
      for (const [key, point] of Object.entries(message.samples)) keep(entry(key).samples, point, limits.samples);
      later("table");
      if (selected in message.samples) later("charts");
      break;
    case "forget":
      connections.delete(message.key);
      if (selected === message.key) { chosenByUser = false; selectNewest(); drawAll(); }
      break;
  }
}

function noteSize(key, size) {
  const sizes = window.ustack.ladderSizes[key] || (window.ustack.ladderSizes[key] = []);
  if (sizes[sizes.length - 1] !== size) sizes.push(size);
}

function selectNewest() {
  const keys = [...connections.keys()];
  selected = keys.length ? keys[keys.length - 1] : null;
}

function select(key) {
  if (!key || !connections.has(key)) return;
  selected = key;
  chosenByUser = true;
  drawAll();
}

function drawAll() { later("table", "ladder", "diagram", "charts", "packets"); }

// Messages can come by the thousand in a bulk transfer: they only note what needs drawing, and
// the drawing is done once per animation frame.
const pending = new Set();
let newPackets = [];
let frame = null;

function later(...parts) {
  for (const part of parts) pending.add(part);
  if (frame === null) frame = requestAnimationFrame(drawPending);
}

function drawPending() {
  frame = null;
  const parts = new Set(pending);
  pending.clear();
  if (parts.has("table")) drawTable();
  if (parts.has("ladder")) drawLadder();
  if (parts.has("diagram")) drawDiagram();
  if (parts.has("charts")) drawCharts();
  if (parts.has("packets")) { newPackets = []; drawPackets(); }
  else if (newPackets.length) { appendPackets(newPackets); newPackets = []; }
}

// --- the connection table -----------------------------------------------------------------------
function drawTable() {
  const body = document.querySelector("#connections tbody");
  body.replaceChildren();
  for (const row of table) {
    const tr = document.createElement("tr");
    if (row.key) tr.dataset.key = row.key;
    tr.dataset.state = row.state;
    if (row.key && row.key === selected) tr.classList.add("selected");
    row.cells.forEach((cell, index) => {
      const td = document.createElement("td");
      td.textContent = cell;
      if (index === 0) td.className = "state";
      tr.appendChild(td);
    });
    if (row.info) tr.title = row.info;
    tr.addEventListener("click", () => select(row.key));
    body.appendChild(tr);
  }
}

// --- the ladder ---------------------------------------------------------------------------------
const LADDER = {width: 800, left: 180, right: 700, top: 56, row: 40};
let drawnRows = 0, drawnKey = null;

function drawLadder() {
  const svg = document.getElementById("ladder");
  const connection = connections.get(selected);
  svg.replaceChildren();
  if (!connection) { document.getElementById("ladder-title").textContent = "(no connection yet)"; return; }
  const fresh = drawnKey === selected ? drawnRows : connection.rows.length;
  drawnKey = selected; drawnRows = connection.rows.length;
  let title = connection.title;
  if (connection.truncated) title += ` (${connection.truncated} later segments not drawn)`;
  document.getElementById("ladder-title").textContent = title;
  const {width, left, right, top, row} = LADDER;
  const height = top + row * (connection.rows.length + 1);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("height", height);
  svg.appendChild(el("text", {x: left, y: 20, "text-anchor": "middle", class: "head", fill: "var(--local)"}, "ustack"));
  svg.appendChild(el("text", {x: right, y: 20, "text-anchor": "middle", class: "head", fill: "var(--remote)"}, "kernel"));
  for (const x of [left, right]) svg.appendChild(el("line", {x1: x, y1: 30, x2: x, y2: height, stroke: "#444", "stroke-width": 2}));
  connection.rows.forEach((item, index) => {
    const y = top + index * row;
    const group = el("g", {class: "row" + (index >= fresh ? " new" : ""), "data-kind": item.kind});
    if (item.kind === "arrow") drawArrow(group, item, y);
    else drawMark(group, item, y);
    svg.appendChild(group);
  });
  const scroll = document.getElementById("ladder-scroll");
  scroll.scrollTop = scroll.scrollHeight;
}

function drawArrow(group, item, y) {
  const {left, right, row} = LADDER;
  const fromX = item.from === 0 ? left : right, toX = item.from === 0 ? right : left;
  const colour = item.from === 0 ? "var(--local)" : "var(--remote)";
  const lost = item.type === "lost";
  const endX = lost ? (fromX + toX) / 2 : toX, endY = lost ? y + row / 2 : y + row;
  group.appendChild(el("line", {x1: fromX, y1: y + 4, x2: endX, y2: endY, stroke: lost ? "var(--lost)" : colour,
                                "stroke-width": 2.5, "stroke-dasharray": item.type === "retransmission" ? "8 5" : ""}));
  if (lost) {
    group.appendChild(el("path", {d: `M${endX - 9} ${endY - 9} L${endX + 9} ${endY + 9} M${endX - 9} ${endY + 9} L${endX + 9} ${endY - 9}`,
                                  stroke: "var(--lost)", "stroke-width": 4}));
  } else {
    const direction = toX > fromX ? -1 : 1;
    group.appendChild(el("path", {d: `M${toX} ${y + row} l${direction * 14} -3 l${direction * -2} -9 z`, fill: colour}));
  }
  // The label just above its line, along it, with a white halo (style.css) for readability.
  const midX = (fromX + endX) / 2, midY = (y + 4 + endY) / 2;
  const angle = Math.atan2(endY - y - 4, Math.abs(endX - fromX)) * 180 / Math.PI * (endX > fromX ? 1 : -1);
  group.appendChild(el("text", {x: midX, y: midY - 6, "text-anchor": "middle", fill: colour,
                                transform: `rotate(${angle.toFixed(2)} ${midX} ${midY})`},
                       item.label + (item.type !== "normal" ? `  (${item.type})` : "")));
  const time = el("text", {x: 4, y: y + row / 2 + 5, fill: "#666"}, `${item.time.toFixed(3)}s`);
  group.appendChild(time);
}

function drawMark(group, item, y) {
  const {left, right, row} = LADDER;
  const x = item.side === 0 ? left : right;
  const colour = item.side === 0 ? "var(--local)" : "var(--remote)";
  const label = item.state + (item.inferred ? "*" : "");
  const w = Math.max(110, label.length * 10 + 16);
  group.appendChild(el("rect", {x: x - w / 2, y: y + 6, width: w, height: row - 12, rx: 8, fill: colour,
                                opacity: item.inferred ? 0.75 : 1}));
  group.appendChild(el("text", {x, y: y + row / 2 + 6, "text-anchor": "middle", class: "mark"}, label));
}

// --- the state diagram ---------------------------------------------------------------------------
function nameOf(state) { return state ? state.replaceAll("-", "_") : ""; }

function drawDiagram() {
  const diagram = document.querySelector("#diagram svg");
  if (!diagram) return;
  diagram.querySelectorAll(".local, .remote, .lit").forEach(node => node.classList.remove("local", "remote", "lit"));
  const connection = connections.get(selected);
  const caption = document.getElementById("transition");
  if (!connection) { caption.textContent = ""; return; }
  const {local, remote} = connection.states || {};
  if (local) diagram.querySelector(`#state-${nameOf(local)}`)?.classList.add("local");
  if (remote) diagram.querySelector(`#state-${nameOf(remote)}`)?.classList.add("remote");
  const last = connection.last;
  if (!last) { caption.textContent = ""; return; }
  const who = last.side === 0 ? "ustack" : "kernel";
  const edge = diagram.querySelector(`#edge-${nameOf(last.old)}-${nameOf(last.new)}`);
  let text = `Last: ${who} ${last.old} \u2192 ${last.new}`;
  if (edge) {
    edge.classList.add("lit", last.side === 0 ? "local" : "remote");
    text += ` (${edge.dataset.cause})`;
  }
  caption.textContent = text;
}

// --- the charts ------------------------------------------------------------------------------------
function drawCharts() {
  const connection = connections.get(selected);
  const samples = connection ? connection.samples : [];
  chart("chart-cwnd", samples, [[1, "var(--local)"]]);
  chart("chart-rtt", samples, [[2, "var(--local)"]]);
  chart("chart-window", samples, [[3, "var(--local)"], [4, "var(--remote)"]]);
}

function chart(id, samples, series) {
  const svg = document.getElementById(id);
  svg.replaceChildren();
  const W = 300, H = 140, X0 = 46, Y0 = 122;
  const points = samples.filter(point => series.some(([index]) => point[index] !== null));
  if (!points.length) { svg.appendChild(el("text", {x: 150, y: 70, "text-anchor": "middle"}, "no samples yet")); return; }
  const t0 = points[0][0], t1 = Math.max(points[points.length - 1][0], t0 + 1);
  const top = Math.max(1, ...points.flatMap(point => series.map(([index]) => point[index] || 0)));
  svg.appendChild(el("line", {x1: X0, y1: Y0, x2: W - 4, y2: Y0, stroke: "#999"}));
  svg.appendChild(el("line", {x1: X0, y1: 8, x2: X0, y2: Y0, stroke: "#999"}));
  svg.appendChild(el("text", {x: X0 - 3, y: 14, "text-anchor": "end"}, compact(top)));
  svg.appendChild(el("text", {x: X0 - 3, y: Y0, "text-anchor": "end"}, "0"));
  svg.appendChild(el("text", {x: W - 4, y: H - 3, "text-anchor": "end"}, `${(t1 - t0).toFixed(1)} s`));
  for (const [index, colour] of series) {
    const coordinates = points.filter(point => point[index] !== null).map(point =>
      `${(X0 + (point[0] - t0) / (t1 - t0) * (W - 4 - X0)).toFixed(1)},${(Y0 - point[index] / top * (Y0 - 8)).toFixed(1)}`);
    if (!coordinates.length) continue;
    svg.appendChild(el("polyline", {points: coordinates.join(" "), fill: "none", stroke: colour, "stroke-width": 2}));
    const [x, y] = coordinates[coordinates.length - 1].split(",");  // the latest sample, as a dot
    svg.appendChild(el("circle", {cx: x, cy: y, r: 3.5, fill: colour}));
  }
}

function compact(value) {
  if (value >= 1e6) return (value / 1e6).toFixed(1) + "M";
  if (value >= 1e3) return (value / 1e3).toFixed(1) + "k";
  return String(Math.round(value * 10) / 10);
}

// --- the packet list ------------------------------------------------------------------------------
function packetItem(message) {
  const li = document.createElement("li");
  const arrow = message.direction === "out" ? "> " : "< ";
  li.textContent = `${message.time.toFixed(6)} ${arrow}${message.line}${message.lost ? "   [" + message.lost + "]" : ""}`;
  li.className = message.direction + (message.lost ? " lost" : "");
  return li;
}

function drawPackets() {
  const list = document.getElementById("packets");
  const connection = connections.get(selected);
  list.replaceChildren(...(connection ? connection.lines : other).map(packetItem));
  list.scrollTop = list.scrollHeight;
}

function appendPackets(messages) {
  const list = document.getElementById("packets");
  list.append(...messages.map(packetItem));
  while (list.children.length > limits.packet_lines) list.firstChild.remove();
  list.scrollTop = list.scrollHeight;
}

// --- the labs (ustack lab --web) -------------------------------------------------------------------
async function offerLabs() {
  const answer = await (await fetch("/labs")).json();
  if (!answer.can_start) return;
  const place = document.getElementById("labs");
  place.append("Start a lab: ");
  for (const lab of answer.labs) {
    const button = document.createElement("button");
    button.textContent = lab.name;
    button.title = lab.summary;
    button.dataset.lab = lab.name;
    button.addEventListener("click", async () => {
      const reply = await (await fetch(`/labs/${lab.name}`, {method: "POST"})).json();
      document.getElementById("status").textContent = reply.error || `lab ${lab.name} running`;
    });
    place.appendChild(button);
  }
}

// --- start ---------------------------------------------------------------------------------------
async function start() {
  const response = await fetch("/diagram.svg");
  document.getElementById("diagram").innerHTML = await response.text();
  const status = document.getElementById("status");
  const events = new EventSource("/events");
  events.onopen = () => { status.textContent = "live"; status.className = "status live"; };
  events.onerror = () => { status.textContent = "reconnecting…"; status.className = "status"; };
  events.onmessage = event => handle(JSON.parse(event.data));
  offerLabs();
}

start();
