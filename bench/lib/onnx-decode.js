// Peer for bench:generate: onnxruntime-node decoding the same GPT-2 as ferrogpt, greedy
// and KV-cached, in f32 and in onnxruntime's dynamic int8 quantization.
//
//   prepareOnnxGpt2(modelDir, { int8 })   → { dir, f32, int8, meta }  (venv + export, cached)
//   timeOnnxDecode(onnxPath, { batch, threads, promptLen, newTokens })
//                                          → { promptMs, promptTokPerS, decodeTokPerS, ... }
//
// The model folder is one of ours (GPT.save: config.json + model.safetensors); the ONNX
// graph is written by bench/onnx-export/export_gpt2.py (its docstring has the I/O) in a venv
// made by bench/onnx-export/setup.mjs, into bench/data/onnx-gpt2/<digest>/ (git-ignored),
// once per model folder. onnxruntime-node comes from bench/peers (npm ci --ignore-scripts
// --prefix bench/peers), as in bench/peers/ort.js.
//
// CLI (a standalone check and a one-off timing; the suite imports the functions):
//   node bench/lib/onnx-decode.js --check [MODEL_DIR]   export a small model (made with
//        ferrogpt when no folder is given), decode 8 tokens f32 + int8 at batch 1 and 8, and
//        check the f32 greedy tokens against ferrogpt's own on the same folder
//   node bench/lib/onnx-decode.js --time MODEL_DIR [--int8] [--batch 1,8] [--threads 1,2]
//        [--prompt 64] [--new 128]
//   node bench/lib/onnx-decode.js --make DIR [--shape gpt2|small]   a random-weight folder

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ensureOnnxVenv } from '../onnx-export/setup.mjs';
import { GPT2, argmax } from './decode.js';

const here = dirname(fileURLToPath(import.meta.url));
const peersDir = join(here, '..', 'peers');
const exportScript = join(here, '..', 'onnx-export', 'export_gpt2.py');

/** The small shape of --check (2 layers, 4 heads, 64 wide, vocab 512, blockSize 128). */
export const SMALL = { vocabSize: 512, blockSize: 128, nLayer: 2, nHead: 4, nEmbd: 64 };

let ortCache = null;
/** onnxruntime-node from bench/peers/node_modules, or an Error saying how to install it. */
export function loadOrt() {
  if (ortCache) return ortCache;
  const require = createRequire(join(peersDir, 'package.json'));
  try {
    ortCache = require('onnxruntime-node');
  } catch (e) {
    throw new Error(`onnxruntime-node is not installed in bench/peers (npm ci --ignore-scripts --prefix bench/peers): ${e.message.split('\n')[0]}`, { cause: e });
  }
  ortCache.version = require('onnxruntime-node/package.json').version;
  return ortCache;
}

const tail = (s, n = 25) => s.trim().split('\n').slice(-n).join('\n');

/**
 * The venv (bench/onnx-export/setup.mjs), then the export of `modelDir` (f32, and int8 with
 * { int8: true }) into `outDir` (default bench/data/onnx-gpt2/<digest>; skipped when done).
 * Returns { dir, f32, int8 (path or null), meta, skipped, setup }. Throws an Error naming
 * what failed: no python3, no torch, pip, or the export (with the tail of its stderr).
 */
export async function prepareOnnxGpt2(modelDir, { int8 = false, outDir, apt = false, threads = 1, log = () => {} } = {}) {
  const setup = ensureOnnxVenv({ apt, log });
  const args = [exportScript, resolve(modelDir), '--threads', String(threads)];
  if (outDir) args.push('--out', resolve(outDir));
  if (int8) args.push('--int8');
  const { code, stdout, stderr } = await new Promise((res, rej) => {
    const child = spawn(setup.python, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let pending = '';
    child.stdout.on('data', (d) => {
      out += d;
      pending += d;
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const l of lines) if (!l.startsWith('{')) log(l);
    });
    child.stderr.on('data', (d) => (err += d));
    child.on('error', (e) => rej(new Error(`onnx export: cannot start ${setup.python}: ${e.message}`)));
    child.on('close', (c) => res({ code: c, stdout: out, stderr: err }));
  });
  if (code !== 0) {
    throw new Error(`onnx export failed (exit ${code}): ${setup.python} ${args.join(' ')}\n${tail(stderr || stdout)}`);
  }
  const last = stdout.trim().split('\n').pop();
  let r;
  try {
    r = JSON.parse(last);
  } catch {
    throw new Error(`onnx export: the script's last line is not its JSON result: ${last}`);
  }
  return { ...r, setup };
}

/** meta.json beside an exported model (the config and I/O names). */
function readMeta(onnxPath) {
  const p = join(dirname(onnxPath), 'meta.json');
  if (!existsSync(p)) throw new Error(`onnx decode: ${p} not found (the folder is not one export_gpt2.py wrote)`);
  return JSON.parse(readFileSync(p, 'utf8'));
}

/**
 * Greedy KV-cached decoding on onnxruntime-node, timed as bench/lib/decode.js's timeDecode
 * times ours: the prompt's run apart (past length 0), then `newTokens` runs of one token
 * per row, each fed the argmax of the previous logits. Every row of the batch gets the same
 * prompt, (i * 7919 + 13) % V. Tokens/s count every row: promptTokPerS = batch · promptLen
 * / prompt time, decodeTokPerS = batch · newTokens / total step time.
 *
 * The K/V cache lives in two buffers per layer and K/V, each of the final length: a step
 * reads the past from one (a prefix view (B, NH, P, HS)) and onnxruntime writes the
 * present (B, NH, P+T, HS) into the other, given as a pre-allocated output; the next step
 * swaps them. So no K/V passes through JS: onnxruntime copies past into present inside the
 * graph (its Concat), as any ONNX KV-cache graph must. If this onnxruntime-node refuses
 * pre-allocated outputs, the returned presents are fed back as they are (one more copy,
 * from onnxruntime's output into a JS buffer; `preallocated: false` says so, and
 * `preallocatedWhy` why). `preallocate: false` asks for that path (to see what it costs).
 *
 * `warmup` (default true) first decodes 4 tokens after an 8-token prompt on the same
 * session, as the generate suite warms ours up. Returns { promptMs, promptTokPerS,
 * decodeTokPerS, medianStepMs, newTokens, promptLen, batch, threads, stepsMs, tokens (row
 * 0's greedy ids), rowsSame (all rows decoded the same ids), preallocated, loadMs } and,
 * with keepLogits, logits: row 0's logits before each step (a copy each, taken outside the step timing).
 */
export async function timeOnnxDecode(onnxPath, { batch = 1, threads = 1, promptLen = 64, newTokens = 128, warmup = true, keepLogits = false, preallocate = true } = {}) {
  const ort = loadOrt();
  const meta = readMeta(onnxPath);
  const { vocabSize: V, blockSize, nLayer: L, nHead: NH, headSize: HS } = meta.config;
  if (promptLen < 1) throw new Error('onnx decode: promptLen must be at least 1');
  if (promptLen + newTokens > blockSize) {
    throw new Error(`onnx decode: prompt ${promptLen} + ${newTokens} new tokens exceeds blockSize ${blockSize} (the ONNX graph has no sliding window)`);
  }
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(onnxPath, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  });
  const loadMs = performance.now() - t0;
  try {
    // Whether this onnxruntime-node writes into pre-allocated outputs: found out once per
    // session (by the warm-up when there is one, so the timed prompt does not pay for it).
    const mode = { preallocated: preallocate, why: preallocate ? null : 'preallocate: false' };
    const shape = { V, L, NH, HS, batch, mode };
    if (warmup) await decodeOnce(ort, session, { ...shape, promptLen: Math.min(8, promptLen), newTokens: Math.min(4, newTokens) });
    const r = await decodeOnce(ort, session, { ...shape, promptLen, newTokens, keepLogits });
    const total = r.steps.reduce((x, y) => x + y, 0);
    const sorted = [...r.steps].sort((x, y) => x - y);
    return {
      promptMs: r.promptMs,
      promptTokPerS: (batch * promptLen) / (r.promptMs / 1e3),
      decodeTokPerS: (batch * newTokens) / (total / 1e3),
      medianStepMs: sorted[sorted.length >> 1],
      newTokens,
      promptLen,
      batch,
      threads,
      stepsMs: r.steps,
      tokens: r.tokens,
      rowsSame: r.rowsSame,
      logits: r.logits,
      preallocated: r.preallocated,
      preallocatedWhy: mode.why,
      loadMs,
    };
  } finally {
    await session.release();
  }
}

/** One greedy decode (the prompt, then newTokens steps); returns timings and row 0's tokens. */
async function decodeOnce(ort, session, { V, L, NH, HS, batch: B, mode, promptLen, newTokens, keepLogits = false }) {
  const maxT = promptLen + newTokens;
  const row = B * NH * HS; // floats per position of one layer's K (or V)
  // buf[side][2 * layer + (0: key, 1: value)]: a Float32Array of the final length.
  const buf = [0, 1].map(() => Array.from({ length: 2 * L }, () => new Float32Array(row * maxT)));
  const view = (side, j, len) => new ort.Tensor('float32', buf[side][j].subarray(0, row * len), [B, NH, len, HS]);
  const logits = new Float32Array(B * V);
  const ids = (toks, start) => {
    const T = toks.length / B;
    const pos = new BigInt64Array(B * T);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) pos[b * T + t] = BigInt(start + t);
    return { input_ids: new ort.Tensor('int64', BigInt64Array.from(toks, BigInt), [B, T]), position_ids: new ort.Tensor('int64', pos, [B, T]) };
  };
  let side = 0; // buf[side] holds the past
  let returned = null; // the presents onnxruntime returned (when it refuses pre-allocated outputs)
  const run = async (toks, start) => {
    const T = toks.length / B;
    const feeds = ids(toks, start);
    for (let j = 0; j < 2 * L; j++) {
      const name = `past_${j % 2 ? 'value' : 'key'}_${j >> 1}`;
      feeds[name] = returned ? returned[`present_${j % 2 ? 'value' : 'key'}_${j >> 1}`] : view(side, j, start);
    }
    if (mode.preallocated) {
      const fetches = { logits: new ort.Tensor('float32', logits, [B, V]) };
      for (let j = 0; j < 2 * L; j++) fetches[`present_${j % 2 ? 'value' : 'key'}_${j >> 1}`] = view(1 - side, j, start + T);
      try {
        const out = await session.run(feeds, fetches);
        side = 1 - side;
        return out.logits.data;
      } catch (e) {
        if (start !== 0) throw e; // it took them on the prompt step: a real failure
        mode.preallocated = false;
        mode.why = e.message.split('\n')[0];
      }
    }
    const out = await session.run(feeds);
    returned = out;
    return out.logits.data;
  };
  const prompt = Array.from({ length: promptLen }, (_, i) => (i * 7919 + 13) % V);
  const promptIds = Array.from({ length: B }, () => prompt).flat();
  const t0 = performance.now();
  let last = await run(promptIds, 0);
  const promptMs = performance.now() - t0;
  const steps = [];
  const tokens = [];
  let rowsSame = true; // every row of the batch decoded row 0's token at every step
  const kept = []; // row 0's logits before each step (keepLogits: for checks, outside the timed runs)
  for (let k = 0; k < newTokens; k++) {
    if (keepLogits) kept.push(last.slice(0, V));
    const next = Array.from({ length: B }, (_, b) => argmax(last.subarray(b * V, (b + 1) * V)));
    tokens.push(next[0]);
    if (next.some((t) => t !== next[0])) rowsSame = false;
    const s = performance.now();
    last = await run(next, promptLen + k);
    steps.push(performance.now() - s);
  }
  return { promptMs, steps, tokens, rowsSame, preallocated: mode.preallocated, logits: keepLogits ? kept : undefined };
}

// ---- CLI ----

async function ferrogpt() {
  const root = process.env.FERROGPT_BENCH_ROOT ?? join(here, '..', '..');
  const entry = join(root, 'dist', 'src', 'index.js');
  if (!existsSync(entry)) throw new Error(`ferrogpt is not built: ${entry} missing (npm run build:ts)`);
  const fg = await import(pathToFileURL(entry).href);
  await fg.initBackend();
  return fg;
}

/**
 * A random-weight folder of `shape` written by GPT.save. For the check model every
 * parameter is drawn at random (biases and LayerNorm gains too, which GPT.create sets to
 * 0 and 1), and larger than GPT.create's (std 0.02 gives a model that repeats one token),
 * so that the export is checked on every tensor it reads and greedy decoding varies.
 */
export async function makeModel(dir, shape, { perturbAll = false } = {}) {
  const { GPT } = await ferrogpt();
  const model = GPT.create({ ...shape, seed: 1 });
  if (perturbAll) {
    let s = 12345;
    const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
    model.loadParameters(model.namedParameters().map(([n, p]) => {
      const d = p.data();
      const gain = /ln_\d|ln_f/.test(n) && n.endsWith('.weight');
      return [n, Float32Array.from(d, (x) => (gain ? 1 + 0.4 * rnd() : n.endsWith('.bias') ? 0.2 * rnd() : x + 0.3 * rnd()))];
    }));
  }
  await model.save(dir);
  model.dispose();
}

/** ferrogpt's own greedy tokens and the logits before each (batch 1, timeOnnxDecode's prompt). */
async function ferrogptGreedy(dir, promptLen, newTokens) {
  const { GPT } = await ferrogpt();
  const model = await GPT.load(dir);
  const V = model.config.vocabSize;
  const prompt = Array.from({ length: promptLen }, (_, i) => (i * 7919 + 13) % V);
  const cache = model.createCache(1, promptLen + newTokens + 1);
  let logits = model.forwardCached([prompt], cache);
  const tokens = [];
  const kept = [];
  for (let k = 0; k < newTokens; k++) {
    kept.push(logits.slice());
    const next = argmax(logits);
    tokens.push(next);
    logits = model.forwardCached([[next]], cache);
  }
  cache.dispose();
  model.dispose();
  return { tokens, logits: kept };
}

const fmt = (r) =>
  `prompt ${r.promptLen} × ${r.batch}: ${r.promptMs.toFixed(1)} ms (${r.promptTokPerS.toFixed(0)} tok/s); decode ${r.newTokens} steps: ${r.decodeTokPerS.toFixed(1)} tok/s (batch × steps / time), median step ${r.medianStepMs.toFixed(2)} ms; session load ${r.loadMs.toFixed(0)} ms${r.preallocated ? '' : '; presents fed back (no pre-allocated outputs)'}`;

async function cli(argv) {
  const opt = (name, dflt) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : dflt;
  };
  const list = (s) => s.split(',').map(Number);
  const log = (s) => console.log(s);
  if (argv[0] === '--make') {
    const dir = resolve(argv[1]);
    const shape = opt('--shape', 'small') === 'gpt2' ? GPT2 : SMALL;
    const t = performance.now();
    await makeModel(dir, shape);
    log(`wrote ${dir} (${JSON.stringify(shape)}, seed 1) in ${((performance.now() - t) / 1e3).toFixed(1)} s`);
    return 0;
  }
  if (argv[0] === '--time') {
    const dir = argv[1];
    const int8 = argv.includes('--int8');
    const t = performance.now();
    const p = await prepareOnnxGpt2(dir, { int8, log });
    log(`prepared in ${((performance.now() - t) / 1e3).toFixed(1)} s: ${p.dir}`);
    for (const kind of int8 ? ['f32', 'int8'] : ['f32']) {
      for (const batch of list(opt('--batch', '1'))) {
        for (const threads of list(opt('--threads', '2'))) {
          const r = await timeOnnxDecode(p[kind], { batch, threads, promptLen: Number(opt('--prompt', 64)), newTokens: Number(opt('--new', 128)) });
          log(`onnxruntime-node ${loadOrt().version} ${kind}, batch ${batch}, ${threads} thread(s): ${fmt(r)}`);
        }
      }
    }
    return 0;
  }
  if (argv[0] === '--check') {
    let dir = argv[1] && !argv[1].startsWith('--') ? resolve(argv[1]) : null;
    if (!dir) {
      dir = join(here, '..', 'data', 'onnx-check-model');
      if (!existsSync(join(dir, 'model.safetensors'))) {
        await makeModel(dir, SMALL, { perturbAll: true });
        log(`made the check model with ferrogpt: ${dir} (${JSON.stringify(SMALL)}, every parameter random)`);
      }
    }
    const p = await prepareOnnxGpt2(dir, { int8: true, log });
    log(`exported: ${p.dir}${p.skipped ? ' (cached)' : ''}`);
    const promptLen = 16;
    const newTokens = 8;
    const { tokens: ours, logits: ourLogits } = await ferrogptGreedy(dir, promptLen, newTokens);
    log(`ferrogpt greedy (batch 1): ${ours.join(' ')}`);
    if (new Set(ours).size < 3) log('note: ferrogpt decodes fewer than 3 distinct tokens on this model: the token check is weak here (the logits check below is not)');
    let ok = true;
    for (const kind of ['f32', 'int8']) {
      for (const batch of [1, 8]) {
        const r = await timeOnnxDecode(p[kind], { batch, threads: 1, promptLen, newTokens, keepLogits: true });
        const same = r.rowsSame && r.tokens.every((t, i) => t === ours[i]);
        // Along the same tokens the logits must agree; past a divergence they need not.
        const upTo = same ? newTokens : r.tokens.findIndex((t, i) => t !== ours[i]) + 1;
        let diff = 0;
        let scale = 0;
        for (let k = 0; k < upTo; k++) {
          for (let v = 0; v < r.logits[k].length; v++) {
            diff = Math.max(diff, Math.abs(r.logits[k][v] - ourLogits[k][v]));
            scale = Math.max(scale, Math.abs(ourLogits[k][v]));
          }
        }
        log(`onnx ${kind} batch ${batch}: ${fmt(r)}\n  tokens ${r.tokens.join(' ')} ${same ? '= ferrogpt' : '≠ ferrogpt'}${r.rowsSame ? '' : ' (rows of the batch differ)'}; max |logit - ferrogpt's| ${diff.toExponential(2)} over ${upTo} step(s) (max |logit| ${scale.toFixed(2)})`);
        if (kind === 'f32' && (!same || diff > 1e-4 * Math.max(1, scale))) ok = false;
      }
    }
    const q = p.meta.int8?.check;
    if (q) log(`int8 vs f32 (export check): max |Δlogit| prompt ${q.maxAbsDiffPrompt.toFixed(4)}, decode ${q.maxAbsDiffDecode.toFixed(4)}; greedy equal for ${q.greedySamePrefix} of 16; teacher-forced top-1 ${q.teacherForcedTop1}`);
    log(ok ? "check passed: the f32 ONNX model decodes ferrogpt's greedy tokens with its logits (to 1e-4)" : "check FAILED: the f32 ONNX greedy tokens or logits differ from ferrogpt's");
    return ok ? 0 : 1;
  }
  console.error('usage: node bench/lib/onnx-decode.js --check [MODEL_DIR] | --time MODEL_DIR [--int8] [--batch 1,8] [--threads 1,2] [--prompt N] [--new N] | --make DIR [--shape gpt2|small]');
  return 2;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  cli(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(e.message);
      process.exit(1);
    },
  );
}
