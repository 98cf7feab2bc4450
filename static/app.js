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

  document.addEventListener("htmx:beforeRequest", function (evt) {
    hideError();
    var elt = evt.detail.elt;
    if (!elt.hasAttribute || !elt.hasAttribute("data-expand")) return;
    // A click on a button or link inside a log row is that control's, not the row's.
    var trigger = evt.detail.requestConfig && evt.detail.requestConfig.triggeringEvent;
    if (trigger && trigger.target && trigger.target.closest("button, a, form, input, select")) {
      evt.preventDefault();
      return;
    }
    // A second click folds the row again.
    var open = document.getElementById(elt.id.replace("attempt-", "detail-"));
    if (open) {
      open.remove();
      elt.classList.remove("expanded");
      evt.preventDefault();
    } else {
      elt.classList.add("expanded");
    }
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
      input.value = "";
      input.focus();
    }
  });

  document.addEventListener("change", function (evt) {
    if (evt.target.matches("[data-autosubmit]")) evt.target.form.submit();
  });
})();
