// Dashboard behaviour wired without inline script (a Content-Security-Policy forbids it).
(function () {
  "use strict";

  // htmx 2 swaps nothing on 4xx/5xx by default. 422 is a form with its errors: swap it in
  // place. Every other error shows the banner below instead of failing silently.
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "422", swap: true },
    { code: "[45]..", swap: false, error: true },
    { code: "...", swap: false },
  ];

  function showError(text) {
    var banner = document.getElementById("error-banner");
    var slot = document.getElementById("error-text");
    if (!banner || !slot) { window.alert(text); return; }
    slot.textContent = text;
    banner.hidden = false;
  }

  function hideError() {
    var banner = document.getElementById("error-banner");
    if (banner) banner.hidden = true;
  }

  document.addEventListener("htmx:responseError", function (evt) {
    var xhr = evt.detail.xhr;
    var text = (xhr.getResponseHeader("Content-Type") || "").indexOf("text/plain") === 0
      ? xhr.responseText : "";
    if (!text) {
      text = xhr.status === 400 ? "Your session expired: reload the page and try again."
        : xhr.status === 404 ? "Not found: it may have been deleted."
        : "The server answered " + xhr.status + ". Please try again.";
    }
    showError(text);
  });

  document.addEventListener("htmx:sendError", function () {
    showError("Could not reach the server. Check your connection and try again.");
  });

  // Logs: each row's expand button (aria-controls: its detail row) fetches the detail once
  // through htmx, then only shows and folds it; aria-expanded follows.
  function expandButtonFor(detail) {
    return document.querySelector('button[data-expand][aria-controls="' + detail.id + '"]');
  }

  function setExpanded(button, open) {
    var detail = document.getElementById(button.getAttribute("aria-controls"));
    if (detail) detail.hidden = !open;
    button.setAttribute("aria-expanded", open ? "true" : "false");
    var row = button.closest("tr");
    if (row) row.classList.toggle("expanded", open);
  }

  document.addEventListener("htmx:beforeRequest", function (evt) {
    hideError();
    var button = evt.detail.elt;
    if (!button.matches || !button.matches("button[data-expand]")) return;
    var detail = document.getElementById(button.getAttribute("aria-controls"));
    if (detail && detail.hasAttribute("data-loaded")) {  // fetched already: show or fold it
      evt.preventDefault();
      setExpanded(button, detail.hidden);
    }
  });

  // A detail row just swapped in is shown: its button says so.
  document.addEventListener("htmx:load", function (evt) {
    var elt = evt.detail.elt;
    if (!elt.matches || !elt.matches("tr.detail-row[data-loaded]")) return;
    var button = expandButtonFor(elt);
    if (button) setExpanded(button, true);
  });

  // Mouse users may click anywhere on a row; a button, link or field inside keeps its click.
  document.addEventListener("click", function (evt) {
    var row = evt.target.closest("tr.log-row");
    if (!row || evt.target.closest("button, a, input, select, textarea, label")) return;
    if (window.getSelection && String(window.getSelection())) return;  // selecting text
    var button = row.querySelector("button[data-expand]");
    if (button) button.click();
  });

  document.addEventListener("click", function (evt) {
    var target = evt.target.closest("[data-secret], [data-dismiss-error]");
    if (!target) return;
    if (target.hasAttribute("data-dismiss-error")) { hideError(); return; }
    var input = document.getElementById("secret");
    if (!input) return;
    var action = target.getAttribute("data-secret");
    if (action === "reveal") {
      var show = input.type === "password";
      input.type = show ? "text" : "password";
      target.textContent = show ? "Hide" : "Reveal";
    } else if (action === "copy") {
      var done = function () { target.textContent = "Copied"; setTimeout(function () { target.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () { showError("Copy failed: select the secret and copy it."); });
      } else {
        input.type = "text"; input.select(); document.execCommand("copy"); done();
      }
    } else if (action === "clear") {
      // Empty now means "no secret", not "keep the one it has" (tnt/web/endpoints.py).
      var kept = document.querySelector("#secret-field input[name=secret_kept]");
      if (kept) kept.remove();
      input.value = "";
      input.placeholder = "No secret: requests are not signed";
      input.focus();
    }
  });

  // Copy buttons: data-copy names the element whose value (or text) is copied.
  document.addEventListener("click", function (evt) {
    var button = evt.target.closest("[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    var text = "value" in source ? source.value : source.textContent;
    var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { showError("Copy failed: select the text and copy it."); });
    } else {
      var range = document.createRange();
      range.selectNodeContents(source);
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      document.execCommand("copy");
      done();
    }
  });

  document.addEventListener("change", function (evt) {
    if (evt.target.matches("[data-autosubmit]")) evt.target.form.submit();
  });
})();
