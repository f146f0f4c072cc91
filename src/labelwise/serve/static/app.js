// labelwise serve page: upload images to POST /predict and draw what the model decided.
// Plain JS, no dependencies; everything comes from this server.
"use strict";

const modelName = document.querySelector('meta[name="labelwise-model"]').content;
let rules = null; // per label: {name, role, group, threshold}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function loadRules() {
  const info = document.getElementById("model-info");
  try {
    const resp = await fetch("v2/models/" + encodeURIComponent(modelName));
    const meta = await resp.json();
    if (!resp.ok) throw new Error(meta.error || resp.statusText);
    rules = meta.parameters.label_rules;
    const groups = Object.keys(meta.parameters.schema.exclusive || {});
    info.textContent = `${rules.length} labels` + (groups.length ? `, exclusive group(s): ${groups.join(", ")}` : "") +
      `. Decision rule: ${meta.parameters.decision_rule}.`;
  } catch (e) {
    info.textContent = "could not read the model's metadata: " + e.message;
  }
}

function pct(p) { return (100 * p).toFixed(1) + "%"; }

function ruleText(rule) {
  if (rule.role === "independent" && rule.threshold === null) return "by the rule " + rule.rule;
  if (rule.role === "independent") return "≥ " + rule.threshold.toFixed(3) + (rule.threshold_is_default ? " (default)" : "");
  if (rule.role === "group") return "top of " + rule.group;
  return "no independent";
}

function renderCard(file, url, pred) {
  const thumb = el("div", { class: "thumb" }, el("img", { src: url, alt: file.name }));
  const heat = el("div", { class: "heat muted" });
  thumb.append(heat);
  const body = el("div", {});
  body.append(el("h2", {}, pred.file));
  const decided = el("ul", { class: "decided", "data-testid": "decided" });
  for (const label of pred.labels) {
    const isNone = rules && rules.find((r) => r.name === label && r.role === "none");
    decided.append(el("li", { class: isNone ? "none-label" : "" }, label));
  }
  body.append(decided);
  const groups = Object.entries(pred.groups || {});
  if (groups.length) {
    body.append(el("p", { class: "summary groups", "data-testid": "groups" },
      groups.map(([g, w]) => `${g}: ${w} (${pct(pred.probabilities[w])})`).join(" · ")));
  }
  if (pred.none !== null && pred.none !== undefined) {
    const noneRule = rules && rules.find((r) => r.role === "none");
    const name = noneRule ? noneRule.name : "none";
    body.append(el("p", { class: "summary none", "data-testid": "none" },
      pred.none ? `${name}: yes, no independent label is decided` : `${name}: no`));
  }
  const table = el("table", { class: "bars" });
  let lastGroup;
  for (const rule of rules || Object.keys(pred.probabilities).map((n) => ({ name: n, role: "independent", threshold: 0.5 }))) {
    const p = pred.probabilities[rule.name];
    const on = pred.decisions[rule.name] === 1;
    const bar = el("div", { class: "bar" }, el("div", { class: "fill", style: `width:${(100 * p).toFixed(2)}%` }));
    if (rule.role === "independent") {
      bar.append(el("div", { class: "thr", style: `left:calc(${(100 * rule.threshold).toFixed(2)}% - 1px)`,
                             title: "threshold " + rule.threshold }));
    }
    const groupKey = rule.role + ":" + (rule.group || "");
    const row = el("tr", { class: "label-row" + (on ? " on" : "") + (lastGroup !== undefined && groupKey !== lastGroup ? " group-start" : ""),
                           "data-label": rule.name, title: "click for this label's heatmap" },
      el("td", { class: "name" }, rule.name), el("td", { class: "bar-cell" }, bar),
      el("td", { class: "value" }, pct(p)), el("td", { class: "rule" }, ruleText(rule)));
    row.addEventListener("click", () => explain(file, rule.name, heat));
    table.append(row);
    lastGroup = groupKey;
  }
  body.append(table);
  return el("article", { class: "card", "data-file": pred.file }, thumb, body);
}

async function explain(file, label, target) {
  target.textContent = `heatmap for ${label}…`;
  const form = new FormData();
  form.append("image", file, file.name);
  try {
    const resp = await fetch("predict?explain=" + encodeURIComponent(label), { method: "POST", body: form });
    const data = await resp.json();
    if (!resp.ok) { target.textContent = data.error || resp.statusText; return; }
    const overlay = data.predictions[0].explain;
    target.textContent = "";
    target.append(el("div", {}, `Grad-CAM for ${label}`), el("img", { src: "data:image/png;base64," + overlay.png, alt: label }));
  } catch (e) {
    target.textContent = "heatmap failed: " + e.message;
  }
}

async function upload(files) {
  const status = document.getElementById("status");
  const results = document.getElementById("results");
  if (!files.length) return;
  if (!rules) await loadRules();
  status.textContent = `predicting ${files.length} image(s)…`;
  // one request per image: a bad file gets its own error and the others still show
  let done = 0;
  await Promise.all(Array.from(files).map(async (file) => {
    const form = new FormData();
    form.append("image", file, file.name);
    const url = URL.createObjectURL(file);
    let card;
    try {
      const resp = await fetch("predict", { method: "POST", body: form });
      const data = await resp.json();
      if (!resp.ok) throw new Error(data.error || resp.statusText);
      card = renderCard(file, url, data.predictions[0]);
    } catch (e) {
      card = el("article", { class: "card error", "data-file": file.name }, `${file.name}: ${e.message}`);
    }
    results.prepend(card);
    done += 1;
    status.textContent = `${done} of ${files.length} done`;
  }));
  status.textContent = `done: ${files.length} image(s)`;
}

const drop = document.getElementById("drop");
const input = document.getElementById("file-input");
input.addEventListener("change", () => { upload(input.files); });
for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
drop.addEventListener("drop", (e) => upload(e.dataTransfer.files));
loadRules();
