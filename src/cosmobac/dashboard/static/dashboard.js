/* cosmobac dashboard page: polls the JSON API every 2 s and redraws in place.
 *
 * Fleet mode (several pipeline files, no ?node=): one health row per node; a click opens
 * ?node=N. Node mode: the health table, the charts of one city's sensors, the latest detections.
 *
 * For tests: window.cosmobacDashboard = {ready, mode, node, lastUpdate, polls, errors, plot}; `ready`
 * turns true once every part of the page has been drawn from the API; `lastUpdate` is the time
 * (epoch ms) of the last poll that succeeded. Table cells carry data-field and data-value (the raw
 * number), rows data-consumer / data-node; each chart data-points, data-rows, data-detections.
 */
(function () {
  "use strict";

  const POLL_MS = 2000;
  const params = new URLSearchParams(location.search);
  const state = (window.cosmobacDashboard = {
    ready: false, mode: null, node: null, lastUpdate: null, polls: 0, errors: [],
  });
  const $ = (id) => document.getElementById(id);
  const charts = new Map();  // sensor id -> {chart, box, zoom: [start, end] | null}
  state.plot = (sensor) => {  // for tests: the uPlot instance of a sensor's chart, or null
    const entry = charts.get(sensor);
    return entry ? entry.chart.plot : null;
  };
  let sensorsInfo = null;

  async function getJSON(path) {
    const response = await fetch(path, { cache: "no-store" });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }

  function cell(row, text, field, value, cls) {
    const td = row.insertCell();
    td.textContent = text;
    if (field) td.dataset.field = field;
    if (value !== undefined) td.dataset.value = value === null ? "" : String(value);
    if (cls) td.className = cls;
    return td;
  }

  const fmtRate = (r) => (r === null || r === undefined ? "—" : r >= 100 ? r.toFixed(0) : r.toFixed(r < 10 ? 2 : 1));
  function fmtAge(s) {
    if (s === null || s === undefined) return "—";
    const a = Math.abs(s);
    const text = a >= 172800 ? (a / 86400).toFixed(0) + " d" : a >= 7200 ? (a / 3600).toFixed(0) + " h"
      : a >= 120 ? (a / 60).toFixed(0) + " min" : a.toFixed(0) + " s";
    return s < 0 ? text + " ahead" : text + " old";
  }
  const fmtTime = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 19);
  function fmtAgo(iso) {
    if (!iso) return "—";
    const s = (Date.now() - Date.parse(iso)) / 1000;
    return fmtAge(s).replace(" old", " ago");
  }

  function setStatus(text, kind) {
    const line = $("status-line");
    line.textContent = text;
    line.dataset.state = kind;
  }

  function polled() {
    state.polls += 1;
    state.lastUpdate = Date.now();
  }

  function failed(error) {
    state.errors.push(String(error));
    if (state.errors.length > 20) state.errors.shift();
    setStatus("cannot reach the dashboard's server: " + error, "error");
  }

  // a problem of /readyz's kind ({sink, reason, error}), or a fleet source's ({sink: "", reason})
  const problemText = (p) => (p.sink ? p.sink + ": " : "") + p.reason + (p.error ? ": " + p.error : "");

  // -- fleet ------------------------------------------------------------------------------------
  async function pollFleet() {
    try {
      const data = await getJSON("/api/nodes");
      const body = $("fleet-table").tBodies[0];
      body.replaceChildren();
      for (const n of data.nodes) {
        const row = body.insertRow();
        row.dataset.node = String(n.node);
        row.dataset.healthy = String(n.healthy);
        row.addEventListener("click", () => { location.search = "?node=" + n.node; });
        const name = cell(row, "", "name", n.name);
        const link = document.createElement("a");
        link.href = "?node=" + n.node;
        link.textContent = n.name;
        link.title = n.config;
        name.appendChild(link);
        cell(row, n.healthy ? "healthy" : "not healthy", "healthy", n.healthy).dataset.healthy = String(n.healthy);
        cell(row, n.forwarder.running ? "running" : "not running", "forwarder", n.forwarder.running);
        // a fleet source's node that did not answer: its figures are unknown, not zero
        const unknown = Boolean(data.source) && n.rows === null;
        const count = (v) => (unknown ? "—" : v.toLocaleString());
        cell(row, n.rows === null ? (unknown ? "—" : "no store yet") : n.rows.toLocaleString(), "rows", n.rows, "num");
        cell(row, unknown ? "—" : fmtRate(n.rows_per_second), "rows_per_second", n.rows_per_second, "num");
        cell(row, count(n.pending), "pending", n.pending, "num");
        cell(row, count(n.dead_letters), "dead_letters", n.dead_letters, "num");
        cell(row, n.problems.map(problemText).join("; ") || "—", "problems", n.problems.length, "error");
      }
      if (data.error) {  // the fleet source failed: say so, not "0 nodes"
        setStatus("fleet source " + data.source + ": " + data.error, "error");
      } else {
        setStatus(data.nodes.length + " nodes · updated " + new Date().toLocaleTimeString(), "ok");
      }
      polled();
      state.ready = true;
    } catch (error) {
      failed(error);
    }
    setTimeout(pollFleet, POLL_MS);
  }

  // -- one node ---------------------------------------------------------------------------------
  const nodeQuery = () => "node=" + state.node;

  async function pollHealth() {
    const h = await getJSON("/api/health?" + nodeQuery());
    $("title").textContent = h.name + (state.mode === "fleet" ? " (fleet node " + h.node + ")" : "");
    document.title = "cosmobac · " + h.name;
    const fw = $("forwarder");
    fw.dataset.running = String(h.forwarder.running);
    fw.textContent = "forwarder " + (h.forwarder.running ? "running (pid " + h.forwarder.pid + ")" : "not running");
    const healthy = $("healthy");
    healthy.dataset.healthy = String(h.healthy);
    healthy.textContent = h.healthy ? "healthy" : "not healthy";
    const rows = $("store-rows");
    rows.dataset.rows = h.rows === null ? "" : String(h.rows);
    rows.textContent = h.rows === null ? "no store yet:" : h.rows.toLocaleString();
    const problems = $("problems");
    problems.replaceChildren();
    for (const p of h.problems) {
      const li = document.createElement("li");
      li.textContent = problemText(p);
      li.dataset.sink = p.sink;
      problems.appendChild(li);
    }
    const body = $("health-table").tBodies[0];
    body.replaceChildren();
    for (const s of h.sinks) {
      const row = body.insertRow();
      row.dataset.consumer = s.consumer;
      row.dataset.state = s.state || "";
      cell(row, s.consumer + " (" + s.plugin + ")", "consumer", s.consumer);
      cell(row, fmtRate(s.rows_per_second), "rows_per_second", s.rows_per_second, "num");
      cell(row, s.pending.toLocaleString(), "pending", s.pending, "num").dataset.rows = String(s.pending);
      cell(row, s.pending ? fmtAge(s.oldest_pending_age_s) : "none", "oldest_pending_age_s", s.oldest_pending_age_s);
      cell(row, s.dead_letters.toLocaleString(), "dead_letters", s.dead_letters, "num");
      cell(row, s.last_error || "—", "last_error", s.last_error, "error");
      cell(row, fmtAgo(s.last_error_at), "last_error_at", s.last_error_at);
      cell(row, s.state || "—", "state", s.state).dataset.state = s.state || "";
      cell(row, s.request_units ? fmtRate(s.ru_per_second) : "—", "ru_per_second", s.ru_per_second, "num");
      cell(row, s.request_units || s.throttled ? fmtRate(s.throttled_per_second) : "—", "throttled_per_second", s.throttled_per_second, "num");
    }
    return h;
  }

  function fillSelect(select, values, chosen) {
    const current = [...select.options].map((o) => o.value).join("\n");
    if (current === values.join("\n")) return;
    select.replaceChildren(...values.map((v) => new Option(v || "(no city)", v)));
    if (chosen !== null && values.includes(chosen)) select.value = chosen;
  }

  async function pollSensors() {
    sensorsInfo = await getJSON("/api/sensors?" + nodeQuery());
    const cities = Object.keys(sensorsInfo.cities);
    fillSelect($("city-select"), cities, params.get("city"));
    fillSelect($("metric-select"), sensorsInfo.metrics, params.get("metric"));
    const loading = $("loading");
    loading.dataset.caughtUp = String(sensorsInfo.caught_up);
    loading.dataset.rowsRead = String(sensorsInfo.rows_read);
    loading.textContent = sensorsInfo.caught_up
      ? sensorsInfo.rows_read.toLocaleString() + " rows read"
      : "reading the store: " + sensorsInfo.rows_read.toLocaleString() + " rows so far…";
    if (sensorsInfo.error) loading.textContent += " · " + sensorsInfo.error;
    return sensorsInfo;
  }

  function chartBox(sensor, city) {
    const box = document.createElement("div");
    box.className = "chart-box";
    box.dataset.sensor = sensor;
    const title = document.createElement("h3");
    title.textContent = sensor;
    const small = document.createElement("small");
    title.appendChild(document.createTextNode(" "));
    title.appendChild(small);
    const el = document.createElement("div");
    el.className = "chart";
    el.id = "chart-" + sensor;
    box.append(title, el);
    $("charts").appendChild(box);
    return { box, el, small };
  }

  function describe(entry, s) {
    entry.small.textContent = "(" + (s.city || "no city") + ") · " + s.rows.toLocaleString() + " rows, "
      + s.t.length + " points" + (s.source === "buckets" ? " (1-min summary)" : "")
      + " · " + s.detections.length + (s.detections.length === 1 ? " detection" : " detections") + (entry.zoom ? " · zoomed" : "");
  }

  async function zoomTo(sensor, start, end) {
    const entry = charts.get(sensor);
    if (!entry) return;
    entry.zoom = start === null ? null : [start, end];
    entry.el.dataset.zoomed = String(entry.zoom !== null);
    const zoom = entry.zoom;
    const data = await getJSON(seriesURL({ sensor }, zoom, entry.el.clientWidth));
    if (charts.get(sensor) !== entry || entry.zoom !== zoom) return;  // left or zoomed again
    entry.chart.update(data.series[0]);
    describe(entry, data.series[0]);
  }

  function seriesURL(what, range, width) {
    const q = new URLSearchParams({ node: state.node, metric: $("metric-select").value,
      points: String(Math.max(Math.round(width || 1000), 100)) });
    for (const [k, v] of Object.entries(what)) q.set(k, v);
    if (range) { q.set("start", String(range[0])); q.set("end", String(range[1])); }
    return "/api/series?" + q;
  }

  async function pollCharts() {
    const city = $("city-select").value;
    const metric = $("metric-select").value;
    if (!sensorsInfo || !(city in sensorsInfo.cities)) return;
    const key = city + "\n" + metric;
    const container = $("charts");
    if (container.dataset.key !== key) {  // another city or metric: start over
      for (const entry of charts.values()) entry.chart.destroy();
      charts.clear();
      container.replaceChildren();
      container.dataset.key = key;
    }
    const width = container.firstElementChild ? container.firstElementChild.clientWidth : 600;
    const data = await getJSON(seriesURL({ city }, null, width));
    if (container.dataset.key !== key) return;  // another city or metric was chosen meanwhile
    for (const s of data.series) {
      let entry = charts.get(s.sensor_id);
      if (!entry) {
        entry = chartBox(s.sensor_id, s.city);
        entry.zoom = null;
        const sensor = s.sensor_id;
        entry.chart = cosmobacCharts.render(entry.el, s, {
          onZoom: (a, b) => zoomTo(sensor, a, b).catch(failed),
          onReset: () => zoomTo(sensor, null, null).catch(failed),
        });
        charts.set(s.sensor_id, entry);
      } else if (!entry.zoom) {
        entry.chart.update(s);
      } else {
        continue;  // a zoomed chart keeps its span
      }
      describe(entry, s);
    }
    container.dataset.charts = String(charts.size);
    container.dataset.lastSeq = String(data.last_seq);
  }

  async function pollAnomalies() {
    const a = await getJSON("/api/anomalies?limit=50&" + nodeQuery());
    const counts = $("anomaly-counts");
    counts.dataset.total = String(a.total);
    const part = (o) => Object.entries(o).map(([k, v]) => k + " " + v).join(", ") || "none";
    counts.textContent = a.total.toLocaleString() + " detections · by detector: " + part(a.by_detector)
      + " · by labelled type: " + part(a.by_type) + " · by city: " + part(a.by_city);
    const body = $("anomalies-table").tBodies[0];
    body.replaceChildren();
    for (const d of a.latest) {
      const row = body.insertRow();
      row.dataset.sensor = d.sensor_id;
      row.dataset.time = String(d.time);
      cell(row, fmtTime(d.time), "time", d.time);
      cell(row, d.city || "—", "city", d.city);
      cell(row, d.sensor_id, "sensor_id", d.sensor_id);
      cell(row, d.detectors.join(", "), "detectors", d.detectors.join(","));
      cell(row, d.anomaly_type || "—", "anomaly_type", d.anomaly_type);
    }
  }

  function legend() {
    const box = $("legend");
    for (const [type, color] of Object.entries(cosmobacCharts.TYPE_COLORS)) {
      const span = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = color;
      span.append(swatch, document.createTextNode(type));
      box.appendChild(span);
    }
    const hit = document.createElement("span");
    hit.textContent = "○ detection";
    hit.style.color = "#d00000";
    box.appendChild(hit);
  }

  async function pollNode() {
    try {
      const h = await pollHealth();
      if (h.remote) {  // a node of a fleet source: its store is on the node, its health is all
        $("remote-note").hidden = false;
        $("node-data").hidden = true;
        setStatus("updated " + new Date().toLocaleTimeString(), "ok");
        polled();
        state.ready = true;
        setTimeout(pollNode, POLL_MS);
        return;
      }
      const info = await pollSensors();
      if (Object.keys(info.cities).length) await pollCharts();
      await pollAnomalies();
      setStatus("updated " + new Date().toLocaleTimeString(), "ok");
      polled();
      if (info.caught_up && Object.keys(info.cities).length === 0 || info.caught_up && charts.size) state.ready = true;
    } catch (error) {
      failed(error);
    }
    setTimeout(pollNode, POLL_MS);
  }

  async function start() {
    let mode = "node";
    try {
      mode = (await getJSON("/api/nodes")).mode;
    } catch (error) {
      failed(error);
    }
    state.mode = mode;
    if (mode === "fleet" && !params.has("node")) {
      $("fleet").hidden = false;
      pollFleet();
      return;
    }
    state.node = Number(params.get("node") || 0);
    $("node").hidden = false;
    legend();
    for (const id of ["city-select", "metric-select"]) {
      $(id).addEventListener("change", () => {
        const q = new URLSearchParams(location.search);
        q.set(id === "city-select" ? "city" : "metric", $(id).value);
        history.replaceState(null, "", "?" + q);
        pollCharts().catch(failed);
      });
    }
    let resizing = null;
    window.addEventListener("resize", () => {  // charts follow the window's width
      clearTimeout(resizing);
      resizing = setTimeout(() => {
        for (const entry of charts.values()) entry.chart.resize(entry.el.clientWidth);
      }, 200);
    });
    pollNode();
  }

  start();
})();
