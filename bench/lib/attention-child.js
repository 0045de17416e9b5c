// One attention forward+backward measurement in a fresh process, so that memory numbers are
// not polluted by earlier benchmarks (the addon's scratch only grows; V8's heap and the
// process's peak RSS remember everything before). Run by suites/kernels.js:
//   node bench/lib/attention-child.js '{"root":..,"backend":"native"|"reference","B":..,"T":..,"C":..,"NH":..,"threads":..,"quick":bool,"dump":path|null}'
// Prints one JSON line: { backend, threads, first_s, timing, memory, ... }.
//
// Memory, measured around the FIRST forward+backward call, after the tensors are allocated
// and written and (native) after a tiny warm-up call has started the thread pool:
//   peakRssDelta: growth of the process's peak resident set (getrusage maxRSS) over the call
//     — what the call needed beyond what was already resident (transient allocations included);
//   rssDelta: resident set after minus before (what stayed);
//   typedArrays: bytes of JS typed arrays constructed during the call (the global
//     Float32Array/Float64Array/Int32Array constructors are wrapped for the call).

import { writeFileSync } from 'node:fs';
import { loadFerrogpt, setNativeThreads } from './ferrogpt.js';
import { measure } from './timing.js';
import { randomF32 } from './rng.js';

const a = JSON.parse(process.argv[2]);
const { B, T, C, NH } = a;

async function countTypedArrays(fn) {
  const names = ['Float32Array', 'Float64Array', 'Int32Array'];
  const saved = names.map((n) => globalThis[n]);
  const stats = { bytes: 0, count: 0, largest: 0 };
  names.forEach((n, i) => {
    globalThis[n] = class extends saved[i] {
      constructor(...args) {
        super(...args);
        if (!(args[0] instanceof ArrayBuffer) && !(args[0] instanceof SharedArrayBuffer)) {
          stats.bytes += this.byteLength;
          stats.count += 1;
          stats.largest = Math.max(stats.largest, this.byteLength);
        }
      }
    };
  });
  try {
    await fn();
  } finally {
    names.forEach((n, i) => (globalThis[n] = saved[i]));
  }
  return stats;
}

const fg = await loadFerrogpt(a.root, { only: a.backend });
const backend = fg[a.backend];
if (!backend) throw new Error(`${a.backend} backend: ${fg.errors[a.backend]}`);
let threads = 1;
if (a.backend === 'native') threads = setNativeThreads(fg, a.threads);

/** Writes seeded values into t in chunks, so that no input-sized temporary raises the peak RSS. */
/** seed null: zeros (still written, so that every page is resident before the measured call). */
function fill(t, n, seed) {
  const CH = 1 << 16;
  for (let o = 0; o < n; o += CH) {
    const len = Math.min(CH, n - o);
    backend.write(t, seed == null ? new Float32Array(len) : randomF32(len, seed + o), o);
  }
}

function buffers(B, T, C, NH) {
  const qkv = backend.alloc(B * T * 3 * C); // (B, T, 3C)
  const out = backend.alloc(B * T * C); // (B, T, C)
  const lse = backend.alloc(B * NH * T); // (B, NH, T)
  const dout = backend.alloc(B * T * C); // (B, T, C)
  const dqkv = backend.alloc(B * T * 3 * C); // (B, T, 3C)
  fill(qkv, B * T * 3 * C, 3);
  fill(dout, B * T * C, 4);
  fill(out, B * T * C, 5); // touch every page (the kernel overwrites it)
  fill(lse, B * NH * T, 6);
  fill(dqkv, B * T * 3 * C, null);
  return {
    // Forward then backward. dqkv is not zeroed between calls: the backward accumulates
    // into it, which costs the same as writing into zeros (only the first call's values
    // are compared with the other backend).
    run: () => {
      backend.attentionForward(out, lse, qkv, B, T, C, NH);
      backend.attentionBackward(dqkv, dout, qkv, out, lse, B, T, C, NH);
    },
    out,
    dqkv,
  };
}

if (a.backend === 'native') buffers(1, 1, C / NH, 1).run(); // start the pool, touch the code
const h = buffers(B, T, C, NH);
globalThis.gc?.();
const maxRss0 = process.resourceUsage().maxRSS * 1024;
const rss0 = process.memoryUsage().rss;
const t0 = performance.now();
const typedArrays = await countTypedArrays(h.run);
const first_s = (performance.now() - t0) / 1e3;
const peakRssDelta = process.resourceUsage().maxRSS * 1024 - maxRss0;
const rssDelta = process.memoryUsage().rss - rss0;

if (a.dump) {
  const o = backend.read(h.out);
  const d = backend.read(h.dqkv);
  const buf = new Float32Array(o.length + d.length);
  buf.set(o, 0);
  buf.set(d, o.length);
  writeFileSync(a.dump, new Uint8Array(buf.buffer));
}
let timing = { method: 'single', median_s: first_s, samples: 1 };
if (a.backend === 'native') timing = await measure(h.run, a.quick ? { maxTime: 0.2, minSamples: 2 } : { maxTime: 1.5, minSamples: 3 });

// The addon's scratch for attention at these dims and its current thread count (bytes).
const scratchBytes = a.backend === 'native' && typeof fg.addon.attentionScratchBytes === 'function' ? fg.addon.attentionScratchBytes(B, T, C, NH) : null; // bench build only
process.stdout.write(
  JSON.stringify({
    backend: a.backend,
    threads,
    first_s,
    ...timing,
    memory: {
      peakRssDelta,
      rssDelta,
      typedArrayBytesAllocated: typedArrays.bytes,
      typedArrayCount: typedArrays.count,
      largestTypedArray: typedArrays.largest,
      scratchBytes,
      scratchSource: scratchBytes === null ? null : 'addon.attentionScratchBytes',
      lseBytes: B * NH * T * 4,
    },
  }) + '\n',
);
process.exit(0);
