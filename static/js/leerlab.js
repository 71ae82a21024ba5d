// Small progressive enhancements; the portal works without JavaScript.
// No inline scripts anywhere: a strict Content-Security-Policy applies.
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    // Move focus to the error summary after a failed submit, so screen
    // reader and keyboard users land on the list of problems.
    var summary = document.querySelector("[data-error-summary]");
    if (summary) {
      summary.focus();
    }

    // A link in the summary focuses its field (not only scrolls to it).
    document.querySelectorAll("[data-error-summary] a[href^='#']").forEach(function (link) {
      link.addEventListener("click", function (event) {
        var target = document.getElementById(link.getAttribute("href").slice(1));
        if (target) {
          event.preventDefault();
          target.scrollIntoView({ block: "center" });
          target.focus();
        }
      });
    });

    // A second click on a submit button while the first request is under
    // way would send the form twice.
    document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (form.dataset.submitted) {
          event.preventDefault();
          return;
        }
        form.dataset.submitted = "1";
        form.querySelectorAll("button[type='submit']").forEach(function (button) {
          button.setAttribute("aria-disabled", "true");
        });
      });
    });
  });

  // Coming back with the browser's back button restores the page from the
  // cache: make its forms usable again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
      delete form.dataset.submitted;
      form.querySelectorAll("button[type='submit']").forEach(function (button) {
        button.removeAttribute("aria-disabled");
      });
    });
  });
})();
