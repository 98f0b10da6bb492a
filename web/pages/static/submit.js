/* Submit page: choose or drop prediction files, upload with a progress bar, and show every
   problem next to the field or file it concerns. The form is sent to the API
   (POST /api/v1/submissions, or /api/v1/submissions/validate for "Check only") with the
   session cookie and the X-CSRF-Token header; a new submission opens its page at once.
   Without this script the form posts to /submit and the server renders the same problems. */
(function () {
  "use strict";
  var form = document.getElementById("submit-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) {
    return;
  }
  var FIELDS = ["name", "description", "paper_url", "code_url", "visibility",
    "costs_table", "costs_flops_unit", "costs_params_unit"];  // the last three: Type 1 costs
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : form.elements.csrf_token.value;
  var predictions = document.getElementById("predictions");
  var dropzone = document.getElementById("dropzone");
  var list = document.getElementById("file-list");
  var serverList = document.getElementById("file-problems");
  var summary = document.getElementById("form-summary");
  var statusLine = document.getElementById("upload-status");
  var upload = document.getElementById("upload");
  var progress = document.getElementById("upload-progress");
  var buttons = [document.getElementById("check-button"), document.getElementById("submit-button")];
  var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10) || 0;
  var maxWeightsBytes = parseInt(form.getAttribute("data-max-weights-bytes"), 10) || 0;
  var files = [];
  var fileProblems = {};

  predictions.removeAttribute("required"); // dropped files count too; checked below
  document.getElementById("check-button").setAttribute("formnovalidate", "");

  function sizeText(n) {
    if (n >= 1048576) {
      return (n / 1048576).toFixed(1) + " MiB";
    }
    if (n >= 1024) {
      return (n / 1024).toFixed(1) + " KiB";
    }
    return n + " B";
  }

  function syncInput() {
    if (!window.DataTransfer) {
      return;
    }
    try {
      var transfer = new DataTransfer();
      files.forEach(function (f) { transfer.items.add(f); });
      predictions.files = transfer.files;
    } catch (e) {
      /* older browsers: the list below is what gets sent */
    }
  }

  function addFiles(chosen) {
    Array.prototype.forEach.call(chosen, function (file) {
      files = files.filter(function (f) { return f.name !== file.name; });
      files.push(file);
      delete fileProblems[file.name];
    });
    syncInput();
    renderFiles();
  }

  function problemList(items) {
    var ul = document.createElement("ul");
    ul.className = "problems";
    items.forEach(function (text) {
      var li = document.createElement("li");
      li.textContent = text;
      ul.appendChild(li);
    });
    return ul;
  }

  function fileEntry(name, size, problems, removable) {
    var li = document.createElement("li");
    li.className = "file-entry" + (problems.length ? " has-problems" : "");
    var head = document.createElement("div");
    head.className = "file-head";
    var label = document.createElement("span");
    label.className = "file-name";
    label.textContent = name;
    head.appendChild(label);
    if (size !== null) {
      var sizeLabel = document.createElement("span");
      sizeLabel.className = "size";
      sizeLabel.textContent = sizeText(size);
      head.appendChild(sizeLabel);
    }
    if (problems.length) {
      var count = document.createElement("span");
      count.className = "size";
      count.textContent = problems.length + " problem" + (problems.length === 1 ? "" : "s");
      head.appendChild(count);
    }
    if (removable) {
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "small secondary remove";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", "Remove " + name);
      remove.addEventListener("click", function () {
        files = files.filter(function (f) { return f.name !== name; });
        delete fileProblems[name];
        syncInput();
        renderFiles();
        predictions.focus();
      });
      head.appendChild(remove);
    }
    li.appendChild(head);
    if (problems.length) {
      li.appendChild(problemList(problems));
    }
    return li;
  }

  function renderFiles() {
    list.textContent = "";
    files.forEach(function (f) {
      list.appendChild(fileEntry(f.name, f.size, fileProblems[f.name] || [], true));
    });
    // Problems about files that are not in the list (entries of a zip, say).
    var names = files.map(function (f) { return f.name; });
    Object.keys(fileProblems).forEach(function (name) {
      if (names.indexOf(name) < 0) {
        list.appendChild(fileEntry(name, null, fileProblems[name], false));
      }
    });
    list.hidden = list.children.length === 0;
  }

  predictions.addEventListener("change", function () {
    addFiles(Array.prototype.slice.call(predictions.files));
  });

  ["dragenter", "dragover"].forEach(function (type) {
    dropzone.addEventListener(type, function (event) {
      event.preventDefault();
      dropzone.classList.add("dragging");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    dropzone.addEventListener(type, function (event) {
      event.preventDefault();
      dropzone.classList.remove("dragging");
    });
  });
  dropzone.addEventListener("drop", function (event) {
    if (event.dataTransfer && event.dataTransfer.files.length) {
      addFiles(event.dataTransfer.files);
    }
  });

  function setList(id, items) {
    var ul = document.getElementById(id);
    if (!ul) {
      return;
    }
    ul.textContent = "";
    items.forEach(function (text) {
      var li = document.createElement("li");
      li.textContent = text;
      ul.appendChild(li);
    });
    ul.hidden = items.length === 0;
    var input = document.querySelector('[aria-describedby~="' + id + '"]');
    if (input && input.tagName !== "FIELDSET") {
      if (items.length) {
        input.setAttribute("aria-invalid", "true");
      } else {
        input.removeAttribute("aria-invalid");
      }
    }
  }

  function where(detail, withFile) {
    var parts = [];
    if (withFile && detail.file) {
      parts.push(detail.file);
    }
    if (detail.line !== null && detail.line !== undefined) {
      parts.push("line " + detail.line);
    }
    if (detail.column && FIELDS.indexOf(detail.column) < 0) {
      parts.push("column " + detail.column);
    }
    return parts.length ? parts.join(", ") + ": " + detail.problem : detail.problem;
  }

  function clearProblems() {
    FIELDS.concat(["model", "tokenizer", "weights", "general", "predictions"]).forEach(function (key) {
      setList("problems-" + key, []);
    });
    fileProblems = {};
    if (serverList) {
      serverList.hidden = true;
      serverList.textContent = "";
    }
    renderFiles();
  }

  function placeProblems(details) {
    var model = form.elements.model.files[0];
    var tokenizer = form.elements.tokenizer.files[0];
    var modelName = model ? model.name : null;
    var tokenizerName = tokenizer ? tokenizer.name : null;
    var weights = form.elements.weights.files[0];
    var weightsName = weights ? weights.name : null;
    var groups = { model: [], tokenizer: [], weights: [], general: [], predictions: [] };
    FIELDS.forEach(function (f) { groups[f] = []; });
    details.forEach(function (d) {
      var column = d.column || "";
      if (FIELDS.indexOf(column) >= 0 && !d.file) {
        groups[column].push(where(d, false));  // with its line (the costs table), if any
      } else if (column === "model" || (modelName && d.file === modelName)) {
        groups.model.push(where(d, false));
      } else if (column === "tokenizer" || column === "tokenizer_name" ||
        (tokenizerName && d.file === tokenizerName)) {
        groups.tokenizer.push(where(d, false));
      } else if (column === "weights" || (weightsName && d.file === weightsName)) {
        groups.weights.push(where(d, false));
      } else if (d.file) {
        (fileProblems[d.file] = fileProblems[d.file] || []).push(where(d, false));
      } else if (column === "predictions") {
        groups.predictions.push(d.problem);
      } else {
        groups.general.push(where(d, true));
      }
    });
    Object.keys(groups).forEach(function (key) {
      setList("problems-" + key, groups[key]);
    });
    renderFiles();
  }

  function showSummary(kind, heading, lines) {
    summary.className = kind === "ok" ? "ok-box" : "error-box";
    summary.textContent = "";
    var p = document.createElement("p");
    var strong = document.createElement("strong");
    strong.textContent = heading;
    p.appendChild(strong);
    summary.appendChild(p);
    lines.forEach(function (line) {
      var extra = document.createElement("p");
      extra.textContent = line;
      summary.appendChild(extra);
    });
    var general = document.createElement("ul");
    general.className = "problems";
    general.id = "problems-general";
    general.hidden = true;
    summary.appendChild(general);
    summary.hidden = false;
  }

  function focusSummary() {
    summary.focus();
    summary.scrollIntoView({ block: "start" });
  }

  function busy(on) {
    buttons.forEach(function (b) { b.disabled = on; });
    upload.hidden = !on;
    form.setAttribute("aria-busy", on ? "true" : "false");
  }

  function refused(status, body) {
    var error = (body && body.error) || {};
    var details = error.details || [];
    var message = error.message || ("The server answered " + status);
    var lines = [];
    if (details.length) {
      lines.push(details.length + " problem" + (details.length === 1 ? "" : "s") +
        ", shown next to the field or file concerned.");
    } else if (status === 401) {
      lines.push("Your session ended: log in again, then resend.");
    } else if (status === 403) {
      lines.push("Reload the page (the form's security token expired), then resend.");
    }
    showSummary("error", message, lines);
    placeProblems(details);
    statusLine.textContent = "Refused: " + message;
    focusSummary();
  }

  function checked(body) {
    var lines = (body.tasks || []).map(function (t) {
      var points = t.points.filter(function (p) { return p; });
      return t.task + ": " + t.points.length + " point" + (t.points.length === 1 ? "" : "s") +
        (points.length ? " (" + points.join(", ") + ")" : "");
    });
    lines.push((body.files || []).length + " file(s), " + body.rows + " rows" +
      (body.tokenizer ? "; tokenizer " + body.tokenizer : "") + ". Nothing was stored.");
    if (body.weights) {
      lines.push("Weights " + body.weights.file + ": " + body.weights.tensors + " tensor" +
        (body.weights.tensors === 1 ? "" : "s") + ", " + sizeText(body.weights.size) + ".");
    }
    if (body.model_check) {
      lines.push("Model: " + body.model_check + ".");
    }
    (body.quota || []).forEach(function (q) {
      lines.push("Quota " + q.task + ": " + q.remaining + " of " + q.limit +
        " submissions left in 24 hours (this check used none).");
    });
    showSummary("ok", "Every check passed.", lines);
    statusLine.textContent = "Every check passed.";
    focusSummary();
  }

  form.addEventListener("submit", function (event) {
    var check = event.submitter ? event.submitter.id === "check-button" : false;
    event.preventDefault();
    clearProblems();
    summary.hidden = true;
    if (!check && !form.reportValidity()) {
      return;
    }
    if (!check && files.length === 0) {
      setList("problems-predictions", ["Choose at least one prediction file (or a zip of them)."]);
      predictions.focus();
      return;
    }
    var data = new FormData();
    FIELDS.forEach(function (key) {
      var field = form.elements[key];
      var value = field ? field.value : "";
      if (value) {
        data.append(key, value);
      }
    });
    var model = form.elements.model.files[0];
    if (model) {
      data.append("model", model, model.name);
    }
    files.forEach(function (f) { data.append("predictions", f, f.name); });
    var tokenizer = form.elements.tokenizer.files[0];
    if (tokenizer) {
      data.append("tokenizer", tokenizer, tokenizer.name);
    } else if (form.elements.tokenizer_name.value) {
      data.append("tokenizer_name", form.elements.tokenizer_name.value);
    }
    var weights = form.elements.weights.files[0];
    if (weights) {
      data.append("weights", weights, weights.name);
    }
    var total = files.reduce(function (sum, f) { return sum + f.size; }, model ? model.size : 0);
    if (maxBytes && total > maxBytes) {
      showSummary("error", "The files are too large together", [
        sizeText(total) + " in all; the limit is " + sizeText(maxBytes) + ". Send fewer files or a zip."]);
      focusSummary();
      return;
    }
    if (weights && maxWeightsBytes && weights.size > maxWeightsBytes) {
      setList("problems-weights", ["The weights file is " + sizeText(weights.size) +
        "; the limit is " + sizeText(maxWeightsBytes) + "."]);
      showSummary("error", "The weights file is too large", []);
      focusSummary();
      return;
    }
    var url = form.getAttribute(check ? "data-check-url" : "data-submit-url");
    var request = new XMLHttpRequest();
    request.open("POST", url);
    request.setRequestHeader("X-CSRF-Token", csrf);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        var percent = Math.round((100 * e.loaded) / e.total);
        progress.value = percent;
        progress.textContent = percent + "%";
        statusLine.textContent = percent < 100 ? "Uploading… " + percent + "%" :
          (check ? "Uploaded; checking…" : "Uploaded; checking and storing…");
      }
    });
    request.addEventListener("load", function () {
      busy(false);
      var body = null;
      try {
        body = JSON.parse(request.responseText);
      } catch (e) {
        body = null;
      }
      if (!check && request.status === 202 && body && body.url) {
        statusLine.textContent = "Submitted. Opening its page…";
        window.location.assign(body.url);
      } else if (check && request.status === 200 && body) {
        checked(body);
      } else {
        refused(request.status, body);
      }
    });
    request.addEventListener("error", function () {
      busy(false);
      showSummary("error", "The upload did not reach the server", ["Check your connection and resend."]);
      focusSummary();
    });
    progress.value = 0;
    busy(true);
    statusLine.textContent = "Uploading…";
    request.send(data);
  });

  // Problems the server rendered (no-JS post) stay until the files change.
  renderFiles();
})();
