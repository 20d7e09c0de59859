// Live values without a framework: every element with data-live-url is refreshed from that JSON
// endpoint every 2 s; children with data-live-key="a.b" take the value at that path.
(function () {
  function pick(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? o : o[k]; }, obj);
  }
  function refresh(el) {
    fetch(el.getAttribute("data-live-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        el.querySelectorAll("[data-live-key]").forEach(function (node) {
          var value = pick(data, node.getAttribute("data-live-key"));
          if (value !== undefined && value !== null) node.textContent = value;
        });
        el.setAttribute("data-live-at", String(Date.now()));
      })
      .catch(function () {});
  }
  function start() {
    document.querySelectorAll("[data-live-url]").forEach(function (el) {
      var every = parseInt(el.getAttribute("data-live-every") || "2000", 10);
      setInterval(function () { refresh(el); }, every);
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
