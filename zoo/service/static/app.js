// zoo serve's page: send a clip (dropped, chosen or recorded) to POST /tag and POST /similar,
// draw its taggram and top tags, and list the similar catalogue tracks with players and the
// matched passage marked. Plain JS, nothing loaded from elsewhere. Text from the server is only
// ever set as textContent. document.body.dataset.tags / .similar say "loading", "done" or
// "error", so a test (or a person) can tell when the answers are in.
"use strict";

const TOP_RESULTS = 10;
const TAGGRAM_ROWS = 12; // the taggram shows the clip's strongest tags, not all 50
const $ = (id) => document.getElementById(id);
let limits = null;
let requestNumber = 0; // answers to an older clip are dropped

function setState(kind, state) { document.body.dataset[kind] = state; }

function clock(seconds) {
  const s = Math.max(0, seconds);
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function health() {
  try {
    const response = await fetch("/health");
    const doc = await response.json();
    limits = doc.limits;
    if (doc.status === "ok") {
      $("status").textContent = `${doc.files} tracks · ${doc.model} · ${doc.level} level`;
    } else if (doc.status === "loading") {
      $("status").textContent = "loading the models...";
      setTimeout(health, 1000);
    } else {
      $("status").textContent = `not ready: ${doc.error}`;
    }
    if (limits) {
      $("limits").textContent = `up to ${(limits.max_upload_bytes / 2 ** 20).toFixed(0)} MiB ` +
        `and ${Math.round(limits.max_audio_seconds)} s; WAV, FLAC, Ogg, Opus, MP3, AIFF`;
    }
  } catch (err) {
    $("status").textContent = "the server does not answer";
    setTimeout(health, 2000);
  }
}

async function post(path, file) {
  const form = new FormData();
  form.append("file", file, file.name || "clip.wav");
  const response = await fetch(path, { method: "POST", body: form });
  let doc;
  try { doc = await response.json(); } catch (err) { doc = { error: response.statusText }; }
  if (!response.ok) throw new Error(doc.error || `HTTP ${response.status}`);
  return doc;
}

// -- the query ---------------------------------------------------------------------------

function analyse(file) {
  showError("");
  if (limits && file.size > limits.max_upload_bytes) {
    showError(`${file.name}: ${(file.size / 2 ** 20).toFixed(1)} MiB is more than this ` +
              `server takes (${(limits.max_upload_bytes / 2 ** 20).toFixed(0)} MiB)`);
    return;
  }
  const mine = ++requestNumber;
  $("current").hidden = false;
  $("query-name").textContent = file.name || "recording";
  const player = $("query-audio");
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(file);
  $("tags-panel").hidden = true;
  $("similar-panel").hidden = true;
  setState("tags", "loading");
  setState("similar", "loading");
  const errors = [];
  const finish = () => { if (errors.length && mine === requestNumber) showError(errors.join("\n")); };

  post("/tag?top=10", file).then((doc) => {
    if (mine !== requestNumber) return;
    showTags(doc);
    setState("tags", "done");
  }).catch((err) => {
    if (mine !== requestNumber) return;
    setState("tags", "error");
    // no tagger on this server is no error of the clip's
    if (!/no tagger/.test(err.message)) { errors.push(`tags: ${err.message}`); finish(); }
  });

  post(`/similar?top=${TOP_RESULTS}&explain=true`, file).then((doc) => {
    if (mine !== requestNumber) return;
    showSimilar(doc);
    setState("similar", "done");
  }).catch((err) => {
    if (mine !== requestNumber) return;
    setState("similar", "error");
    errors.push(`similar tracks: ${err.message}`);
    finish();
  });
}

// -- tags and taggram --------------------------------------------------------------------

function showTags(doc) {
  $("tag-model").textContent = doc.model;
  const list = $("top-tags");
  list.replaceChildren();
  for (const { tag, probability } of doc.top) {
    const item = element("li", "", `${tag} `);
    item.append(element("span", "hint", probability.toFixed(3)));
    const bar = element("span", "bar");
    bar.style.width = `${Math.max(2, probability * 100)}%`;
    item.append(bar);
    list.append(item);
  }
  drawTaggram(doc);
  $("tags-panel").hidden = false;
}

// viridis, five stops: dark = low, yellow = high (as zoo's own taggram figures)
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function colour(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const c = VIRIDIS[i].map((v, k) => Math.round(v + f * (VIRIDIS[i + 1][k] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function drawTaggram(doc) {
  const canvas = $("taggram");
  const ctx = canvas.getContext("2d");
  const { tags, times, probabilities } = doc;
  const patches = probabilities.length;
  const mean = tags.map((_, j) => probabilities.reduce((s, row) => s + row[j], 0) / patches);
  const rows = tags.map((_, j) => j).sort((a, b) => mean[b] - mean[a]).slice(0, TAGGRAM_ROWS);
  let low = Infinity; let high = -Infinity;
  for (const row of probabilities) for (const j of rows) {
    low = Math.min(low, row[j]); high = Math.max(high, row[j]);
  }
  high = Math.max(high, low + 1e-6);
  const left = 120; const top = 8; const bottom = 26; const right = 10;
  const w = canvas.width - left - right; const h = canvas.height - top - bottom;
  const cw = w / patches; const ch = h / rows.length;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "12px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  rows.forEach((j, r) => {
    ctx.fillStyle = "#1d2330";
    ctx.textAlign = "right";
    ctx.fillText(tags[j], left - 6, top + (r + 0.5) * ch);
    probabilities.forEach((row, p) => {
      ctx.fillStyle = colour((row[j] - low) / (high - low));
      ctx.fillRect(left + p * cw, top + r * ch, Math.ceil(cw), Math.ceil(ch));
    });
  });
  ctx.fillStyle = "#6b7385";
  ctx.textAlign = "center";
  const step = Math.max(1, Math.ceil(patches / 12));
  for (let p = 0; p < patches; p += step) {
    ctx.fillText(`${times[p].toFixed(0)} s`, left + (p + 0.5) * cw, canvas.height - bottom / 2);
  }
  $("taggram-caption").textContent = `Taggram: the clip's ${rows.length} strongest of ` +
    `${tags.length} tags over time (one column per ${doc.times.length > 1 ?
      (doc.times[1] - doc.times[0]).toFixed(0) : 3} s patch); colour from ` +
    `${low.toFixed(3)} (dark) to ${high.toFixed(3)} (yellow).`;
}

// -- similar tracks ----------------------------------------------------------------------

function showSimilar(doc) {
  $("similar-model").textContent = `${doc.model}, distance 0 = identical`;
  const list = $("results");
  list.replaceChildren();
  for (const result of doc.results) list.append(resultItem(result));
  if (!doc.results.length) list.append(element("li", "hint", "the catalogue is empty"));
  $("similar-panel").hidden = false;
}

function resultItem(result) {
  const item = element("li", "result");
  item.dataset.path = result.path;
  item.append(element("span", "rank", String(result.rank)));
  const slash = result.path.lastIndexOf("/");
  const name = element("span", "track");
  if (slash >= 0) name.append(element("span", "folder", result.path.slice(0, slash + 1)));
  name.append(document.createTextNode(result.path.slice(slash + 1)));
  item.append(name);
  const m = result.matched;
  const meta = element("span", "meta", `distance ${result.distance.toFixed(4)}`);
  if (m) {
    meta.textContent += ` · matched ${clock(m.start)}-${clock(m.end)} ` +
      `(query ${clock(m.query_start)}-${clock(m.query_end)}, similarity ${m.similarity.toFixed(3)})`;
  }
  item.append(meta);
  item.append(playerRow(result));
  return item;
}

function playerRow(result) {
  const row = element("div", "player");
  const audio = element("audio");
  audio.controls = true;
  audio.preload = "metadata";
  audio.src = result.audio_url;
  const timeline = element("div", "timeline");
  timeline.title = "the passage the query matched";
  const cursor = element("span", "cursor");
  const m = result.matched;
  let duration = result.duration || (m ? m.end : 0);
  const place = (node, start, end) => {
    node.style.left = `${(100 * start) / duration}%`;
    node.style.width = `${Math.max(0.5, (100 * (end - start)) / duration)}%`;
  };
  const draw = () => {
    timeline.replaceChildren();
    if (!duration) return;
    for (const a of result.alignments || []) {
      const seg = element("span", "segment");
      place(seg, a.catalogue_start, a.catalogue_end);
      timeline.append(seg);
    }
    if (m) {
      const span = element("span", "matched");
      place(span, m.start, m.end);
      timeline.append(span);
    }
    timeline.append(cursor);
  };
  audio.addEventListener("loadedmetadata", () => {
    if (Number.isFinite(audio.duration) && audio.duration > 0) { duration = audio.duration; draw(); }
  });
  audio.addEventListener("timeupdate", () => {
    if (duration) cursor.style.left = `${(100 * audio.currentTime) / duration}%`;
    if (audio.dataset.stopAt && audio.currentTime >= Number(audio.dataset.stopAt)) {
      audio.pause();
      delete audio.dataset.stopAt;
    }
  });
  timeline.addEventListener("click", (event) => {
    if (!duration) return;
    const box = timeline.getBoundingClientRect();
    audio.currentTime = ((event.clientX - box.left) / box.width) * duration;
    audio.play();
  });
  row.append(audio);
  if (m) {
    const play = element("button", "", "play match");
    play.type = "button";
    play.addEventListener("click", () => {
      audio.currentTime = m.start;
      audio.dataset.stopAt = String(m.end);
      audio.play();
    });
    row.append(play);
  }
  row.append(timeline);
  draw();
  return row;
}

// -- input: drop, choose, record ---------------------------------------------------------

function setUpInput() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) analyse(e.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", (e) => {
    if (e.target.files.length) analyse(e.target.files[0]);
    e.target.value = "";
  });
  const button = $("record");
  if (!navigator.mediaDevices || !window.MediaRecorder) { button.hidden = true; return; }
  let recorder = null;
  button.addEventListener("click", async () => {
    if (recorder) { recorder.stop(); return; }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      showError(`cannot record: ${err.message}`);
      return;
    }
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.addEventListener("dataavailable", (e) => chunks.push(e.data));
    recorder.addEventListener("stop", async () => {
      stream.getTracks().forEach((t) => t.stop());
      recorder = null;
      button.classList.remove("recording");
      button.textContent = "record";
      try {
        analyse(await toWav(new Blob(chunks, { type: chunks[0] ? chunks[0].type : "" })));
      } catch (err) {
        showError(`cannot use the recording: ${err.message}`);
      }
    });
    recorder.start();
    button.classList.add("recording");
    button.textContent = "stop";
  });
}

// Browsers record WebM or MP4, which the server's decoder does not read: the page decodes the
// recording itself and sends it as 16-bit mono WAV.
async function toWav(blob) {
  const context = new AudioContext();
  try {
    const buffer = await context.decodeAudioData(await blob.arrayBuffer());
    const n = buffer.length;
    const mono = new Float32Array(n);
    for (let c = 0; c < buffer.numberOfChannels; c++) {
      const data = buffer.getChannelData(c);
      for (let i = 0; i < n; i++) mono[i] += data[i] / buffer.numberOfChannels;
    }
    const bytes = new DataView(new ArrayBuffer(44 + 2 * n));
    const text = (offset, s) => { for (let i = 0; i < s.length; i++) bytes.setUint8(offset + i, s.charCodeAt(i)); };
    text(0, "RIFF"); bytes.setUint32(4, 36 + 2 * n, true); text(8, "WAVE");
    text(12, "fmt "); bytes.setUint32(16, 16, true); bytes.setUint16(20, 1, true);
    bytes.setUint16(22, 1, true); bytes.setUint32(24, buffer.sampleRate, true);
    bytes.setUint32(28, buffer.sampleRate * 2, true); bytes.setUint16(32, 2, true);
    bytes.setUint16(34, 16, true); text(36, "data"); bytes.setUint32(40, 2 * n, true);
    for (let i = 0; i < n; i++) {
      bytes.setInt16(44 + 2 * i, Math.max(-1, Math.min(1, mono[i])) * 32767, true);
    }
    return new File([bytes.buffer], "recording.wav", { type: "audio/wav" });
  } finally {
    context.close();
  }
}

setUpInput();
health();
