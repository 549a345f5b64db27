// The runs table updates itself: it polls its JSON twin every few seconds while the tab is
// visible and rebuilds the rows with textContent only (agent-written names stay text).
"use strict";
(function () {
  const table = document.getElementById("runs");
  // Only the first page has data-poll: an older page stays as loaded.
  if (!table || !table.dataset.poll) return;
  const url = table.dataset.poll;
  const body = table.tBodies[0];
  function cell(tr, text) { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); return td; }
  function fmt(t) { return t && !t.startsWith("0001") ? t.replace("T", " ").replace(/\..*|Z$/, "").slice(0, 19) : ""; }
  async function poll() {
    if (document.hidden) return;
    try {
      const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!res.ok) return;
      const runs = await res.json();
      const rows = (runs || []).map(function (r) {
        const tr = document.createElement("tr");
        const a = document.createElement("a");
        a.href = "/ui/runs/" + encodeURIComponent(r.ID);
        a.textContent = r.ID;
        const idc = cell(tr, ""); idc.appendChild(a);
        if (r.RerunOf) { const s = document.createElement("small"); s.className = "rerun"; s.textContent = " re-run of " + r.RerunOf; idc.appendChild(s); }
        cell(tr, r.Repo); cell(tr, r.Routine); cell(tr, r.Event);
        const c = document.createElement("code"); c.textContent = (r.SHA || "").slice(0, 10); cell(tr, "").appendChild(c);
        const st = cell(tr, r.Status + (r.Conclusion ? " · " + r.Conclusion : "")); st.className = "st-" + r.Status;
        cell(tr, fmt(r.Created));
        return tr;
      });
      if (rows.length) body.replaceChildren.apply(body, rows);
      pager(res.headers.get("Link") || "");
    } catch (e) { /* the next poll tries again */ }
  }
  // The "Older →" link follows the rows shown: its cursor is the last row's, which the poll's
  // Link header names.
  function pager(link) {
    const nav = document.querySelector("nav.pager");
    if (!nav) return;
    const m = /<\/ui\/runs\.json\?([^>]*)>;\s*rel="next"/.exec(link);
    let a = nav.querySelector('a[rel="next"]');
    if (!m) { if (a) a.remove(); return; }
    if (!a) { a = document.createElement("a"); a.rel = "next"; a.textContent = "Older →"; nav.appendChild(a); }
    a.href = "/ui/runs?" + m[1];
  }
  setInterval(poll, 3000);
})();
