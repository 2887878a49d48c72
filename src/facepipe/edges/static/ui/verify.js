// Verify: two photos side by side -> /v1/verify -> similarity against the threshold, with the face
// that was compared drawn on each photo.
"use strict";

const $ = (id) => document.getElementById(id);
const chosen = { a: null, b: null };

async function verify() {
  UI.notice("");
  if (!chosen.a || !chosen.b) return;
  const form = new FormData();
  form.append("a", chosen.a, chosen.a.name);
  form.append("b", chosen.b, chosen.b.name);
  if ($("threshold").value) form.append("threshold", $("threshold").value);
  $("verdict").textContent = "working…";
  const doc = await UI.api("POST", "/v1/verify", form);
  const meter = UI.el("meter", { min: -1, max: 1, value: doc.similarity, low: doc.threshold, optimum: 1 });
  $("verdict").className = "row";
  $("verdict").replaceChildren(
    "similarity",
    UI.el("span", { class: "stat", id: "similarity" }, doc.similarity.toFixed(3)),
    meter,
    `threshold ${doc.threshold}`,
    UI.el("span", { id: "match", class: `badge ${doc.match ? "yes" : "no"}` }, doc.match ? "same person" : "different people")
  );
  for (const [side, face] of [["a", doc.faces[0]], ["b", doc.faces[1]]]) {
    const img = new Image();
    img.src = URL.createObjectURL(chosen[side]);
    await img.decode();
    $(`photo-${side}`).replaceChildren(UI.drawFaces(img.src, img.naturalWidth, img.naturalHeight, [face]));
  }
}

function choose(side, file) {
  chosen[side] = file;
  $(`photo-${side}`).replaceChildren(UI.el("div", { class: "stage" }, UI.el("img", { src: URL.createObjectURL(file), alt: side })));
  return verify();
}

UI.start(async (role) => {
  if (role === "none") return;
  UI.dropZone($("drop-a"), (f) => UI.guard(() => choose("a", f[0])), false);
  UI.dropZone($("drop-b"), (f) => UI.guard(() => choose("b", f[0])), false);
  $("threshold").addEventListener("change", () => UI.guard(verify));
});
