// emolite live page: webcam frames + microphone audio over one WebSocket, predictions back.
// Plain JS, no build step, nothing loaded from elsewhere. The wire protocol is documented in
// emolite/serve/protocol.py: 0x01 + u32 frame_id + f64 time + JPEG; 0x02 + int16 PCM at 16 kHz.
'use strict';

const FRAME_WIDTH = 320;      // px: frames are downscaled before sending
const FPS = 5;                // frames sent per second
const JPEG_QUALITY = 0.75;
const SAMPLE_RATE = 16000;    // Hz mono, what the model hears
const MAX_BUFFERED = 256 * 1024;  // bytes queued in the socket: skip frames beyond this (slow network)
const HISTORY = 40;           // labels kept in the strip
const T_FRAME = 0x01, T_PCM16 = 0x02;
const COLORS = ['#e4572e', '#76b041', '#8e6cbf', '#ffc914', '#9aa5b1', '#2e86ab', '#f19a3e',
  '#17bebb', '#d1495b', '#66a182'];
// One colour per tracked person (by id, so it stays with them), with two or more people on screen.
const PERSON_COLORS = ['#4cc9f0', '#f72585', '#b5e48c', '#ff9f1c', '#c77dff', '#2ec4b6', '#ffd166', '#ef476f'];

const $ = (id) => document.getElementById(id);
const video = $('video');
const overlay = $('overlay');
const grab = document.createElement('canvas');
const grabCtx = grab.getContext('2d');

// Server mode sends frames and audio to emolite serve; on-device mode (ondevice.js) runs the
// models in this page and sends nothing. A folder from `emolite export-web` has no server.
const PARAMS = new URLSearchParams(location.search);
const HAS_SERVER = (document.querySelector('meta[name="emolite-server"]') || {}).content !== '0';
const MODE = !HAS_SERVER || PARAMS.get('mode') === 'device' ? 'device' : 'server';

const state = {
  ws: null, stream: null, timer: null, audioCtx: null, running: false, busy: false, retry: null,
  frameId: 0, sent: 0, answered: 0, labels: 0, dropped: 0, skipped: 0, lat: [], labelLat: [], classes: [],
  bars: {}, level: 0,
};

function setStatus(text, kind = 'info') {
  const el = $('status');
  el.textContent = text;
  el.dataset.state = kind;
}

function color(label) {
  const i = state.classes.indexOf(label);
  return COLORS[(i < 0 ? 0 : i) % COLORS.length];
}

function personColor(id) {
  return PERSON_COLORS[(id - 1) % PERSON_COLORS.length];
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : 0;
}

// ------------------------------------------------------------------ socket

function connect() {
  if (state.ws) return;
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => setStatus('connected', 'ok');
  ws.onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    const h = handlers[m.type];
    if (h) h(m);
  };
  ws.onclose = (e) => {
    state.ws = null;
    if (!state.running) { setStatus('stopped'); return; }
    setStatus(`disconnected (${e.code}${e.reason ? ': ' + e.reason : ''}); reconnecting…`, 'error');
    clearTimeout(state.retry);
    state.retry = setTimeout(connect, e.code === 1013 ? 5000 : 2000);
  };
  state.ws = ws;
}

const handlers = {
  hello(m) {
    state.classes = m.classes;
    state.modalities = m.modalities || ['face', 'context', 'audio'];
    buildBars(m.classes);
    setStatus(`connected · session ${m.session}`, 'ok');
  },
  prediction: onPrediction,
  label: onLabel,
  pong() {},
  error(m) {
    console.warn('server:', m.message);
    setStatus(`server: ${m.message}`, 'warn');
  },
};

// ------------------------------------------------------------------ capture

async function start() {
  $('start').disabled = true;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus('this browser gives no camera to this page: open it on localhost or over HTTPS', 'error');
    $('start').disabled = false;
    return;
  }
  const audio = { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 };
  const videoC = { width: { ideal: 640 }, height: { ideal: 480 } };
  let stream = null;
  for (const c of [{ video: videoC, audio }, { video: videoC }, { audio }]) {
    try { stream = await navigator.mediaDevices.getUserMedia(c); break; } catch (e) { console.warn(e); }
  }
  if (!stream) {
    setStatus('no camera or microphone (permission denied or none found)', 'error');
    $('start').disabled = false;
    return;
  }
  state.stream = stream;
  state.running = true;
  video.srcObject = stream;
  $('stop').disabled = false;
  if (MODE === 'device') {
    if (!state.live) {
      const ok = await (state.loading || loadDevice());
      state.loading = null;
      if (!ok) { stop(); return; }
    }
  } else {
    connect();
  }
  if (stream.getAudioTracks().length) {
    try { await startAudio(stream); } catch (e) { console.warn(e); $('audio-state').textContent = 'microphone failed'; }
  }
  if (MODE === 'device') {
    state.live.start();
  } else if (stream.getVideoTracks().length) {
    state.timer = setInterval(sendFrame, 1000 / FPS);
  } else {  // voice only: ask for a prediction from the audio window twice a second
    state.timer = setInterval(() => {
      const ws = state.ws;
      if (ws && ws.readyState === 1) {
        ws.send(JSON.stringify({ type: 'audio_only', id: state.frameId++, t: performance.now() }));
        state.sent++;
      }
    }, 500);
  }
}

function stop() {
  state.running = false;
  clearInterval(state.timer);
  if (state.live) state.live.stop();
  clearTimeout(state.retry);
  if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
  if (state.audioCtx) state.audioCtx.close();
  if (state.ws) state.ws.close();
  state.stream = state.audioCtx = null;
  video.srcObject = null;
  $('start').disabled = false;
  $('stop').disabled = true;
  $('audio-state').textContent = 'microphone off';
}

async function sendFrame() {
  const ws = state.ws;
  if (state.busy || !ws || ws.readyState !== 1 || video.readyState < 2 || !video.videoWidth) return;
  if (ws.bufferedAmount > MAX_BUFFERED) { state.skipped++; return; }
  state.busy = true;
  try {
    const w = Math.min(FRAME_WIDTH, video.videoWidth);
    const h = Math.round(video.videoHeight * w / video.videoWidth);
    if (grab.width !== w || grab.height !== h) { grab.width = w; grab.height = h; }
    const t = performance.now();  // capture time: the latency shown is capture -> answer
    grabCtx.drawImage(video, 0, 0, w, h);
    const blob = await new Promise((resolve) => grab.toBlob(resolve, 'image/jpeg', JPEG_QUALITY));
    if (!blob || ws.readyState !== 1) return;
    const jpeg = new Uint8Array(await blob.arrayBuffer());
    const msg = new Uint8Array(13 + jpeg.length);
    const v = new DataView(msg.buffer);
    msg[0] = T_FRAME;
    v.setUint32(1, state.frameId >>> 0, true);
    v.setFloat64(5, t, true);
    msg.set(jpeg, 13);
    state.frameId = (state.frameId + 1) >>> 0;
    ws.send(msg);
    state.sent++;
    updateCounts();
  } finally {
    state.busy = false;
  }
}

// Microphone -> 16 kHz mono. An AudioContext at 16 kHz resamples in the browser; where that is
// refused (some browsers will not mix sample rates) the worklet decimates from the native rate.
async function startAudio(stream) {
  let ctx = null, src = null;
  try {
    ctx = new AudioContext({ sampleRate: SAMPLE_RATE });
    src = ctx.createMediaStreamSource(stream);
  } catch (e) {
    if (ctx) ctx.close();
    ctx = new AudioContext();
    src = ctx.createMediaStreamSource(stream);
  }
  state.audioCtx = ctx;
  const sink = ctx.createGain();
  sink.gain.value = 0;  // keep the graph pulling samples without playing the mic back
  sink.connect(ctx.destination);
  if (ctx.audioWorklet) {
    await ctx.audioWorklet.addModule('static/pcm-worklet.js');
    const node = new AudioWorkletNode(ctx, 'pcm-tap', { channelCount: 1, channelCountMode: 'explicit' });
    node.port.onmessage = (e) => sendPcm(e.data);
    src.connect(node);
    node.connect(sink);
  } else {  // old browsers: ScriptProcessor on the main thread, same box-filter decimation
    const node = ctx.createScriptProcessor(4096, 1, 1);
    const step = ctx.sampleRate / SAMPLE_RATE;
    let acc = 0, cnt = 0, phase = 0;
    node.onaudioprocess = (e) => {
      const x = e.inputBuffer.getChannelData(0);
      const out = [];
      for (let i = 0; i < x.length; i++) {
        acc += x[i]; cnt++; phase += 1;
        if (phase >= step) { out.push(acc / cnt); acc = 0; cnt = 0; phase -= step; }
      }
      sendPcm(Float32Array.from(out));
    };
    src.connect(node);
    node.connect(sink);
  }
  if (ctx.state === 'suspended') {
    $('audio-state').textContent = 'click anywhere to turn the microphone on';
    document.addEventListener('click', () => ctx.resume(), { once: true });
  }
}

function sendPcm(x) {
  if (MODE === 'device') {  // stays in the page
    if (state.live && x.length) state.live.addAudio(x);
    showLevel(x);
    return;
  }
  const ws = state.ws;
  if (!ws || ws.readyState !== 1 || !x.length) return;
  const buf = new ArrayBuffer(1 + 2 * x.length);
  const v = new DataView(buf);
  v.setUint8(0, T_PCM16);
  for (let i = 0; i < x.length; i++) {
    const s = Math.max(-1, Math.min(1, x[i]));
    v.setInt16(1 + 2 * i, s < 0 ? s * 32768 : s * 32767, true);
  }
  ws.send(buf);
  showLevel(x);
}

function showLevel(x) {
  let e = 0;
  for (let i = 0; i < x.length; i++) e += x[i] * x[i];
  state.level = Math.sqrt(e / Math.max(1, x.length));
  const bars = Math.min(8, Math.round(state.level * 40));
  $('audio-state').textContent = `microphone on ${'▮'.repeat(bars)}${'▯'.repeat(8 - bars)}`;
}

// ------------------------------------------------------------------ display

function buildBars(classes) {
  const root = $('bars');
  root.textContent = '';
  state.bars = {};
  for (const c of classes) {
    const row = document.createElement('div');
    row.className = 'bar';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = c;
    const track = document.createElement('span');
    track.className = 'track';
    const fill = document.createElement('span');
    fill.className = 'fill';
    fill.style.background = color(c);
    track.appendChild(fill);
    const val = document.createElement('span');
    val.className = 'val';
    row.append(name, track, val);
    root.appendChild(row);
    state.bars[c] = { fill, val };
  }
}

// One per frame, right after detection: the face box, and the latest label (if any yet).
function onPrediction(m) {
  state.answered++;
  state.dropped = m.dropped;
  pushLatency(state.lat, performance.now() - m.t);
  const t = m.timings;
  $('server-ms').textContent = `${t.total_ms.toFixed(0)} ms (${t.detect_ms.toFixed(0)} / ${t.model_ms.toFixed(0)})`;
  if (m.label && !state.labels) showLabel(m);  // labels normally come in their own messages
  drawBox(m);
  showPeople(m);
  showLatency();
  updateCounts();
  document.body.dataset.predictions = String(state.answered);
}

// The model's output for the window ending at frame m.frame_id, sent as soon as it is ready.
function onLabel(m) {
  state.labels++;
  if (state.labels === 1) document.body.dataset.firstLabelMs = String(Math.round(performance.now()));  // since page load
  pushLatency(state.labelLat, performance.now() - m.t);
  showLabel(m);
  pushHistory(m.label);
  showLatency();
  document.body.dataset.labels = String(state.labels);
}

function pushLatency(xs, ms) {
  xs.push(ms);
  if (xs.length > 50) xs.shift();
}

function showLatency() {
  const f = (xs) => (xs.length ? `${median(xs).toFixed(0)} ms` : '–');
  $('latency').textContent = `box ${f(state.lat)} · label ${f(state.labelLat)} (median)`;
}

function showLabel(m) {
  const label = $('label');
  const none = m.label === null;  // the window had neither a face nor voice: no label
  label.textContent = none ? '–' : m.label;
  label.dataset.label = none ? '' : m.label;
  label.style.color = none ? '#888888' : color(m.label);
  // Name only the streams this model uses and this window had.
  const mods = state.modalities || [];
  const faceSeen = m.face_found !== undefined ? m.face_found : Boolean(m.face_box);
  // with several people the voice is in this label only when its person was the speaker
  const people = m.people || [];
  const voiced = m.has_audio && (people.length < 2 || people.some((p) => p.id === m.main_person && p.speaker));
  const used = [mods.includes('face') && faceSeen && 'face', mods.includes('context') && 'scene',
                mods.includes('audio') && voiced && 'voice'].filter(Boolean);
  $('confidence').textContent = none ? 'no face and no voice: no label'
    : `${(m.confidence * 100).toFixed(0)}% confident${used.length ? ' · ' + used.join(' + ') : ''}`;
  for (const [c, p] of Object.entries(m.probs)) {
    const b = state.bars[c];
    if (!b || p === null) continue;
    b.fill.style.width = `${(p * 100).toFixed(1)}%`;
    b.val.textContent = `${(p * 100).toFixed(0)}%`;
  }
  state.current = m;
}

function pushHistory(label) {
  const root = $('history');
  const cell = document.createElement('span');
  cell.style.background = label === null ? '#dddddd' : color(label);
  cell.title = label ?? 'no label';
  root.appendChild(cell);
  while (root.children.length > HISTORY) root.removeChild(root.firstChild);
  root.dataset.count = String(root.children.length);
}

function drawBox(m) {
  const r = overlay.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const W = Math.max(1, Math.round(r.width * dpr)), H = Math.max(1, Math.round(r.height * dpr));
  if (overlay.width !== W || overlay.height !== H) { overlay.width = W; overlay.height = H; }
  const ctx = overlay.getContext('2d');
  ctx.clearRect(0, 0, W, H);
  const people = m.frame_size && m.people ? m.people.filter((p) => p.box) : [];
  overlay.dataset.people = people.map((p) => p.id).join(',');
  if (people.length >= 2) {
    drawPeople(ctx, people, m.frame_size, W, H, dpr);
    overlay.dataset.box = m.face_box ? m.face_box.map((v) => v.toFixed(0)).join(',') : '';  // the main face
    $('face-state').textContent = `${people.length} people`;
    return;
  }
  if (!m.face_box || !m.frame_size) {
    overlay.dataset.box = '';
    $('face-state').textContent = m.frame_size ? 'no face found' : 'no video';
    return;
  }
  // The video is drawn with object-fit: contain: map frame pixels onto the drawn rectangle.
  const [fw, fh] = m.frame_size;
  const s = Math.min(W / fw, H / fh);
  const ox = (W - fw * s) / 2, oy = (H - fh * s) / 2;
  const [x1, y1, x2, y2] = m.face_box;
  const cur = state.current;
  const c = cur && cur.label !== null ? color(cur.label) : '#ffffff';
  const tag = cur && cur.label !== null ? `${cur.label} ${(cur.confidence * 100).toFixed(0)}%` : 'face';
  ctx.font = `bold ${14 * dpr}px system-ui, sans-serif`;
  tagBox(ctx, m.face_box, s, ox, oy, c, tag, 3, dpr);
  overlay.dataset.box = m.face_box.map((v) => v.toFixed(0)).join(',');
  $('face-state').textContent = `${(x2 - x1).toFixed(0)}×${(y2 - y1).toFixed(0)} px at (${x1.toFixed(0)}, ${y1.toFixed(0)})`;
}

// Two or more people: every box in its person's colour, tagged with id and label; the one the
// voice was given to (the speaker) gets a thicker box and "speaking".
function drawPeople(ctx, people, size, W, H, dpr) {
  const [fw, fh] = size;
  const s = Math.min(W / fw, H / fh);
  const ox = (W - fw * s) / 2, oy = (H - fh * s) / 2;
  ctx.font = `bold ${13 * dpr}px system-ui, sans-serif`;
  for (const p of people) {
    const tag = `#${p.id} ${p.label === null ? '…' : `${p.label} ${(p.confidence * 100).toFixed(0)}%`}` +
      (p.speaker ? ' · speaking' : '');
    tagBox(ctx, p.box, s, ox, oy, personColor(p.id), tag, p.speaker ? 5 : 2.5, dpr);
  }
}

// A box in the video's pixels (scale s, offset ox, oy on the canvas) with its tag above it.
function tagBox(ctx, box, s, ox, oy, c, tag, width, dpr) {
  const [x1, y1, x2, y2] = box;
  ctx.lineWidth = width * dpr;
  ctx.strokeStyle = c;
  ctx.strokeRect(ox + x1 * s, oy + y1 * s, (x2 - x1) * s, (y2 - y1) * s);
  const tw = ctx.measureText(tag).width + 8 * dpr, th = 20 * dpr;
  const ty = Math.max(0, oy + y1 * s - th);
  ctx.fillStyle = c;
  ctx.fillRect(ox + x1 * s - 1.5 * dpr, ty, tw, th);
  ctx.fillStyle = '#111';
  ctx.fillText(tag, ox + x1 * s + 3 * dpr, ty + 15 * dpr);
}

// The people list beside the label (two or more people): colour, id, label, who speaks, and
// the voice's own label when nobody was seen speaking.
function showPeople(m) {
  const root = $('people');
  const people = m.people || [];
  root.hidden = people.length < 2;
  root.textContent = '';
  if (root.hidden) return;
  for (const p of people) {
    const li = document.createElement('li');
    li.dataset.id = String(p.id);
    li.style.borderColor = personColor(p.id);
    li.textContent = `person ${p.id}: ${p.label === null ? '…' : `${p.label} ${(p.confidence * 100).toFixed(0)}%`}` +
      (p.speaker ? ' · speaking' : '');
    root.appendChild(li);
  }
  if (m.voice_alone && m.voice_alone.label !== null) {
    const li = document.createElement('li');
    li.className = 'voice';
    li.textContent = `voice (nobody seen speaking): ${m.voice_alone.label} ${(m.voice_alone.confidence * 100).toFixed(0)}%`;
    root.appendChild(li);
  }
}

function updateCounts() {
  $('counts').textContent = `${state.sent} / ${state.answered} / ${state.dropped + state.skipped} · ${state.labels} labels`;
}

// ------------------------------------------------------------------ upload

async function upload(e) {
  e.preventDefault();
  const f = $('file').files[0];
  const status = $('upload-status');
  if (!f) { status.textContent = 'choose a file first'; return; }
  status.textContent = `analysing ${f.name}…`;
  const fd = new FormData();
  fd.append('file', f);
  let j, r;
  try {
    r = await fetch('/analyze', { method: 'POST', body: fd });
    j = await r.json();
  } catch (err) {
    status.textContent = `failed: ${err}`;
    return;
  }
  if (!r.ok) { status.textContent = `failed: ${j.detail || j.error || r.status}`; return; }
  const plot = $('plot');
  plot.src = j.plot_png;
  plot.hidden = false;
  const table = $('rows');
  table.textContent = '';
  const head = table.insertRow();
  for (const h of ['start', 'end', 'label', 'confidence', 'face']) {
    const th = document.createElement('th');
    th.textContent = h;
    head.appendChild(th);
  }
  for (const row of j.windows) {
    const tr = table.insertRow();
    for (const v of [row.start.toFixed(1), row.end.toFixed(1), row.label ?? '–',
      row.confidence === null ? '–' : row.confidence.toFixed(2),
      row.face_found ? 'yes' : 'no']) tr.insertCell().textContent = v;
  }
  const overall = j.label === null ? 'no label' : `${j.label} (${(j.confidence * 100).toFixed(0)}%)`;
  status.textContent = `${j.file}: ${overall}, ${j.windows.length} windows ` +
    `in ${j.seconds.toFixed(1)} s${j.warnings.length ? ' · ' + j.warnings.join('; ') : ''}`;
}

// ------------------------------------------------------------------ on-device mode

// Load the runtime and the three graphs (ondevice.js); the page then answers itself.
async function loadDevice() {
  setStatus('on this device: loading the runtime and the models…');
  try {
    const dev = await import('./ondevice.js');
    const engine = await dev.load();
    state.classes = engine.classes;
    state.modalities = engine.modalities;
    buildBars(engine.classes);
    state.live = new dev.Live(engine, video, (m) => handlers[m.type](m));
    window.emoliteDevice = { engine, live: state.live, pipeline: await import('./pipeline.js') };
    document.body.dataset.deviceReady = String(Math.round(engine.loadMs));
    setStatus(['on this device · 1 WebAssembly thread · nothing leaves this page', ...engine.notes].join(' · '),
              engine.notes.length ? 'warn' : 'ok');
    return true;
  } catch (e) {
    console.error(e);
    setStatus(`on-device mode failed: ${e.message}`, 'error');
    return false;
  }
}

function showMode() {
  document.body.dataset.mode = MODE;
  $('mode').value = MODE;
  $('mode-pick').hidden = !HAS_SERVER;
  $('mode').addEventListener('change', (e) => {
    const q = new URLSearchParams(location.search);
    if (e.target.value === 'device') q.set('mode', 'device'); else q.delete('mode');
    location.search = q.toString();
  });
  if (MODE !== 'device') return;
  $('timing-name').textContent = 'this page (detect / model)';
  document.querySelector('section.upload').hidden = true;   // an upload would send the file
  $('footer').textContent = 'On this device: the models run in this page; no frame or sample is sent anywhere.';
}

showMode();
$('start').addEventListener('click', start);
$('stop').addEventListener('click', stop);
$('upload-form').addEventListener('submit', upload);
if (MODE === 'device') state.loading = loadDevice();   // the models load while the camera starts
if (PARAMS.get('start') !== '0') start();   // start=0: the models only, no camera (tests, benchmarks)
