// The API console: a form generated from the model's declaration (GET /api/v1/models/{id}),
// the exact curl for it, and the request sent from this page with the user's own key.
(() => {
  "use strict";
  const $ = (selector) => document.querySelector(selector);
  let model = null;
  let polling = null;

  const remembered = sessionStorage.getItem("mediagate.key");
  if (remembered) $("#api-key").value = remembered;

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
    for (const [name, schema] of Object.entries(props)) {
      box.append(field(name, schema, required.has(name), kept[name]));
    }
    $("#fields [name=type]").value = type;
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
    sessionStorage.setItem("mediagate.key", key);
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
