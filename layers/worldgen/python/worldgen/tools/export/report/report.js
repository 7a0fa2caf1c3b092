"use strict";
(function () {
  const data = JSON.parse(document.getElementById("world-data").textContent);
  const nodes = data.nodes, edges = data.edges, tables = data.tables;
  const byId = new Map(nodes.map((n, i) => [n.id, i]));
  const tieById = new Map(edges.map((e, j) => [e.k === undefined ? null : `${e.f}/${e.k}`, j]).filter(([id]) => id));
  const SVG = "http://www.w3.org/2000/svg";
  const colour = (t) => `hsl(${Math.round((t * 360) / tables.length)}, 62%, ${t % 2 ? 40 : 52}%)`;
  const title = (table) => table.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const link = (i) => `<a href="#row/${esc(nodes[i].id)}">${esc(nodes[i].l)}</a>`;
  const isTie = (e) => e.k !== undefined; // a relationship row; otherwise a reference between rows
  const adjacency = nodes.map(() => []);
  edges.forEach((e, j) => { adjacency[e.s].push([e.t, j, "out"]); adjacency[e.t].push([e.s, j, "in"]); });
  const degree = adjacency.map((a) => a.length);
  const radius = nodes.map((n, i) => (n.t === 0 ? 7 : 3.5) + 1.3 * Math.sqrt(degree[i]));

  function connected(start, hops) {
    const seen = new Set([start]); let frontier = [start]; const found = [];
    for (let h = 0; h < hops; h++) {
      const next = [];
      for (const c of frontier) for (const [o] of adjacency[c]) if (!seen.has(o)) { seen.add(o); next.push(o); found.push(o); }
      frontier = next;
    }
    return found;
  }

  const simNodes = nodes.map(() => ({})); // the layout's positions (d3-force fills x, y)
  let scale = 1; // screen pixels per drawing unit

  // ---- the drawing: edges, then nodes, then names, in one SVG whose viewBox follows the layout
  const svg = document.getElementById("graph");
  const layer = (cls) => { const g = document.createElementNS(SVG, "g"); g.setAttribute("class", cls); svg.appendChild(g); return g; };
  const edgeLayer = layer("edges"), nodeLayer = layer("nodes"), labelLayer = layer("labels");
  const tip = (el, text) => { const t = document.createElementNS(SVG, "title"); t.textContent = text; el.appendChild(t); };
  const edgeEls = edges.map((e) => {
    const line = document.createElementNS(SVG, "line");
    line.setAttribute("class", isTie(e) ? "edge rel" : "edge ref");
    line.dataset.label = e.l;
    tip(line, `${nodes[e.s].l} · ${e.l} · ${nodes[e.t].l}`);
    edgeLayer.appendChild(line); return line;
  });
  const nodeEls = nodes.map((n, i) => {
    const c = document.createElementNS(SVG, "circle");
    c.setAttribute("class", n.t === 0 ? "node pc" : "node");
    c.setAttribute("r", radius[i].toFixed(1)); c.setAttribute("fill", colour(n.t)); c.dataset.id = n.id;
    tip(c, `${n.l} (${title(tables[n.t])}, ${degree[i]} links)`);
    c.addEventListener("click", (event) => { event.stopPropagation(); location.hash = "#row/" + n.id; });
    c.addEventListener("mouseenter", () => showName(i, true));
    c.addEventListener("mouseleave", () => showName(i, false));
    nodeLayer.appendChild(c); return c;
  });
  // names always shown: the PCs and the most connected things; the others on hover or in a focus
  const biggest = new Set(nodes.map((n, i) => i).sort((a, b) => degree[b] - degree[a]).slice(0, 12));
  nodes.forEach((n, i) => { if (n.t === 0) biggest.add(i); });
  const nameEls = new Map();
  function nameEl(i) {
    if (!nameEls.has(i)) {
      const t = document.createElementNS(SVG, "text"); t.setAttribute("class", "name"); t.textContent = nodes[i].l;
      labelLayer.appendChild(t); nameEls.set(i, t); placeName(i);
    }
    return nameEls.get(i);
  }
  biggest.forEach((i) => nameEl(i).classList.add("always"));
  let focusNames = new Set();
  function showName(i, on) {
    const el = nameEl(i);
    el.classList.toggle("hover", on);
    el.classList.toggle("shown", on || biggest.has(i) || focusNames.has(i));
  }
  biggest.forEach((i) => showName(i, false));
  let tieLabels = []; // [edge index, <text>] of the focused node's edges

  // ---- the layout: d3-force (inlined above, see docs/decisions.md), run in slices of a frame
  const simulation = d3.forceSimulation(simNodes)
    .force("link", d3.forceLink(edges.map((e) => ({ source: e.s, target: e.t, tie: isTie(e) })))
      .distance((l) => (l.tie ? 38 : 48)))
    .force("charge", d3.forceManyBody().strength(-55).distanceMax(420))
    .force("x", d3.forceX().strength(0.05))
    .force("y", d3.forceY().strength(0.05))
    .alphaDecay(1 - Math.pow(0.001, 1 / 200)) // cools in 200 ticks (d3's default: 300); it settles as well here
    .stop();
  function fit() {
    // the frame fits the drawing with a margin of at least MARGIN screen pixels on every side
    const MARGIN = 24, w = svg.clientWidth || 1000, h = svg.clientHeight || 700;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    simNodes.forEach((p, i) => {
      x0 = Math.min(x0, p.x - radius[i]); y0 = Math.min(y0, p.y - radius[i]);
      x1 = Math.max(x1, p.x + radius[i]); y1 = Math.max(y1, p.y + radius[i]);
    });
    if (!isFinite(x0)) { x0 = y0 = -50; x1 = y1 = 50; }
    const bw = Math.max(x1 - x0, 1), bh = Math.max(y1 - y0, 1);
    const pad = Math.max(MARGIN * bw / Math.max(w - 2 * MARGIN, 1), MARGIN * bh / Math.max(h - 2 * MARGIN, 1), 10);
    base = { x: x0 - pad, y: y0 - pad, w: bw + 2 * pad, h: bh + 2 * pad };
    applyView();
  }
  // the reader's zoom (wheel) and pan (drag) over the fitted frame; a double click goes back to it
  let base = { x: 0, y: 0, w: 1000, h: 700 }, zoom = 1, centre = null;
  function applyView() {
    const w = base.w / zoom, h = base.h / zoom;
    const c = centre || { x: base.x + base.w / 2, y: base.y + base.h / 2 };
    svg.setAttribute("viewBox", `${(c.x - w / 2).toFixed(1)} ${(c.y - h / 2).toFixed(1)} ${w.toFixed(1)} ${h.toFixed(1)}`);
    scale = Math.min((svg.clientWidth || 1000) / w, (svg.clientHeight || 700) / h);
    labelLayer.setAttribute("font-size", (11 / scale).toFixed(2));
    labelLayer.setAttribute("stroke-width", (3 / scale).toFixed(2));
  }
  function toDrawing(event) {
    const point = svg.createSVGPoint(); point.x = event.clientX; point.y = event.clientY;
    return point.matrixTransform(svg.getScreenCTM().inverse());
  }
  svg.addEventListener("wheel", (event) => {
    event.preventDefault();
    const next = Math.min(16, Math.max(1, zoom * Math.exp(-event.deltaY * 0.0015)));
    const p = toDrawing(event), c = centre || { x: base.x + base.w / 2, y: base.y + base.h / 2 };
    centre = next === 1 ? null : { x: p.x + (c.x - p.x) * (zoom / next), y: p.y + (c.y - p.y) * (zoom / next) };
    zoom = next; applyView(); nameEls.forEach((el, i) => placeName(i));
  }, { passive: false });
  let drag = null, dragged = false;
  svg.addEventListener("pointerdown", (event) => { drag = { x: event.clientX, y: event.clientY }; dragged = false; });
  svg.addEventListener("pointermove", (event) => {
    if (!drag || zoom === 1) return;
    const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) dragged = true;
    const c = centre || { x: base.x + base.w / 2, y: base.y + base.h / 2 };
    centre = { x: c.x - dx / scale, y: c.y - dy / scale }; drag = { x: event.clientX, y: event.clientY };
    applyView();
  });
  window.addEventListener("pointerup", () => { drag = null; });
  svg.addEventListener("dblclick", () => { zoom = 1; centre = null; applyView(); nameEls.forEach((el, i) => placeName(i)); });
  function placeName(i) {
    const el = nameEls.get(i), p = simNodes[i];
    if (el && p.x !== undefined) { el.setAttribute("x", p.x.toFixed(1)); el.setAttribute("y", (p.y - radius[i] - 2 / scale).toFixed(1)); }
  }
  function placeTieLabel([j, el]) {
    const a = simNodes[edges[j].s], b = simNodes[edges[j].t];
    el.setAttribute("x", ((a.x + b.x) / 2).toFixed(1)); el.setAttribute("y", ((a.y + b.y) / 2).toFixed(1));
  }
  function draw() {
    fit();
    edges.forEach((e, j) => {
      const l = edgeEls[j], a = simNodes[e.s], b = simNodes[e.t];
      l.setAttribute("x1", a.x.toFixed(1)); l.setAttribute("y1", a.y.toFixed(1));
      l.setAttribute("x2", b.x.toFixed(1)); l.setAttribute("y2", b.y.toFixed(1));
    });
    simNodes.forEach((p, i) => { nodeEls[i].setAttribute("cx", p.x.toFixed(1)); nodeEls[i].setAttribute("cy", p.y.toFixed(1)); });
    nameEls.forEach((el, i) => placeName(i));
    tieLabels.forEach(placeTieLabel);
  }
  // Painting ~1,700 SVG elements costs more than many ticks (most of the time on a slow machine), so
  // the drawing stays hidden while the layout runs, in slices that keep the page responsive, and is
  // drawn once, settled.
  const started = performance.now();
  svg.classList.add("settling");
  function slice() {
    const until = performance.now() + 100;
    while (simulation.alpha() > simulation.alphaMin() && performance.now() < until) simulation.tick();
    if (simulation.alpha() > simulation.alphaMin()) { setTimeout(slice, 0); return; }
    draw();
    svg.classList.remove("settling");
    document.getElementById("graph-stats").textContent = stats;
    api.settled = true;
    api.settleMs = Math.round(performance.now() - started);
    document.body.dataset.layout = "done";
  }
  setTimeout(slice, 0);
  window.addEventListener("resize", () => draw());
  const ties = edges.filter(isTie).length;
  const stats = `${nodes.length} things · ${ties} ties · ${edges.length - ties} references`;
  document.getElementById("graph-stats").textContent = stats + " · laying out…";

  // ---- focus: a node (or a PC) and everything within two links; the rest fades
  const hiddenKinds = new Set();
  let focused = null, keep = null;
  function visible(i) { return !hiddenKinds.has(nodes[i].t); }
  function paint() {
    nodeEls.forEach((el, i) => {
      el.classList.toggle("hidden", !visible(i));
      el.classList.toggle("dim", keep !== null && !keep.has(i));
      el.classList.toggle("focus", i === focused);
      el.classList.toggle("far", keep !== null && keep.has(i) && !focusNames.has(i)); // two links away
    });
    edgeEls.forEach((el, j) => {
      const e = edges[j];
      el.classList.toggle("hidden", !visible(e.s) || !visible(e.t));
      el.classList.toggle("dim", keep !== null && !(keep.has(e.s) && keep.has(e.t)));
      el.classList.toggle("near", focused !== null && (e.s === focused || e.t === focused));
    });
    nameEls.forEach((el, i) => { el.classList.toggle("hidden", !visible(i)); el.classList.toggle("dim", keep !== null && !keep.has(i)); });
  }
  function focusNode(i) {
    clearFocus(false);
    focused = i; keep = new Set([i, ...connected(i, 2)]);
    focusNames = new Set([i, ...adjacency[i].map(([o]) => o)]);
    focusNames.forEach((o) => showName(o, false));
    tieLabels = adjacency[i].filter(([, j]) => isTie(edges[j])).map(([, j]) => {
      const t = document.createElementNS(SVG, "text"); t.setAttribute("class", "tie-label");
      t.textContent = edges[j].l; labelLayer.appendChild(t); return [j, t];
    });
    tieLabels.forEach(placeTieLabel);
    paint();
    return [...keep].filter(visible).length;
  }
  function clearFocus(repaint = true) {
    tieLabels.forEach(([, el]) => el.remove()); tieLabels = [];
    const names = focusNames; focusNames = new Set(); names.forEach((o) => showName(o, false));
    focused = null; keep = null;
    if (repaint) paint();
  }
  svg.addEventListener("click", () => { if (focused !== null && !dragged) { select.value = ""; clearFocus(); } });

  // ---- each PC's web: the select and the PC links focus its neighbourhood
  const pcs = nodes.map((n, i) => i).filter((i) => nodes[i].t === 0);
  const select = document.getElementById("pc-filter");
  pcs.forEach((i) => { const o = document.createElement("option"); o.value = nodes[i].k; o.textContent = nodes[i].l; select.appendChild(o); });
  select.addEventListener("change", () => {
    if (select.value) location.hash = "#pc/" + select.value; else { clearFocus(); location.hash = "#"; }
  });
  document.getElementById("pcs").innerHTML = pcs.map((i) => `<a href="#pc/${esc(nodes[i].k)}">${esc(nodes[i].l)}</a>`).join("");

  // ---- the legend: a colour per kind, grouped as the phases made them; a kind or a group can be hidden
  const counts = tables.map((t, k) => nodes.filter((n) => n.t === k).length);
  const kindBox = (k) => `<label><input type="checkbox" checked data-kind="${k}"><i style="background:${colour(k)}"></i><a href="#table/${esc(tables[k])}">${esc(title(tables[k]))}</a> ${counts[k]}</label>`;
  document.getElementById("legend").innerHTML = data.groups.map(([name, kinds], g) =>
    `<div class="group"><label class="group-name"><input type="checkbox" checked data-group="${g}">${esc(name)}</label> ${kinds.map(kindBox).join("")}</div>`).join("") +
    `<div class="key"><b class="rel"></b>tie (a relationship row) <b class="ref"></b>reference (a row's field)</div>`;
  const kindBoxes = [...document.querySelectorAll("#legend input[data-kind]")];
  const groupBoxes = [...document.querySelectorAll("#legend input[data-group]")];
  function syncGroups() {
    groupBoxes.forEach((box) => {
      const kinds = data.groups[Number(box.dataset.group)][1];
      const shown = kinds.filter((k) => !hiddenKinds.has(k)).length;
      box.checked = shown === kinds.length; box.indeterminate = shown > 0 && shown < kinds.length;
    });
  }
  kindBoxes.forEach((box) => box.addEventListener("change", () => {
    const k = Number(box.dataset.kind);
    if (box.checked) hiddenKinds.delete(k); else hiddenKinds.add(k);
    syncGroups(); paint();
  }));
  groupBoxes.forEach((box) => box.addEventListener("change", () => {
    for (const k of data.groups[Number(box.dataset.group)][1]) {
      if (box.checked) hiddenKinds.delete(k); else hiddenKinds.add(k);
      kindBoxes[k].checked = box.checked;
    }
    syncGroups(); paint();
  }));

  // ---- pages, routed by the URL fragment so every view has an address
  const view = document.getElementById("view");
  function value(v) { return Array.isArray(v) ? v.join(", ") : typeof v === "object" ? JSON.stringify(v) : v; }
  function fields(f) {
    return "<dl>" + Object.entries(f).map(([k, v]) => `<dt>${esc(k.replace(/_/g, " "))}</dt><dd>${esc(value(v))}</dd>`).join("") + "</dl>";
  }
  function tieLink(j) {
    const e = edges[j];
    return isTie(e) ? `<a class="tie" href="#row/${esc(e.f)}/${esc(e.k)}">${esc(e.l)}</a>` : `<span class="ref-label">${esc(e.l)}</span>`;
  }
  function linkList(i) {
    const items = adjacency[i].map(([o, j, dir]) => `<li>${dir === "out" ? "→" : "←"} ${tieLink(j)}: ${link(o)} <span class="kind">${esc(title(tables[nodes[o].t]))}</span>${isTie(edges[j]) && edges[j].d.description ? `<br><span class="kind">${esc(edges[j].d.description)}</span>` : ""}</li>`);
    return items.length ? `<h3>Links (${items.length})</h3><ul class="rows" id="links">${items.join("")}</ul>` : "";
  }
  function grouped(indices) {
    const groups = new Map();
    for (const i of indices) { const t = nodes[i].t; if (!groups.has(t)) groups.set(t, []); groups.get(t).push(i); }
    return [...groups.entries()].sort((a, b) => a[0] - b[0])
      .map(([t, list]) => `<h3>${esc(title(tables[t]))} (${list.length})</h3><ul class="rows">${list.map((i) => `<li>${link(i)}</li>`).join("")}</ul>`).join("");
  }
  const pages = {
    home() {
      const rows = tables.map((t, k) => `<li><a href="#table/${esc(t)}">${esc(title(t))}</a> (${counts[k]})</li>`);
      return `<h2>${esc(data.campaign.name)}</h2><p>${esc(data.campaign.setting)}</p><p class="kind">Tone: ${esc(data.campaign.tone)} · models: ${esc(data.models.join(", "))}${data.models.includes("procedural") ? " (offline procedural generator)" : ""} · cost $${data.cost}${data.audience === "players" ? " · players' copy" : ""}</p><ul class="rows">${rows.join("")}</ul>`;
    },
    pc(key) {
      const i = byId.get("player_characters/" + key);
      if (i === undefined) return `<p>No player character ${esc(key)}.</p>`;
      select.value = key; focusNode(i);
      return `<h2 id="pc-page">${esc(nodes[i].l)}</h2><p class="kind">Player character</p>${fields(nodes[i].f)}${linkList(i)}<h2>Everything within two links</h2>${grouped(connected(i, 2))}`;
    },
    row(id) {
      const j = tieById.get(id);
      if (j !== undefined) {
        const e = edges[j];
        const further = e.x.map(([name, o]) => `<dt>${esc(name)}</dt><dd>${link(o)}</dd>`).join("");
        return `<h2 id="tie-page" data-id="${esc(id)}">${link(e.s)} · ${esc(e.l)} · ${link(e.t)}</h2><p class="kind">${esc(title(e.f))} · key ${esc(e.k)}</p>${fields(e.d)}${further ? `<dl>${further}</dl>` : ""}`;
      }
      const i = byId.get(id);
      if (i === undefined) return `<p>No row ${esc(id)}.</p>`;
      focusNode(i);
      return `<h2 id="row-page" data-id="${esc(id)}">${esc(nodes[i].l)}</h2><p class="kind">${esc(title(tables[nodes[i].t]))} · key ${esc(nodes[i].k)}</p>${fields(nodes[i].f)}${linkList(i)}`;
    },
    table(name) {
      const t = tables.indexOf(name);
      return `<h2>${esc(title(name))}</h2>${grouped(nodes.map((n, i) => i).filter((i) => nodes[i].t === t).sort((a, b) => nodes[a].l.localeCompare(nodes[b].l)))}`;
    },
    search(query) {
      const q = query.toLowerCase();
      const hits = nodes.map((n, i) => i).filter((i) => nodes[i].l.toLowerCase().includes(q) || String(nodes[i].f.description || "").toLowerCase().includes(q));
      const tieHits = edges.map((e, j) => j).filter((j) => isTie(edges[j]) && (edges[j].l.toLowerCase().includes(q) || String(edges[j].d.description || "").toLowerCase().includes(q)));
      const tieList = tieHits.length ? `<h3>Ties (${tieHits.length})</h3><ul class="rows" id="search-ties">${tieHits.map((j) => `<li>${link(edges[j].s)} · ${tieLink(j)} · ${link(edges[j].t)}</li>`).join("")}</ul>` : "";
      return `<h2>Search: ${esc(query)}</h2><p class="kind" id="search-count">${hits.length} found</p><div id="search-results">${grouped(hits)}</div>${tieList}`;
    },
  };
  function route() {
    const hash = decodeURIComponent(location.hash.slice(1));
    const cut = hash.indexOf("/");
    const [name, arg] = cut < 0 ? [hash, ""] : [hash.slice(0, cut), hash.slice(cut + 1)];
    view.innerHTML = (pages[name] || pages.home)(arg);
    const search = document.getElementById("search");
    if (name === "search" && search.value !== arg) search.value = arg;
  }
  document.getElementById("search").addEventListener("input", (event) => {
    const q = event.target.value.trim();
    location.hash = q ? "#search/" + encodeURIComponent(q) : "#";
  });

  // ---- for tests and scripts: the graph as drawn
  const api = {
    nodes: nodes.map((n, i) => ({ id: n.id, kind: tables[n.t], label: n.l, degree: degree[i] })),
    edges: edges.map((e) => ({
      source: nodes[e.s].id, target: nodes[e.t].id, label: e.l,
      kind: isTie(e) ? "relationship" : "reference", field: e.f, key: isTie(e) ? e.k : null,
    })),
    settled: false,
    settleMs: null,
    positions() {
      // node centres and the drawing's frame, in page pixels
      const box = svg.getBoundingClientRect(), m = svg.getScreenCTM(), point = svg.createSVGPoint();
      const out = {};
      simNodes.forEach((p, i) => {
        point.x = p.x; point.y = p.y; const q = point.matrixTransform(m);
        out[nodes[i].id] = { x: q.x + window.scrollX, y: q.y + window.scrollY };
      });
      return { frame: { x: box.left + window.scrollX, y: box.top + window.scrollY, width: box.width, height: box.height }, nodes: out };
    },
    focusPlayerCharacter(key) {
      const i = byId.get("player_characters/" + key);
      if (i === undefined) throw new Error(`no player character ${key}`);
      select.value = key;
      return focusNode(i);
    },
    focus(id) { const i = byId.get(id); if (i === undefined) throw new Error(`no node ${id}`); return focusNode(i); },
    clearFocus() { select.value = ""; clearFocus(); },
    shown() { return nodes.filter((n, i) => visible(i) && (keep === null || keep.has(i))).map((n) => n.id); },
  };
  window.worldgenGraph = api;
  window.addEventListener("hashchange", route);
  route();
})();
