// The dashboard: the admin API's topology, services, proxies and
// diagnostics, drawn once and redrawn whenever the event stream says
// something changed. Read-only: it changes nothing in the mesh.
//
// What it reads (all JSON, the admin API's public contract):
//   /api/v1/topology     nodes and edges of the graph
//   /api/v1/services     per-service ports, endpoints, subsets, policies
//   /api/v1/replicas/proxies  every replica's proxies (sync state per type,
//                        NACKs and their objects), merged
//   /api/v1/diagnostics  config errors and warnings
//   /api/v1/snapshot     the generation served and how many proxies ACKed it
//   /api/v1/events       Server-Sent Events: when to read the rest again
//
// With --admin-read-auth the reads need the admin token: the page asks for
// it once and exchanges it for a session cookie (POST /api/v1/session),
// since a browser's EventSource cannot send an Authorization header.

import cytoscape from "cytoscape";

const TYPES = [
  ["CDS", "type.googleapis.com/envoy.config.cluster.v3.Cluster"],
  ["LDS", "type.googleapis.com/envoy.config.listener.v3.Listener"],
  ["EDS", "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"],
  ["RDS", "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"],
  ["SDS", "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"],
];

const state = {
  topology: { nodes: [], edges: [] },
  services: [],
  proxies: [],
  servers: [],
  diagnostics: [],
  snapshot: null,
  selected: null,
  graphKey: "",
  events: null,
  // Read by tests and people alike: how many times the page has drawn.
  renders: 0,
};

class Unauthorized extends Error {}

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin", headers: { accept: "application/json" } });
  if (response.status === 401) throw new Unauthorized(path);
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

// ---- the sync state of one type, as `bowline proxy-status` reads it ----

function syncState(status) {
  if (!status) return "-";
  const { sent_version: sent, acked_version: acked, nack } = status;
  if (sent == null) return "NOT SENT";
  if (acked != null && sent === acked) return "SYNCED";
  if (nack && nack.version === sent) return "NACK";
  return "STALE";
}

function currentNacks(proxy) {
  const out = [];
  for (const [label, url] of TYPES) {
    const status = proxy.xds[url];
    if (syncState(status) === "NACK") out.push({ label, nack: status.nack });
  }
  return out;
}

// ---- small DOM helpers ----

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function objectName(o) {
  const where = o.file ? ` (${o.file}${o.document != null ? ` document ${o.document}` : ""})` : "";
  return `${o.kind} ${o.namespace}/${o.name}${where}`;
}

// ---- the graph ----

let cy = null;

// Whether `labels` (a workload's) carry every label of `selector`.
function selects(selector, labels) {
  return Object.entries(selector ?? {}).every(([k, v]) => (labels ?? {})[k] === v);
}

// A VirtualService that splits a service between its own subsets routes
// the service to itself; drawn as such it is a knot of loops. Instead its
// weights go on the service's edges to the workloads each subset selects,
// as a mesh user thinks of it ("reviews: v1 80% to reviews-v1"). Routes to
// another service stay service-to-service edges.
function foldSelfRoutes(topology, services) {
  const byHost = new Map(services.map((s) => [s.hostname, s]));
  const weights = new Map(); // endpoint edge key -> labels
  const kept = [];
  for (const e of topology.edges) {
    if (e.kind !== "route" || e.from !== e.to) {
      kept.push(e);
      continue;
    }
    const service = byHost.get(e.to.replace(/^service:/, ""));
    const subset = (service?.subsets ?? []).find((s) => s.name === e.subset);
    if (!service || (e.subset && !subset)) {
      kept.push(e);
      continue;
    }
    for (const endpoint of service.endpoints) {
      if (!endpoint.workload || (subset && !selects(subset.labels, endpoint.labels))) continue;
      const key = `${e.to}>workload:${endpoint.workload}`;
      const list = weights.get(key) ?? [];
      list.push(e);
      weights.set(key, list);
    }
  }
  const edges = kept.map((e) => {
    if (e.kind !== "endpoint") return e;
    const routes = weights.get(`${e.from}>${e.to}`);
    return routes ? { ...e, routes } : e;
  });
  return edges;
}

function edgeLabel(e) {
  if (e.kind === "route") return routeLabel(e);
  const port = e.port != null ? `:${e.port}` : "";
  if (e.routes) return `${e.routes.map(routeLabel).join(" · ")} ${port}`;
  return port;
}

function routeLabel(e) {
  const subset = e.subset ? e.subset + " " : "";
  const match = e.matches && e.matches !== "*" ? ` [${e.matches}]` : "";
  return `${subset}${e.weight ?? 100}%${match}`;
}

function elements(topology, services) {
  const nodes = topology.nodes.map((n) => ({
    group: "nodes",
    data: { id: n.id, label: n.kind === "service" ? `${n.name}.${n.namespace}` : n.name, kind: n.kind, raw: n },
    classes: n.kind,
  }));
  const known = new Set(topology.nodes.map((n) => n.id));
  const edges = foldSelfRoutes(topology, services)
    .filter((e) => known.has(e.from) && known.has(e.to))
    .map((e) => {
      const classes = [e.kind];
      if (e.mtls) classes.push(e.mtls.toLowerCase());
      if (e.authz && e.authz.outcome === "DENY") classes.push("denied");
      const weight = e.routes ? Math.max(...e.routes.map((r) => r.weight ?? 100)) : (e.weight ?? 100);
      if (e.routes) classes.push("weighted");
      if ((e.kind === "route" || e.routes) && weight === 0) classes.push("idle");
      return {
        group: "edges",
        data: {
          id: `${e.from}>${e.to}:${e.kind}:${e.subset ?? ""}:${e.port ?? ""}:${e.matches ?? ""}`,
          source: e.from,
          target: e.to,
          label: edgeLabel(e),
          weight,
          raw: e,
        },
        classes: classes.join(" "),
      };
    });
  return [...nodes, ...edges];
}

const STYLE = [
  {
    selector: "node",
    style: {
      label: "data(label)",
      "font-family": "system-ui, sans-serif",
      "font-size": 11,
      color: "#1f2933",
      "text-valign": "bottom",
      "text-margin-y": 5,
      "text-background-color": "#ffffff",
      "text-background-opacity": 0.85,
      "text-background-padding": 2,
      width: 30,
      height: 30,
      "border-width": 2,
    },
  },
  { selector: "node.service", style: { shape: "round-rectangle", "background-color": "#dbeafe", "border-color": "#2563eb", width: 38 } },
  { selector: "node.workload", style: { shape: "ellipse", "background-color": "#dcfce7", "border-color": "#16a34a" } },
  { selector: "node.nack", style: { "background-color": "#fee2e2", "border-color": "#dc2626", "border-width": 4 } },
  { selector: "node:selected", style: { "overlay-color": "#2563eb", "overlay-opacity": 0.15, "overlay-padding": 6 } },
  {
    selector: "edge",
    style: {
      "curve-style": "bezier",
      "target-arrow-shape": "triangle",
      "arrow-scale": 0.9,
      width: 1.5,
      "line-color": "#94a3b8",
      "target-arrow-color": "#94a3b8",
      label: "data(label)",
      "font-size": 10,
      "font-family": "system-ui, sans-serif",
      color: "#334155",
      "text-background-color": "#f8fafc",
      "text-background-opacity": 0.9,
      "text-background-padding": 2,
      "text-rotation": "autorotate",
    },
  },
  {
    selector: "edge.route",
    style: {
      "line-color": "#2563eb",
      "target-arrow-color": "#2563eb",
      width: "mapData(weight, 0, 100, 1, 6)",
      color: "#1e3a8a",
      "font-weight": 600,
    },
  },
  { selector: "edge.endpoint", style: { "line-style": "dashed", "font-size": 9, "text-rotation": "none" } },
  { selector: "edge.weighted", style: { "line-style": "solid", width: "mapData(weight, 0, 100, 1.5, 6)", "font-size": 11, "font-weight": 600, color: "#1e3a8a" } },
  { selector: "edge.idle", style: { "line-style": "dotted", opacity: 0.6 } },
  { selector: "edge.strict", style: { "line-color": "#16a34a", "target-arrow-color": "#16a34a" } },
  { selector: "edge.permissive", style: { "line-color": "#d97706", "target-arrow-color": "#d97706" } },
  { selector: "edge.disable", style: { "line-color": "#dc2626", "target-arrow-color": "#dc2626" } },
  { selector: "edge.denied", style: { "line-color": "#7f1d1d", "target-arrow-color": "#7f1d1d", "target-arrow-shape": "tee", width: 3 } },
];

function drawGraph() {
  const els = elements(state.topology, state.services);
  const key = els.map((e) => e.data.id).join("|");
  const nacked = new Set();
  for (const p of state.proxies) {
    if (currentNacks(p).length > 0) nacked.add(`workload:${p.namespace}/${p.workload}`);
  }
  if (!cy) {
    cy = cytoscape({ container: document.getElementById("graph"), style: STYLE, wheelSensitivity: 0.3, minZoom: 0.2, maxZoom: 3 });
    cy.on("tap", "node", (evt) => select(evt.target.id()));
    cy.on("tap", (evt) => {
      if (evt.target === cy) select(null);
    });
    window.bowlineGraph = cy;
    window.bowlineState = state;
  }
  if (key !== state.graphKey) {
    // The shape changed: draw it again and lay it out (positions are kept
    // while only labels or states change, so nothing jumps).
    cy.elements().remove();
    cy.add(els);
    cy.layout({
      name: "breadthfirst",
      directed: true,
      spacingFactor: 1.15,
      padding: 30,
      roots: cy.nodes(".service").filter((n) => n.indegree(false) === 0),
      animate: false,
    }).run();
    // A small mesh fitted to the panel would be drawn huge.
    if (cy.zoom() > 1.1) {
      cy.zoom(1.1);
      cy.center();
    }
    state.graphKey = key;
  } else {
    for (const e of els) {
      const existing = cy.getElementById(e.data.id);
      existing.data(e.data);
      existing.classes(e.classes);
    }
  }
  cy.nodes().forEach((n) => {
    n.toggleClass("nack", nacked.has(n.id()));
  });
}

// ---- details of the selected node ----

function select(id) {
  state.selected = id;
  if (cy) {
    cy.nodes().unselect();
    if (id) cy.getElementById(id).select();
  }
  drawDetails();
}

function drawDetails() {
  const aside = document.getElementById("details");
  aside.replaceChildren();
  const id = state.selected;
  const node = state.topology.nodes.find((n) => n.id === id);
  if (!node) {
    aside.append(el("p", { class: "hint" }, "Select a service or a workload in the graph."));
    return;
  }
  if (node.kind === "service") aside.append(...serviceDetails(node));
  else aside.append(...workloadDetails(node));
}

function serviceDetails(node) {
  const service = state.services.find((s) => s.hostname === node.address);
  const out = [el("h2", {}, node.address), el("p", { class: "sub" }, `service · ${node.namespace}`)];
  if (!service) return out;
  out.push(
    el("h3", {}, "Ports"),
    el("ul", { class: "chips" }, service.ports.map((p) => el("li", {}, `${p.name || "-"} ${p.port}/${p.protocol}`))),
  );
  out.push(el("h3", {}, `Endpoints (${service.endpoints.length})`));
  const localities = service.endpoints.some((e) => e.locality);
  out.push(
    el(
      "table",
      { class: "small" },
      el(
        "thead",
        {},
        el("tr", {}, el("th", {}, "address"), el("th", {}, "workload"), el("th", {}, "identity"), localities ? el("th", {}, "locality") : null, el("th", {}, "weight")),
      ),
      el(
        "tbody",
        {},
        service.endpoints.map((e) =>
          el(
            "tr",
            {},
            el("td", {}, e.address),
            el("td", {}, e.workload ? e.workload.split("/")[1] : "-"),
            el("td", { title: e.identity ?? "" }, e.service_account ?? (e.identity ? "default" : "-")),
            localities ? el("td", {}, e.locality || "-") : null,
            el("td", {}, e.weight),
          ),
        ),
      ),
    ),
  );
  const subsets = service.subsets ?? [];
  out.push(el("h3", {}, "Subsets"));
  out.push(
    subsets.length
      ? el("ul", { class: "chips" }, subsets.map((s) => el("li", { title: JSON.stringify(s.labels) }, `${s.name} ${labelText(s.labels)}`)))
      : el("p", { class: "hint" }, "none"),
  );
  const routes = state.topology.edges.filter((e) => e.kind === "route" && e.from === node.id);
  if (routes.length) {
    out.push(el("h3", {}, "Routes"));
    out.push(
      el(
        "ul",
        { class: "routes" },
        routes.map((r) => el("li", {}, `${r.matches ?? "*"} → ${r.to.replace(/^service:/, "")}${r.subset ? ` (${r.subset})` : ""} ${r.weight}%`)),
      ),
    );
  }
  const policies = service.policies ?? [];
  out.push(el("h3", {}, "Policies that apply"));
  out.push(
    policies.length
      ? el("ul", { class: "policies" }, policies.map((p) => el("li", {}, el("b", {}, p.kind), ` ${p.namespace}/${p.name}`, p.file ? el("span", { class: "file" }, ` ${p.file}`) : null)))
      : el("p", { class: "hint" }, "none"),
  );
  return out;
}

function labelText(labels) {
  const entries = Object.entries(labels ?? {});
  return entries.length ? `{${entries.map(([k, v]) => `${k}=${v}`).join(", ")}}` : "";
}

function workloadDetails(node) {
  const out = [el("h2", {}, node.name), el("p", { class: "sub" }, `workload · ${node.namespace} · ${node.address}`)];
  const proxies = state.proxies.filter((p) => p.namespace === node.namespace && p.workload === node.name);
  out.push(el("h3", {}, "Sidecar"));
  if (!proxies.length) {
    out.push(el("p", { class: "hint" }, "no proxy connected"));
  }
  for (const p of proxies) {
    out.push(el("p", {}, el("code", {}, p.id)));
    for (const { label, nack } of currentNacks(p)) out.push(nackBox(label, nack));
  }
  const inbound = state.topology.edges.filter((e) => e.kind === "endpoint" && e.to === node.id);
  if (inbound.length) {
    out.push(el("h3", {}, "Reached from"));
    out.push(
      el(
        "ul",
        { class: "routes" },
        inbound.map((e) =>
          el("li", {}, `${e.from.replace(/^service:/, "")} → :${e.port} mTLS ${e.mtls}`, e.authz ? ` · authorization ${e.authz.outcome}` : ""),
        ),
      ),
    );
  }
  return out;
}

function nackBox(label, nack) {
  return el(
    "div",
    { class: "nack-box" },
    el("b", {}, `${label} rejected`),
    el("pre", {}, nack.message),
    (nack.objects ?? []).length ? el("ul", {}, nack.objects.map((o) => el("li", {}, objectName(o), el("span", { class: "file" }, ` ${o.resource}`)))) : null,
  );
}

// ---- proxies and diagnostics ----

// `2026-12-06T21:40:00.123Z` as "12 s ago".
function ago(when) {
  if (!when) return "-";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(when)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

function drawProxies() {
  const body = document.querySelector("#proxies tbody");
  body.replaceChildren();
  const proxies = [...state.proxies].sort((a, b) => `${a.workload}.${a.namespace}`.localeCompare(`${b.workload}.${b.namespace}`));
  if (!proxies.length) {
    body.append(el("tr", {}, el("td", { colspan: 10, class: "hint" }, "no proxy connected")));
  }
  for (const p of proxies) {
    const nacks = currentNacks(p);
    body.append(
      el(
        "tr",
        { class: nacks.length ? "nacked" : null, "data-proxy": p.id },
        el(
          "td",
          {},
          el("b", {}, `${p.workload}.${p.namespace}`),
          el("div", { class: "file" }, p.id),
          state.servers.length > 1 ? el("div", { class: "file" }, `via ${p.server}`) : null,
        ),
        el("td", {}, p.proxyless ? "gRPC" : p.mode),
        TYPES.map(([, url]) => {
          const s = syncState(p.xds[url]);
          return el("td", {}, el("span", { class: `badge ${s.toLowerCase().replace(" ", "-")}` }, s));
        }),
        el("td", {}, p.acked_generation ?? "-"),
        el("td", { title: p.last_push ?? "" }, ago(p.last_push)),
        el(
          "td",
          { class: "nack-cell" },
          nacks.map(({ label, nack }) =>
            el(
              "div",
              {},
              el("b", {}, `${label}: `),
              (nack.objects ?? []).length ? nack.objects.map((o) => el("span", { class: "object" }, objectName(o))) : null,
              el("div", { class: "message" }, nack.message),
            ),
          ),
        ),
      ),
    );
  }
}

function drawDiagnostics() {
  const panel = document.getElementById("diagnostics-panel");
  const list = document.getElementById("diagnostics");
  const unreachable = state.servers.filter((s) => s.error);
  list.replaceChildren(
    ...unreachable.map((s) => el("li", { class: "error" }, el("b", {}, "replica"), ` ${s.server} could not be asked: ${s.error}`)),
    ...state.diagnostics.map((d) => el("li", { class: d.severity }, el("b", {}, d.severity), " ", d.text)),
  );
  panel.hidden = state.diagnostics.length === 0 && unreachable.length === 0;
}

function drawSummary() {
  const services = state.topology.nodes.filter((n) => n.kind === "service").length;
  const workloads = state.topology.nodes.filter((n) => n.kind === "workload").length;
  const nacked = state.proxies.filter((p) => currentNacks(p).length > 0).length;
  const synced = state.proxies.filter((p) => TYPES.every(([, url]) => ["SYNCED", "-"].includes(syncState(p.xds[url])))).length;
  document.getElementById("count-services").textContent = services;
  document.getElementById("count-workloads").textContent = workloads;
  document.getElementById("count-proxies").textContent = state.proxies.length;
  document.getElementById("count-replicas").textContent = state.servers.filter((s) => !s.error).length;
  document.getElementById("count-synced").textContent = synced;
  document.getElementById("count-nacks").textContent = nacked;
  document.getElementById("count-nacks").parentElement.parentElement.classList.toggle("alarm", nacked > 0);
  document.getElementById("count-errors").textContent = state.diagnostics.filter((d) => d.severity === "error").length;
  document.getElementById("generation").textContent = state.snapshot ? state.snapshot.generation : "–";
}

// ---- loading, live updates and login ----

async function load() {
  const [topology, services, replicas, diagnostics, snapshot] = await Promise.all([
    api("/api/v1/topology"),
    api("/api/v1/services"),
    api("/api/v1/replicas/proxies"),
    api("/api/v1/diagnostics"),
    api("/api/v1/snapshot"),
  ]);
  const proxies = replicas.proxies;
  const servers = replicas.servers;
  Object.assign(state, { topology, services, proxies, servers, diagnostics, snapshot });
  drawSummary();
  drawGraph();
  drawProxies();
  drawDiagnostics();
  drawDetails();
  state.renders += 1;
  document.body.dataset.renders = state.renders;
}

let pending = null;
function refreshSoon() {
  if (pending) return;
  // One read for a burst of events (a push to a hundred proxies is a
  // hundred events).
  pending = setTimeout(() => {
    pending = null;
    load().catch(failed);
  }, 250);
}

function setLive(on, text) {
  const live = document.getElementById("live");
  live.classList.toggle("off", !on);
  live.textContent = text;
}

function listen() {
  if (state.events) state.events.close();
  const events = new EventSource("/api/v1/events", { withCredentials: true });
  state.events = events;
  events.onopen = () => setLive(true, "live");
  events.onerror = () => setLive(false, "reconnecting");
  for (const name of ["config_applied", "connected", "disconnected", "nack", "push_completed", "lagged"]) {
    events.addEventListener(name, refreshSoon);
  }
}

function failed(error) {
  if (error instanceof Unauthorized) {
    login();
    return;
  }
  setLive(false, "unreachable");
  console.error(error);
}

function login() {
  if (state.events) state.events.close();
  const dialog = document.getElementById("login");
  if (!dialog.open) dialog.showModal();
}

document.getElementById("login-form").addEventListener("submit", async (evt) => {
  evt.preventDefault();
  const token = document.getElementById("token").value.trim();
  const error = document.getElementById("login-error");
  const response = await fetch("/api/v1/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { authorization: `Bearer ${token}` },
  });
  if (!response.ok) {
    error.textContent = response.status === 401 ? "That is not the admin token." : `Sign-in failed: ${response.status}`;
    error.hidden = false;
    return;
  }
  error.hidden = true;
  document.getElementById("token").value = "";
  document.getElementById("login").close();
  start();
});

function start() {
  load()
    .then(listen)
    .catch(failed);
}

start();
