// emolite on-device mode: the face detector, the emotion model and voice activity run in this
// page with ONNX Runtime Web (WebAssembly), on the camera and microphone streams. No frame and
// no sample leaves the page: the only requests are for the runtime and the three graphs
// (ondevice/model.onnx, detector.onnx, vad.onnx), all from the same server or folder.
// It answers with the same messages the server sends (prediction, label: see
// emolite/serve/protocol.py), so app.js draws the box, label, bars, history and people as in
// server mode. The pre- and post-processing is pipeline.js (the Python path, step for step).
import * as ort from './ort/ort.wasm.bundle.min.mjs';
import * as P from './pipeline.js';

const DEVICE_FPS = 15;          // frames analysed per second (at most; a slow device analyses fewer)
const VAD_EVERY_MS = 500;       // voice activity of the window is re-checked this often (it changes slowly), not per label
const FRAME_WIDTH = 320;        // px: frames are downscaled to this width, as server mode sends them
const MODEL_EVERY = 1;          // run the model on every k-th analysed frame
const LIVE_FPS = [1, 30];       // the measured frame rate is clipped to this (session.LIVE_FPS)
const GRAPHS = new URL('ondevice/', document.baseURI);

const ms = (t) => Math.round(t * 10) / 10;
const r4 = (v) => (v === null ? null : Math.round(v * 1e4) / 1e4);

// ------------------------------------------------------------------ loading

// One WebAssembly thread: threads would need cross-origin isolation (COOP + COEP headers, which
// a plain static server does not send), and with them this runtime build hung creating its
// sessions in headless Chromium; one thread is the target the page is sized for.
export async function load() {
  const t0 = performance.now();
  // only the .wasm's address: the bundle carries its own loader (a prefix would fetch a separate .mjs)
  ort.env.wasm.wasmPaths = { wasm: new URL('./ort/ort-wasm-simd-threaded.wasm', import.meta.url).href };
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = 'error';
  const fetchBytes = async (name) => {
    const r = await fetch(new URL(name, GRAPHS));
    if (!r.ok) throw new Error(`${name}: HTTP ${r.status}`);
    return new Uint8Array(await r.arrayBuffer());
  };
  const [modelBytes, detBytes, vadBytes] = await Promise.all(['model.onnx', 'detector.onnx', 'vad.onnx'].map(fetchBytes));
  const meta = P.onnxMetadata(modelBytes);
  if (!meta || !Array.isArray(meta.classes)) throw new Error('model.onnx has no emolite metadata (export it with `emolite export`)');
  const opts = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };
  const model = await ort.InferenceSession.create(modelBytes, opts);
  const detector = await ort.InferenceSession.create(detBytes, opts);
  const vad = await ort.InferenceSession.create(vadBytes, opts);
  const spec = meta.preprocess;
  const modalities = (meta.model && meta.model.modalities) || ['face', 'context', 'audio'];
  const engine = new Engine(model, detector, vad, spec, meta.classes, modalities);
  engine.loadMs = performance.now() - t0;
  engine.threads = ort.env.wasm.numThreads;
  // faces.crop_face's 5-point alignment is not ported: such a model gets unaligned crops here
  engine.notes = spec.align ? ['this model aligns faces; the page crops them unaligned'] : [];
  return engine;
}

// ------------------------------------------------------------------ the engine

export class Engine {
  constructor(model, detector, vad, spec, classes, modalities) {
    Object.assign(this, { model, detector, vad, spec, classes, modalities });
    this.inputs = new Set(model.inputNames);
  }

  // faces.retinaface_detector: one RGBA image -> faces in its pixels.
  async detect(img) {
    const x = P.detectorInput(img, this.spec.detect_side);
    const out = await this.detector.run({ input: new ort.Tensor('float32', x.data, [1, 3, x.height, x.width]) });
    return P.decodeDetections(out.loc.data, out.conf.data, out.landmarks.data, x);
  }

  // vad.voice_activity(audio).voiced
  async voiced(audio) {
    const a = P.levelled(audio);
    if (!a) return false;
    const { x, n, width, block } = P.vadFrames(a);
    let h = new ort.Tensor('float32', new Float32Array(128), [1, 1, 128]);
    let c = new ort.Tensor('float32', new Float32Array(128), [1, 1, 128]);
    const probs = [];
    for (let i = 0; i < n; i += block) {
      const k = Math.min(block, n - i);
      const input = new ort.Tensor('float32', x.subarray(i * width, (i + k) * width), [k, width]);
      const out = await this.vad.run({ input, h, c });
      probs.push(...out.speech_probs.data);
      h = out.hn; c = out.cn;
    }
    return P.voicedFrom(probs, this.spec.sample_rate);
  }

  // One window -> model input tensors (features.window_features + inputs.clip_inputs):
  // frames: RGBA images, dets: their detections, tracks: the face followed in each frame
  // (null: none), audio: float32 at the spec's rate, voiced, fps: the window's frame rate.
  windowInputs(frames, tracks, audio, voiced, fps) {
    const s = this.spec, T = s.frames, fs = s.face_size, cs = s.context_size;
    const n = frames.length;
    const { idx, a0, nSamples } = P.sampleWindow(n, fps, audio.length, s);
    const face = new Float32Array(T * 3 * fs * fs), context = new Float32Array(T * 3 * cs * cs);
    const faceMask = new Uint8Array(T), contextMask = new Uint8Array(T).fill(n > 0 ? 1 : 0);
    if (n > 0) {
      idx.forEach((i, t) => {
        if (tracks[i]) {
          P.normalizeInto(face, t * 3 * fs * fs, P.cropFace(frames[i], tracks[i].box, fs, s.margin), fs);
          faceMask[t] = 1;
        }
        if (this.inputs.has('context')) {
          frames[i].context = frames[i].context || P.letterbox(frames[i], cs);
          P.normalizeInto(context, t * 3 * cs * cs, frames[i].context, cs);
        }
      });
    }
    const seg = new Float32Array(nSamples);
    const useAudio = voiced && audio.length > 0;
    if (useAudio) seg.set(audio.subarray(a0, a0 + nSamples));
    return { face, context, faceMask, contextMask, audio: seg, audioMask: useAudio && audio.length > a0 };
  }

  // Batched inputs (one per person) -> class probabilities, one array per input.
  async run(items) {
    const s = this.spec, T = s.frames, B = items.length;
    const cat = (key, Type, per) => {
      const out = new Type(B * per);
      items.forEach((it, b) => out.set(it[key], b * per));
      return out;
    };
    const feeds = {
      face: new ort.Tensor('float32', cat('face', Float32Array, T * 3 * s.face_size ** 2), [B, T, 3, s.face_size, s.face_size]),
      context: new ort.Tensor('float32', cat('context', Float32Array, T * 3 * s.context_size ** 2), [B, T, 3, s.context_size, s.context_size]),
      audio: new ort.Tensor('float32', cat('audio', Float32Array, items[0].audio.length), [B, items[0].audio.length]),
      face_mask: new ort.Tensor('bool', cat('faceMask', Uint8Array, T), [B, T]),
      context_mask: new ort.Tensor('bool', cat('contextMask', Uint8Array, T), [B, T]),
      audio_mask: new ort.Tensor('bool', Uint8Array.from(items.map((it) => (it.audioMask ? 1 : 0))), [B]),
    };
    const feed = Object.fromEntries(Object.entries(feeds).filter(([k]) => this.inputs.has(k)));
    const out = await this.model.run(feed, ['probs']);
    const C = this.classes.length, p = out.probs.data;
    return items.map((_, b) => Array.from(p.subarray(b * C, (b + 1) * C)));
  }

  // What the window offers (features.usable): a face, voice, the scene.
  usable(anyFace, hasVideo, voiced) {
    const m = this.modalities;
    return (m.includes('face') && anyFace) || (m.includes('context') && hasVideo) || (m.includes('audio') && voiced);
  }

  prediction(probs) {
    if (!probs) return { label: null, confidence: null, probs: Object.fromEntries(this.classes.map((c) => [c, null])) };
    let i = 0;
    probs.forEach((p, k) => { if (p > probs[i]) i = k; });
    return { label: this.classes[i], confidence: r4(probs[i]),
             probs: Object.fromEntries(this.classes.map((c, k) => [c, r4(probs[k])])) };
  }

  // The whole Python path for one window (the parity test calls this): detections (given, or
  // run here), the main face's track, voice activity, inputs, the model.
  async predictWindow(frames, audio, fps, { dets = null, prev = null } = {}) {
    dets = dets || await Promise.all(frames.map((f) => this.detect(f)));
    const size = frames.length ? [frames[0].height, frames[0].width] : null;
    const tracks = frames.length ? P.track(dets, size, prev) : [];
    const voiced = this.modalities.includes('audio') && audio.length > 0 ? await this.voiced(audio) : false;
    const anyFace = tracks.some(Boolean);
    if (!this.usable(anyFace, frames.length > 0, voiced)) return { probs: null, tracks, voiced, dets };
    const [probs] = await this.run([this.windowInputs(frames, tracks, audio, voiced, fps)]);
    return { probs, tracks, voiced, dets };
  }
}

// ------------------------------------------------------------------ people (several faces)

// Persistent ids for the faces of each new frame: a face overlapping (IoU > IOU_LINK) a person's
// last box keeps that id; others get the smallest free id. At most `max` people.
class People {
  constructor(max) { this.max = max; this.last = new Map(); }

  assign(faces) {
    const ids = new Array(faces.length).fill(null), taken = new Set();
    const size = (b) => (b[2] - b[0]) * (b[3] - b[1]);
    const order = faces.map((f, i) => i).sort((a, b) => size(faces[b].box) - size(faces[a].box));
    for (const i of order) {
      let best = null, bestIou = P.IOU_LINK;
      for (const [id, box] of this.last) {
        if (taken.has(id)) continue;
        const o = P.iou(box, faces[i].box);
        if (o > bestIou) { best = id; bestIou = o; }
      }
      if (best !== null) { ids[i] = best; taken.add(best); }
    }
    for (let i = 0; i < faces.length; i++) {
      if (ids[i] !== null) continue;
      let id = 1;
      while (taken.has(id) || this.last.has(id)) id++;
      if (id > this.max) continue;
      ids[i] = id; taken.add(id);
    }
    this.last = new Map(ids.map((id, i) => [id, faces[i].box]).filter(([id]) => id !== null));
    return ids;
  }
}

// ------------------------------------------------------------------ the live loop

export class Live {
  // show(message): app.js's handlers (prediction / label messages, as the server sends them)
  constructor(engine, video, show, { maxPeople = 4 } = {}) {
    Object.assign(this, { engine, video, show });
    this.window = engine.spec.window_seconds;
    this.sr = engine.spec.sample_rate;
    this.frames = [];           // {t, img, dets, ids}
    this.audio = new Float32Array(0);
    this.audioAt = 0;
    this.people = new People(maxPeople);
    this.label = null;
    this.prev = null;
    this.frameId = 0;
    this.sinceModel = 1 << 30;
    this.busy = false;
    this.skipped = 0;
    this.stats = { frames: 0, labels: 0, detectMs: [], modelMs: [], vadMs: [] };
    this.canvas = document.createElement('canvas');
    this.ctx = this.canvas.getContext('2d', { willReadFrequently: true });
  }

  start() { this.timer = setInterval(() => this.tick(), 1000 / DEVICE_FPS); }

  stop() { clearInterval(this.timer); }

  addAudio(x) {   // 16 kHz float32 chunks from the microphone worklet: keep the last window
    const keep = Math.round(this.window * this.sr);
    const all = new Float32Array(Math.min(keep, this.audio.length + x.length));
    const old = all.length - x.length;
    if (old > 0) all.set(this.audio.subarray(this.audio.length - old), 0);
    all.set(x.subarray(Math.max(0, x.length - all.length)), Math.max(0, old));
    this.audio = all;
    this.audioAt = performance.now();
  }

  grab() {
    const v = this.video;
    if (v.readyState < 2 || !v.videoWidth) return null;
    const w = Math.min(FRAME_WIDTH, v.videoWidth), h = Math.round(v.videoHeight * w / v.videoWidth);
    if (this.canvas.width !== w || this.canvas.height !== h) { this.canvas.width = w; this.canvas.height = h; this.frames = []; }
    this.ctx.drawImage(v, 0, 0, w, h);
    return { data: this.ctx.getImageData(0, 0, w, h).data, width: w, height: h };
  }

  frameRate() {
    const f = this.frames;
    if (f.length < 2 || f[f.length - 1].t <= f[0].t) return this.engine.spec.fps;
    return Math.min(LIVE_FPS[1], Math.max(LIVE_FPS[0], (f.length - 1) / (f[f.length - 1].t - f[0].t)));
  }

  currentAudio() {   // a muted or stopped microphone drops out rather than repeating stale audio
    return performance.now() - this.audioAt < (this.window + 0.5) * 1000 ? this.audio : new Float32Array(0);
  }

  async tick() {
    if (this.busy) { this.skipped++; return; }
    this.busy = true;
    try { await this.step(); } catch (e) { console.error(e); } finally { this.busy = false; }
  }

  async step() {
    const t0 = performance.now();
    const img = this.grab();
    const audio = this.currentAudio();
    if (!img && !audio.length) return;
    const frameId = this.frameId++;
    let detectMs = 0, box = null, people = [];
    if (img) {
      const dets = await this.engine.detect(img);
      detectMs = performance.now() - t0;
      const now = t0 / 1000;
      this.frames.push({ t: now, img, dets, ids: this.people.assign(dets) });
      while (this.frames.length && this.frames[0].t < now - this.window) this.frames.shift();
      const tracks = P.track(this.frames.map((f) => f.dets), [img.height, img.width], this.prev);
      const newest = tracks[tracks.length - 1];
      box = newest ? newest.box : (dets.length ? P.track([dets], [img.height, img.width], this.prev)[0].box : null);
      if (box) this.prev = box;
      this.tracks = tracks;
      const f = this.frames[this.frames.length - 1];
      const labels = new Map(((this.label && this.label.people) || []).map((p) => [p.id, p]));
      people = f.ids.map((id, i) => (id === null ? null : { id, box: f.dets[i].box.map((v) => Math.round(v * 10) / 10),
        ...pick(labels.get(id)), speaker: false })).filter(Boolean).sort((a, b) => a.id - b.id);
    }
    this.stats.frames++;
    push(this.stats.detectMs, detectMs);
    const lab = this.label || {};
    this.show({ type: 'prediction', frame_id: frameId, t: t0, face_box: box && box.map((v) => Math.round(v * 10) / 10),
      frame_size: img ? [img.width, img.height] : null, label: lab.label ?? null, confidence: lab.confidence ?? null,
      probs: lab.probs ?? null, main_person: lab.main_person ?? null, label_frame_id: lab.frame_id ?? null,
      has_audio: audio.length > 0, dropped: this.skipped, people, voice_alone: lab.voice_alone ?? null,
      timings: { total_ms: ms(performance.now() - t0), detect_ms: ms(detectMs), model_ms: lab.model_ms ?? 0 } });
    if (++this.sinceModel >= MODEL_EVERY) {
      this.sinceModel = 0;
      await this.model(frameId, t0, audio);
    }
  }

  async model(frameId, t0, audio) {
    const e = this.engine, t1 = performance.now();
    const frames = this.frames.map((f) => f.img), fps = this.frameRate();
    const tracks = frames.length ? this.tracks : [];
    let voiced = false;
    if (e.modalities.includes('audio') && audio.length > 0) {
      if (!(t1 - this.vadAt < VAD_EVERY_MS)) {
        this.vadVoiced = await e.voiced(audio);
        this.vadAt = t1;
        push(this.stats.vadMs, performance.now() - t1);
      }
      voiced = this.vadVoiced;
    }
    const t2 = performance.now();
    const newest = this.frames[this.frames.length - 1];
    const ids = newest ? newest.ids.filter((id) => id !== null) : [];
    let pred, people = [], voiceAlone = null, main = null;
    if (!e.usable(tracks.some(Boolean), frames.length > 0, voiced)) {
      pred = e.prediction(null);
    } else if (ids.length >= 2) {
      // Several people: each person's own track and crops, one batched call (face and scene);
      // the voice is labelled on its own (which of them speaks is not told apart here).
      const items = ids.map((id) => {
        const tr = new Map();
        this.frames.forEach((f, i) => { const k = f.ids.indexOf(id); if (k >= 0) tr.set(i, f.dets[k]); });
        return e.windowInputs(frames, P.smooth(tr, frames.length), audio, false, fps);
      });
      if (voiced) items.push(e.windowInputs(frames, frames.map(() => null), audio, true, fps));
      const probs = await e.run(items);
      const nb = newest.dets;
      people = ids.map((id, k) => ({ id, box: nb[newest.ids.indexOf(id)].box.map((v) => Math.round(v * 10) / 10),
        ...e.prediction(probs[k]), speaker: false }));
      const mainBox = this.prev;
      main = mainBox ? ids.reduce((a, id) => (P.iou(nb[newest.ids.indexOf(id)].box, mainBox) >
        P.iou(nb[newest.ids.indexOf(a)].box, mainBox) ? id : a), ids[0]) : ids[0];
      pred = e.prediction(probs[ids.indexOf(main)]);
      if (voiced) voiceAlone = e.prediction(probs[probs.length - 1]);
    } else {
      const [probs] = await e.run([e.windowInputs(frames, tracks, audio, voiced, fps)]);
      pred = e.prediction(probs);
      if (ids.length === 1) { main = ids[0]; people = [{ id: main, box: null, ...pred, speaker: voiced }]; }
    }
    const modelMs = performance.now() - t2;   // the model (and crops) only; voice activity is vadMs
    push(this.stats.modelMs, modelMs);
    this.stats.labels++;
    this.label = { ...pred, frame_id: frameId, model_ms: ms(modelMs), main_person: main, people, voice_alone: voiceAlone };
    this.show({ type: 'label', frame_id: frameId, t: t0, ...pred, main_person: main, label_frame_id: frameId,
      face_found: tracks.some(Boolean), has_audio: audio.length > 0, voice: voiced, people, voice_alone: voiceAlone,
      timings: { model_ms: ms(modelMs) } });
  }
}

function pick(p) {
  return p ? { label: p.label, confidence: p.confidence, probs: p.probs } : { label: null, confidence: null, probs: null };
}

function push(xs, v) {
  xs.push(v);
  if (xs.length > 100) xs.shift();
}
