// modelshield gateway dashboard: polls /v1/admin/monitor with the session cookie and draws the windows.
// No libraries, no inline code (the page's CSP allows only this file); every value lands via textContent.
"use strict";
(function () {
  const POLL_MS = 2000;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  let timer = null;
  let chosen = null;
  let latest = null;

  function show(signedIn) {
    $("login").hidden = signedIn;
    $("dashboard").hidden = !signedIn;
    $("signout").hidden = !signedIn;
    if (!signedIn) { $("updated").textContent = "not signed in"; $("key").focus(); }
  }

  async function signIn(event) {
    event.preventDefault();
    const key = $("key").value.trim();
    $("login-error").textContent = "";
    const r = await fetch("/v1/admin/session", {
      method: "POST", credentials: "same-origin", headers: { Authorization: "Bearer " + key },
    });
    $("key").value = "";
    if (!r.ok) {
      let why = r.status + "";
      try { why = (await r.json()).error || why; } catch (e) { /* not JSON */ }
      $("login-error").textContent = "Sign-in refused: " + why;
      return;
    }
    show(true);
    poll();
  }

  async function signOut() {
    await fetch("/v1/admin/session", { method: "DELETE", credentials: "same-origin" });
    clearTimeout(timer);
    show(false);
  }

  async function poll() {
    clearTimeout(timer);
    try {
      const r = await fetch("/v1/admin/monitor", { credentials: "same-origin", cache: "no-store" });
      if (r.status === 401) { show(false); return; }
      if (r.ok) { show(true); latest = await r.json(); render(latest); }
      else { $("updated").textContent = "gateway answered " + r.status; }
    } catch (e) {
      $("updated").textContent = "gateway unreachable";
    }
    timer = setTimeout(poll, POLL_MS);
  }

  function sum(buckets, key) { return buckets.reduce((a, b) => a + (b[key] || 0), 0); }
  function fmtTime(t) { return new Date(t * 1000).toLocaleTimeString([], { hour12: false }); }
  function fmtP(p) { return p === null || p === undefined ? "–" : p < 1e-4 ? p.toExponential(1) : p.toFixed(4); }

  function render(data) {
    const names = Object.keys(data.models);
    const select = $("model");
    if (select.options.length !== names.length) {
      select.replaceChildren(...names.map((n) => { const o = document.createElement("option"); o.value = n; o.textContent = n; return o; }));
    }
    if (!chosen || !data.models[chosen]) chosen = names[0];
    select.value = chosen;
    const m = data.models[chosen];
    const b = m.buckets;
    $("stat-requests").textContent = sum(b, "requests");
    $("stat-samples").textContent = sum(b, "samples") + " inputs answered";
    $("stat-denied").textContent = sum(b, "denied");
    $("stat-ratelimited").textContent = sum(b, "rate_limited");
    $("stat-guard").textContent = sum(b, "guard_reject") + " / " + sum(b, "guard_fallback");
    $("stat-guard-detail").textContent = "requests refused / abstained, of " + (sum(b, "guard_accept") + sum(b, "guard_reject") + sum(b, "guard_fallback")) + " inspected";
    $("stat-extraction").textContent = sum(b, "extraction");
    renderScope(data, m);
    renderDrift(m);
    trafficChart(b);
    driftChart(b);
    renderCorrelation(m.correlation);
    renderEvents(data.events);
    $("updated").textContent = "live · updated " + fmtTime(data.now);
  }

  // Whose traffic this is: every worker's (Redis answers) or only the one that answered this poll, and why.
  function renderScope(data, m) {
    const scope = $("scope");
    const fleet = data.scope === "fleet";
    scope.hidden = !data.scope;
    scope.classList.toggle("worker", !fleet);
    scope.textContent = fleet
      ? "fleet view: " + data.workers + (data.workers === 1 ? " worker" : " workers") + ", evaluated by " + (m.evaluated_by || "no process yet")
      : "this worker only: " + (data.scope_reason || "");
  }

  function renderDrift(m) {
    const card = $("drift-card");
    const last = m.last_check;
    if (!m.monitored) {
      $("drift-status").textContent = "off"; $("drift-detail").textContent = "no reference configured";
      card.classList.remove("alarm"); return;
    }
    if (!last || last.drift === undefined) {
      $("drift-status").textContent = "waiting";
      $("drift-detail").textContent = (m.seen || 0) + " inputs seen";
      card.classList.remove("alarm");
    } else {
      $("drift-status").textContent = last.drift ? "DRIFT" : "no drift";
      $("drift-detail").textContent = last.drifted + "/" + last.features + " features · min p " + fmtP(last.min_p);
      card.classList.toggle("alarm", !!last.drift || m.alarms.length > 0);
    }
    const rows = (last && last.top) || [];
    $("features").tBodies[0].replaceChildren(...rows.map((f) => row([f.feature, f.statistic.toFixed(3), fmtP(f.p_value)])));
    $("check-detail").textContent = last
      ? "window " + last.rows + " of " + m.window + " inputs · " + m.alarms.length + " output alarms so far" +
        (m.alarms.length ? " (latest: " + m.alarms[0].stream + " " + m.alarms[0].direction + ", " + m.alarms[0].kind + ")" : "")
      : "";
  }

  function row(cells, cls) {
    const tr = document.createElement("tr");
    if (cls) tr.className = cls;
    for (const c of cells) { const td = document.createElement("td"); td.textContent = c === null || c === undefined ? "" : String(c); tr.appendChild(td); }
    return tr;
  }

  function renderEvents(events) {
    const rows = events.slice(0, 100).map((e) =>
      row([fmtTime(e.time), e.action, e.model || "", e.reason || e.decision || ""], e.decision === "flag" || e.decision === "deny" ? "flag" : ""));
    if (!rows.length) rows.push(row(["", "no alerts yet", "", ""]));
    $("events").tBodies[0].replaceChildren(...rows);
  }

  function renderCorrelation(c) {
    let text = c.flagged_windows + " of " + c.windows + " windows flagged by the monitor, " + c.security_windows +
      " with security events, " + c.co_occurring.length + " with both.";
    if (c.security_rate_when_flagged !== null && c.security_rate_otherwise !== null) {
      text += " Security events in " + Math.round(100 * c.security_rate_when_flagged) + "% of flagged windows vs " +
        Math.round(100 * c.security_rate_otherwise) + "% of the others.";
    }
    if (c.pearson_r !== null) text += " Pearson r(drift share, security events) = " + c.pearson_r.toFixed(2) + ".";
    $("correlation").textContent = text;
  }

  function el(name, attrs, text) {
    const e = document.createElementNS(SVG, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function frame(box) {
    const w = Math.max(280, box.clientWidth), h = box.clientHeight || 190;
    const svg = el("svg", { viewBox: "0 0 " + w + " " + h, preserveAspectRatio: "none" });
    return { svg, w, h, left: 34, right: 8, top: 8, bottom: 20 };
  }

  function axes(f, buckets, maxY, label) {
    const { svg, w, h, left, bottom, top } = f;
    svg.appendChild(el("line", { x1: left, y1: h - bottom, x2: w - f.right, y2: h - bottom, stroke: "#d9dee4" }));
    svg.appendChild(el("text", { x: 2, y: top + 8 }, label(maxY)));
    svg.appendChild(el("text", { x: 2, y: h - bottom }, label(0)));
    if (buckets.length) {
      svg.appendChild(el("text", { x: left, y: h - 4 }, fmtTime(buckets[0].start)));
      svg.appendChild(el("text", { x: w - f.right - 48, y: h - 4 }, fmtTime(buckets[buckets.length - 1].start)));
    }
  }

  function lastN(buckets, f) { return buckets.slice(-Math.max(10, Math.floor((f.w - f.left - f.right) / 8))); }

  function trafficChart(all) {
    const box = $("traffic-chart");
    const f = frame(box);
    const b = lastN(all, f);
    const refused = (x) => (x.denied || 0) + (x.rate_limited || 0) + (x.invalid || 0) + (x.errors || 0);
    const guard = (x) => (x.guard_reject || 0) + (x.guard_fallback || 0);
    const maxY = Math.max(1, ...b.map((x) => x.requests || 0));
    const bw = (f.w - f.left - f.right) / Math.max(1, b.length);
    const y = (v) => (f.h - f.bottom) - v * (f.h - f.bottom - f.top) / maxY;
    b.forEach((x, i) => {
      const x0 = f.left + i * bw + 1;
      let base = 0;
      for (const [v, color, cls] of [[x.allowed || 0, "var(--allowed)", "bar-allowed"], [guard(x), "var(--guard)", "bar-guard"], [refused(x), "var(--refused)", "bar-refused"]]) {
        if (v <= 0) continue;
        const r = el("rect", { x: x0, y: y(base + v), width: Math.max(1, bw - 2), height: y(base) - y(base + v), fill: color, class: cls });
        r.appendChild(el("title", {}, fmtTime(x.start) + ": " + v));
        f.svg.appendChild(r);
        base += v;
      }
    });
    axes(f, b, maxY, (v) => String(v));
    box.replaceChildren(f.svg);
  }

  function driftChart(all) {
    const box = $("drift-chart");
    const f = frame(box);
    const b = lastN(all, f);
    const maxSec = Math.max(1, ...b.map((x) => x.security || 0));
    const bw = (f.w - f.left - f.right) / Math.max(1, b.length);
    const span = f.h - f.bottom - f.top;
    b.forEach((x, i) => {
      const x0 = f.left + i * bw + 1;
      if (x.flagged && x.security) {
        f.svg.appendChild(el("rect", { x: x0 - 1, y: f.top, width: bw, height: span, fill: "var(--both)", opacity: 0.12, class: "both" }));
      }
      if (x.security) {
        const hgt = x.security * span / maxSec * 0.9;
        f.svg.appendChild(el("rect", { x: x0 + bw * 0.25, y: f.h - f.bottom - hgt, width: Math.max(1, bw * 0.5 - 1), height: hgt, fill: "var(--security)", opacity: 0.55, class: "bar-security" }));
      }
    });
    const pts = b.map((x, i) => x.checks ? [f.left + (i + 0.5) * bw, f.h - f.bottom - x.drift_share * span] : null).filter(Boolean);
    if (pts.length) {
      f.svg.appendChild(el("polyline", { points: pts.map((p) => p.join(",")).join(" "), fill: "none", stroke: "var(--drift)", "stroke-width": 2, class: "drift-line" }));
      pts.forEach((p) => f.svg.appendChild(el("circle", { cx: p[0], cy: p[1], r: 2.5, fill: "var(--drift)" })));
    }
    axes(f, b, 1, (v) => (v ? "100%" : "0%"));
    box.replaceChildren(f.svg);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", signIn);
    $("signout").addEventListener("click", signOut);
    $("model").addEventListener("change", (e) => { chosen = e.target.value; poll(); });
    window.addEventListener("resize", () => { if (latest && !$("dashboard").hidden) render(latest); });
    poll();
  });
})();
