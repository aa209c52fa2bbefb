// Draws the data page's charts (specifications in #chart-specs) with the platform's plotly.js, and
// gives each one a CSV download of its numbers. When all are drawn, <body data-charts-drawn> holds
// the milliseconds since navigation started (read by the tests and the benchmark).
(function () {
  "use strict";
  const specs = JSON.parse(document.getElementById("chart-specs").textContent);
  const dayLink = document.body.dataset.dayLink;

  function cell(value) {
    const text = value === null || value === undefined ? "" : String(value);
    return /[",\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  function csvOf(spec) {
    const lines = [];
    const heatmaps = spec.data.filter((t) => t.type === "heatmap");
    if (heatmaps.length) {
      const t = heatmaps[0];
      lines.push(["y", "x", "value"]);
      t.y.forEach((y, i) => t.x.forEach((x, j) => lines.push([y, x, t.z[i][j]])));
    } else {
      const xs = [];
      const seen = new Map();
      spec.data.forEach((t) => t.x.forEach((x) => { if (!seen.has(String(x))) { seen.set(String(x), xs.length); xs.push(x); } }));
      const columns = spec.data.map((t) => { const col = new Array(xs.length).fill(null); t.x.forEach((x, i) => { col[seen.get(String(x))] = t.y[i]; }); return col; });
      lines.push(["x", ...spec.data.map((t) => t.name || "value")]);
      xs.forEach((x, i) => lines.push([x, ...columns.map((c) => c[i])]));
    }
    return lines.map((row) => row.map(cell).join(",")).join("\n") + "\n";
  }

  function download(spec) {
    const url = URL.createObjectURL(new Blob([csvOf(spec)], { type: "text/csv" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = spec.id + ".csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  let pending = specs.length;
  const finished = () => { if (--pending === 0) document.body.dataset.chartsDrawn = String(Math.round(performance.now())); };
  if (!pending) document.body.dataset.chartsDrawn = String(Math.round(performance.now()));
  specs.forEach((spec) => {
    const element = document.getElementById(spec.id);
    const button = element.parentElement.querySelector("button.csv");
    button.addEventListener("click", () => download(spec));
    button.dataset.csvReady = "1";
    Plotly.newPlot(element, spec.data, spec.layout, { responsive: true, displaylogo: false })
      .then(() => {
        element.dataset.drawn = "1";
        if (dayLink && spec.id === "events-per-day") {
          element.on("plotly_click", (event) => { window.location = dayLink + encodeURIComponent(String(event.points[0].x).slice(0, 10)); });
        }
      })
      .catch((error) => { element.dataset.drawn = "error"; element.textContent = "chart failed: " + error; })
      .finally(finished);
  });
  window.algoPlatformCsv = (id) => csvOf(specs.find((s) => s.id === id));
})();
