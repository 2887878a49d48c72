// facepipe web UI: what every page shares (the API key, calls to the API, small DOM helpers).
"use strict";

const UI = (() => {
  const KEY = "facepipe.apiKey"; // typed in once per browser session
  const key = () => sessionStorage.getItem(KEY) || "";

  function headers() {
    return key() ? { "x-api-key": key() } : {};
  }

  function errorText(status, text) {
    try {
      const doc = JSON.parse(text);
      const err = doc.error;
      return `${status}: ${typeof err === "object" ? err.message : err || text}`;
    } catch {
      return `${status}: ${text || "request failed"}`;
    }
  }

  // One call to the server's API; JSON bodies as objects, FormData as multipart. Throws on errors
  // with the server's own message.
  async function api(method, path, body) {
    const opts = { method, headers: headers() };
    if (body instanceof FormData) opts.body = body;
    else if (body !== undefined) {
      opts.headers["content-type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    const text = await r.text();
    if (!r.ok) throw new Error(errorText(r.status, text));
    return text ? JSON.parse(text) : null;
  }

  // An image the API guards with the key, as an object URL for <img src>.
  async function imageUrl(path) {
    const r = await fetch(path, { headers: headers() });
    if (!r.ok) throw new Error(errorText(r.status, await r.text()));
    return URL.createObjectURL(await r.blob());
  }

  // Multipart upload with progress (fetch has no upload progress): resolves to the JSON answer.
  function upload(path, form, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", path);
      for (const [k, v] of Object.entries(headers())) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
      xhr.onload = () =>
        xhr.status < 300 ? resolve(JSON.parse(xhr.responseText)) : reject(new Error(errorText(xhr.status, xhr.responseText)));
      xhr.onerror = () => reject(new Error("network error"));
      xhr.send(form);
    });
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, v === true ? "" : v);
    }
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  function notice(message, isError = false) {
    const box = document.getElementById("notice");
    box.textContent = message;
    box.className = isError ? "error" : "";
    box.hidden = !message;
  }

  // Runs fn, showing its error (if any) in the notice bar.
  async function guard(fn) {
    try {
      return await fn();
    } catch (err) {
      notice(err.message, true);
      return undefined;
    }
  }

  function confirm(text) {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-text").textContent = text;
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }));
  }

  // The photo with each face's box and landmarks drawn over it, in the image's own pixels.
  function drawFaces(url, width, height, faces, labels = []) {
    const svgNs = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(svgNs, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    const shape = (tag, attrs) => {
      const node = document.createElementNS(svgNs, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      return svg.appendChild(node);
    };
    faces.forEach((f, i) => {
      const b = f.box;
      shape("rect", { x: b.x1, y: b.y1, width: b.x2 - b.x1, height: b.y2 - b.y1, "data-face": i, class: "box" });
      for (const [x, y] of f.landmarks) shape("circle", { cx: x, cy: y, r: Math.max(3, width / 90), class: "landmark" });
      const label = shape("text", { x: b.x1, y: Math.max(b.y1 - width / 100, width / 18), "font-size": width / 18 });
      label.textContent = `${i + 1}${labels[i] ? " " + labels[i] : ""}`;
    });
    return el("div", { class: "stage" }, el("img", { src: url, alt: "photo" }), svg);
  }

  // A drop zone that also opens a file picker on click; calls onFiles with the image files.
  function dropZone(zone, onFiles, multiple = true) {
    const input = el("input", { type: "file", accept: "image/*", multiple, hidden: true });
    zone.after(input);
    zone.addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
    const files = [...input.files];
    input.value = ""; // the same file can be chosen again
    if (files.length) onFiles(files);
  });
    zone.addEventListener("dragover", (e) => (e.preventDefault(), zone.classList.add("over")));
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      const files = [...e.dataTransfer.files].filter((f) => f.type.startsWith("image/"));
      if (files.length) onFiles(files);
    });
    return input;
  }

  const roleText = { admin: "admin key", read: "read-only", none: "key needed" };

  async function role() {
    const r = await fetch("/ui/api/role", { headers: headers() });
    const { role } = await r.json();
    document.body.dataset.role = role;
    const badge = document.getElementById("role");
    badge.textContent = roleText[role];
    badge.className = `badge ${role === "admin" ? "yes" : role === "none" ? "no" : ""}`;
    if (role === "none") notice(key() ? "This API key is not recognised." : "Type an API key to use the server.", !!key());
    return role;
  }

  // Each page calls start(fn): fn runs once the key's role is known.
  function start(fn) {
    document.getElementById("key").value = key();
    document.getElementById("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      sessionStorage.setItem(KEY, document.getElementById("key").value.trim());
      location.reload();
    });
    role().then((r) => guard(() => fn(r)));
  }

  return { api, imageUrl, upload, el, notice, guard, confirm, drawFaces, dropZone, start };
})();
