/* Account page: copy a new API token to the clipboard. */
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.copy") : null;
    if (!button) {
      return;
    }
    var input = document.getElementById(button.getAttribute("data-copy"));
    var status = button.parentNode.querySelector(".copy-status");
    if (!input) {
      return;
    }
    function done(ok) {
      if (status) {
        status.textContent = ok ? "Copied." : "Select the token and copy it.";
      }
    }
    function fallback() {
      input.focus();
      input.select();
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (e) {
        ok = false;
      }
      done(ok);
    }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(input.value).then(function () {
        done(true);
      }, fallback);
    } else {
      fallback();
    }
  });
})();
