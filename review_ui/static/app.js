// nonsite review UI: keyboard triage, case steps and the zone editor. No framework, no CDN.
"use strict";
const nonsite = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
  const flash = (text, bad) => {
    const box = document.getElementById("flash");
    box.textContent = text;
    box.className = bad ? "error" : "ok";
  };
  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf()},
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : response.statusText);
    return data;
  }
  const typing = (event) => ["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName);
  const decide = (pack, decision, reason, note) => post(`/api/packs/${pack}/decision`, {decision, reason, note: note || ""});

  function queuePage() {
    const cards = () => [...document.querySelectorAll("#queue .card")];
    const reasons = document.getElementById("reasons");
    const keys = [...reasons.querySelectorAll("button[data-reason]")].filter((b) => b.dataset.reason);
    let index = 0;
    const select = (i) => {
      const all = cards();
      if (!all.length) { document.getElementById("count").textContent = "0 pending"; return; }
      index = Math.max(0, Math.min(i, all.length - 1));
      all.forEach((c, n) => c.classList.toggle("selected", n === index));
      all[index].scrollIntoView({block: "nearest"});
    };
    const settle = async (decision, reason) => {
      const card = cards()[index];
      if (!card) return;
      reasons.hidden = true;
      try {
        const result = await decide(card.dataset.pack, decision, reason);
        flash(`${decision === "confirm" ? "Confirmed" : "Rejected"} ${card.dataset.pack.slice(0, 8)}${result.case_id ? ` into case #${result.case_id}` : ""}`);
      } catch (error) {
        flash(`${card.dataset.pack.slice(0, 8)}: ${error.message}`, true);
      }
      card.remove();
      document.getElementById("count").textContent = `${cards().length} pending`;
      select(index);
    };
    reasons.addEventListener("click", (e) => { const b = e.target.closest("button"); if (b) b.dataset.reason ? settle("reject", b.dataset.reason) : (reasons.hidden = true); });
    document.addEventListener("keydown", (event) => {
      if (typing(event)) return;
      const key = event.key.toLowerCase();
      if (!reasons.hidden) {
        const n = Number(event.key);
        if (n >= 1 && n <= keys.length) settle("reject", keys[n - 1].dataset.reason);
        if (key === "escape") reasons.hidden = true;
        return;
      }
      if (key === "j") select(index + 1);
      else if (key === "k") select(index - 1);
      else if (key === "c") settle("confirm");
      else if (key === "r" && cards().length) reasons.hidden = false;
      else if (key === "enter" && cards()[index]) location.href = `/packs/${cards()[index].dataset.pack}`;
    });
    select(0);
  }

  function packPage(pending) {
    const box = document.querySelector(".decide");
    const here = box ? box.dataset.pack : location.pathname.split("/").pop();
    const at = pending.indexOf(here);
    const go = (step) => {
      const next = at >= 0 ? pending[at + step] : pending[0];
      if (next) location.href = `/packs/${next}`;
    };
    const after = () => { const rest = pending.filter((p) => p !== here); location.href = rest.length ? `/packs/${rest[Math.max(0, Math.min(at, rest.length - 1))]}` : "/queue"; };
    const act = async (decision) => {
      try {
        await decide(here, decision, document.getElementById("reason").value, document.getElementById("note").value);
        after();
      } catch (error) { flash(error.message, true); }
    };
    if (box) {
      document.getElementById("confirm").onclick = () => act("confirm");
      document.getElementById("reject").onclick = () => act("reject");
    }
    document.addEventListener("keydown", (event) => {
      if (typing(event)) return;
      const key = event.key.toLowerCase();
      if (key === "o") document.querySelectorAll("#frames img").forEach((img) => {
        img.src = img.src.endsWith(img.dataset.annotated) ? img.dataset.original : img.dataset.annotated;
      });
      else if (key === "d") document.querySelectorAll("#frames img").forEach((img) => {
        img.src = img.src.endsWith(img.dataset.disclosure) ? img.dataset.annotated : img.dataset.disclosure;
      });
      else if (key === "j") go(1);
      else if (key === "k") go(-1);
      else if (box && key === "c") act("confirm");
      else if (box && key === "r") act("reject");
    });
  }

  function casePage() {
    const section = document.querySelector(".transition");
    if (!section) return;
    section.querySelectorAll("form.step").forEach((form) => form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const fields = Object.fromEntries(new FormData(form));
      Object.keys(fields).forEach((k) => { if (fields[k] === "") delete fields[k]; });
      try {
        await post(`/api/cases/${section.dataset.case}/transition`, {to_state: form.dataset.to, ...fields});
        location.reload();
      } catch (error) { flash(error.message, true); }
    }));
    const assign = section.querySelector("form.assign");
    if (assign) assign.addEventListener("submit", async (event) => {
      event.preventDefault();
      try { await post(`/api/cases/${section.dataset.case}/assign`, Object.fromEntries(new FormData(assign))); location.reload(); }
      catch (error) { flash(error.message, true); }
    });
  }

  function zoneEditor() {
    const canvas = document.getElementById("zone-canvas");
    const form = document.getElementById("zone-form");
    const existing = JSON.parse(canvas.dataset.zones);
    const points = [];
    const image = new Image();
    const draw = () => {
      const g = canvas.getContext("2d");
      g.drawImage(image, 0, 0);
      g.lineWidth = 2;
      const path = (poly, colour, fill) => {
        if (!poly.length) return;
        g.beginPath(); g.moveTo(poly[0][0], poly[0][1]);
        poly.slice(1).forEach(([x, y]) => g.lineTo(x, y));
        g.closePath(); g.strokeStyle = colour; g.stroke();
        if (fill) { g.fillStyle = fill; g.fill(); }
      };
      existing.forEach((poly) => path(poly, "orange", "rgba(255,165,0,0.15)"));
      path(points, "cyan", "rgba(0,255,255,0.2)");
      points.forEach(([x, y]) => { g.fillStyle = "cyan"; g.fillRect(x - 3, y - 3, 6, 6); });
      document.getElementById("points").textContent = `${points.length} points`;
    };
    image.onload = () => { canvas.width = image.naturalWidth; canvas.height = image.naturalHeight; draw(); };
    image.src = canvas.dataset.frame;
    canvas.addEventListener("click", (event) => {
      // offsetX/Y are inside the border, clientWidth/Height the displayed size: scale to image pixels.
      points.push([Math.round(event.offsetX * canvas.width / canvas.clientWidth), Math.round(event.offsetY * canvas.height / canvas.clientHeight)]);
      draw();
    });
    document.addEventListener("keydown", (event) => { if (!typing(event) && event.key === "Backspace") { points.pop(); draw(); } });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = Object.fromEntries(new FormData(form));
      const shop = f.shop_name ? {name: f.shop_name, address: f.shop_address, licence: f.shop_licence, contact: f.shop_contact} : null;
      try {
        await post(`/api/sources/${form.dataset.source}/zones`,
                   {zone_id: f.zone_id, rule_id: f.rule_id, polygon: points, shop, version: form.dataset.version});
        location.reload();
      } catch (error) { flash(error.message, true); }
    });
  }

  function usersPage() {
    const act = async (url, body, message) => {
      try { const result = await post(url, body); flash(message(result)); setTimeout(() => location.reload(), 800); }
      catch (error) { flash(error.message, true); }
    };
    const ended = (result) => `${result.user.username}: ${result.sessions_ended} session(s) ended`;
    const form = document.getElementById("user-form");
    if (form) form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try { await post("/api/users", Object.fromEntries(new FormData(form))); location.reload(); }
      catch (error) { flash(error.message, true); }
    });
    document.querySelectorAll("#users tr[data-user]").forEach((row) => {
      const base = `/api/users/${row.dataset.user}`;
      const role = row.querySelector("form.user-role");
      if (!role) return;  // the admin's own row: changed elsewhere
      role.addEventListener("submit", (event) => {
        event.preventDefault();
        act(`${base}/role`, Object.fromEntries(new FormData(role)), ended);
      });
      const password = row.querySelector("form.user-password");
      password.addEventListener("submit", (event) => {
        event.preventDefault();
        act(`${base}/password`, Object.fromEntries(new FormData(password)), ended);
      });
      const active = row.querySelector("button.user-active");
      active.addEventListener("click", () => {
        const enable = active.dataset.active === "true";
        if (enable || confirm(`Disable ${row.dataset.name}? Their sessions end and they cannot log in.`))
          act(`${base}/active`, {active: enable}, ended);
      });
      row.querySelector("button.user-logout").addEventListener("click", () => act(`${base}/logout`, {}, ended));
    });
    const own = document.getElementById("own-password");
    if (own) own.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = Object.fromEntries(new FormData(own));
      if (f.new_password !== f.repeat) { flash("the two new passwords differ", true); return; }
      try {
        await post("/api/account/password", {current_password: f.current_password, new_password: f.new_password});
        location.href = "/login";
      } catch (error) { flash(error.message, true); }
    });
  }

  return {queuePage, packPage, casePage, zoneEditor, usersPage};
})();
