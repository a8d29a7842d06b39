// ChargeProof dashboard helpers (plain JavaScript, no build step): numbers in the reader's
// locale, times in the charger's local time (UTC + the tariff's fixed offset), uPlot curves,
// and the live page's polling. Also inlined into the self-contained demo report.
"use strict";
const CP = (() => {
  const locale = navigator.language || "en";
  const pad = (n) => String(n).padStart(2, "0");
  function offsetLabel(off) {
    const a = Math.abs(off);
    return "UTC" + (off < 0 ? "-" : "+") + pad(Math.floor(a / 60)) + ":" + pad(a % 60);
  }
  // A Date whose *local* fields are the charger's local time (uPlot and Intl read local fields).
  function chargerDate(epoch, off) {
    const d = new Date((epoch + off * 60) * 1000);
    return new Date(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds());
  }
  function fmtTime(epoch, off, short) {
    const opts = short ? { hour: "2-digit", minute: "2-digit" }
                       : { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
    return new Intl.DateTimeFormat(locale, opts).format(chargerDate(epoch, off)) + (short ? "" : " " + offsetLabel(off));
  }
  function fmtNum(x, digits) {
    return new Intl.NumberFormat(locale, { minimumFractionDigits: digits || 0, maximumFractionDigits: digits || 0 }).format(x);
  }
  function fmtMoney(minor, cur, digits) {
    const d = digits === undefined ? 2 : digits;
    try {
      return new Intl.NumberFormat(locale, { style: "currency", currency: cur, minimumFractionDigits: d, maximumFractionDigits: d }).format(minor / 100);
    } catch (e) { return fmtNum(minor / 100, d) + " " + cur; }
  }
  function formatAll(root) {
    (root || document).querySelectorAll("[data-time]").forEach((el) => {
      el.textContent = fmtTime(Number(el.dataset.time), Number(el.dataset.off || 0), el.dataset.short === "1");
    });
    (root || document).querySelectorAll("[data-num]").forEach((el) => {
      el.textContent = fmtNum(Number(el.dataset.num), Number(el.dataset.digits || 0));
    });
    (root || document).querySelectorAll("[data-money]").forEach((el) => {
      el.textContent = fmtMoney(Number(el.dataset.money), el.dataset.cur, el.dataset.digits === undefined ? 2 : Number(el.dataset.digits));
    });
  }
  function chartData(c) {
    return [c.t, c.w.map((w) => w / 1000), c.wh.map((wh) => wh / 1000)];
  }
  // Axis labels in the reader's locale, with as many decimals as the ticks need (at most 2).
  function ticks(u, vals) {
    const d = vals.some((v) => Math.abs(v * 10 - Math.round(v * 10)) > 1e-6) ? 2 : vals.some((v) => Math.abs(v - Math.round(v)) > 1e-6) ? 1 : 0;
    return vals.map((v) => fmtNum(v, d));
  }
  function chart(el, curve, off, width) {
    const opts = {
      width: width || Math.max(320, Math.min(900, el.clientWidth || 800)), height: 230,
      tzDate: (ts) => chargerDate(ts, off),
      scales: { x: { time: true }, kw: { auto: true, range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] },
                kwh: { auto: true, range: (u, lo, hi) => [0, Math.max(0.1, hi * 1.05)] } },
      series: [{ label: "time (" + offsetLabel(off) + ")" },
               { label: "power kW", scale: "kw", stroke: "#15803d", width: 2, fill: "rgba(21,128,61,.08)",
                 value: (u, v) => v == null ? "–" : fmtNum(v, 2) },
               { label: "energy kWh", scale: "kwh", stroke: "#1d4ed8", width: 2,
                 value: (u, v) => v == null ? "–" : fmtNum(v, 3) }],
      axes: [{}, { scale: "kw", label: "kW", values: ticks },
             { scale: "kwh", side: 1, label: "kWh", grid: { show: false }, values: ticks }],
    };
    if (curve.marks && curve.marks.length) {
      // Tariff band starts crossed by the session: where a new segment (and price) begins.
      opts.hooks = { draw: [(u) => {
        const ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = "#b45309"; ctx.setLineDash([5, 4]); ctx.lineWidth = 1.5;
        ctx.fillStyle = "#b45309"; ctx.font = "12px system-ui, sans-serif";
        for (const m of curve.marks) {
          const x = Math.round(u.valToPos(m.t, "x", true));
          ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
          ctx.fillText(m.label, x + 4, u.bbox.top + 14);
        }
        ctx.restore();
      }] };
    }
    return new uPlot(opts, chartData(curve), el);
  }
  function drawCurves(root) {
    (root || document).querySelectorAll("div.curve").forEach((el) => {
      if (el.dataset.drawn) return;
      const data = JSON.parse(el.querySelector("script").textContent);
      el.dataset.drawn = "1";
      chart(el, data, Number(el.dataset.off || 0));
    });
  }
  function live(root) {
    const charts = {};
    async function poll() {
      let doc;
      try { doc = await (await fetch(root.dataset.api, { cache: "no-store" })).json(); } catch (e) { return; }
      const ids = Object.keys(doc.chargers).sort();
      document.getElementById("live-empty").hidden = ids.length > 0;
      for (const id of ids) {
        const c = doc.chargers[id];
        let box = charts[id];
        if (!box) {
          const card = document.createElement("div");
          card.className = "card live-session";
          card.dataset.charger = id;
          card.innerHTML = "<h2></h2><p class='running'></p><div class='curve-live'></div>";
          card.querySelector("h2").textContent = id;
          root.appendChild(card);
          box = charts[id] = { card: card, plot: chart(card.querySelector(".curve-live"), c.curve, c.offset_min) };
        } else {
          box.plot.setData(chartData(c.curve));
        }
        const n = c.curve.t.length - 1;
        box.card.querySelector(".running").textContent =
          (c.state || "charging") + " · " + fmtNum(c.curve.w[n] / 1000, 1) + " kW · " + fmtNum(c.curve.wh[n] / 1000, 3) +
          " kWh · running cost " + fmtMoney(c.curve.price[n], c.currency || "EUR") + " · " + fmtTime(c.curve.t[n], c.offset_min);
      }
      for (const id of Object.keys(charts)) {
        if (!doc.chargers[id]) { charts[id].card.remove(); delete charts[id]; }
      }
    }
    poll();
    setInterval(poll, 2000);
  }
  document.addEventListener("DOMContentLoaded", () => { formatAll(); drawCurves(); });
  return { formatAll, drawCurves, chart, live, fmtMoney, fmtNum, fmtTime };
})();
