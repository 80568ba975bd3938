// AudioWorklet processor for the web page's recorder: forwards each block of input (mixed to mono) to the
// page, which keeps the samples and encodes them as a 16-bit PCM WAV file when recording stops.
class TimbreRecorder extends AudioWorkletProcessor {
  process(inputs) {
    const input = inputs[0];
    if (input && input.length > 0 && input[0].length > 0) {
      const n = input[0].length;
      const mono = new Float32Array(n);
      for (const channel of input) {
        for (let i = 0; i < n; i++) {
          mono[i] += channel[i] / input.length;
        }
      }
      this.port.postMessage(mono, [mono.buffer]);
    }
    return true;
  }
}

registerProcessor('timbre-recorder', TimbreRecorder);
