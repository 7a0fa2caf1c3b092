"use strict";
(function () {
  const data = JSON.parse(document.getElementById("world-data").textContent);
  const nodes = data.nodes, edges = data.edges, tables = data.tables;
  const byId = new Map(nodes.map((n, i) => [n.id, i]));
  const SVG = "http://www.w3.org/2000/svg";
  const W = 1000, H = 700;
  const colour = (t) => `hsl(${Math.round((t * 360) / tables.length)}, 62%, 48%)`;
  const title = (table) => table.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const link = (i) => `<a href="#row/${esc(nodes[i].id)}">${esc(nodes[i].l)}</a>`;
  const adjacency = nodes.map(() => []);
  edges.forEach((edge, e) => { adjacency[edge.s].push([edge.t, edge.l, e, "out"]); adjacency[edge.t].push([edge.s, edge.l, e, "in"]); });

  function connected(start, hops) {
    const seen = new Set([start]); let frontier = [start]; const found = [];
    for (let h = 0; h < hops; h++) {
      const next = [];
      for (const c of frontier) for (const [o] of adjacency[c]) if (!seen.has(o)) { seen.add(o); next.push(o); found.push(o); }
      frontier = next;
    }
    return found;
  }

  // ---- the graph: SVG drawn at once on a first layout, then relaxed by a force simulation
  const svg = document.getElementById("graph");
  const pos = nodes.map((n, i) => {
    const a = (2 * Math.PI * n.t) / tables.length + (i % 17) * 0.02, r = 120 + (i % 7) * 35;
    return { x: W / 2 + r * Math.cos(a), y: H / 2 + r * Math.sin(a), vx: 0, vy: 0 };
  });
  const edgeEls = edges.map((edge) => {
    const line = document.createElementNS(SVG, "line");
    line.setAttribute("class", edge.k === undefined ? "edge ref" : "edge rel"); line.dataset.field = edge.f;
    const tip = document.createElementNS(SVG, "title"); tip.textContent = `${nodes[edge.s].l} · ${edge.l} · ${nodes[edge.t].l}`;
    line.appendChild(tip);
    svg.appendChild(line); return line;
  });
  const nodeEls = nodes.map((n, i) => {
    const c = document.createElementNS(SVG, "circle");
    c.setAttribute("class", n.t === 0 ? "node pc" : "node");
    c.setAttribute("r", n.t === 0 ? 9 : 5); c.setAttribute("fill", colour(n.t)); c.dataset.id = n.id;
    const tip = document.createElementNS(SVG, "title"); tip.textContent = `${n.l} (${title(tables[n.t])})`;
    c.appendChild(tip);
    c.addEventListener("click", () => { location.hash = "#row/" + n.id; });
    svg.appendChild(c); return c;
  });
  function draw() {
    edges.forEach(({ s, t }, e) => {
      const l = edgeEls[e];
      l.setAttribute("x1", pos[s].x.toFixed(1)); l.setAttribute("y1", pos[s].y.toFixed(1));
      l.setAttribute("x2", pos[t].x.toFixed(1)); l.setAttribute("y2", pos[t].y.toFixed(1));
    });
    nodes.forEach((n, i) => { nodeEls[i].setAttribute("cx", pos[i].x.toFixed(1)); nodeEls[i].setAttribute("cy", pos[i].y.toFixed(1)); });
  }
  let ticks = 0; const MAX_TICKS = 220;
  function tick() {
    const k = 0.6 * (1 - ticks / MAX_TICKS) + 0.05;
    for (let i = 0; i < nodes.length; i++) {
      const p = pos[i];
      for (let j = i + 1; j < nodes.length; j++) {
        const q = pos[j]; let dx = p.x - q.x, dy = p.y - q.y; let d2 = dx * dx + dy * dy;
        if (d2 > 40000) continue;
        if (d2 < 1) { dx = Math.random() - 0.5; dy = Math.random() - 0.5; d2 = 1; }
        const f = 140 / d2; p.vx += dx * f; p.vy += dy * f; q.vx -= dx * f; q.vy -= dy * f;
      }
    }
    for (const { s, t } of edges) {
      const p = pos[s], q = pos[t]; const dx = q.x - p.x, dy = q.y - p.y; const d = Math.sqrt(dx * dx + dy * dy) || 1;
      const f = (d - 45) * 0.02; p.vx += (dx / d) * f; p.vy += (dy / d) * f; q.vx -= (dx / d) * f; q.vy -= (dy / d) * f;
    }
    for (const p of pos) {
      p.vx += (W / 2 - p.x) * 0.012; p.vy += (H / 2 - p.y) * 0.012;
      p.x = Math.max(8, Math.min(W - 8, p.x + p.vx * k)); p.y = Math.max(8, Math.min(H - 8, p.y + p.vy * k));
      p.vx *= 0.5; p.vy *= 0.5;
    }
    ticks++;
  }
  function animate() {
    for (let n = 0; n < 4 && ticks < MAX_TICKS; n++) tick();
    draw();
    if (ticks < MAX_TICKS) requestAnimationFrame(animate); else document.body.dataset.layout = "done";
  }
  draw();
  requestAnimationFrame(animate);
  document.getElementById("graph-stats").textContent = `${nodes.length} rows · ${edges.length} links`;
  document.getElementById("legend").innerHTML = tables
    .map((t, i) => `<span><i style="background:${colour(i)}"></i><a href="#table/${esc(t)}">${esc(title(t))}</a></span>`).join("");

  // ---- filter by PC: dim everything not within two links of the PC
  const pcs = nodes.map((n, i) => i).filter((i) => nodes[i].t === 0);
  const select = document.getElementById("pc-filter");
  pcs.forEach((i) => { const o = document.createElement("option"); o.value = nodes[i].id; o.textContent = nodes[i].l; select.appendChild(o); });
  select.addEventListener("change", () => {
    const chosen = byId.get(select.value);
    const keep = chosen === undefined ? null : new Set([chosen, ...connected(chosen, 2)]);
    nodeEls.forEach((el, i) => el.classList.toggle("dim", keep !== null && !keep.has(i)));
    edgeEls.forEach((el, e) => el.classList.toggle("dim", keep !== null && !(keep.has(edges[e].s) && keep.has(edges[e].t))));
  });
  document.getElementById("pcs").innerHTML = pcs.map((i) => `<a href="#pc/${esc(nodes[i].k)}">${esc(nodes[i].l)}</a>`).join("");

  // ---- pages, routed by the URL fragment so every view has an address
  const view = document.getElementById("view");
  function fields(n) {
    return "<dl>" + Object.entries(n.f).map(([k, v]) =>
      `<dt>${esc(k.replace(/_/g, " "))}</dt><dd>${esc(Array.isArray(v) ? v.join(", ") : typeof v === "object" ? JSON.stringify(v) : v)}</dd>`).join("") + "</dl>";
  }
  function linkList(i) {
    const items = adjacency[i].map(([o, f, , dir]) => `<li>${dir === "out" ? "→" : "←"} ${esc(f.replace(/_/g, " "))}: ${link(o)} <span class="kind">${esc(title(tables[nodes[o].t]))}</span></li>`);
    return items.length ? `<h3>Links</h3><ul class="rows">${items.join("")}</ul>` : "";
  }
  function grouped(indices) {
    const groups = new Map();
    for (const i of indices) { const t = nodes[i].t; if (!groups.has(t)) groups.set(t, []); groups.get(t).push(i); }
    return [...groups.entries()].sort((a, b) => a[0] - b[0])
      .map(([t, list]) => `<h3>${esc(title(tables[t]))} (${list.length})</h3><ul class="rows">${list.map((i) => `<li>${link(i)}</li>`).join("")}</ul>`).join("");
  }
  const pages = {
    home() {
      const counts = tables.map((t, i) => `<li><a href="#table/${esc(t)}">${esc(title(t))}</a> (${nodes.filter((n) => n.t === i).length})</li>`);
      return `<h2>${esc(data.campaign.name)}</h2><p>${esc(data.campaign.setting)}</p><p class="kind">Tone: ${esc(data.campaign.tone)} · models: ${esc(data.models.join(", "))}${data.models.includes("procedural") ? " (offline procedural generator)" : ""} · cost $${data.cost}</p><ul class="rows">${counts.join("")}</ul>`;
    },
    pc(key) {
      const i = byId.get("player_characters/" + key);
      if (i === undefined) return `<p>No player character ${esc(key)}.</p>`;
      return `<h2 id="pc-page">${esc(nodes[i].l)}</h2><p class="kind">Player character</p>${fields(nodes[i])}<h2>Everything connected</h2>${grouped(connected(i, 2))}`;
    },
    row(id) {
      const i = byId.get(id);
      if (i === undefined) return `<p>No row ${esc(id)}.</p>`;
      return `<h2 id="row-page" data-id="${esc(id)}">${esc(nodes[i].l)}</h2><p class="kind">${esc(title(tables[nodes[i].t]))} · key ${esc(nodes[i].k)}</p>${fields(nodes[i])}${linkList(i)}`;
    },
    table(name) {
      const t = tables.indexOf(name);
      return `<h2>${esc(title(name))}</h2>${grouped(nodes.map((n, i) => i).filter((i) => nodes[i].t === t).sort((a, b) => nodes[a].l.localeCompare(nodes[b].l)))}`;
    },
    search(query) {
      const q = query.toLowerCase();
      const hits = nodes.map((n, i) => i).filter((i) => nodes[i].l.toLowerCase().includes(q) || String(nodes[i].f.description || "").toLowerCase().includes(q));
      return `<h2>Search: ${esc(query)}</h2><p class="kind" id="search-count">${hits.length} found</p><div id="search-results">${grouped(hits)}</div>`;
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
  window.addEventListener("hashchange", route);
  route();
})();
