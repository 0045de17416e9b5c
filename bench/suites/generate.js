// Decode speed of KV-cached generation: GPT-2 small shape (12L 12H 768d, V 50257), random
// weights, batch 1, a 64-token prompt then 128 new tokens (greedy), on native (1 and 2
// threads), wasm and reference (capped: a few tokens), with the prompt's time apart, and
// decode as a fraction of the memory-bandwidth bound:
//   bound tokens/s = read bandwidth / bytes of parameters read per token
// (every weight but the position table is read once per token: the blocks and the tied
// wte for the lm head), bandwidth measured in the same run by the addon's memoryBandwidth()
// (a multi-threaded sum over 256 MiB) at the same thread count. A per-kernel profile of the
// decode step and the achieved bandwidth of each matmul at N = 1 (a GEMV) show where the
// gap to the bound is.
//
//   node bench/benchmark.js generate [--quick] [--new N] [--ref-tokens N] [--no-wasm] [--no-ref]
//   (npm run bench:generate)
//
// Writes bench/results/generate.json (git-ignored) and bench/results/generate.md.
// ferrogpt is loaded from dist/ (npm run build:ts) and bindings/.

import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { GPT2, QUICK, argmax, timeDecode } from '../lib/decode.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = process.env.FERROGPT_BENCH_ROOT ?? join(here, '..', '..');
const imp = (rel) => import(pathToFileURL(join(root, 'dist', rel)).href);


function parse(argv) {
  const a = { quick: false, prompt: 64, newTokens: 128, refTokens: 3, refPrompt: 8, wasm: true, ref: true };
  for (let i = 0; i < argv.length; i++) {
    const s = argv[i];
    if (s === 'generate') continue;
    if (s === '--quick') a.quick = true;
    else if (s === '--new') a.newTokens = Number(argv[++i]);
    else if (s === '--ref-tokens') a.refTokens = Number(argv[++i]);
    else if (s === '--no-wasm') a.wasm = false;
    else if (s === '--no-ref') a.ref = false;
    else throw new Error(`unknown option ${s}`);
  }
  if (a.quick) {
    a.newTokens = Math.min(a.newTokens, 16);
    a.prompt = 16;
  }
  return a;
}

/** Times every backend call of a few decode steps (per kernel name). */
function profileDecode(model, promptLen, steps) {
  const be = model.backend;
  const names = ['matmulForward', 'attentionDecode', 'layernormForward', 'geluForward', 'residualForward', 'encoderForward', 'read', 'write', 'view', 'free'];
  const totals = {};
  const orig = {};
  for (const n of names) {
    orig[n] = be[n];
    totals[n] = 0;
    be[n] = function (...args) {
      const t = performance.now();
      try {
        return orig[n].apply(this, args);
      } finally {
        totals[n] += performance.now() - t;
      }
    };
  }
  const V = model.config.vocabSize;
  const cache = model.createCache(1, promptLen + steps + 1);
  let logits = model.forwardCached([Array.from({ length: promptLen }, (_, i) => i % V)], cache);
  for (const n of names) totals[n] = 0;
  const t0 = performance.now();
  for (let k = 0; k < steps; k++) logits = model.forwardCached([[argmax(logits)]], cache);
  const wall = performance.now() - t0;
  cache.dispose();
  for (const n of names) be[n] = orig[n];
  const per = Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, +(v / steps).toFixed(3)]));
  return { stepMs: +(wall / steps).toFixed(3), perStepMs: per };
}

/** Achieved GB/s of matmulForward at N = 1 (a GEMV) for the decode shapes. */
function gemvRates(be, C, V, reps) {
  const shapes = [['c_attn', C, 3 * C], ['attn c_proj', C, C], ['c_fc', C, 4 * C], ['mlp c_proj', 4 * C, C], ['lm head', C, V]];
  const out = [];
  for (const [name, K, OC] of shapes) {
    const w = be.alloc(OC * K);
    be.write(w, Float32Array.from({ length: OC * K }, (_, i) => ((i * 2654435761) % 1000) / 1e4 - 0.05));
    const x = be.alloc(K);
    const y = be.alloc(OC);
    be.matmulForward(y, x, w, null, 1, K, OC);
    let best = Infinity;
    for (let r = 0; r < reps; r++) {
      const t = performance.now();
      be.matmulForward(y, x, w, null, 1, K, OC);
      best = Math.min(best, performance.now() - t);
    }
    out.push({ name, K, OC, ms: +best.toFixed(3), GBps: +((OC * K * 4) / (best / 1e3) / 1e9).toFixed(2) });
    for (const t of [w, x, y]) be.free(t);
  }
  return out;
}

export async function main(argv) {
  const args = parse(argv);
  const log = (s) => console.log(s);
  const started = Date.now();
  const cfg = args.quick ? QUICK : GPT2;
  const [{ GPT }, nativeMod, wasmMod, refMod] = await Promise.all([
    imp('src/model/gpt.js'), imp('src/backend/native.js'), imp('src/backend/wasm.js'), imp('src/backend/reference.js'),
  ]);
  const native = await nativeMod.createNativeBackendAsync();
  const env = {
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism?.() ?? os.cpus().length,
    node: process.version,
    simd: native.info().simd,
    loadAverageStart: os.loadavg().map((x) => +x.toFixed(2)),
    quick: args.quick,
  };
  log(`generate bench: ${env.cpu}, ${env.cores} cores, simd ${env.simd}, load ${env.loadAverageStart.join(' ')}`);
  const C = cfg.nEmbd;
  // Bytes of parameters read per decode token: everything but wpe (one row of it).
  const model = GPT.create({ ...cfg, seed: 1 }, native);
  const paramBytes = (model.numParameters() - cfg.blockSize * C) * 4;
  log(`model: ${JSON.stringify(cfg)}, ${(model.numParameters() / 1e6).toFixed(1)} M parameters, ${(paramBytes / 1e6).toFixed(0)} MB read per decode token`);
  const rows = [];
  const profiles = {};
  const gemv = {};
  for (const threads of [1, 2]) {
    native.setThreads(threads);
    const bw = native.memoryBandwidth(256, 5);
    timeDecode(model, 8, 4); // warm up (pools, scratch, page faults)
    const r = timeDecode(model, args.prompt, args.newTokens);
    const bwAfter = native.memoryBandwidth(256, 5);
    const bandwidth = Math.max(bw, bwAfter);
    const boundTokPerS = (bandwidth * 1e9) / paramBytes;
    rows.push({ backend: `native (${threads} thread${threads > 1 ? 's' : ''})`, threads, ...r, bandwidthGBps: +bandwidth.toFixed(2), boundTokPerS: +boundTokPerS.toFixed(2), fractionOfBound: +(r.decodeTokPerS / boundTokPerS).toFixed(3) });
    log(`native ${threads}t: prompt ${r.promptMs.toFixed(0)} ms (${r.promptTokPerS.toFixed(1)} tok/s), decode ${r.decodeTokPerS.toFixed(2)} tok/s (median step ${r.medianStepMs.toFixed(1)} ms); bandwidth ${bandwidth.toFixed(1)} GB/s → bound ${boundTokPerS.toFixed(1)} tok/s = ${(100 * r.decodeTokPerS / boundTokPerS).toFixed(0)}%`);
    profiles[`native-${threads}`] = profileDecode(model, args.prompt, args.quick ? 4 : 16);
    log(`  profile per step: ${JSON.stringify(profiles[`native-${threads}`])}`);
    gemv[`native-${threads}`] = gemvRates(native, C, cfg.vocabSize, args.quick ? 3 : 10);
    log(`  matmul N=1: ${gemv[`native-${threads}`].map((g) => `${g.name} ${g.ms} ms ${g.GBps} GB/s`).join('; ')}`);
  }
  const nativeParams = model.namedParameters().map(([n, p]) => [n, p.data()]);
  model.dispose();
  if (args.wasm) {
    try {
      const wasm = await wasmMod.createWasmBackend();
      const wm = GPT.create({ ...cfg, seed: 1 }, wasm);
      wm.loadParameters(nativeParams);
      timeDecode(wm, 4, 2);
      const r = timeDecode(wm, args.prompt, Math.min(args.newTokens, args.quick ? 16 : 32));
      rows.push({ backend: `wasm (${wasm.info().simd}, 1 thread)`, threads: 1, ...r });
      log(`wasm: prompt ${r.promptMs.toFixed(0)} ms, decode ${r.decodeTokPerS.toFixed(2)} tok/s over ${r.newTokens} tokens`);
      profiles.wasm = profileDecode(wm, args.prompt, 4);
      wm.dispose();
    } catch (e) {
      rows.push({ backend: 'wasm', error: String(e.message ?? e) });
      log(`wasm: n/a (${e.message})`);
    }
  }
  if (args.ref) {
    const ref = refMod.createReferenceBackend();
    const rm = GPT.create({ ...cfg, seed: 1 }, ref);
    rm.loadParameters(nativeParams);
    const r = timeDecode(rm, args.refPrompt, args.refTokens);
    rows.push({ backend: 'reference (capped)', threads: 1, ...r });
    log(`reference: prompt (${args.refPrompt} tokens) ${r.promptMs.toFixed(0)} ms, decode ${r.decodeTokPerS.toFixed(3)} tok/s over ${r.newTokens} tokens`);
    rm.dispose();
  }
  env.loadAverageEnd = os.loadavg().map((x) => +x.toFixed(2));
  env.wallSeconds = +((Date.now() - started) / 1e3).toFixed(1);
  const doc = { suite: 'generate', env, config: cfg, paramBytesPerToken: paramBytes, rows, profiles, gemv };
  const md = render(doc);
  log('\n' + md);
  const outDir = join(here, '..', 'results');
  mkdirSync(outDir, { recursive: true });
  const name = args.quick ? 'generate.partial' : 'generate';
  writeFileSync(join(outDir, `${name}.json`), JSON.stringify(doc, null, 2) + '\n');
  if (!args.quick) writeFileSync(join(outDir, 'generate.md'), md);
  log(`wrote ${relative(process.cwd(), join(outDir, name + '.json'))}${args.quick ? '' : ' and generate.md'}`);
}

function render(doc) {
  const { env, config: c, rows } = doc;
  const f = (x, d = 1) => (x === undefined || x === null ? 'n/a' : Number(x).toFixed(d));
  const lines = [
    '# Generation (KV-cached decode)',
    '',
    `GPT-2 small shape (${c.nLayer}L ${c.nHead}H ${c.nEmbd}d, V ${c.vocabSize}), random weights, batch 1, greedy; ${env.cpu}, ${env.cores} cores, SIMD ${env.simd}, Node ${env.node}; ${env.date}. Load average ${env.loadAverageStart.join(' ')} at start, ${env.loadAverageEnd.join(' ')} at end (a shared machine: other work competes for the cores and the memory bus, so treat single runs as ±10-20%).`,
    '',
    `Bound: ${(doc.paramBytesPerToken / 1e6).toFixed(0)} MB of parameters read per token (all but wpe) ÷ read bandwidth measured in the same run (addon memoryBandwidth(), sum over 256 MiB, same thread count).`,
    '',
    '| backend | prompt tokens | prompt ms | prompt tok/s | new tokens | decode tok/s | median step ms | bandwidth GB/s | bound tok/s | % of bound |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => (r.error ? `| ${r.backend} | n/a: ${r.error} |||||||||` : `| ${r.backend} | ${r.promptLen} | ${f(r.promptMs, 0)} | ${f(r.promptTokPerS)} | ${r.newTokens} | ${f(r.decodeTokPerS, 2)} | ${f(r.medianStepMs)} | ${f(r.bandwidthGBps)} | ${f(r.boundTokPerS)} | ${r.fractionOfBound === undefined ? '' : f(100 * r.fractionOfBound, 0) + '%'} |`)),
    '',
    '## Where a decode step goes (ms per token, native)',
    '',
    '| kernel | ' + Object.keys(doc.profiles).join(' | ') + ' |',
    '|---|' + Object.keys(doc.profiles).map(() => '---:').join('|') + '|',
    ...['stepMs', ...Object.keys(Object.values(doc.profiles)[0]?.perStepMs ?? {})].map((k) => `| ${k === 'stepMs' ? '**whole step**' : k} | ` + Object.values(doc.profiles).map((p) => (k === 'stepMs' ? p.stepMs : p.perStepMs[k])).join(' | ') + ' |'),
    '',
    '## matmulForward at N = 1 (GEMV): achieved weight-read bandwidth',
    '',
    '| shape (C → OC) | ' + Object.keys(doc.gemv).map((k) => `${k} ms | GB/s`).join(' | ') + ' |',
    '|---|' + Object.keys(doc.gemv).map(() => '---:|---:').join('|') + '|',
    ...(Object.values(doc.gemv)[0] ?? []).map((g, i) => `| ${g.name} (${g.K} → ${g.OC}) | ` + Object.values(doc.gemv).map((v) => `${v[i].ms} | ${v[i].GBps}`).join(' | ') + ' |'),
    '',
  ];
  return lines.join('\n');
}
