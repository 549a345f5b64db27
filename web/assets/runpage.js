// The run page polls its JSON twin while the run goes on and updates statuses and durations
// (textContent only: job ids are agent-named), reloading once the run is completed. The job
// page follows a running job's log as Server-Sent Events, appending each line as text.
"use strict";
(function () {
  // Control characters shown as their Unicode pictures, as the server's render.Visible does.
  function visible(s) {
    return s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, function (c) { return String.fromCharCode(0x2400 + c.charCodeAt(0)); })
      .replace(/\u007f/g, "\u2421").replace(/[\u0080-\u009f\u202a-\u202e\u2066-\u2069]/g, "\ufffd");
  }

  const state = document.getElementById("run-state");
  if (state && state.dataset.poll) {
    const url = state.dataset.poll;
    const rows = {};
    document.querySelectorAll("tr[data-job]").forEach(function (tr) { rows[tr.dataset.job] = tr; });
    let timer = null;
    async function poll() {
      if (document.hidden) return;
      try {
        const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!res.ok) return;
        const st = await res.json();
        if (st.finished) { clearInterval(timer); location.reload(); return; }
        const status = document.getElementById("run-status");
        if (status) { status.textContent = st.status + (st.conclusion ? " · " + st.conclusion : ""); status.className = "st-" + st.status; }
        const elapsed = document.getElementById("run-elapsed");
        if (elapsed) elapsed.textContent = st.elapsed || "";
        (st.jobs || []).forEach(function (j) {
          const tr = rows[j.id];
          if (!tr) return;
          const b = tr.querySelector(".job-status");
          if (b) { b.textContent = j.status; b.className = "job-status badge o-" + j.status.replace(/[^a-z_]/g, ""); }
          const d = tr.querySelector(".job-duration");
          if (d) d.textContent = j.duration || "";
        });
      } catch (e) { /* the next poll tries again */ }
    }
    timer = setInterval(poll, 2000);
  }

  const log = document.getElementById("log");
  if (log && log.dataset.live && window.EventSource) {
    const note = document.getElementById("log-note");
    const maxLines = 50000; // the page keeps the newest lines of a very long log
    let lines = 0, live = false;
    const es = new EventSource(log.dataset.live);
    function atBottom() { return log.scrollTop + log.clientHeight >= log.scrollHeight - 24; }
    es.onmessage = function (ev) {
      if (!live) {
        // The stream starts from the job's first line: it replaces the stored part shown.
        live = true;
        log.textContent = "";
        if (note) note.textContent = "Following the log live.";
      }
      const follow = atBottom();
      log.appendChild(document.createTextNode(visible(ev.data) + "\n"));
      if (++lines > maxLines && log.firstChild) { log.removeChild(log.firstChild); lines--; }
      if (follow) log.scrollTop = log.scrollHeight;
    };
    es.addEventListener("end", function () {
      es.close();
      if (note) note.textContent = "The job has ended. Reload the page for its outcome.";
    });
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED || !live) {
        // No live log here (the route answered 404, or this daemon does not run the job):
        // the stored log stays.
        es.close();
        if (note && !live) {
          note.textContent = log.textContent ? "The live log is not available here; the stored log is shown. Reload to see more."
            : "The live log is not available here, and no log is stored yet. Reload to see more.";
        }
      }
    };
  }
})();
