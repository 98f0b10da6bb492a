/* The site's performance-vs-cost plots, shared by the task page, the compare view and a
   submission's page (window.ParetoPlots). The data is the compact JSON the server writes
   (web/views/leaderboard.py, plot_body): each entry carries its own colour (a function of
   its id, the same on every page), so a curve looks the same wherever it is drawn. Drawing
   order, bottom to top: other entries (grey), the baseline (black, dashed), the Pareto front
   (grey step line), then the entries, so a curve near the baseline stays visible. Every entry
   is named in the legend. Names are escaped before Plotly sees them. */
(function () {
  "use strict";

  var SUB = { id: 0, name: 1, kind: 2, params: 3, score: 4, baseline: 5, colour: 6 };
  var PT = { sub: 0, mflops: 1, perf: 2, params: 3, pos: 4, flopsFront: 5, paramsFront: 6, incomplete: 7, elueMflops: 8, disagrees: 9, verified: 10, point: 11 };
  var POSITION = {
    b: "cheaper than the cheapest baseline point: compared with that point's performance, held flat (no credit for the saving)",
    a: "costlier than the costliest baseline point: compared with that point's performance, held flat"
  };
  var UNITS = { "1": 1, K: 1e3, M: 1e6, G: 1e9 };
  var BASELINE = "#111111";
  var FRONT = "#6b6b6b";

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
    var lines = ["<b>" + esc(sub[SUB.name]) + "</b>" + (pt[PT.point] ? " \u00b7 " + esc(pt[PT.point]) : "") +
      (sub[SUB.kind] === "s" ? " (self-reported)" : ""),
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

  function options(opts) {
    opts = opts || {};
    return {
      scale: opts.scale === "linear" ? "linear" : "log",
      unit: Object.prototype.hasOwnProperty.call(UNITS, opts.unit) ? opts.unit : "1"
    };
  }

  function xOf(pt, axis, opts) {
    if (axis === "flops") {
      return pt[PT.mflops] * 1e6 / UNITS[opts.unit];
    }
    return pt[PT.params];
  }

  // The point indices of one entry, cheapest first on this axis (then by performance).
  function byCost(data, indices, axis, opts) {
    return indices.filter(function (i) { return xOf(data.points[i], axis, opts) !== null; })
      .sort(function (a, b) {
        var pa = data.points[a];
        var pb = data.points[b];
        return (xOf(pa, axis, opts) - xOf(pb, axis, opts)) || (pa[PT.perf] - pb[PT.perf]);
      });
  }

  function traces(data, axis, opts) {
    opts = options(opts);
    var bySub = {};
    data.points.forEach(function (pt, i) {
      (bySub[pt[PT.sub]] = bySub[pt[PT.sub]] || []).push(i);
    });
    var mode = axis === "flops" ? "lines+markers" : "markers";
    var below = [];
    var above = [];
    // Everyone outside the highlighted set: one grey trace, curves separated by gaps.
    if (data.others !== false) {
      var other = { x: [], y: [], text: [], customdata: [] };
      for (var s = data.highlight; s < data.subs.length; s++) {
        byCost(data, bySub[s] || [], axis, opts).forEach(function (i) {
          var pt = data.points[i];
          other.x.push(xOf(pt, axis, opts));
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
        below.push({
          type: "scatter", mode: mode, name: "other entries", legendrank: 1003,
          x: other.x, y: other.y, text: other.text, customdata: other.customdata,
          hovertemplate: "%{text}<extra></extra>", connectgaps: false,
          line: { color: "rgba(120,120,120,0.35)", width: 1 },
          marker: { color: "rgba(120,120,120,0.55)", size: 5 }
        });
      }
    }
    for (var h = 0; h < Math.min(data.highlight, data.subs.length); h++) {
      var sub = data.subs[h];
      var indices = byCost(data, bySub[h] || [], axis, opts);
      if (!indices.length || (sub[SUB.baseline] && data.baseline)) {
        continue; // the baseline is drawn in its own style, below
      }
      var color = sub[SUB.colour] || "#1f77b4";
      above.push({
        type: "scatter", mode: mode,
        name: esc(sub[SUB.name]), legendrank: 1 + h,
        x: indices.map(function (i) { return xOf(data.points[i], axis, opts); }),
        y: indices.map(function (i) { return data.points[i][PT.perf]; }),
        text: indices.map(function (i) { return hover(sub, data.points[i]); }),
        customdata: indices.map(function () { return sub[SUB.id]; }),
        hovertemplate: "%{text}<extra></extra>",
        line: { color: color, width: 2 },
        // an incomplete count (a lower bound on the FLOPs) is drawn hollow
        marker: { color: color, size: 8, line: { color: "#fff", width: 1 }, symbol: indices.map(function (i) {
          var shape = sub[SUB.kind] === "s" ? "diamond" : "circle";
          return data.points[i][PT.incomplete] ? shape + "-open" : shape;
        }) }
      });
    }
    if (axis === "flops" && data.baseline) {
      var b = data.baseline;
      below.push({
        type: "scatter", mode: "lines+markers", legendrank: 1001,
        name: "baseline: " + esc(b.name) + (b.label ? " (" + esc(b.label) + ")" : ""),
        x: b.points.map(function (p) { return p[0] * 1e6 / UNITS[opts.unit]; }),
        y: b.points.map(function (p) { return p[1]; }),
        text: b.points.map(function (p) {
          return "<b>" + esc(b.name) + "</b> (baseline" + (b.label ? ": " + esc(b.label) : "") + ")<br>FLOPs: " + flopsText(p[0]) +
            "<br>Performance: " + p[1].toFixed(2);
        }),
        customdata: b.points.map(function () { return b.id; }),
        hovertemplate: "%{text}<extra></extra>",
        line: { color: BASELINE, width: 1.5, dash: "dash" },
        marker: { color: BASELINE, size: 6, symbol: "square" }
      });
    }
    if (axis === "params" && data.baseline) {
      // The baseline's points against parameters (sent among the subs, drawn or not).
      for (var bs = 0; bs < data.subs.length; bs++) {
        if (data.subs[bs][SUB.id] !== data.baseline.id) {
          continue;
        }
        var bsub = data.subs[bs];
        var bidx = byCost(data, bySub[bs] || [], axis, opts);
        if (bidx.length) {
          below.push({
            type: "scatter", mode: "markers", name: "baseline: " + esc(bsub[SUB.name]), legendrank: 1001,
            x: bidx.map(function (i) { return xOf(data.points[i], axis, opts); }),
            y: bidx.map(function (i) { return data.points[i][PT.perf]; }),
            text: bidx.map(function (i) {
              return hover(bsub, data.points[i]) + "<br>(baseline" +
                (data.baseline.label ? ": " + esc(data.baseline.label) : "") + ")";
            }),
            customdata: bidx.map(function () { return bsub[SUB.id]; }),
            hovertemplate: "%{text}<extra></extra>",
            marker: { color: BASELINE, size: 7, symbol: "square" }
          });
        }
      }
    }
    var front = axis === "flops" ? data.flops_front : data.params_front;
    if (front && front.length) {
      var sorted = front.slice().sort(function (a, c) {
        return xOf(data.points[a], axis, opts) - xOf(data.points[c], axis, opts);
      });
      below.push({
        type: "scatter", mode: "lines+markers", name: "Pareto front", legendrank: 1002,
        x: sorted.map(function (i) { return xOf(data.points[i], axis, opts); }),
        y: sorted.map(function (i) { return data.points[i][PT.perf]; }),
        text: sorted.map(function (i) {
          return hover(data.subs[data.points[i][PT.sub]], data.points[i]);
        }),
        customdata: sorted.map(function (i) { return data.subs[data.points[i][PT.sub]][SUB.id]; }),
        hovertemplate: "%{text}<extra></extra>",
        line: { color: FRONT, width: 1.5, shape: "hv", dash: "dot" },
        marker: { size: 12, symbol: "circle-open", color: FRONT, line: { width: 1.5 } }
      });
    }
    return below.concat(above);
  }

  function layout(axis, opts) {
    opts = options(opts);
    var scaleText = opts.scale === "log" ? "log" : "linear";
    var unitText = opts.unit === "1" ? "FLOPs" : opts.unit + "FLOPs";
    return {
      margin: { l: 56, r: 12, t: 8, b: 52 },
      hovermode: "closest",
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12 },
      xaxis: {
        type: opts.scale, exponentformat: axis === "flops" && opts.unit !== "1" ? "none" : "SI",
        title: { text: axis === "flops" ? unitText + " per sample (" + scaleText + ")" : "Parameters (" + scaleText + ")" }
      },
      yaxis: { title: { text: "Performance (\u00d7100)" }, zeroline: false },
      showlegend: true,
      legend: { orientation: "h", x: 0, y: -0.18, yanchor: "top", traceorder: "normal" },
      paper_bgcolor: "#fff", plot_bgcolor: "#fff"
    };
  }

  var CONFIG = {
    responsive: true, displaylogo: false,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"]
  };

  function draw(div, data, axis, opts) {
    return window.Plotly.react(div, traces(data, axis, opts), layout(axis, opts), CONFIG);
  }

  function openOnClick(div) {
    div.on("plotly_click", function (event) {
      var point = event && event.points && event.points[0];
      if (point && point.customdata) {
        window.location.assign("/submissions/" + point.customdata);
      }
    });
  }

  window.ParetoPlots = {
    draw: draw, traces: traces, layout: layout, openOnClick: openOnClick, esc: esc,
    SUB: SUB, PT: PT
  };
})();
