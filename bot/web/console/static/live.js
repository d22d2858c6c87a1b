// Keeps a run page current: follows the run's history (Server-Sent Events) and, after
// each new entry, reloads the page's changing sections from /runs/{id}/live.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource || !window.fetch) { return; }
  var base = "/runs/" + encodeURIComponent(live.dataset.run);
  var source = new EventSource(base + "/events?after=" + encodeURIComponent(live.dataset.after || "0"));
  var timer = null;

  function busy(section) {
    var active = document.activeElement;
    return active && section.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
  }

  function refresh() {
    timer = null;
    fetch(base + "/live", { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = document.createElement("div");
        fresh.innerHTML = html;
        var seen = {};
        live.querySelectorAll("[data-event]").forEach(function (el) { seen[el.dataset.event] = true; });
        fresh.querySelectorAll("[data-live]").forEach(function (section) {
          var old = live.querySelector('[data-live="' + section.dataset.live + '"]');
          if (old && !busy(old)) { old.replaceWith(section); }
        });
        live.querySelectorAll("[data-event]").forEach(function (el) {
          if (!seen[el.dataset.event]) { el.classList.add("new"); }
        });
      })
      .catch(function () { /* the next event tries again */ });
  }

  function changed() { if (timer === null) { timer = setTimeout(refresh, 150); } }

  (live.dataset.types || "").split(" ").forEach(function (type) {
    if (type) { source.addEventListener(type, changed); }
  });
  source.addEventListener("end", function () { source.close(); changed(); });
})();
