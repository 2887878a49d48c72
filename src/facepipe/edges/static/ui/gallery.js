// Gallery: subjects (search, paging), a subject's faces with their crops, enrolment by drag and drop,
// rename and delete (with confirmation). Every action calls /v1.
"use strict";

const PAGE = 10;
const view = { offset: 0, total: 0, search: "", subject: null };
const $ = (id) => document.getElementById(id);

async function loadSubjects() {
  const q = new URLSearchParams({ offset: view.offset, limit: PAGE, search: view.search });
  const doc = await UI.api("GET", `/v1/subjects?${q}`);
  view.total = doc.total;
  $("subjects").replaceChildren(
    ...doc.subjects.map((s) =>
      UI.el(
        "tr",
        { "data-id": s.id, class: view.subject === s.id ? "selected" : null, onclick: () => UI.guard(() => openSubject(s.id)) },
        UI.el("td", {}, s.name),
        UI.el("td", { class: "muted" }, s.id),
        UI.el("td", {}, String(s.faces))
      )
    )
  );
  const last = Math.min(view.offset + PAGE, view.total);
  $("page-info").textContent = view.total ? `${view.offset + 1}-${last} of ${view.total}` : "no subjects";
  $("prev").disabled = view.offset === 0;
  $("next").disabled = last >= view.total;
}

async function openSubject(id) {
  const s = await UI.api("GET", `/v1/subjects/${encodeURIComponent(id)}`);
  view.subject = s.id;
  $("subject-panel").hidden = false;
  $("subject-name").textContent = s.name;
  $("subject-id").textContent = s.id;
  $("subject-created").textContent = new Date(s.created * 1000).toLocaleString();
  $("rename").value = s.name;
  $("uploads").replaceChildren();
  for (const tr of $("subjects").children) tr.classList.toggle("selected", tr.dataset.id === s.id);
  await loadFaces();
}

async function loadFaces() {
  const doc = await UI.api("GET", `/v1/subjects/${encodeURIComponent(view.subject)}/faces`);
  const figures = doc.faces.map((f) => {
    const img = UI.el("img", { alt: `face ${f.id}` });
    if (f.has_crop) UI.imageUrl(`/v1/faces/${f.id}/crop`).then((u) => (img.src = u), () => {});
    const quality = f.quality && f.quality.score !== undefined ? `score ${f.quality.score.toFixed(3)}` : "";
    return UI.el(
      "figure",
      { "data-face": f.id },
      img,
      UI.el("figcaption", {}, `#${f.id} ${quality}`),
      UI.el("button", { class: "danger write", onclick: () => UI.guard(() => deleteFace(f.id)) }, "Delete")
    );
  });
  $("faces").replaceChildren(...(figures.length ? figures : [UI.el("p", { class: "muted" }, "No faces yet.")]));
}

async function deleteFace(id) {
  if (!(await UI.confirm(`Delete face #${id}?`))) return;
  await UI.api("DELETE", `/v1/faces/${id}`);
  await Promise.all([loadFaces(), loadSubjects()]);
}

// One request per photo, so that each file gets its own progress and result.
async function enrol(files) {
  const sid = view.subject;
  const rows = files.map((f) => {
    const bar = UI.el("progress", { max: 1, value: 0 });
    const result = UI.el("span", { class: "result muted" }, "waiting");
    $("uploads").append(UI.el("li", {}, UI.el("span", {}, f.name), bar, result));
    return { file: f, bar, result };
  });
  for (const { file, bar, result } of rows) {
    const form = new FormData();
    form.append("image", file, file.name);
    result.textContent = "uploading";
    try {
      const doc = await UI.upload(`/v1/subjects/${encodeURIComponent(sid)}/faces`, form, (p) => (bar.value = p));
      const face = doc.faces[0];
      bar.value = 1;
      result.textContent = face.created ? `enrolled as face #${face.id}` : `already enrolled (face #${face.id})`;
      result.className = "result badge yes";
    } catch (err) {
      result.textContent = err.message;
      result.className = "result badge no";
    }
  }
  if (view.subject === sid) await Promise.all([loadFaces(), loadSubjects()]);
}

async function rename() {
  const s = await UI.api("PATCH", `/v1/subjects/${encodeURIComponent(view.subject)}`, { name: $("rename").value });
  $("subject-name").textContent = s.name;
  await loadSubjects();
}

async function deleteSubject() {
  const name = $("subject-name").textContent;
  if (!(await UI.confirm(`Delete ${name} and all of their faces?`))) return;
  const doc = await UI.api("DELETE", `/v1/subjects/${encodeURIComponent(view.subject)}`);
  UI.notice(`Deleted ${name} (${doc.faces} faces).`);
  view.subject = null;
  $("subject-panel").hidden = true;
  await loadSubjects();
}

async function create(e) {
  e.preventDefault();
  const body = { name: $("new-name").value };
  if ($("new-id").value) body.id = $("new-id").value;
  const s = await UI.api("POST", "/v1/subjects", body);
  $("new-subject").reset();
  $("search").value = view.search = "";
  await loadSubjects(); // the total of all subjects: the new one comes last
  view.offset = Math.floor((view.total - 1) / PAGE) * PAGE;
  await loadSubjects();
  await openSubject(s.id);
}

UI.start(async (role) => {
  if (role === "none") return;
  let typing;
  $("search").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => ((view.search = $("search").value), (view.offset = 0), UI.guard(loadSubjects)), 250);
  });
  $("prev").addEventListener("click", () => ((view.offset = Math.max(0, view.offset - PAGE)), UI.guard(loadSubjects)));
  $("next").addEventListener("click", () => ((view.offset += PAGE), UI.guard(loadSubjects)));
  $("new-subject").addEventListener("submit", (e) => UI.guard(() => create(e)));
  $("rename-btn").addEventListener("click", () => UI.guard(rename));
  $("delete-subject").addEventListener("click", () => UI.guard(deleteSubject));
  UI.dropZone($("drop"), (files) => UI.guard(() => enrol(files)));
  await loadSubjects();
});
