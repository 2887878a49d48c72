// "Who is this": a photo (file or webcam snapshot) -> /v1/identify -> boxes and landmarks drawn over
// it, each face's best matches with similarity and match/no-match, liveness and quality.
"use strict";

const $ = (id) => document.getElementById(id);

function pct(x) {
  return `${(x * 100).toFixed(1)} %`;
}

function faceCard(face, i, threshold) {
  const matches = face.matches.map((m) =>
    UI.el(
      "tr",
      { class: "match" },
      UI.el("td", {}, m.name),
      UI.el("td", { class: "muted" }, m.subject),
      UI.el("td", { class: "similarity" }, m.similarity.toFixed(3)),
      UI.el("td", {}, UI.el("span", { class: `badge ${m.match ? "yes" : "no"}` }, m.match ? "match" : "no match"))
    )
  );
  const live = face.liveness
    ? UI.el("span", { class: `badge liveness ${face.liveness.real ? "yes" : "no"}` }, `${face.liveness.real ? "live" : "spoof"} (${face.liveness.score.toFixed(3)})`)
    : null;
  return UI.el(
    "div",
    { class: "face", "data-face": i },
    UI.el("h3", {}, `Face ${i + 1}`),
    UI.el("p", { class: "row" }, `detection ${pct(face.score)} · ${Math.round(face.size)} px`, live),
    matches.length
      ? UI.el("table", {}, UI.el("tbody", {}, ...matches))
      : UI.el("p", { class: "muted" }, `no subject in the gallery (threshold ${threshold})`)
  );
}

async function identify(blob, name) {
  UI.notice("");
  const form = new FormData();
  form.append("image", blob, name);
  form.append("k", $("k").value || "3");
  if ($("liveness").checked) form.append("liveness", "true");
  $("results").textContent = "working…";
  const doc = await UI.api("POST", "/v1/identify", form);
  const photo = doc.results[0];
  const best = photo.faces.map((f) => (f.matches[0] && f.matches[0].match ? f.matches[0].name : ""));
  $("photo").replaceChildren(UI.drawFaces(URL.createObjectURL(blob), photo.width, photo.height, photo.faces, best));
  const cards = photo.faces.map((f, i) => faceCard(f, i, doc.threshold));
  $("results").replaceChildren(...(cards.length ? cards : [UI.el("p", {}, "No face found in this photo.")]));
  $("results").className = "";
}

async function camera() {
  const video = $("video");
  video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true });
  video.hidden = false;
  $("snap").hidden = false;
}

function snapshot() {
  const video = $("video");
  const canvas = UI.el("canvas", { width: video.videoWidth, height: video.videoHeight });
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob((blob) => UI.guard(() => identify(blob, "snapshot.jpg")), "image/jpeg", 0.92);
}

UI.start(async (role) => {
  if (role === "none") return;
  UI.dropZone($("drop"), (files) => UI.guard(() => identify(files[0], files[0].name)), false);
  $("camera").addEventListener("click", () => UI.guard(camera));
  $("snap").addEventListener("click", snapshot);
});
