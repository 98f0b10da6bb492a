/* Compare view: the chosen entries on both plots (plots.js), figure export through Plotly's
   own downloadImage (SVG, PNG), and a live count of the ticked entries against the cap. The
   form is a plain GET, so the URL reproduces the view without this script. */
(function () {
  "use strict";
  var form = document.getElementById("compare-form");
  var count = document.getElementById("compare-count");
  if (form && count) {
    var boxes = form.querySelectorAll("input[name=ids]");
    var cap = 11;
    var update = function () {
      var ticked = Array.prototype.filter.call(boxes, function (b) { return b.checked; }).length;
      count.textContent = ticked > cap ? ticked + " ticked: at most " + cap + " can be compared."
        : ticked + " of at most " + cap + " ticked.";
      document.getElementById("compare-apply").disabled = ticked > cap;
    };
    Array.prototype.forEach.call(boxes, function (b) { b.addEventListener("change", update); });
    update();
  }

  var dataElement = document.getElementById("plot-data");
  var flopsDiv = document.getElementById("plot-flops");
  var paramsDiv = document.getElementById("plot-params");
  var status = document.getElementById("compare-status");
  if (!dataElement || !flopsDiv || !paramsDiv) {
    return;
  }
  if (!window.Plotly || !window.ParetoPlots) {
    status.textContent = "The plotting library did not load; the table below holds the same points.";
    return;
  }
  var data = JSON.parse(dataElement.textContent);
  var opts = { scale: dataElement.getAttribute("data-scale"), unit: dataElement.getAttribute("data-unit") };
  var name = dataElement.getAttribute("data-name") || "compare";
  window.ParetoPlots.draw(flopsDiv, data, "flops", opts);
  window.ParetoPlots.draw(paramsDiv, data, "params", opts);
  window.ParetoPlots.openOnClick(flopsDiv);
  window.ParetoPlots.openOnClick(paramsDiv);
  document.body.setAttribute("data-plots-ready", "true");

  Array.prototype.forEach.call(document.querySelectorAll("button[data-export]"), function (button) {
    button.addEventListener("click", function () {
      var div = document.getElementById(button.getAttribute("data-export"));
      var format = button.getAttribute("data-format");
      var axis = div === flopsDiv ? "flops" : "params";
      window.Plotly.downloadImage(div, { format: format, width: 900, height: 560, filename: name + "-" + axis })
        .then(function () { status.textContent = "Saved the " + axis + " plot as " + format.toUpperCase() + "."; })
        .catch(function () { status.textContent = "Could not export the plot."; });
    });
  });
})();
