/* Submission page: its own curve per task against the baseline and the front (plots.js), drawn
   on load and again whenever the live panel that holds them is swapped in. */
(function () {
  "use strict";
  function drawOwnPlots() {
    if (!window.Plotly || !window.ParetoPlots) {
      return;
    }
    Array.prototype.forEach.call(document.querySelectorAll(".own-plot .plot"), function (div) {
      var source = document.getElementById(div.getAttribute("data-source"));
      if (!source) {
        return;
      }
      window.ParetoPlots.draw(div, JSON.parse(source.textContent), div.getAttribute("data-axis"));
      window.ParetoPlots.openOnClick(div);
    });
  }
  window.paretoDrawOwnPlots = drawOwnPlots;
  drawOwnPlots();
})();

/* Submission page: follow the evaluation live, without reloading.
   While the submission is queued or running, its state is polled from the API every couple of
   seconds; the elapsed time ticks every second. When the state changes, the server-rendered
   panel (status, results, costs) is fetched and swapped in, and the change is announced to
   screen readers through an aria-live region. */
(function () {
  "use strict";
  var live = document.getElementById("live");
  var announce = document.getElementById("live-announce");
  if (!live || !window.fetch) {
    return;
  }
  var apiUrl = live.getAttribute("data-api-url");
  var panelUrl = live.getAttribute("data-panel-url");
  var state = null;
  var final = true;
  var elapsedBase = 0;
  var readAt = 0;
  var timer = null;
  var polls = 0;

  function read() {
    var panel = document.getElementById("panel");
    state = panel.getAttribute("data-state");
    final = panel.getAttribute("data-final") === "true";
    elapsedBase = parseFloat(panel.getAttribute("data-elapsed")) || 0;
    readAt = Date.now();
  }

  function duration(seconds) {
    var s = Math.round(seconds);
    if (s < 60) {
      return s + " s";
    }
    if (s < 3600) {
      return Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
    }
    return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " min";
  }

  function queueText(ahead) {
    if (ahead === 0) {
      return "next in line";
    }
    return ahead.toLocaleString("en") + " submission" + (ahead === 1 ? "" : "s") + " ahead in this stage";
  }

  function tick() {
    if (final) {
      return;
    }
    var element = document.getElementById("elapsed");
    if (element) {
      element.textContent = duration(elapsedBase + (Date.now() - readAt) / 1000);
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (!final) {
      polls += 1;
      // Every 1.5 s at first, slowing to every 5 s for long runs.
      timer = setTimeout(poll, Math.min(1500 + polls * 50, 5000));
    }
  }

  function getJson(url) {
    return fetch(url, {
      credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" }
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      return response.json();
    });
  }

  function refresh() {
    return fetch(panelUrl, {
      credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" }
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        live.innerHTML = html;
        if (window.paretoboardDrawExitPlots) {
          window.paretoboardDrawExitPlots();
        }
        read();
        if (window.paretoDrawOwnPlots) {
          window.paretoDrawOwnPlots();
        }
        var label = document.getElementById("state-label");
        var message = document.getElementById("state-message");
        announce.textContent = "Status: " + (label ? label.textContent : state) +
          (message ? ". " + message.textContent : "");
      });
  }

  function poll() {
    getJson(apiUrl)
      .then(function (submission) {
        if (submission.state !== state) {
          return refresh();
        }
        elapsedBase = submission.timings.elapsed_seconds || elapsedBase;
        readAt = Date.now();
        var queue = document.getElementById("queue");
        if (queue && submission.queue_position !== null) {
          queue.textContent = queueText(submission.queue_position);
        }
        var message = document.getElementById("state-message");
        if (message && submission.state_message) {
          message.textContent = submission.state_message;
        }
        return null;
      })
      .catch(function () {
        polls += 10; // back off while the server is unreachable
      })
      .then(schedule);
  }

  read();
  if (!final) {
    setInterval(tick, 1000);
    schedule();
  }
})();
