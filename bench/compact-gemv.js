// Decode GEMV bandwidth of the native addon per weight format: matmulForward (f32),
// matmulForwardBf16 and matmulForwardQ8 at N <= 4 rows on GPT-2 small's shapes, as GB/s of
// weight bytes read and as a share of the addon's memoryBandwidth() probe taken in the
// same process at the same thread count (before and after each thread count's rows; the
// larger of the two is the bound).
//
// Every shape is timed over enough copies of its weight (distinct buffers, called in turn)
// that one pass reads at least --mb MB (default 96, three times the 32 MB L3), so the
// figure is DRAM bandwidth, not cache bandwidth. A rep is one pass; the row is the median
// of --reps reps after two warm-up passes.
//
//   npm run build:native:bench && node bench/compact-gemv.js [--threads 1,2] [--reps 9]
//     [--rows 1] [--formats f32,bf16,q8] [--shapes c_attn,lm_head] [--mb 96] [--json]
//
// Uses bench/.native (the addon with the probes) unless FERROGPT_NATIVE_PATH names one.

import { createRequire } from 'node:module';
import { existsSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const threadList = arg('threads', '1,2').split(',').map(Number);
const reps = Number(arg('reps', '9'));
const rows = Number(arg('rows', '1'));
const formats = arg('formats', 'f32,bf16,q8').split(',');
const minBytes = Number(arg('mb', '96')) * 1e6;
const json = process.argv.includes('--json');

const C = 768;
const V = 50257;
const SHAPES = [
  ['c_attn', C, 3 * C],
  ['attn_c_proj', C, C],
  ['c_fc', C, 4 * C],
  ['mlp_c_proj', 4 * C, C],
  ['lm_head', C, V],
];
const shapeSel = arg('shapes', SHAPES.map((s) => s[0]).join(',')).split(',');

function loadAddon() {
  let file = process.env.FERROGPT_NATIVE_PATH;
  if (!file) {
    const dir = join(root, 'bench', '.native');
    const f = existsSync(dir) ? readdirSync(dir).find((x) => x.endsWith('.node')) : null;
    if (!f) throw new Error('no bench/.native addon: run npm run build:native:bench');
    file = join(dir, f);
  }
  return createRequire(import.meta.url)(file);
}
const addon = loadAddon();

/** Weight bytes one call reads: the matrix in its format (int8: plus its f32 scales). */
function weightBytes(fmt, K, OC) {
  if (fmt === 'f32') return 4 * OC * K;
  if (fmt === 'bf16') return 2 * OC * K;
  return OC * K + 4 * ((OC * K) / 32);
}

/** A weight (OC, K) in format fmt with deterministic, roughly N(0, 0.02)-sized values. */
function makeWeight(fmt, K, OC, seed) {
  const n = OC * K;
  if (fmt === 'f32') {
    const w = new Float32Array(n);
    for (let i = 0; i < n; i++) w[i] = ((((i + seed) * 2654435761) >>> 0) % 1000) / 2.5e4 - 0.02;
    return { w };
  }
  if (fmt === 'bf16') {
    const w = new Uint16Array(n);
    // 0x3c00..0x3cff and sign: |x| in [2^-7, 2^-6), either sign.
    for (let i = 0; i < n; i++) w[i] = (((((i + seed) * 2654435761) >>> 0) >>> 8) & 0x80ff) | 0x3c00;
    return { w };
  }
  const w = new Int8Array(n);
  for (let i = 0; i < n; i++) w[i] = (((((i + seed) * 2654435761) >>> 0) >>> 8) % 255) - 127;
  const s = new Float32Array(n / 32).fill(0.02 / 127);
  return { w, s };
}

function call(fmt, y, x, wt, K, OC) {
  if (fmt === 'f32') addon.matmulForward(y, x, wt.w, null, rows, K, OC, false);
  else if (fmt === 'bf16') addon.matmulForwardBf16(y, x, wt.w, null, rows, K, OC, false);
  else addon.matmulForwardQ8(y, x, wt.w, wt.s, null, rows, K, OC, false);
}

const median = (a) => {
  const s = [...a].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const results = [];
const env = { date: new Date().toISOString(), cpu: os.cpus()[0]?.model, cores: os.cpus().length, load: os.loadavg().map((v) => +v.toFixed(2)), rows, reps, minMB: minBytes / 1e6 };
if (!json) console.log(`compact GEMV: ${env.cpu}, ${env.cores} cores, load ${env.load.join(' ')}, N = ${rows}, median of ${reps} reps, >= ${minBytes / 1e6} MB a pass`);
for (const threads of threadList) {
  addon.setThreads(threads);
  const bwBefore = addon.memoryBandwidth(256, 5);
  const part = [];
  for (const fmt of formats) {
    for (const [name, K, OC] of SHAPES) {
      if (!shapeSel.includes(name)) continue;
      const bytes = weightBytes(fmt, K, OC);
      const copies = Math.max(1, Math.ceil(minBytes / bytes));
      const ws = Array.from({ length: copies }, (_, i) => makeWeight(fmt, K, OC, 977 * i));
      const x = Float32Array.from({ length: rows * K }, (_, i) => Math.sin(i) * 0.5);
      const y = new Float32Array(rows * OC);
      const pass = () => {
        const t = performance.now();
        for (const wt of ws) call(fmt, y, x, wt, K, OC);
        return (performance.now() - t) / 1e3;
      };
      pass();
      pass();
      const times = Array.from({ length: reps }, pass);
      const sec = median(times) / copies;
      part.push({ threads, fmt, name, K, OC, copies, bytes, us: +(sec * 1e6).toFixed(1), GBps: +(bytes / sec / 1e9).toFixed(2), minGBps: +(bytes / (Math.max(...times) / copies) / 1e9).toFixed(2), maxGBps: +(bytes / (Math.min(...times) / copies) / 1e9).toFixed(2) });
    }
  }
  const bwAfter = addon.memoryBandwidth(256, 5);
  const bw = Math.max(bwBefore, bwAfter);
  for (const r of part) {
    r.probeGBps = +bw.toFixed(2);
    r.ofBound = +(r.GBps / bw).toFixed(3);
    results.push(r);
    if (!json) {
      console.log(`${threads}t ${r.fmt.padEnd(4)} ${r.name.padEnd(11)} ${String(r.K).padStart(4)}→${String(r.OC).padEnd(5)} ×${String(r.copies).padEnd(3)} ${r.us.toFixed(1).padStart(8)} µs  ${r.GBps.toFixed(2).padStart(6)} GB/s [${r.minGBps.toFixed(1)}..${r.maxGBps.toFixed(1)}]  ${(100 * r.ofBound).toFixed(0).padStart(3)}% of ${bw.toFixed(1)} (probe ${bwBefore.toFixed(1)}/${bwAfter.toFixed(1)})`);
    }
  }
}
if (json) console.log(JSON.stringify({ env, results }, null, 1));
