// nonsite review UI: keyboard triage, case steps and the zone editor. No framework, no CDN.
"use strict";
const nonsite = (() => {
  // The page carries the translations of the messages below (in the officer's language); English is the key.
  const messages = JSON.parse(document.getElementById("messages")?.textContent || "{}");
  const t = (text, values = {}) => (messages[text] || text).replace(/\{(\w+)\}/g, (_, k) => (k in values ? values[k] : `{${k}}`));
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
  const flash = (text, bad) => {
    const box = document.getElementById("flash");
    box.textContent = text;
    box.className = bad ? "error" : "ok";
  };
  const expired = () => { location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}&error=expired`; };
  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf()},
      body: JSON.stringify(body),
    });
    if (response.status === 401) { expired(); throw new Error(t("your session has ended; log in again")); }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : response.statusText);
    return data;
  }
  const typing = (event) => ["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName);
  const decide = (pack, decision, reason, note) => post(`/api/packs/${pack}/decision`, {decision, reason, note: note || ""});

  // The last decision can be undone for UNDO_MS, from whichever page the officer is on next.
  const UNDO_MS = 30000;
  const remember = (pack) => sessionStorage.setItem("nonsite.last", JSON.stringify({pack, at: Date.now()}));
  function offerUndo(onUndone) {
    const last = JSON.parse(sessionStorage.getItem("nonsite.last") || "null");
    if (!last || Date.now() - last.at > UNDO_MS) return () => {};
    const box = document.getElementById("flash");
    const button = document.createElement("button");
    button.id = "undo";
    button.textContent = t("Undo (U)");
    if (!box.textContent.trim()) box.textContent = t("Your last decision: {pack}", {pack: last.pack.slice(0, 8)});
    box.append(" ", button);
    let busy = false;
    const undo = async () => {
      if (busy) return;
      busy = true;
      try {
        await post(`/api/packs/${last.pack}/undo`, {});
        sessionStorage.removeItem("nonsite.last");
        flash(t("Decision on {pack} undone: it waits for review again", {pack: last.pack.slice(0, 8)}));
        onUndone(last.pack);
      } catch (error) { flash(error.message, true); busy = false; }
    };
    button.onclick = undo;
    setTimeout(() => button.remove(), UNDO_MS - (Date.now() - last.at));
    return undo;
  }
  const settled = (decision, pack, result) => {
    const values = {pack: pack.slice(0, 8), case: result.case_id};
    if (decision !== "confirm") return t("Rejected {pack}", values);
    return result.case_id ? t("Confirmed {pack} into case #{case}", values) : t("Confirmed {pack}", values);
  };

  // Reject always asks for a reason: R opens the chooser, 1-5 picks, Esc cancels; the same on the queue and the pack page.
  function reasonChooser(onPick) {
    const box = document.getElementById("reasons");
    const keys = [...box.querySelectorAll("button[data-reason]")].filter((b) => b.dataset.reason);
    const note = document.getElementById("reason-note");
    const pick = (reason) => {
      if (reason === "other" && !note.value.trim()) { flash(t("reason 'other' needs a note"), true); note.focus(); return; }
      box.hidden = true;
      onPick(reason, note.value);
      note.value = "";
    };
    box.addEventListener("click", (e) => { const b = e.target.closest("button"); if (b) (b.dataset.reason ? pick(b.dataset.reason) : (box.hidden = true)); });
    return {
      open: () => { box.hidden = false; },
      isOpen: () => !box.hidden,
      key: (event) => {
        const n = Number(event.key);
        if (event.target === note && event.key !== "Escape") return;
        if (n >= 1 && n <= keys.length) pick(keys[n - 1].dataset.reason);
        if (event.key === "Escape") { box.hidden = true; note.blur(); }  // a focused hidden note would swallow the next key
      },
    };
  }

  function queuePage() {
    const cards = () => [...document.querySelectorAll("#queue .card[data-pack]")];
    const count = document.getElementById("count");
    let total = Number(count.dataset.total), pending = Number(count.dataset.pending);
    const recount = (step) => {
      total += step; pending += step;
      count.textContent = t("{total} matching · {pending} waiting for review in all", {total, pending});
    };
    let index = 0, inFlight = false;
    const select = (i) => {
      const all = cards();
      if (!all.length) return;
      index = Math.max(0, Math.min(i, all.length - 1));
      all.forEach((c, n) => c.classList.toggle("selected", n === index));
      all[index].scrollIntoView({block: "nearest"});
    };
    const settle = async (decision, reason, note, card = cards()[index]) => {
      if (!card || inFlight) return;  // one decision at a time: a double press must not send two
      inFlight = true;
      card.querySelectorAll("button").forEach((b) => { b.disabled = true; });
      const pack = card.dataset.pack;
      try {
        const result = await decide(pack, decision, reason, note);
        remember(pack);
        flash(settled(decision, pack, result));
        offerUndo(() => location.reload());
        card.remove();
        recount(-1);
      } catch (error) {  // the card stays, saying why
        const problem = card.querySelector(".problem");
        problem.textContent = error.message;
        problem.hidden = false;
        card.classList.add("failed");
        flash(`${pack.slice(0, 8)}: ${error.message}`, true);
      } finally {
        card.querySelectorAll("button").forEach((b) => { b.disabled = false; });
        inFlight = false;
      }
      select(index);
    };
    const chooser = document.getElementById("reasons") ? reasonChooser((reason, note) => settle("reject", reason, note, chosenCard)) : null;
    let chosenCard = null;
    const askReason = (card) => { chosenCard = card; chooser.open(); };
    document.getElementById("queue").addEventListener("click", (e) => {
      const button = e.target.closest("button[data-act]");
      if (!button) return;
      const card = button.closest(".card");
      index = cards().indexOf(card);
      if (button.dataset.act === "confirm") settle("confirm", null, "", card);
      else askReason(card);
    });
    const undo = offerUndo(() => location.reload());
    document.addEventListener("keydown", (event) => {
      if (chooser && chooser.isOpen()) { chooser.key(event); return; }
      if (typing(event)) return;
      const key = event.key.toLowerCase();
      if (key === "j") select(index + 1);
      else if (key === "k") select(index - 1);
      else if (key === "u") (document.getElementById("undo") ? document.getElementById("undo").click() : undo());
      else if (!chooser) return;
      else if (key === "c") settle("confirm", null, "");
      else if (key === "r" && cards().length) askReason(cards()[index]);
      else if (key === "enter" && cards()[index]) location.href = `/packs/${cards()[index].dataset.pack}`;
    });
    select(0);
  }

  function packPage() {
    const box = document.querySelector(".decide");
    const here = location.pathname.split("/").pop();
    const go = (pack) => { if (pack) location.href = `/packs/${pack}`; };
    const near = document.getElementById("pack-state").dataset;  // the pending packs either side in queue order
    const after = () => { location.href = near.older ? `/packs/${near.older}` : near.newer ? `/packs/${near.newer}` : "/queue"; };
    let inFlight = false;
    const act = async (decision, reason, note) => {
      if (inFlight) return;
      inFlight = true;
      box.querySelectorAll("button").forEach((b) => { b.disabled = true; });
      try {
        const result = await decide(here, decision, reason, note);
        remember(here);
        flash(settled(decision, here, result));
        after();
      } catch (error) {
        flash(error.message, true);
        box.querySelectorAll("button").forEach((b) => { b.disabled = b.id === "confirm" && b.hasAttribute("title"); });
        inFlight = false;
      }
    };
    const chooser = box ? reasonChooser((reason, note) => act("reject", reason, note)) : null;
    if (box) {
      document.getElementById("confirm").onclick = () => act("confirm");
      document.getElementById("reject").onclick = () => chooser.open();
    }
    // Which picture is shown is always said: the sealed original, the annotated copy, or the privacy copy.
    const viewLabel = document.getElementById("view-label");
    const show = (view) => {
      document.querySelectorAll("#frames img").forEach((img) => { img.src = img.dataset[view]; });
      viewLabel.textContent = viewLabel.dataset[view];
      document.querySelectorAll("#view-switch button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.view === view)));
    };
    document.getElementById("view-switch").addEventListener("click", (e) => { const b = e.target.closest("button[data-view]"); if (b) show(b.dataset.view); });
    const zoom = document.getElementById("zoom"), full = document.getElementById("zoom-image"), zoomLabel = document.getElementById("zoom-label");
    let scale = 1;
    const rescale = (value) => {
      scale = value === "fit" ? Math.min(1, (zoom.clientWidth - 40) / full.naturalWidth) : Math.max(0.1, Math.min(8, value));
      full.width = Math.round(full.naturalWidth * scale);
      zoomLabel.textContent = `${viewLabel.textContent} · ${Math.round(scale * 100)} %`;  // the full-size view says which copy it is
    };
    const ZOOM_KEYS = {"+": "in", "=": "in", "-": "out", "0": "fit"};
    const zoomBy = (how) => rescale(how === "fit" ? "fit" : scale * (how === "in" ? 1.5 : 1 / 1.5));
    document.getElementById("frames").addEventListener("click", (e) => {
      const img = e.target.closest("img");
      if (!img) return;
      full.onload = () => rescale(1);
      full.src = img.src;
      zoom.showModal();
    });
    zoom.addEventListener("click", (e) => {
      const b = e.target.closest("button[data-zoom]");
      if (!b) return;
      if (b.dataset.zoom === "close") zoom.close();
      else zoomBy(b.dataset.zoom);
    });
    zoom.addEventListener("wheel", (e) => { e.preventDefault(); rescale(scale * (e.deltaY < 0 ? 1.2 : 1 / 1.2)); }, {passive: false});
    const undo = offerUndo(() => location.reload());
    document.addEventListener("keydown", (event) => {
      if (chooser && chooser.isOpen()) { chooser.key(event); return; }
      if (typing(event)) return;
      const key = event.key.toLowerCase();
      if (zoom.open) { if (ZOOM_KEYS[key]) zoomBy(ZOOM_KEYS[key]); return; }  // Esc closes the dialog itself
      if (key === "o") show("original");
      else if (key === "a") show("annotated");
      else if (key === "d" && viewLabel.dataset.disclosure && document.querySelector('[data-view="disclosure"]')) show("disclosure");
      else if (key === "j") go(near.older);
      else if (key === "k") go(near.newer);
      else if (key === "u") (document.getElementById("undo") ? document.getElementById("undo").click() : undo());
      else if (box && key === "c" && !document.getElementById("confirm").disabled) act("confirm");
      else if (box && key === "r") chooser.open();
    });
  }

  // Every form on the case page posts its fields to its data-post address (steps, approval, assignment, delivery).
  function casePage() {
    document.querySelectorAll("form[data-post]").forEach((form) => form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const fields = Object.fromEntries(new FormData(form, event.submitter));
      Object.keys(fields).forEach((k) => { if (fields[k] === "") delete fields[k]; });
      try { await post(form.dataset.post, fields); location.reload(); }
      catch (error) { flash(error.message, true); }
    }));
    document.querySelectorAll("form[data-upload]").forEach((form) => form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const response = await fetch(form.dataset.upload, {method: "POST", credentials: "same-origin",
                                                         headers: {"X-CSRF-Token": csrf()}, body: new FormData(form)});
      if (response.status === 401) return expired();
      if (response.ok) return location.reload();
      const data = await response.json().catch(() => ({}));
      flash(typeof data.detail === "string" ? data.detail : response.statusText, true);
    }));
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
      // a zone drawn on a picture of another size is shown scaled to this one, as the camera service applies it
      const fitted = (zone) => (zone.frame ? zone.polygon.map(([x, y]) => [x * image.naturalWidth / zone.frame[0], y * image.naturalHeight / zone.frame[1]])
        : zone.polygon);
      existing.forEach((zone) => path(fitted(zone), "orange", "rgba(255,165,0,0.15)"));
      path(points, "cyan", "rgba(0,255,255,0.2)");
      points.forEach(([x, y]) => { g.fillStyle = "cyan"; g.fillRect(x - 3, y - 3, 6, 6); });
      document.getElementById("points").textContent = t("{count} points", {count: points.length});
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
      const shop = f.shop_name || f.shop_licence ? {name: f.shop_name, address: f.shop_address, licence: f.shop_licence, contact: f.shop_contact} : null;
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
    const ended = (result) => t("{name}: {count} session(s) ended", {name: result.user.username, count: result.sessions_ended});
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
      const shown = row.querySelector("form.user-name");
      shown.addEventListener("submit", (event) => {
        event.preventDefault();
        act(`${base}/name`, Object.fromEntries(new FormData(shown)), (result) => t("{name}: name shown saved", {name: result.user.username}));
      });
      role.addEventListener("submit", (event) => {
        event.preventDefault();
        act(`${base}/role`, Object.fromEntries(new FormData(role)), ended);
      });
      const team = row.querySelector("form.user-team");
      team.addEventListener("submit", (event) => {
        event.preventDefault();
        act(`${base}/team`, Object.fromEntries(new FormData(team)), (result) => t("{name}: team saved", {name: result.user.username}));
      });
      const password = row.querySelector("form.user-password");
      password.addEventListener("submit", (event) => {
        event.preventDefault();
        act(`${base}/password`, Object.fromEntries(new FormData(password)), ended);
      });
      const active = row.querySelector("button.user-active");
      active.addEventListener("click", () => {
        const enable = active.dataset.active === "true";
        if (enable || confirm(t("Disable {name}? Their sessions end and they cannot log in.", {name: row.dataset.name})))
          act(`${base}/active`, {active: enable}, ended);
      });
      row.querySelector("button.user-logout").addEventListener("click", () => act(`${base}/logout`, {}, ended));
    });
    const name = document.getElementById("own-name");
    if (name) name.addEventListener("submit", async (event) => {
      event.preventDefault();
      try { await post("/api/account/name", Object.fromEntries(new FormData(name))); location.reload(); }
      catch (error) { flash(error.message, true); }
    });
    const own = document.getElementById("own-password");
    if (own) own.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = Object.fromEntries(new FormData(own));
      if (f.new_password !== f.repeat) { flash(t("the two new passwords differ"), true); return; }
      try {
        await post("/api/account/password", {current_password: f.current_password, new_password: f.new_password});
        location.href = "/login";
      } catch (error) { flash(error.message, true); }
    });
  }

  function shopsPage() {
    const form = document.getElementById("shop-form");
    if (!form) return;  // only admins edit the register
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const shop = await post("/api/shops", Object.fromEntries(new FormData(form)));
        location.href = `/shops/${encodeURIComponent(shop.licence)}`;
      } catch (error) { flash(error.message, true); }
    });
    const upload = document.getElementById("shop-import");
    upload.addEventListener("submit", async (event) => {
      event.preventDefault();
      const problems = document.getElementById("import-problems");
      problems.replaceChildren();
      const response = await fetch("/api/shops/import", {method: "POST", credentials: "same-origin",
                                                         headers: {"X-CSRF-Token": csrf()}, body: new FormData(upload)});
      if (response.status === 401) { expired(); return; }
      const data = await response.json().catch(() => ({}));
      if (!response.ok) { flash(data.detail || response.statusText, true); return; }
      if (data.bad.length) {
        flash(t("Nothing imported: {count} bad rows", {count: data.bad.length}), true);
        data.bad.forEach((b) => { const li = document.createElement("li"); li.textContent = t("line {line}: {problem}", b); problems.append(li); });
        return;
      }
      flash(t("Imported {count} shops ({added} new, {edited} updated)", {count: data.imported, added: data.added, edited: data.edited}));
      setTimeout(() => location.reload(), 800);
    });
  }

  // An officer draws a subject's true box on the threshold frame and names its class; training uses it.
  function correctBox() {
    const area = document.getElementById("correct");
    if (!area) return;
    const svg = area.querySelector("svg"), rect = document.getElementById("correct-box");
    const subject = document.getElementById("correct-subject"), klass = document.getElementById("correct-class");
    const [width, height] = [Number(area.dataset.width), Number(area.dataset.height)];
    let box = [], start = null;
    const draw = () => {
      rect.setAttribute("x", box[0]); rect.setAttribute("y", box[1]);
      rect.setAttribute("width", Math.max(0, box[2] - box[0])); rect.setAttribute("height", Math.max(0, box[3] - box[1]));
    };
    const pick = () => { const chosen = subject.selectedOptions[0].dataset; box = JSON.parse(chosen.box); klass.value = chosen.class; draw(); };
    const at = (event) => {
      const frame = svg.getBoundingClientRect();
      const clamp = (v, top) => Math.min(top, Math.max(0, v));
      return [clamp((event.clientX - frame.left) / frame.width * width, width), clamp((event.clientY - frame.top) / frame.height * height, height)];
    };
    svg.addEventListener("pointerdown", (event) => { start = at(event); svg.setPointerCapture(event.pointerId); event.preventDefault(); });
    svg.addEventListener("pointermove", (event) => {
      if (!start) return;
      const [x, y] = at(event);
      box = [Math.min(start[0], x), Math.min(start[1], y), Math.max(start[0], x), Math.max(start[1], y)];
      draw();
    });
    svg.addEventListener("pointerup", () => { start = null; });
    subject.addEventListener("change", pick);
    document.getElementById("correct-save").addEventListener("click", async () => {
      try {
        await post(`/api/packs/${area.dataset.pack}/correction`, {subject: Number(subject.value), box: box.map((v) => Math.round(v * 10) / 10),
                                                                   class_name: klass.value});
        subject.selectedOptions[0].dataset.box = JSON.stringify(box);
        subject.selectedOptions[0].dataset.class = klass.value;
        flash(t("Correction saved: training will use this box and class"));
      } catch (error) { flash(error.message, true); }
    });
    pick();
  }

  // A survey's findings over the orthomosaic itself: tiles cut from the GeoTIFF by the desk, no basemap.
  function surveyMap() {
    const element = document.getElementById("survey-map");
    const legend = JSON.parse(document.getElementById("survey-legend").textContent);
    document.querySelectorAll(".legend .swatch").forEach((swatch) => { swatch.style.background = swatch.dataset.colour; });
    const [west, south, east, north] = JSON.parse(element.dataset.bounds);
    const extent = [[south, west], [north, east]];
    const survey = encodeURIComponent(element.dataset.survey);
    const map = L.map(element, {attributionControl: false, maxZoom: 22});
    const tiles = (which) => L.tileLayer(`/surveys/${survey}/tiles/${which}/{z}/{x}/{y}.png`, {maxZoom: 22, bounds: extent});
    const bases = {[legend.layers.new]: tiles("new").addTo(map)};
    if (element.dataset.previous) bases[legend.layers.previous] = tiles("previous");
    const colour = (kind) => legend.colours[kind] || "#546e7a";
    const popup = (p) => {
      const box = document.createElement("div");
      const title = document.createElement("b");
      title.textContent = legend.labels[p.kind || p.label] || p.kind || p.label;
      box.append(title);
      const facts = [p.area_m2 !== undefined ? `${Math.round(p.area_m2)} m²` : null, p.parcel, p.shown_basis,
                     p.confidence !== undefined ? p.confidence.toFixed(2) : null].filter(Boolean);
      facts.forEach((fact) => { const line = document.createElement("div"); line.textContent = fact; box.append(line); });
      (p.pack_id || "").split(",").filter(Boolean).forEach((id) => {
        const link = document.createElement("a");
        link.href = `/packs/${encodeURIComponent(id)}`;
        link.textContent = t("pack {id}", {id: id.slice(0, 8)});
        box.append(link, " ");
      });
      return box;
    };
    fetch(`/surveys/${survey}/findings.geojson`, {credentials: "same-origin"}).then((r) => r.json()).then((data) => {
      const findings = L.geoJSON(data, {
        style: (f) => ({color: colour(f.properties.kind), weight: 2, fillOpacity: 0.15}),
        pointToLayer: (f, at) => L.circleMarker(at, {radius: 6, color: colour(f.properties.label)}),
        onEachFeature: (f, shape) => shape.bindPopup(() => popup(f.properties)),
      }).addTo(map);
      L.control.layers(bases, {[legend.layers.findings]: findings}, {collapsed: false}).addTo(map);
      element.dataset.drawn = String(data.features.length);
    });
    map.fitBounds(extent);
  }

  return {queuePage, packPage, casePage, zoneEditor, usersPage, shopsPage, surveyMap, correctBox, t};
})();
