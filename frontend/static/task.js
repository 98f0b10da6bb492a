/* Task page: performance against FLOPs and against parameters, drawn with the Plotly bundle the
   server ships. The data is the compact JSON embedded in the page (#plot-data); "Show all"
   fetches every entry's points. Names are escaped before Plotly sees them. */
(function () {
  "use strict";
  var dataElement = document.getElementById("plot-data");
  var flopsDiv = document.getElementById("plot-flops");
  var paramsDiv = document.getElementById("plot-params");
  var status = document.getElementById("plot-status");
  if (!dataElement || !flopsDiv || !paramsDiv) {
    return;
  }
  if (!window.Plotly) {
    status.textContent = "The plotting library did not load; the tables below hold the same data.";
    return;
  }
  var initial = JSON.parse(dataElement.textContent);
  var current = initial;
  var allData = null;

  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#17becf", "#bcbd22", "#7f7f7f"];
  var SUB = { id: 0, name: 1, kind: 2, params: 3, score: 4, baseline: 5 };
  var PT = { sub: 0, mflops: 1, perf: 2, params: 3, pos: 4, flopsFront: 5, paramsFront: 6, incomplete: 7, elueMflops: 8, disagrees: 9, verified: 10 };
  var POSITION = {
    b: "cheaper than the cheapest baseline point: compared with that point's performance, held flat (no credit for the saving)",
    a: "costlier than the costliest baseline point: compared with that point's performance, held flat"
  };

  function esc(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function si(value, digits) {
    var scales = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "K"]];
    for (var i = 0; i < scales.length; i++) {
      if (Math.abs(value) >= scales[i][0]) {
        return Number((value / scales[i][0]).toPrecision(digits)) + " " + scales[i][1];
      }
    }
    return String(Number(value.toPrecision(digits))) + " ";
  }
  function flopsText(mflops) {
    return si(mflops * 1e6, 3) + "FLOPs";
  }
  function paramsText(n) {
    return n === null || n === undefined ? "unknown" : si(n, 4).replace(" ", "");
  }
  function signed(x) {
    if (x === null || x === undefined) {
      return "no baseline";
    }
    var text = Math.abs(x).toFixed(2);
    return x > 0 ? "+" + text : x < 0 ? "\u2212" + text : text;
  }
  function hover(sub, pt) {
    var lines = ["<b>" + esc(sub[SUB.name]) + "</b>" + (sub[SUB.kind] === "s" ? " (self-reported)" : ""),
      (pt[PT.incomplete] ? "FLOPs: \u2265 " + flopsText(pt[PT.mflops]) + " <i>(incomplete count: a lower bound, not scored)</i>"
        : "FLOPs: " + flopsText(pt[PT.mflops])),
      "ELUE-convention FLOPs: " + (pt[PT.elueMflops] === null || pt[PT.elueMflops] === undefined ? "n/a" : flopsText(pt[PT.elueMflops])),
      "Params: " + paramsText(pt[PT.params]),
      "Performance: " + pt[PT.perf].toFixed(2),
      "ELUE score: " + signed(sub[SUB.score])];
    if (pt[PT.disagrees]) {
      lines.push("<i>fvcore differs by more than 1% (the larger is shown)</i>");
    }
    if (pt[PT.verified]) {
      lines.push("<b>Verified</b>: the platform reproduced these predictions");
    }
    if (POSITION[pt[PT.pos]]) {
      lines.push("<i>" + POSITION[pt[PT.pos]] + "</i>");
    }
    if (pt[PT.flopsFront] || pt[PT.paramsFront]) {
      lines.push("on the Pareto front");
    }
    return lines.join("<br>");
  }

  function x(pt, axis) {
    return axis === "flops" ? pt[PT.mflops] * 1e6 : pt[PT.params];
  }

  function traces(data, axis) {
    var bySub = {};
    data.points.forEach(function (pt, i) {
      (bySub[pt[PT.sub]] = bySub[pt[PT.sub]] || []).push(i);
    });
    var out = [];
    // Everyone outside the highlighted set: one grey trace, curves separated by gaps.
    var other = { x: [], y: [], text: [], customdata: [] };
    for (var s = data.highlight; s < data.subs.length; s++) {
      (bySub[s] || []).forEach(function (i) {
        var pt = data.points[i];
        if (x(pt, axis) === null) {
          return;
        }
        other.x.push(x(pt, axis));
        other.y.push(pt[PT.perf]);
        other.text.push(hover(data.subs[s], pt));
        other.customdata.push(data.subs[s][SUB.id]);
      });
      other.x.push(null);
      other.y.push(null);
      other.text.push("");
      other.customdata.push(null);
    }
    if (other.customdata.some(function (v) { return v !== null; })) {
      out.push({
        type: "scatter", mode: axis === "flops" ? "lines+markers" : "markers", name: "other entries",
        x: other.x, y: other.y, text: other.text, customdata: other.customdata,
        hovertemplate: "%{text}<extra></extra>", connectgaps: false,
        line: { color: "rgba(120,120,120,0.35)", width: 1 },
        marker: { color: "rgba(120,120,120,0.55)", size: 5 }
      });
    }
    var colour = 0;
    for (var h = 0; h < Math.min(data.highlight, data.subs.length); h++) {
      var sub = data.subs[h];
      var indices = (bySub[h] || []).filter(function (i) { return x(data.points[i], axis) !== null; });
      if (!indices.length || (axis === "flops" && sub[SUB.baseline] && data.baseline)) {
        continue; // the baseline curve is drawn below
      }
      var color = COLORS[colour++ % COLORS.length];
      out.push({
        type: "scatter", mode: axis === "flops" ? "lines+markers" : "markers",
        name: esc(sub[SUB.name]), showlegend: false,
        x: indices.map(function (i) { return x(data.points[i], axis); }),
        y: indices.map(function (i) { return data.points[i][PT.perf]; }),
        text: indices.map(function (i) { return hover(sub, data.points[i]); }),
        customdata: indices.map(function () { return sub[SUB.id]; }),
        hovertemplate: "%{text}<extra></extra>",
        line: { color: color, width: 1.5 },
        // an incomplete count (a lower bound on the FLOPs) is drawn hollow
        marker: { color: color, size: 7, symbol: indices.map(function (i) {
          var shape = sub[SUB.kind] === "s" ? "diamond" : "circle";
          return data.points[i][PT.incomplete] ? shape + "-open" : shape;
        }) }
      });
    }
    if (axis === "flops" && data.baseline) {
      var b = data.baseline;
      out.push({
        type: "scatter", mode: "lines+markers",
        name: "baseline: " + esc(b.name) + (b.label ? " (" + esc(b.label) + ")" : ""),
        x: b.points.map(function (p) { return p[0] * 1e6; }),
        y: b.points.map(function (p) { return p[1]; }),
        text: b.points.map(function (p) {
          return "<b>" + esc(b.name) + "</b> (baseline" + (b.label ? ": " + esc(b.label) : "") + ")<br>FLOPs: " + flopsText(p[0]) +
            "<br>Performance: " + p[1].toFixed(2);
        }),
        customdata: b.points.map(function () { return b.id; }),
        hovertemplate: "%{text}<extra></extra>",
        line: { color: "#111", width: 2, dash: "dash" },
        marker: { color: "#111", size: 8, symbol: "square" }
      });
    }
    var front = axis === "flops" ? data.flops_front : data.params_front;
    if (front.length) {
      out.push({
        type: "scatter", mode: "lines+markers", name: "Pareto front",
        x: front.map(function (i) { return x(data.points[i], axis); }),
        y: front.map(function (i) { return data.points[i][PT.perf]; }),
        text: front.map(function (i) {
          return hover(data.subs[data.points[i][PT.sub]], data.points[i]);
        }),
        customdata: front.map(function (i) { return data.subs[data.points[i][PT.sub]][SUB.id]; }),
        hovertemplate: "%{text}<extra></extra>",
        line: { color: "#d62728", width: 2.5, shape: "hv" },
        marker: { size: 13, symbol: "circle-open", color: "#d62728", line: { width: 2.5 } }
      });
    }
    return out;
  }

  function layout(axis) {
    return {
      margin: { l: 56, r: 12, t: 8, b: 52 },
      hovermode: "closest",
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12 },
      xaxis: {
        type: "log", exponentformat: "SI",
        title: { text: axis === "flops" ? "FLOPs per sample (log)" : "Parameters (log)" }
      },
      yaxis: { title: { text: "Performance (×100)" }, zeroline: false },
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      paper_bgcolor: "#fff", plot_bgcolor: "#fff"
    };
  }

  var config = {
    responsive: true, displaylogo: false,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"]
  };

  function draw(data) {
    current = data;
    window.Plotly.react(flopsDiv, traces(data, "flops"), layout("flops"), config);
    window.Plotly.react(paramsDiv, traces(data, "params"), layout("params"), config);
  }

  function open(event) {
    var point = event && event.points && event.points[0];
    if (point && point.customdata) {
      window.location.assign("/submissions/" + point.customdata);
    }
  }

  draw(initial);
  flopsDiv.on("plotly_click", open);
  paramsDiv.on("plotly_click", open);

  var button = document.getElementById("plot-all");
  if (button) {
    var fewer = button.textContent;
    button.addEventListener("click", function () {
      if (current.all) {
        draw(initial);
        button.textContent = fewer;
        status.textContent = "Showing the top entries and the front.";
        return;
      }
      if (allData) {
        draw(allData);
        button.textContent = "Show only the top entries";
        status.textContent = "Showing all " + allData.subs.length + " entries.";
        return;
      }
      button.disabled = true;
      status.textContent = "Loading every entry…";
      fetch(button.getAttribute("data-url"), { credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.json();
        })
        .then(function (data) {
          allData = data;
          draw(data);
          button.textContent = "Show only the top entries";
          status.textContent = "Showing all " + data.subs.length + " entries.";
        })
        .catch(function () {
          status.textContent = "Could not load every entry; try again.";
        })
        .then(function () {
          button.disabled = false;
        });
    });
  }
})();
