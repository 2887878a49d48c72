// Models: every version with its state and, if it was rejected, why (/v2/repository/index); load,
// unload and A/B weights with an admin key (/v2/repository/models/{m}/...).
"use strict";

const $ = (id) => document.getElementById(id);

// A load, unload or weights call; the table is refreshed whatever the answer (a rejected version
// shows why in its row, and the error in the notice bar).
async function control(model, action, body) {
  try {
    const doc = await UI.api("POST", `/v2/repository/models/${encodeURIComponent(model)}/${action}`, body);
    UI.notice(`${model} ${action}: ${JSON.stringify(doc.versions || doc.unloaded || doc.weights)}`);
  } finally {
    await refresh();
  }
}

function versionRow(row) {
  const version = { parameters: { version: row.version } };
  const ready = row.state === "READY";
  return UI.el(
    "tr",
    { "data-model": row.name, "data-version": row.version },
    UI.el("td", {}, row.name),
    UI.el("td", {}, row.version),
    UI.el("td", {}, UI.el("span", { class: `badge ${ready ? "yes" : "no"}` }, row.state)),
    UI.el("td", { class: "reason" }, row.reason || ""),
    UI.el(
      "td",
      { class: "write" },
      ready
        ? UI.el("button", { onclick: () => UI.guard(() => control(row.name, "unload", version)) }, "Unload")
        : UI.el("button", { onclick: () => UI.guard(() => control(row.name, "load", version)) }, "Load")
    )
  );
}

function weightRow(name, weights, versions) {
  const inputs = versions.map((v) => UI.el("input", { type: "number", min: 0, value: weights[v] ?? "", "data-version": v, style: "width:4rem", "aria-label": `${name} version ${v} weight` }));
  const apply = async () => {
    const body = { weights: {} };
    for (const input of inputs) if (input.value !== "") body.weights[input.dataset.version] = Number(input.value);
    await control(name, "weights", body);
  };
  const shown = Object.keys(weights).length ? Object.entries(weights).map(([v, w]) => `v${v}: ${w}`).join(", ") : "newest only";
  return UI.el(
    "tr",
    { "data-name": name },
    UI.el("td", {}, name),
    UI.el("td", { class: "in-force" }, shown),
    UI.el("td", { class: "write row" }, ...versions.flatMap((v, i) => [`v${v}`, inputs[i]]), UI.el("button", { onclick: () => UI.guard(apply) }, "Apply"))
  );
}

async function refresh() {
  const [index, weights] = await Promise.all([UI.api("POST", "/v2/repository/index"), UI.api("GET", "/ui/api/weights")]);
  $("versions").replaceChildren(...index.map(versionRow));
  $("weights").replaceChildren(...Object.entries(weights).map(([name, w]) => weightRow(name, w.weights, w.versions)));
}

UI.start(refresh);
