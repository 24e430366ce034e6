// The API console: a form generated from the model's declaration (GET /api/v1/models/{id}),
// the exact curl for it, and the request sent from this page with the user's own key,
// picked from the account's keys (the secret pasted once, kept by this tab: copy.js).
(() => {
  "use strict";
  const $ = (selector) => document.querySelector(selector);
  const keys = window.mediagateKeys;
  let model = null;
  let polling = null;
  const uploadBox = $("#upload-box"); // moved under the images field of each form

  // The key picker: each of the account's keys by its hint; a secret this tab was given
  // fills the field, otherwise the page asks for it once.
  function secretFor(hint) {
    return keys.remembered().find((secret) => keys.hint(secret) === hint);
  }

  function pick(hint) {
    const input = $("#api-key");
    const option = [...$("#key-pick").options].find((o) => o.value === hint);
    if (!hint || !option) {
      input.placeholder = "aio_test_…";
      $("#key-note").textContent = "Paste the key's secret; this tab remembers it.";
      return;
    }
    const secret = secretFor(hint);
    input.value = secret || "";
    input.placeholder = `the secret of ${option.dataset.name} (${hint})`;
    $("#key-note").textContent = secret
      ? `Using ${option.dataset.name}, remembered by this tab.`
      : `Paste the secret of ${option.dataset.name} (${hint}) once: only its hint is stored, and this tab keeps it.`;
    if (!secret) input.focus();
  }

  function pickFromSecret() {
    const secret = $("#api-key").value.trim();
    const hint = secret ? keys.hint(secret) : "";
    const known = [...$("#key-pick").options].some((o) => o.value === hint && hint);
    $("#key-pick").value = known ? hint : "";
    if (known) {
      keys.remember(secret);
      $("#key-note").textContent = "Remembered by this tab.";
    }
  }

  const listed = [...$("#key-pick").options].map((o) => o.value).filter(Boolean);
  pick(listed.find((hint) => secretFor(hint)) || listed[0] || "");
  $("#key-pick").addEventListener("change", (e) => pick(e.target.value));
  $("#api-key").addEventListener("input", pickFromSecret);

  // Upload a reference image (POST /api/v1/uploads) and add its URL to `images`.
  async function upload(file) {
    const key = $("#api-key").value.trim();
    const note = $("#upload-note");
    if (!key) {
      note.textContent = "Choose or paste a key first: the upload is made with it.";
      return;
    }
    note.textContent = `Uploading ${file.name}…`;
    const form = new FormData();
    form.append("file", file);
    const answer = await fetch("/api/v1/uploads", {
      method: "POST",
      headers: { Authorization: `Bearer ${key}` },
      body: form,
    });
    const data = await answer.json();
    if (!answer.ok) {
      note.textContent = `Upload refused (${answer.status}): ${data.error?.message || data.message}`;
      return;
    }
    const images = $("#fields [name=images]");
    images.value = [...images.value.split(/\s+/).filter(Boolean), data.data.url].join("\n");
    const img = document.createElement("img");
    img.src = data.data.url;
    img.alt = `Uploaded ${file.name} (${data.data.width}×${data.data.height})`;
    img.width = 96;
    $("#uploads").append(img);
    note.textContent = `Uploaded ${file.name}: ${data.data.width}×${data.data.height}, added to images.`;
    showRequest();
  }

  $("#upload").addEventListener("change", (e) => {
    const [file] = e.target.files;
    if (file) upload(file).finally(() => (e.target.value = ""));
  });

  async function load(id) {
    const answer = await fetch(`/api/v1/models/${encodeURIComponent(id)}`);
    model = (await answer.json()).data;
    render({});
  }

  function currentType() {
    const select = $("#fields [name=type]");
    return select ? select.value : model.types.find((t) => t.default).type;
  }

  // The parameters, with the rules of the chosen type laid over them.
  function properties(type) {
    const props = structuredClone(model.params.properties);
    for (const rule of model.params.allOf || []) {
      if (rule.if.properties.type.const === type) Object.assign(props, rule.then.properties);
    }
    delete props.model;
    return props;
  }

  function values() {
    const out = {};
    for (const input of document.querySelectorAll("#fields [name]")) out[input.name] = input.value;
    return out;
  }

  function field(name, schema, required, value) {
    const label = document.createElement("label");
    label.textContent = name + (required ? " (required)" : "");
    let input;
    if (schema.enum || schema.type === "boolean") {
      input = document.createElement("select");
      for (const option of schema.enum || [false, true]) input.add(new Option(option, option));
    } else if (schema.type === "integer" || schema.type === "number") {
      input = document.createElement("input");
      input.type = "number";
      input.step = schema.type === "number" ? "any" : "1";
      if (schema.minimum !== undefined) input.min = schema.minimum;
      if (schema.maximum !== undefined) input.max = schema.maximum;
    } else if (schema.type === "array" || (schema.maxLength || 0) > 300) {
      input = document.createElement("textarea");
      input.rows = schema.type === "array" ? 3 : 4;
      if (schema.type === "array") input.placeholder = "one URL per line";
    } else {
      input = document.createElement("input");
      input.type = schema.format === "uri" ? "url" : "text";
    }
    input.name = name;
    input.required = required;
    if (schema.maxLength && schema.type !== "array") input.maxLength = schema.maxLength;
    const fallback = schema.default !== undefined && schema.type !== "array" ? String(schema.default) : "";
    input.value = value !== undefined ? value : fallback;
    label.append(input);
    if (schema.description) {
      const hint = document.createElement("small");
      hint.textContent = schema.description;
      label.append(hint);
    }
    return label;
  }

  function render(kept) {
    const type = kept.type || model.types.find((t) => t.default).type;
    const props = properties(type);
    const required = new Set(model.params.required || []);
    const box = $("#fields");
    box.replaceChildren();
    $("#console-form").append(uploadBox); // out of the way while the fields are rebuilt
    for (const [name, schema] of Object.entries(props)) {
      box.append(field(name, schema, required.has(name), kept[name]));
    }
    $("#fields [name=type]").value = type;
    const takesImages = props.images?.type === "array";
    uploadBox.hidden = !takesImages;
    if (takesImages) $("#fields [name=images]").closest("label").after(uploadBox);
    if (!takesImages || !kept.images) $("#uploads").replaceChildren();
    showRequest();
  }

  function body() {
    const props = properties(currentType());
    const out = { model: model.id };
    for (const [name, raw] of Object.entries(values())) {
      const schema = props[name] || {};
      const text = raw.trim();
      if (!text) continue;
      if (schema.type === "integer") out[name] = Number.parseInt(text, 10);
      else if (schema.type === "number") out[name] = Number.parseFloat(text);
      else if (schema.type === "boolean") out[name] = text === "true";
      else if (schema.type === "array") out[name] = text.split(/\s+/).filter(Boolean);
      else out[name] = raw;
    }
    return out;
  }

  function showRequest() {
    const json = JSON.stringify(body());
    $("#curl").textContent =
      `curl ${location.origin}${model.endpoint} \\\n` +
      `  -H "Authorization: Bearer $MEDIAGATE_KEY" -H "Content-Type: application/json" \\\n` +
      `  -d '${json.replaceAll("'", "'\\''")}'`;
  }

  function show(status, data) {
    $("#status").textContent = status;
    $("#response").textContent = JSON.stringify(data, null, 2);
  }

  function showImages(task) {
    const box = $("#images");
    box.replaceChildren();
    for (const [i, image] of (task.output?.images || []).entries()) {
      const img = document.createElement("img");
      img.src = image.url;
      img.alt = `Result ${i + 1} (${image.width}×${image.height})`;
      img.width = 240;
      box.append(img);
    }
    for (const [i, video] of (task.output?.videos || []).entries()) {
      const player = document.createElement("video");
      player.src = video.url;
      player.poster = video.poster.url;
      player.controls = true;
      player.width = 320;
      player.title = `Result ${i + 1} (${video.width}×${video.height}, ${video.duration_s} s)`;
      box.append(player);
    }
  }

  async function poll(taskId, key) {
    const answer = await fetch(`/api/v1/tasks/${encodeURIComponent(taskId)}`, {
      headers: { Authorization: `Bearer ${key}` },
    });
    const data = await answer.json();
    if (!answer.ok) return show(`Error ${answer.status}`, data);
    const task = data.data;
    show(`Task ${task.task_id}: ${task.status}`, data);
    if (task.status === "IN_PROGRESS") polling = setTimeout(() => poll(taskId, key), 1000);
    else showImages(task);
  }

  $("#model").addEventListener("change", (e) => load(e.target.value));
  $("#fields").addEventListener("input", showRequest);
  $("#fields").addEventListener("change", (e) => {
    if (e.target.name === "type") render(values());
  });
  $("#console-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    clearTimeout(polling);
    $("#images").replaceChildren();
    const form = $("#console-form");
    if (!form.reportValidity()) return;
    const key = $("#api-key").value.trim();
    if (key.startsWith("aio_")) keys.remember(key);
    show("Sending…", {});
    const answer = await fetch(model.endpoint, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify(body()),
    });
    const data = await answer.json();
    if (!answer.ok) return show(`Error ${answer.status}: ${data.error?.type}`, data);
    show(`Task ${data.data.task_id}: ${data.data.status}`, data);
    poll(data.data.task_id, key);
  });

  load($("#model").value);
})();
