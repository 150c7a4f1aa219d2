// Fleet page: filter as you type and sort by a column without a round trip; the URL keeps the state, so the
// periodic reload (every 60 s) and a shared link show the same view. Without JS the form and the header
// links do the same on the server.
(function () {
  "use strict";
  const form = document.getElementById("filters");
  if (!form) return;
  const q = document.getElementById("q");
  const school = document.getElementById("school");
  const status = document.getElementById("status");
  const sortInput = document.getElementById("sort");
  const orderInput = document.getElementById("order");
  const shown = document.getElementById("shown");
  const rows = Array.from(document.querySelectorAll("tr.unit"));
  const total = rows.length;
  const numeric = { last_seen: "lastSeen", backlog: "backlog", oldest_unsent: "oldestUnsent", faults: "faults",
                    disk_free: "diskFree", clock: "clock" };

  function matches(row) {
    const needle = q.value.trim().toLowerCase();
    if (needle && !row.dataset.search.includes(needle)) return false;
    const section = row.closest("section");
    if (school.value && section.dataset.school !== school.value) return false;
    if (status.value === "faulty") return row.classList.contains("faulty");
    if (status.value) return row.dataset.status === status.value;
    return true;
  }

  function sortKey(row, key) {
    if (key === "status") return [row.dataset.status === "offline" ? 0 : 1, -Number(row.dataset.lastSeen)];
    if (key in numeric) {
      const v = row.dataset[numeric[key]];
      return v === "" ? [1, 0] : [0, Number(v)];
    }
    if (key === "version") return [0, row.dataset.version.toLowerCase()];
    return [0, row.dataset.room.toLowerCase()];
  }

  function compare(a, b) {
    for (let i = 0; i < a.length; i++) {
      if (a[i] < b[i]) return -1;
      if (a[i] > b[i]) return 1;
    }
    return 0;
  }

  function apply() {
    let visible = 0;
    document.querySelectorAll("section.school").forEach(function (section) {
      const body = section.querySelector("tbody");
      const mine = Array.from(body.querySelectorAll("tr.unit"));
      const key = sortInput.value, desc = orderInput.value === "desc";
      mine.sort(function (a, b) {
        const c = compare(sortKey(a, key), sortKey(b, key)) ||
                  compare([a.dataset.room.toLowerCase(), a.dataset.id], [b.dataset.room.toLowerCase(), b.dataset.id]);
        return desc ? -c : c;
      });
      let here = 0;
      mine.forEach(function (row) {
        body.appendChild(row);
        row.hidden = !matches(row);
        if (!row.hidden) here++;
      });
      section.hidden = here === 0;
      visible += here;
      section.querySelectorAll("thead th[data-key]").forEach(function (th) {
        if (th.dataset.key === key) th.setAttribute("aria-sort", desc ? "descending" : "ascending");
        else th.removeAttribute("aria-sort");
      });
    });
    shown.textContent = visible + " of " + total + " shown";
    const nomatch = document.getElementById("nomatch");
    if (nomatch) nomatch.hidden = visible > 0;
    const params = new URLSearchParams(new FormData(form));
    history.replaceState(null, "", "?" + params.toString());
    document.body.dataset.applied = String(Date.now());
  }

  document.querySelectorAll("thead th[data-key] a").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      const key = link.parentElement.dataset.key;
      orderInput.value = sortInput.value === key && orderInput.value === "asc" ? "desc" : "asc";
      sortInput.value = key;
      apply();
    });
  });
  q.addEventListener("input", apply);
  school.addEventListener("change", apply);
  status.addEventListener("change", apply);
  form.addEventListener("submit", function (event) { event.preventDefault(); apply(); });
  apply();
  setInterval(function () { if (document.activeElement !== q) location.reload(); }, 60000);
}());
