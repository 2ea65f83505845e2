// Audio thread: mono microphone samples -> 16 kHz float32 chunks posted to the page.
// When the AudioContext already runs at 16 kHz this only batches; otherwise it decimates by
// averaging each output sample's span of input samples (a box filter against aliasing).
'use strict';

const TARGET = 16000;
const CHUNK = 4000; // 250 ms per message

class PcmTap extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / TARGET; // input samples per output sample
    this.acc = 0; this.cnt = 0; this.phase = 0;
    this.buf = new Float32Array(CHUNK); this.n = 0;
  }

  push(v) {
    this.buf[this.n++] = v;
    if (this.n === CHUNK) {
      this.port.postMessage(this.buf, [this.buf.buffer]);
      this.buf = new Float32Array(CHUNK); this.n = 0;
    }
  }

  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    if (this.step === 1) {
      for (let i = 0; i < ch.length; i++) this.push(ch[i]);
      return true;
    }
    for (let i = 0; i < ch.length; i++) {
      this.acc += ch[i]; this.cnt++; this.phase += 1;
      if (this.phase >= this.step) {
        this.push(this.acc / this.cnt);
        this.acc = 0; this.cnt = 0; this.phase -= this.step;
      }
    }
    return true;
  }
}

registerProcessor('pcm-tap', PcmTap);
