// colisten explorer: pick a user, see their history and recommendations, click an item for similar items.
// Plain DOM code; every text goes through textContent, so titles from the data are never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let meta = null;

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "muted";
}

function itemButton(item) {
  return el("button", {
    class: "item-link", type: "button", text: item.title || item.item_id, title: item.item_id,
    "data-item-id": item.item_id, onclick: () => showSimilar(item),
  });
}

async function searchUsers(query) {
  const list = $("user-results");
  list.replaceChildren();
  try {
    const found = await api(`v1/users?q=${encodeURIComponent(query)}&limit=24`);
    if (found.users.length === 0) status(`no user id starts with "${query}"`);
    else status(`${found.users.length} of ${found.total} matching users`);
    for (const u of found.users) {
      list.append(el("li", {}, [el("button", { type: "button", text: u, onclick: () => showUser(u) })]));
    }
  } catch (e) { status(e.message, true); }
}

function renderHistory(user) {
  const box = $("history");
  box.replaceChildren();
  const types = Object.keys(user.history);
  if (types.length === 0) box.append(el("p", { class: "muted", text: "no history: a cold-start user" }));
  for (const t of types) {
    const group = user.history[t];
    box.append(el("h4", { text: `${t} (${group.total})` }));
    const table = el("table", { class: "history" });
    for (const h of group.events) {
      const when = new Date(h.timestamp * 1000).toISOString().slice(0, 10);
      table.append(el("tr", {}, [el("td", {}, [itemButton(h)]), el("td", { text: h.event }), el("td", { text: when })]));
    }
    box.append(table);
  }
}

function renderRecommendations(itemType, result) {
  const section = el("div", { class: "recs", "data-type": itemType });
  section.append(el("h4", { text: `${itemType} recommendations` }));
  const list = el("ol", { class: "items" });
  for (const item of result.items) {
    const li = el("li", { class: "rec" }, [itemButton(item), el("span", { class: "score", text: item.score.toFixed(3) })]);
    const ex = item.explanation;
    if (ex.because.length) {
      const names = ex.because.map((b) => b.title || b.item_id).join(", ");
      const badge = ex.source === "co_listening_graph" ? "co-listened" : "similar embedding";
      li.append(el("span", { class: "because" }, [
        `because you listened to ${names}`,
        el("span", { class: `badge ${ex.source === "co_listening_graph" ? "graph" : ""}`, text: badge }),
      ]));
    }
    list.append(li);
  }
  section.append(list);
  return section;
}

async function showUser(userId) {
  status(`loading ${userId}…`);
  try {
    const user = await api(`v1/users/${encodeURIComponent(userId)}`);
    $("user").hidden = false;
    $("user-id").textContent = user.user_id;
    const demo = [user.age != null ? `age ${user.age}` : "age unknown", user.country || "country unknown"];
    $("user-demographics").textContent = demo.join(" · ");
    renderHistory(user);
    const recs = $("recommendations");
    recs.replaceChildren();
    for (const t of meta.item_types) {
      const result = await api(`v1/users/${encodeURIComponent(userId)}/recommendations?type=${encodeURIComponent(t)}&k=10`);
      recs.append(renderRecommendations(t, result));
    }
    status(`showing ${userId}`);
  } catch (e) { status(e.message, true); }
}

async function showSimilar(item, itemType) {
  const type = itemType || item.item_type;
  $("similar").hidden = false;
  $("similar-title").textContent = item.title || item.item_id;
  const select = $("similar-type");
  select.replaceChildren(...meta.item_types.map((t) => el("option", { value: t, text: t })));
  select.value = type;
  select.onchange = () => showSimilar(item, select.value);
  const list = $("similar-items");
  list.replaceChildren();
  try {
    const result = await api(`v1/items/${encodeURIComponent(item.item_id)}/similar?type=${encodeURIComponent(type)}&k=10`);
    for (const s of result.items) {
      list.append(el("li", {}, [itemButton(s), el("span", { class: "score", text: s.score.toFixed(3) })]));
    }
    $("similar").scrollIntoView({ behavior: "smooth", block: "nearest" });
  } catch (e) { list.append(el("li", { class: "error", text: e.message })); }
}

async function init() {
  try {
    meta = await api("v1/meta");
    $("model").textContent = `model ${meta.model_version} · ${meta.n_users} users · ` +
      meta.item_types.map((t) => `${meta.n_items[t]} ${t}s`).join(", ");
  } catch (e) { status(`cannot reach the API: ${e.message}`, true); return; }
  $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); searchUsers($("user-search").value.trim()); });
  $("random-user").addEventListener("click", async () => {
    try { const r = await api("v1/random-user"); showUser(r.user_id); } catch (e) { status(e.message, true); }
  });
  const wanted = new URLSearchParams(location.search).get("user");
  if (wanted) showUser(wanted); else searchUsers("");
}

init();
