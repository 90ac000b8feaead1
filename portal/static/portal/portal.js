/* The portal's little bit of behaviour; every page works without it.
   - Copy buttons for the shown-once secret.
   - The create form's scope checkboxes follow the chosen API.
   - Forms marked data-submit-once cannot be sent twice by a double click. */
(function () {
  "use strict";

  function setStatus(el, text) {
    if (el) { el.textContent = text; }
  }

  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = document.getElementById(button.getAttribute("data-copy-target"));
      var status = document.getElementById("copy-status");
      if (!input) { return; }
      var done = function () {
        button.textContent = "Copied";
        setStatus(status, "Copied to the clipboard.");
        window.setTimeout(function () { button.textContent = "Copy"; }, 2500);
      };
      var fallback = function () {
        input.focus();
        input.select();
        try {
          document.execCommand("copy") ? done() : setStatus(status, "Press Ctrl+C (or ⌘C) to copy.");
        } catch (e) {
          setStatus(status, "Press Ctrl+C (or ⌘C) to copy.");
        }
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, fallback);
      } else {
        fallback();
      }
    });
  });

  document.querySelectorAll("input.secret__value").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });

  var apiSelect = document.querySelector("[data-scope-filter]");
  if (apiSelect) {
    var groups = document.querySelectorAll(".scope-group[data-api]");
    var placeholder = document.querySelector("[data-scope-placeholder]");
    var follow = function () {
      var chosen = apiSelect.value;
      groups.forEach(function (group) {
        var match = group.getAttribute("data-api") === chosen;
        group.hidden = !match;
        if (!match) {
          // A scope of another API would be refused by the server: never send one.
          group.querySelectorAll("input[type=checkbox]").forEach(function (box) { box.checked = false; });
        }
      });
      if (placeholder) { placeholder.hidden = chosen !== ""; }
    };
    apiSelect.addEventListener("change", follow);
    follow();
  }

  document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
    form.addEventListener("submit", function () {
      window.setTimeout(function () {
        form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
      }, 0);
    });
  });
})();
