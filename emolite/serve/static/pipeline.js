// emolite on-device pipeline: the Python path's pre- and post-processing, step for step, so the
// page gives the same answer as EmotionModel (tests/test_browser_ondevice.py checks it).
// Images are {data: RGBA bytes (Uint8ClampedArray, as canvas getImageData gives), width, height}.
// Each function names the Python function it follows; every setting comes from the model's
// InputSpec (the `spec` object, as stored in the ONNX metadata).

// faces.py / retinaface
export const SCORE_THRESHOLD = 0.8;
export const IOU_LINK = 0.3;
export const MAX_GAP = 3;
const NMS_THRESHOLD = 0.4;
const DETECT_MEAN = [104, 117, 127];          // B, G, R (retinaface.preprocess)
const ANCHOR_STRIDES = [8, 16, 32];
const ANCHOR_SIZES = [[16, 32], [64, 128], [256, 512]];
const V_C = 0.1, V_S = 0.2;
// vad.py
const VAD_FRAME = 512, VAD_CONTEXT = 64, VAD_BLOCK = 512;
const SPEECH_PROB = 0.5, MIN_SPEECH_S = 0.25, SILENT_RMS = 1e-4, LEVEL_RMS = 0.1;
const PIXEL_MAX = 255;

const f32 = Math.fround;

// OpenCV rounds float -> uint8 half to even (cvRound).
function roundByte(v) {
  if (!(v > 0)) return 0;
  if (v >= 255) return 255;
  const r = Math.round(v);
  return (r - v === 0.5 && r % 2 === 1) ? r - 1 : r;
}

// ------------------------------------------------------------------ resizing

// cv2.resize INTER_LINEAR (half-pixel centres, edge clamped): RGBA -> RGBA.
export function resizeLinear(img, nw, nh) {
  const { data, width: w, height: h } = img;
  const out = new Uint8ClampedArray(nw * nh * 4);
  const sx = w / nw, sy = h / nh;
  for (let y = 0; y < nh; y++) {
    let fy = (y + 0.5) * sy - 0.5;
    let y0 = Math.floor(fy);
    let b = fy - y0;
    if (y0 < 0) { y0 = 0; b = 0; }
    const y1 = Math.min(h - 1, y0 + 1);
    if (y0 >= h - 1) { y0 = h - 1; b = 0; }
    for (let x = 0; x < nw; x++) {
      let fx = (x + 0.5) * sx - 0.5;
      let x0 = Math.floor(fx);
      let a = fx - x0;
      if (x0 < 0) { x0 = 0; a = 0; }
      const x1 = Math.min(w - 1, x0 + 1);
      if (x0 >= w - 1) { x0 = w - 1; a = 0; }
      const o = (y * nw + x) * 4;
      for (let c = 0; c < 3; c++) {
        const p00 = data[(y0 * w + x0) * 4 + c], p01 = data[(y0 * w + x1) * 4 + c];
        const p10 = data[(y1 * w + x0) * 4 + c], p11 = data[(y1 * w + x1) * 4 + c];
        out[o + c] = roundByte((p00 * (1 - a) + p01 * a) * (1 - b) + (p10 * (1 - a) + p11 * a) * b);
      }
      out[o + 3] = 255;
    }
  }
  return { data: out, width: nw, height: nh };
}

// cv2.resize INTER_AREA for shrinking: each output pixel averages the input area it covers.
export function resizeArea(img, nw, nh) {
  const { data, width: w, height: h } = img;
  const out = new Uint8ClampedArray(nw * nh * 4);
  const sx = w / nw, sy = h / nh;
  const spans = (n, s, lim) => {   // per output index: [[input index, weight], ...]
    const r = [];
    for (let i = 0; i < n; i++) {
      const a = i * s, b = Math.min(lim, (i + 1) * s), taps = [];
      for (let k = Math.floor(a); k < Math.ceil(b - 1e-9); k++) {
        const wgt = Math.min(b, k + 1) - Math.max(a, k);
        if (wgt > 1e-9) taps.push([k, wgt / (b - a)]);
      }
      r.push(taps);
    }
    return r;
  };
  const xs = spans(nw, sx, w), ys = spans(nh, sy, h);
  const acc = [0, 0, 0];
  for (let y = 0; y < nh; y++) {
    for (let x = 0; x < nw; x++) {
      acc[0] = acc[1] = acc[2] = 0;
      for (const [yy, wy] of ys[y]) {
        for (const [xx, wx] of xs[x]) {
          const i = (yy * w + xx) * 4, k = wy * wx;
          acc[0] += data[i] * k; acc[1] += data[i + 1] * k; acc[2] += data[i + 2] * k;
        }
      }
      const o = (y * nw + x) * 4;
      out[o] = roundByte(acc[0]); out[o + 1] = roundByte(acc[1]); out[o + 2] = roundByte(acc[2]); out[o + 3] = 255;
    }
  }
  return { data: out, width: nw, height: nh };
}

// ------------------------------------------------------------------ face detection

// faces._resize_for_detection + retinaface.preprocess: longest side at most `side` (bilinear),
// padded to 32 px, BGR minus the mean, NCHW float32. Returns the tensor data, its size, the scale.
export function detectorInput(img, side) {
  let small = img, s = 1;
  const m = Math.max(img.width, img.height);
  if (side / m < 1) {
    s = side / m;
    small = resizeLinear(img, Math.max(1, Math.round(img.width * s)), Math.max(1, Math.round(img.height * s)));
  }
  const w = Math.max(small.width, 32), h = Math.max(small.height, 32);
  const plane = w * h;
  const x = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) x.fill(-DETECT_MEAN[c], c * plane, (c + 1) * plane);   // black padding
  const d = small.data;
  for (let yy = 0; yy < small.height; yy++) {
    for (let xx = 0; xx < small.width; xx++) {
      const i = (yy * small.width + xx) * 4, o = yy * w + xx;
      x[o] = d[i + 2] - DETECT_MEAN[0];
      x[plane + o] = d[i + 1] - DETECT_MEAN[1];
      x[2 * plane + o] = d[i] - DETECT_MEAN[2];
    }
  }
  return { data: x, width: w, height: h, scale: s };
}

const anchorCache = new Map();
function anchors(width, height) {   // retinaface.postprocess.generate_anchors, all strides
  const key = `${width}x${height}`;
  if (anchorCache.has(key)) return anchorCache.get(key);
  const out = [];
  ANCHOR_STRIDES.forEach((stride, k) => {
    const nx = Math.ceil(width / stride), ny = Math.ceil(height / stride);
    for (let yy = 0; yy < ny; yy++) {
      for (let xx = 0; xx < nx; xx++) {
        for (const size of ANCHOR_SIZES[k]) {
          out.push([(xx + 0.5) * stride / width, (yy + 0.5) * stride / height, size / width, size / height]);
        }
      }
    }
  });
  anchorCache.set(key, out);
  return out;
}

// cv2.dnn.NMSBoxes on (x, y, w, h) boxes: by score, drop those overlapping a kept one > thr.
function nms(cands, thr) {
  cands.sort((a, b) => b.score - a.score);
  const keep = [];
  for (const c of cands) {
    const ok = keep.every((k) => {
      const ix = Math.max(0, Math.min(c.x + c.w, k.x + k.w) - Math.max(c.x, k.x));
      const iy = Math.max(0, Math.min(c.y + c.h, k.y + k.h) - Math.max(c.y, k.y));
      const inter = ix * iy, union = c.w * c.h + k.w * k.h - inter;
      return union <= 0 || inter / union <= thr;
    });
    if (ok) keep.push(c);
  }
  return keep;
}

// retinaface.postprocess + faces.retinaface_detector: outputs -> faces in frame pixels
// ({box: [x1, y1, x2, y2], score, landmarks: [[x, y] x 5]}), boxes truncated to integers as
// the package does, then divided by the detection scale.
export function decodeDetections(loc, conf, lms, input, threshold = SCORE_THRESHOLD) {
  const { width, height, scale } = input;
  const an = anchors(width, height);
  const cands = [];
  for (let i = 0; i < an.length; i++) {
    const score = conf[2 * i + 1];
    if (!(score > threshold)) continue;
    const [ax, ay, aw, ah] = an[i];
    const cw = aw * Math.exp(loc[4 * i + 2] * V_S), ch = ah * Math.exp(loc[4 * i + 3] * V_S);
    const cx = ax + aw * loc[4 * i] * V_C, cy = ay + ah * loc[4 * i + 1] * V_C;
    const pts = [];
    for (let k = 0; k < 5; k++) {
      pts.push([(ax + aw * lms[10 * i + 2 * k] * V_C) * width, (ay + ah * lms[10 * i + 2 * k + 1] * V_C) * height]);
    }
    cands.push({ x: (cx - cw / 2) * width, y: (cy - ch / 2) * height, w: cw * width, h: ch * height, score, pts });
  }
  return nms(cands, NMS_THRESHOLD).map((c) => {
    const [x, y, w, h] = [c.x, c.y, c.w, c.h].map(Math.trunc);
    return { box: [x / scale, y / scale, (x + w) / scale, (y + h) / scale], score: c.score,
             landmarks: c.pts.map(([px, py]) => [Math.trunc(px) / scale, Math.trunc(py) / scale]) };
  });
}

// ------------------------------------------------------------------ tracking (faces.track / smooth)

export function iou(a, b) {
  const x1 = Math.max(a[0], b[0]), y1 = Math.max(a[1], b[1]);
  const x2 = Math.min(a[2], b[2]), y2 = Math.min(a[3], b[3]);
  const inter = Math.max(0, x2 - x1) * Math.max(0, y2 - y1);
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

const area = (f) => Math.max(0, f.box[2] - f.box[0]) * Math.max(0, f.box[3] - f.box[1]);
const meanBox = (boxes) => [0, 1, 2, 3].map((k) => f32(boxes.reduce((s, b) => s + b[k], 0) / boxes.length));

// Link boxes frame to frame by IoU: a list of tracks, each a Map frame index -> face.
export function linkTracks(detections) {
  const tracks = [];
  detections.forEach((faces, i) => {
    const used = new Set();
    for (const f of [...faces].sort((a, b) => area(b) - area(a))) {
      let best = null, bestIou = IOU_LINK;
      tracks.forEach((tr, k) => {
        if (used.has(k)) return;
        const last = Math.max(...tr.keys());
        if (i - last > MAX_GAP + 1) return;
        const o = iou(tr.get(last).box, f.box);
        if (o > bestIou) { best = k; bestIou = o; }
      });
      if (best === null) { tracks.push(new Map([[i, f]])); used.add(tracks.length - 1); }
      else { tracks[best].set(i, f); used.add(best); }
    }
  });
  return tracks;
}

// faces.track: the main face through a window (frameSize [h, w]; prev: the box shown last).
export function track(detections, frameSize = null, prev = null) {
  const tracks = linkTracks(detections);
  if (!tracks.length) return detections.map(() => null);
  const score = (tr) => {
    const fs = [...tr.values()];
    const size = fs.reduce((s, f) => s + Math.sqrt(area(f)), 0) / fs.length;
    let s = tr.size * size;
    const box = meanBox(fs.map((f) => f.box));
    if (prev) s *= 1 + iou(box, prev);
    else if (frameSize) {
      const [h, w] = frameSize;
      const cx = (box[0] + box[2]) / 2 / w - 0.5, cy = (box[1] + box[3]) / 2 / h - 0.5;
      s *= 1 - 0.5 * Math.hypot(cx, cy);
    }
    return s;
  };
  let main = tracks[0], bestS = score(main);
  for (const tr of tracks.slice(1)) { const s = score(tr); if (s > bestS) { main = tr; bestS = s; } }
  return smooth(main, detections.length);
}

// faces.smooth: fill gaps of at most MAX_GAP frames linearly, then a 3-tap moving average.
export function smooth(tr, n) {
  const idx = [...tr.keys()].sort((a, b) => a - b);
  const out = new Array(n).fill(null);
  for (const i of idx) out[i] = tr.get(i);
  for (let j = 0; j + 1 < idx.length; j++) {
    const a = idx[j], b = idx[j + 1];
    if (b - a > 1 && b - a <= MAX_GAP + 1) {
      for (let i = a + 1; i < b; i++) {
        const w = (i - a) / (b - a);
        out[i] = { box: tr.get(a).box.map((v, k) => f32((1 - w) * v + w * tr.get(b).box[k])), score: 0, landmarks: null };
      }
    }
  }
  const boxes = out.map((f) => (f ? f.box : null));
  return out.map((f, i) => {
    if (!f) return null;
    const near = [i - 1, i, i + 1].filter((j) => j >= 0 && j < n && boxes[j]).map((j) => boxes[j]);
    return { box: meanBox(near), score: f.score, landmarks: f.landmarks };
  });
}

// ------------------------------------------------------------------ crops

// faces.crop_face (unaligned): a size x size RGB crop of the square (1 + margin) x box side,
// black outside the frame, as cv2.warpAffine's bilinear samples it (float32 arithmetic, as
// OpenCV 5 does). Returns RGB bytes (size*size*3).
export function cropFace(img, box, size, margin) {
  const [x1, y1, x2, y2] = box.map(f32);      // float32, as faces.crop_face computes
  const cx = f32(f32(x1 + x2) / 2), cy = f32(f32(y1 + y2) / 2);
  const side = f32(Math.max(f32(x2 - x1), f32(y2 - y1)) * (1 + margin));
  const half = f32(side / 2);
  const sx0 = f32(cx - half), sx1 = f32(cx + half), sy0 = f32(cy - half), sy1 = f32(cy + half);
  // getAffineTransform(src -> dst), then warpAffine's inverse (dst -> src), in double, then float32
  const m00 = size / (sx1 - sx0), m11 = size / (sy1 - sy0);
  const m02 = -m00 * sx0, m12 = -m11 * sy0;
  const a11 = 1 / m00, a22 = 1 / m11;
  const A00 = f32(a11), A02 = f32(-a11 * m02), A11 = f32(a22), A12 = f32(-a22 * m12);
  const { data, width: W, height: H } = img;
  const out = new Uint8Array(size * size * 3);
  const px = (xx, yy, c) => (xx >= 0 && xx < W && yy >= 0 && yy < H ? data[(yy * W + xx) * 4 + c] : 0);
  for (let y = 0; y < size; y++) {
    const sy = f32(f32(A11 * y) + A12);
    const iy = Math.floor(sy), b = f32(sy - iy);
    for (let x = 0; x < size; x++) {
      const sx = f32(f32(A00 * x) + A02);
      const ix = Math.floor(sx), a = f32(sx - ix);
      const o = (y * size + x) * 3;
      for (let c = 0; c < 3; c++) {
        const p00 = px(ix, iy, c), p01 = px(ix + 1, iy, c), p10 = px(ix, iy + 1, c), p11 = px(ix + 1, iy + 1, c);
        const v0 = f32(p00 + f32(a * (p01 - p00))), v1 = f32(p10 + f32(a * (p11 - p10)));
        out[o + c] = roundByte(f32(v0 + f32(b * (v1 - v0))));
      }
    }
  }
  return out;
}

// faces.letterbox: the whole frame scaled into a size x size square, centred, black padding. RGB bytes.
export function letterbox(img, size) {
  const s = size / Math.max(img.width, img.height);
  const nw = Math.max(1, Math.round(img.width * s)), nh = Math.max(1, Math.round(img.height * s));
  const r = s < 1 ? resizeArea(img, nw, nh) : resizeLinear(img, nw, nh);
  const out = new Uint8Array(size * size * 3);
  const y0 = Math.floor((size - nh) / 2), x0 = Math.floor((size - nw) / 2);
  for (let y = 0; y < nh; y++) {
    for (let x = 0; x < nw; x++) {
      const i = (y * nw + x) * 4, o = ((y + y0) * size + x + x0) * 3;
      out[o] = r.data[i]; out[o + 1] = r.data[i + 1]; out[o + 2] = r.data[i + 2];
    }
  }
  return out;
}

// ------------------------------------------------------------------ model inputs (inputs.make_sample)

// T frame indices spread over the window and the audio segment, as the evaluation path of
// inputs.make_sample cuts them: n frames at `fps`, `audio` samples at spec.sample_rate.
export function sampleWindow(n, fps, audioLen, spec) {
  const sr = spec.sample_rate, seconds = spec.audio_seconds, T = spec.frames;
  const dur = Math.max(n ? n / fps : 0, audioLen / sr);
  const t0 = dur > seconds ? (dur - seconds) / 2 : 0;
  const span = Math.min(seconds, dur);
  const idx = [];
  for (let i = 0; i < T; i++) {
    const u = (i + 0.5) / T;
    idx.push(Math.min(n - 1, Math.max(0, Math.floor((t0 + u * span) * fps))));
  }
  const nSamples = Math.round(seconds * sr), a0 = Math.round(t0 * sr);
  return { idx, a0, nSamples };
}

// HWC RGB bytes -> CHW float32 in [0, 1] (inputs.normalize_frames), written at `offset`.
export function normalizeInto(dst, offset, rgb, size) {
  const plane = size * size;
  for (let i = 0; i < plane; i++) {
    dst[offset + i] = f32(rgb[3 * i] / PIXEL_MAX);
    dst[offset + plane + i] = f32(rgb[3 * i + 1] / PIXEL_MAX);
    dst[offset + 2 * plane + i] = f32(rgb[3 * i + 2] / PIXEL_MAX);
  }
}

// ------------------------------------------------------------------ voice activity (vad.py)

// Silero's batched input: frames of VAD_FRAME samples with VAD_CONTEXT samples of the one before.
export function vadFrames(audio) {
  const n = Math.ceil(audio.length / VAD_FRAME);
  const width = VAD_CONTEXT + VAD_FRAME;
  const x = new Float32Array(n * width);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < VAD_FRAME; k++) {
      const j = i * VAD_FRAME + k;
      x[i * width + VAD_CONTEXT + k] = j < audio.length ? audio[j] : 0;
    }
    if (i > 0) x.copyWithin(i * width, (i - 1) * width + VAD_FRAME, (i - 1) * width + width);
  }
  return { x, n, width, block: VAD_BLOCK };
}

// vad.voice_activity before the model: null when silent (no model call), else the audio
// brought to LEVEL_RMS.
export function levelled(audio) {
  if (!audio || !audio.length) return null;
  let e = 0;
  for (let i = 0; i < audio.length; i++) e += audio[i] * audio[i];
  const rms = Math.sqrt(e / audio.length);
  if (rms < SILENT_RMS) return null;
  const k = f32(LEVEL_RMS / rms), out = new Float32Array(audio.length);
  for (let i = 0; i < audio.length; i++) out[i] = audio[i] * k;
  return out;
}

export function voicedFrom(probs, sampleRate) {
  let speech = 0;
  for (const p of probs) if (p > SPEECH_PROB) speech++;
  return speech * VAD_FRAME / sampleRate >= MIN_SPEECH_S;
}

// ------------------------------------------------------------------ ONNX metadata

// The emolite record in an ONNX file's metadata_props (ModelProto field 14: key 1, value 2),
// read straight from the protobuf bytes.
export function onnxMetadata(bytes, key = 'emolite') {
  const u = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let pos = 0;
  const varint = (end) => {
    let v = 0, mul = 1;
    while (pos < end) {
      const b = u[pos++];
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 128;
    }
    throw new Error('bad protobuf');
  };
  const fields = (start, end) => {
    const out = [];
    pos = start;
    while (pos < end) {
      const tag = varint(end), field = Math.floor(tag / 8), wire = tag % 8;
      if (wire === 0) varint(end);
      else if (wire === 1) pos += 8;
      else if (wire === 5) pos += 4;
      else if (wire === 2) { const len = varint(end); out.push([field, pos, pos + len]); pos += len; }
      else throw new Error('bad protobuf');
    }
    return out;
  };
  const dec = new TextDecoder();
  for (const [f, s, e] of fields(0, u.length)) {
    if (f !== 14) continue;
    const save = pos;
    let k = null, v = null;
    for (const [g, a, b] of fields(s, e)) {
      if (g === 1) k = dec.decode(u.subarray(a, b));
      else if (g === 2) v = dec.decode(u.subarray(a, b));
    }
    pos = save;
    if (k === key) return JSON.parse(v);
  }
  return null;
}
