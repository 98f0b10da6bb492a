/* Home page: filter, search and sort the leaderboard without reloading the page.
   Without this script the same form and links work as plain GET requests. */
(function () {
  "use strict";
  var form = document.getElementById("board-filters");
  var results = document.getElementById("board-results");
  var status = document.getElementById("board-status");
  if (!form || !results || !window.fetch || !window.URLSearchParams) {
    return;
  }
  var timer = null;
  var controller = null;

  function formUrl() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      if (typeof value === "string" && value.trim() !== "") {
        params.append(key, value.trim());
      }
    });
    var query = params.toString();
    return query ? "/?" + query : "/";
  }

  function load(url, mode) {
    if (controller) {
      controller.abort();
    }
    controller = window.AbortController ? new AbortController() : null;
    var partial = url + (url.indexOf("?") >= 0 ? "&" : "?") + "partial=1";
    results.setAttribute("aria-busy", "true");
    fetch(partial, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
      signal: controller ? controller.signal : undefined
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        results.innerHTML = html;
        results.removeAttribute("aria-busy");
        if (mode === "push") {
          history.pushState(null, "", url);
        } else if (mode === "replace") {
          history.replaceState(null, "", url);
        }
        var meta = results.querySelector(".board-meta");
        status.textContent = meta ? meta.textContent : "";
      })
      .catch(function (error) {
        if (error && error.name === "AbortError") {
          return;
        }
        window.location.assign(url); // fall back to a plain page load
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearTimeout(timer);
    load(formUrl(), "push");
  });

  form.addEventListener("input", function (event) {
    var name = event.target && event.target.name;
    if (name !== "q" && name !== "min_params" && name !== "max_params") {
      return;
    }
    clearTimeout(timer);
    timer = setTimeout(function () {
      load(formUrl(), "replace");
    }, 300);
  });

  results.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a.sort, .pager a") : null;
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) {
      return;
    }
    event.preventDefault();
    load(link.getAttribute("href"), "push");
  });

  // The track tabs keep what was typed in the filters.
  var tabs = document.querySelector(".tabs");
  if (tabs) {
    tabs.addEventListener("click", function (event) {
      var link = event.target.closest ? event.target.closest("a") : null;
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) {
        return;
      }
      var target = new URL(link.href, window.location.href);
      var params = new URLSearchParams();
      var track = target.searchParams.get("track");
      if (track) {
        params.set("track", track);
      }
      ["q", "min_params", "max_params"].forEach(function (key) {
        var field = form.elements[key];
        if (field && field.value.trim() !== "") {
          params.set(key, field.value.trim());
        }
      });
      event.preventDefault();
      var query = params.toString();
      window.location.assign(query ? "/?" + query : "/");
    });
  }

  window.addEventListener("popstate", function () {
    load(window.location.pathname + window.location.search, null);
  });
})();
