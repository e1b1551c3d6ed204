/* cosmobac charts: one sensor's metric with anomaly labels and detections, drawn with uPlot.
 *
 *   const chart = cosmobacCharts.render(element, series, {onZoom, onReset, height});
 *   chart.update(series);   // new data, same chart
 *   chart.destroy();
 *
 * `series` is one entry of /api/series's "series" list: {sensor_id, city, metric, t: [epoch ms],
 * v: [number|null], rows, source, labels: [{start, end, type}], detections: [{t, v, detectors,
 * anomaly_type}]}. Labels are shaded spans, detections red rings at their value (at the bottom
 * when the value is missing). Dragging across the plot zooms; onZoom(startMs, endMs) is called so
 * the caller can fetch that span at full resolution; a double click calls onReset().
 *
 * The element gets data attributes a test can read: data-sensor, data-points, data-rows,
 * data-source, data-labels, data-detections, data-start, data-end.
 * No build step, no framework: needs only uPlot (window.uPlot) loaded first.
 */
(function (global) {
  "use strict";

  const TYPE_COLORS = {
    spike: "#d62728", dip: "#9467bd", drift: "#ff7f0e", pattern: "#2ca02c",
    stuck: "#7f7f7f", dropout: "#17becf", noise: "#e377c2",
  };
  const OTHER = "#bcbd22";
  const UNITS = { temperature: "°C", humidity: "%", pressure: "hPa", vibration: "mm/s", voltage: "V" };

  function colorOf(type) { return TYPE_COLORS[type] || OTHER; }

  function toData(series) {
    return [series.t.map((ms) => ms / 1000), series.v];
  }

  function mark(element, series) {
    const d = element.dataset;
    d.sensor = series.sensor_id;
    d.metric = series.metric;
    d.points = String(series.t.length);
    d.rows = String(series.rows);
    d.source = series.source;
    d.labels = String(series.labels.length);
    d.detections = String(series.detections.length);
    d.start = series.t.length ? String(series.t[0]) : "";
    d.end = series.t.length ? String(series.t[series.t.length - 1]) : "";
  }

  function clip(u) {  // a span or detection outside a zoomed-in x range stays off the y axis
    const b = u.bbox, pad = 5 * devicePixelRatio;  // whole rings at the top and bottom edges
    u.ctx.beginPath();
    u.ctx.rect(b.left, b.top - pad, b.width, b.height + 2 * pad);
    u.ctx.clip();
  }

  function markersPlugin(holder) {
    return {
      hooks: {
        drawClear: [
          (u) => {  // label spans under the line
            const s = holder.series;
            if (!s) return;
            const ctx = u.ctx;
            const top = u.bbox.top, height = u.bbox.height;
            ctx.save();
            clip(u);
            ctx.globalAlpha = 0.25;
            for (const run of s.labels) {
              const x0 = u.valToPos(run.start / 1000, "x", true);
              const x1 = u.valToPos(run.end / 1000, "x", true);
              ctx.fillStyle = colorOf(run.type);
              ctx.fillRect(x0, top, Math.max(x1 - x0, 2 * devicePixelRatio), height);
            }
            ctx.restore();
          },
        ],
        draw: [
          (u) => {  // detections over the line
            const s = holder.series;
            if (!s) return;
            const ctx = u.ctx;
            const [ymin, ymax] = [u.scales.y.min, u.scales.y.max];
            ctx.save();
            clip(u);
            ctx.strokeStyle = "#d00000";
            ctx.lineWidth = 1.5 * devicePixelRatio;
            for (const hit of s.detections) {
              const x = u.valToPos(hit.t / 1000, "x", true);
              const value = hit.v === null ? ymin : Math.min(Math.max(hit.v, ymin), ymax);
              const y = u.valToPos(value, "y", true);
              ctx.beginPath();
              ctx.arc(x, y, 3.5 * devicePixelRatio, 0, 2 * Math.PI);
              ctx.stroke();
            }
            ctx.restore();
          },
        ],
      },
    };
  }

  function render(element, series, options) {
    const opts = options || {};
    const holder = { series };
    const width = Math.max(element.clientWidth || 600, 200);
    const unit = UNITS[series.metric];
    const plot = new global.uPlot(
      {
        width,
        height: opts.height || 180,
        legend: { show: false },
        tzDate: (ts) => global.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),  // times in UTC
        cursor: { drag: { x: true, y: false, setScale: true } },
        scales: { x: { time: true } },
        axes: [
          { stroke: "#555", grid: { stroke: "#eee" } },
          { stroke: "#555", grid: { stroke: "#eee" }, size: 60,
            label: unit ? series.metric + " (" + unit + ")" : series.metric, labelSize: 14 },
        ],
        series: [{}, { label: series.metric, stroke: "#333", width: 1, spanGaps: false, points: { show: false } }],
        plugins: [markersPlugin(holder)],
        hooks: {
          setSelect: [
            (u) => {
              if (u.select.width < 2 || !opts.onZoom) return;
              const min = u.posToVal(u.select.left, "x");
              const max = u.posToVal(u.select.left + u.select.width, "x");
              opts.onZoom(Math.floor(min * 1000), Math.ceil(max * 1000));
            },
          ],
          ready: [
            (u) => {
              u.over.addEventListener("dblclick", () => { if (opts.onReset) opts.onReset(); });
            },
          ],
        },
      },
      toData(series),
      element,
    );
    mark(element, series);
    return {
      plot,
      update(next) {
        holder.series = next;
        plot.setData(toData(next));
        mark(element, next);
      },
      resize(w) { plot.setSize({ width: w, height: opts.height || 180 }); },
      destroy() { plot.destroy(); },
    };
  }

  global.cosmobacCharts = { render, colorOf, TYPE_COLORS };
})(window);
