/* Task page: performance against FLOPs and against parameters, drawn by plots.js with the
   Plotly bundle the server ships. The data is the compact JSON embedded in the page
   (#plot-data); "Show all" fetches every entry's points. The board's checkboxes pick entries
   for the compare view (a plain GET form: it works without this script). */
(function () {
  "use strict";
  var dataElement = document.getElementById("plot-data");
  var flopsDiv = document.getElementById("plot-flops");
  var paramsDiv = document.getElementById("plot-params");
  var status = document.getElementById("plot-status");
  if (!dataElement || !flopsDiv || !paramsDiv) {
    return;
  }
  if (!window.Plotly || !window.ParetoPlots) {
    status.textContent = "The plotting library did not load; the tables below hold the same data.";
    return;
  }
  var initial = JSON.parse(dataElement.textContent);
  var current = initial;
  var allData = null;

  function draw(data) {
    current = data;
    window.ParetoPlots.draw(flopsDiv, data, "flops");
    window.ParetoPlots.draw(paramsDiv, data, "params");
  }

  draw(initial);
  window.ParetoPlots.openOnClick(flopsDiv);
  window.ParetoPlots.openOnClick(paramsDiv);

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
