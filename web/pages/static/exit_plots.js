/* Submission page: the early-exit diagnostics of each task as two small Plotly plots (samples
   per exit layer, metric per exit layer), one trace per point. The data is aggregates only,
   embedded in the page (.exit-data); point names are escaped before Plotly sees them. */
(function () {
  "use strict";
  function esc(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function draw() {
    if (!window.Plotly) {
      return;
    }
    var figures = document.querySelectorAll(".exit-diagnostics");
    for (var i = 0; i < figures.length; i++) {
      var figure = figures[i];
      if (figure.getAttribute("data-drawn") === "true") {
        continue;
      }
      var data = JSON.parse(figure.querySelector(".exit-data").textContent);
      var counts = [];
      var values = [];
      var measure = "accuracy";
      Object.keys(data).forEach(function (point) {
        var d = data[point];
        measure = d.measure;
        counts.push({ type: "bar", name: esc(point), x: d.layers, y: d.counts });
        values.push({ type: "scatter", mode: "lines+markers", name: esc(point), x: d.layers, y: d.values });
      });
      counts.forEach(function (trace) {
        trace.width = 0.8 / counts.length; // one layer wide whatever the gaps between layers
      });
      var layout = function (title, y) {
        return {
          title: { text: title, font: { size: 13 } }, height: 240, margin: { l: 50, r: 10, t: 30, b: 40 },
          xaxis: { title: { text: "exit layer" }, dtick: 1 }, yaxis: { title: { text: y } },
          showlegend: counts.length > 1, legend: { orientation: "h" }, barmode: "group"
        };
      };
      var config = { displaylogo: false, responsive: true };
      window.Plotly.newPlot(figure.querySelector(".exit-counts"), counts, layout("Samples per exit layer", "samples"), config);
      window.Plotly.newPlot(figure.querySelector(".exit-values"), values,
        layout(measure === "accuracy" ? "Accuracy per exit layer" : "Mean absolute error per exit layer",
          measure === "accuracy" ? "accuracy (%)" : "mean abs. error"), config);
      figure.setAttribute("data-drawn", "true");
    }
  }
  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("panel-updated", draw);
  window.paretoboardDrawExitPlots = draw;
})();
