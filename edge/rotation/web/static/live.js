// Keeps the pages live: polls GET /api/v1/rotation and redraws; counts down between polls on this
// device's clock (from remaining_s, so a Chromebook whose clock is off still shows the right time).
// Polling recovers by itself when the unit restarts; "Reconnecting…" shows while it is away.
(function () {
  "use strict";
  var body = document.body;
  var page = body.dataset.page;
  var POLL_MS = Number(body.dataset.pollMs) || 1000;
  var state = null;
  var receivedAt = 0;
  var failures = 0;

  function $(id) { return document.getElementById(id); }

  function clockText(seconds) {
    var s = Math.max(0, Math.floor(seconds + 0.999));
    var m = Math.floor(s / 60);
    var r = s % 60;
    return m + ":" + (r < 10 ? "0" : "") + r;
  }

  // The big countdown runs to the end of the work period (warning included) or of the move.
  function remaining() {
    if (!state) { return 0; }
    if (state.status !== "running") { return state.stage_remaining_s; }
    return state.stage_remaining_s - (performance.now() - receivedAt) / 1000;
  }

  function active(s) { return s.status === "running" || s.status === "paused"; }

  function setText(id, text) {
    var el = $(id);
    if (el && el.textContent !== text) { el.textContent = text; }
  }

  function el(tag, text, attrs) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = text; }
    if (attrs) { Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); }); }
    return e;
  }

  function tickCountdown() {
    var c = $("countdown");
    if (!c || !state) { return; }
    c.dataset.status = state.status;
    c.hidden = !active(state);  // nothing counts down: no giant "–:––"
    var text = active(state) ? clockText(remaining()) : "";
    if (c.textContent !== text) { c.textContent = text; }
  }

  // A name (group, station) that wraps anywhere; the full name in its title too.
  function named(tag, text, attrs) {
    var e = el(tag, text, attrs);
    e.classList.add("name");
    e.setAttribute("title", text || "");
    return e;
  }

  function drawCommon(s) {
    var banner = $("banner");
    if (banner) { banner.dataset.phase = s.phase; }
    setText("phase-word", s.phase_word);
    var line;
    if (active(s)) { line = "Round " + s.round + " of " + s.rounds + " · " + s.plan; }
    else if (s.status === "done") { line = s.plan + " is finished"; }
    else { line = "No rotation running"; }
    if (s.quiet) { line += " · quiet mode"; }
    setText("round", line);
    var fault = $("fault");
    if (fault) { fault.hidden = !s.fault; setText("fault-text", s.fault || ""); }
    var setup = $("setup-code");
    if (setup && !s.teacher_setup) { setup.hidden = true; }  // the PIN was set: the code is spent
    var table = $("board-table");
    if (table) { table.hidden = !active(s); }
    var idle = $("board-idle");
    if (idle) {
      idle.hidden = active(s);
      setText("board-idle", s.status === "done" ? "The rotation is over." : "No rotation running.");
    }
    var rows = $("groups-rows");
    if (rows) {
      var frag = document.createDocumentFragment();
      s.groups.forEach(function (g) {
        var tr = el("tr");
        tr.appendChild(el("th", g, {scope: "row"}));
        tr.appendChild(el("td", s.assignments[g]));
        tr.appendChild(el("td", s.next_assignments[g] || "—"));
        frag.appendChild(tr);
      });
      rows.replaceChildren(frag);
      rows.parentNode.style.setProperty("--rows", String(Math.max(1, s.groups.length)));
    }
    tickCountdown();
  }

  function drawTeacher(s) {
    document.querySelectorAll("button[data-when]").forEach(function (b) {
      var ok = b.dataset.when.split(" ").indexOf(s.status) >= 0;
      if (b.id === "btn-start" && !document.querySelector("#start-plan option")) { ok = false; }
      b.disabled = !ok;
    });
  }

  function lessonHref(path) {
    if (body.dataset.student) {  // the student picked themselves: /launch mints their lesson credential
      return "/launch?group=" + encodeURIComponent(body.dataset.group) + "&student=" +
        encodeURIComponent(body.dataset.student) + "&lesson=" + encodeURIComponent(path);
    }
    return body.dataset.lessonBase + path.split("/").map(encodeURIComponent).join("/");
  }

  function drawStudent(s) {
    var group = body.dataset.group || "";
    var list = $("group-list");
    var names = Array.prototype.map.call(list.querySelectorAll("a"), function (a) { return a.textContent; });
    if (names.join("\n") !== s.groups.join("\n")) {
      var frag = document.createDocumentFragment();
      s.groups.forEach(function (g) {
        var a = named("a", g, {"class": "group-button", href: "?group=" + encodeURIComponent(g)});
        if (g === group) { a.setAttribute("aria-current", "true"); }
        var li = el("li");
        li.appendChild(a);
        frag.appendChild(li);
      });
      list.replaceChildren(frag);
    }
    $("no-groups").hidden = s.groups.length > 0;
    var title = $("my-title");
    var lessons = $("lessons");
    var here = s.assignments[group];
    var key = JSON.stringify([s.status, group, here || "", s.next_assignments[group] || "", s.stations]);
    if (title.dataset.key === key) { return; }
    title.dataset.key = key;
    lessons.replaceChildren();
    $("lessons-h").hidden = !here;
    if (!active(s)) {
      title.textContent = s.status === "done" ? "The rotation is over." : "No rotation is running right now.";
      setText("my-next", "This page shows your station by itself when your teacher starts the next rotation.");
    } else if (!group) {
      title.textContent = "Pick your group above.";
      setText("my-next", "");
    } else if (!here) {
      title.replaceChildren(document.createTextNode("Group "), named("span", group),
                            document.createTextNode(" is not in this rotation."));
      setText("my-next", "Pick your group above.");
    } else {
      title.replaceChildren(document.createTextNode("Group "), named("span", group),
                            document.createTextNode(": go to "), named("strong", here, {id: "my-station"}));
      var next = s.next_assignments[group];
      setText("my-next", next ? "Next: " + next : "");
      s.stations.filter(function (st) { return st.name === here; }).forEach(function (st) {
        st.lessons.forEach(function (path) {
          var li = el("li");
          li.appendChild(el("a", path.split("/").pop(), {href: lessonHref(path), title: path}));
          li.appendChild(document.createTextNode(" "));
          li.appendChild(el("span", path, {"class": "path"}));
          lessons.appendChild(li);
        });
      });
      if (!lessons.firstChild) { lessons.appendChild(el("li", "No lesson links at this station.", {"class": "none"})); }
    }
  }

  function draw(s) {
    drawCommon(s);
    if (page === "teacher") { drawTeacher(s); }
    if (page === "student") { drawStudent(s); }
  }

  function schedule(ms) { window.setTimeout(poll, ms); }

  function poll() {
    var started = performance.now();
    fetch("/api/v1/rotation", {cache: "no-store", headers: {Accept: "application/json"}})
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (s) {
        state = s;
        receivedAt = performance.now();
        failures = 0;
        $("conn").hidden = true;
        body.classList.remove("offline");
        draw(s);
        body.dataset.live = String(s.seq);  // drawn from the server at least once (tests wait for it)
        schedule(Math.max(0, POLL_MS - (performance.now() - started)));
      })
      .catch(function () {
        failures += 1;
        $("conn").hidden = false;
        body.classList.add("offline");
        schedule(Math.min(POLL_MS * failures, 2000));  // keep trying: the unit may be rebooting
      });
  }

  function initEditor() {
    document.querySelectorAll("button.add-row").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var rows = document.querySelector('.rows[data-kind="' + btn.dataset.target + '"]');
        var all = rows.querySelectorAll("[data-row]");
        var last = all[all.length - 1];
        var copy = last.cloneNode(true);
        var n = all.length;
        var kind = btn.dataset.target;
        var pattern = new RegExp("^" + kind + "-\\d+-");
        copy.querySelectorAll(".field-error").forEach(function (e) { e.remove(); });
        copy.querySelectorAll("[id],[name],[for]").forEach(function (e) {
          ["id", "name", "for"].forEach(function (a) {
            var v = e.getAttribute(a);
            if (v && pattern.test(v)) { e.setAttribute(a, v.replace(pattern, kind + "-" + n + "-")); }
          });
          e.removeAttribute("aria-invalid");
          e.removeAttribute("aria-describedby");
          if (e.tagName === "INPUT" && e.type !== "checkbox") { e.value = ""; }
          if (e.tagName === "TEXTAREA") { e.value = ""; }
        });
        copy.querySelectorAll("label, legend").forEach(function (l) {
          l.textContent = l.textContent.replace(/\d+/, String(n + 1));
        });
        rows.appendChild(copy);
        var first = copy.querySelector("input, select, textarea");
        if (first) { first.focus(); }
      });
    });
    var summary = $("error-summary");
    if (summary) { summary.focus(); }
  }

  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (ev) {
      if (!window.confirm(f.dataset.confirm)) { ev.preventDefault(); }
    });
  });

  if (page === "plan-editor" || page === "periods-editor") {
    initEditor();
  } else if ($("countdown")) {
    poll();
    window.setInterval(tickCountdown, 250);
  }
}());
