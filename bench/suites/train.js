// Training throughput: tokens/s of a full training step (zero_grad, forward + loss,
// backward, global grad-norm clip 1.0, AdamW) for ferrogpt's native backend and for
// PyTorch (bench/torch_train.py, Debian python3-torch) on the same shapes and threads,
// plus a per-kernel profile of ferrogpt's step (where the time goes: kernels vs the
// TypeScript around them) next to PyTorch's profiler at the same shape.
//
//   node bench/benchmark.js train [--quick] [--threads 1,2] [--configs nano,gpt2]
//                                 [--no-torch] [--no-profile] [--profile-threads N] [--no-bf16]
//   (each config also runs in bf16 mixed precision, next to PyTorch's CPU autocast to bf16)
//   (npm run bench:train)
//   node bench/benchmark.js quality ...   → bench/suites/train.quality.js (npm run bench:quality)
//
// Writes bench/results/train.json (git-ignored) and bench/results/train.md.
// ferrogpt is loaded from dist/ (npm run build:ts) and bindings/ like the kernels suite.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CONFIGS, ferroStep, randomBatches, makeModel } from '../lib/train-step.js';
import { median } from '../lib/util.js';
import { aptCommand, aptInstall, canAptInstall } from '../../scripts/apt.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const benchDir = join(here, '..');
export const root = process.env.FERROGPT_BENCH_ROOT ?? join(benchDir, '..');
export const PYTHON = process.env.FERROGPT_TORCH_PYTHON ?? '/usr/bin/python3';
const TORCH_SCRIPT = join(benchDir, 'torch_train.py');

export { CONFIGS, ferroStep, randomBatches, makeModel } from '../lib/train-step.js';

// ---------------------------------------------------------------- ferrogpt side

/** GPT, AdamW, clipGradNorm, learningRate and the native backend, from `from`'s dist/. */
export async function loadLib(from = root) {
  const imp = (rel) => import(pathToFileURL(join(from, 'dist', rel)).href);
  const [{ GPT }, { AdamW, clipGradNorm }, { learningRate }, native] = await Promise.all([
    imp('src/model/gpt.js'),
    imp('src/train/optimizer.js'),
    imp('src/train/schedule.js'),
    imp('src/backend/native.js'),
  ]);
  // The kernel names, for the profile (an older build, as bench/ab.js may load, has no registry).
  const { KERNEL_NAMES } = await imp('src/backend/kernels.js').catch(() => ({ KERNEL_NAMES: null }));
  const backend = await native.createNativeBackendAsync();
  return { GPT, AdamW, clipGradNorm, learningRate, backend, KERNEL_NAMES };
}

function ferroBench(lib, cfg, model, opt, threads, warmup, steps) {
  lib.backend.setThreads(threads);
  const { batch: B } = cfg;
  const { blockSize: T, vocabSize: V } = cfg.model;
  const batches = randomBatches(Math.min(warmup + steps, 8), B, T, V, 1);
  const times = [];
  const cpu = []; // process CPU time per step (all threads): less disturbed by other work than wall time
  let loss = NaN;
  for (let i = 0; i < warmup + steps; i++) {
    const { ids, targets } = batches[i % batches.length];
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    loss = ferroStep(lib, model, opt, ids, targets, B, T);
    const dt = (performance.now() - t0) / 1e3;
    const c = process.cpuUsage(c0);
    if (i >= warmup) {
      times.push(dt);
      cpu.push((c.user + c.system) / 1e6);
    }
  }
  return { threads: lib.backend.info().threads, step_s: times, cpu_s: cpu, lastLoss: loss };
}

// ---------------------------------------------------------------- PyTorch side

/**
 * The environment PyTorch runs at its best with here: passive OpenMP waiting (the cores
 * are shared), glibc malloc that never returns big blocks to the OS (no page faults on
 * every step's activations), OPENBLAS_L2_SIZE unset, and OpenBLAS on its fastest kernel
 * set for this CPU (see blasChoice).
 */
export function torchEnv(threads) {
  const env = {
    ...process.env,
    OMP_WAIT_POLICY: 'passive',
    OMP_NUM_THREADS: String(threads),
    GLIBC_TUNABLES: 'glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184',
  };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  if (blas?.coretype) env.OPENBLAS_CORETYPE = blas.coretype;
  return env;
}

let blas = null;

/**
 * Which OpenBLAS kernels PyTorch gets. With OPENBLAS_CORETYPE unset OpenBLAS picks by
 * CPUID; Debian bookworm's OpenBLAS 0.3.21 does not know recent Xeons (Sapphire / Emerald
 * Rapids) and falls back to its SSE3 "Prescott" kernels, ~10x slower than its AVX-512
 * ones. So: if the auto choice is not an AVX-512 or AVX2 kernel set and the CPU has
 * AVX-512 (AVX2), name the newest kernel set this OpenBLAS has for it. Also reports when
 * PyTorch's libblas.so.3 is not OpenBLAS at all (Debian's reference BLAS, ~50x slower:
 * apt-get install libopenblas0-openmp).
 */
export function blasChoice(log = () => {}) {
  if (blas) return blas;
  blas = { coretype: null };
  const probe = () => {
    const r = spawnSync(PYTHON, [TORCH_SCRIPT, 'blas'], { env: torchEnv(1), encoding: 'utf8', timeout: 300e3 });
    return r.status === 0 ? JSON.parse(r.stdout.trim().split('\n').pop()) : { error: `${r.error?.message ?? `exit ${r.status ?? r.signal}`}: ${(r.stderr || '').trim().split('\n').pop()}` };
  };
  const auto = probe();
  blas.auto = auto;
  const flags = (() => {
    try {
      return new Set((readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '').trim().split(/\s+/));
    } catch {
      return new Set();
    }
  })();
  const core = auto.openblas?.corename ?? null;
  const fast = /skylakex|cooperlake|sapphirerapids|haswell|zen|skylake/i;
  if (!auto.openblas) {
    blas.warning = `PyTorch's BLAS is not OpenBLAS (${(auto.libs ?? []).join(', ') || auto.error}): matmuls run on the reference BLAS. apt-get install libopenblas0-openmp`;
  } else if (!fast.test(core) && (flags.has('avx512f') || flags.has('avx2'))) {
    blas.coretype = flags.has('avx512f') ? (flags.has('avx512_bf16') ? 'Cooperlake' : 'SkylakeX') : 'Haswell';
    blas.chosen = probe();
    blas.reason = `OpenBLAS ${auto.openblas.config.split(' ')[1]} detects this CPU as ${core} (its generic SSE3 kernels, ${auto.sgemm_gflops_1t.toFixed(0)} GFLOPS sgemm on 1 thread); OPENBLAS_CORETYPE=${blas.coretype} gives its ${blas.coretype === 'Haswell' ? 'AVX2' : 'AVX-512'} kernels (${blas.chosen.error ?? `${blas.chosen.sgemm_gflops_1t.toFixed(0)} GFLOPS`})`;
  } else {
    blas.reason = `OpenBLAS detects ${core} by itself (${auto.sgemm_gflops_1t?.toFixed(0)} GFLOPS sgemm on 1 thread)`;
  }
  log(`PyTorch BLAS: ${blas.warning ?? blas.reason}`);
  return blas;
}

function writeJob(job) {
  const dir = mkdtempSync(join(os.tmpdir(), 'ferrogpt-train-'));
  const file = join(dir, 'job.json');
  writeFileSync(file, JSON.stringify(job));
  return { dir, file };
}

/** Runs torch_train.py `cmd` on `job` synchronously; returns its JSON (or { error }). */
export function torchRun(cmd, job, threads, timeoutS = 600) {
  const { dir, file } = writeJob(job);
  try {
    const r = spawnSync(PYTHON, [TORCH_SCRIPT, cmd, file], { env: torchEnv(threads), encoding: 'utf8', timeout: timeoutS * 1e3, maxBuffer: 64 << 20 });
    if (r.status !== 0) return { error: `python exited ${r.status ?? r.signal}: ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}` };
    return JSON.parse(r.stdout.trim().split('\n').pop());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Runs python3 with `args` in the background, its stderr lines logged as [torch]: a Promise
 * of the JSON of its last stdout line, or { error }.
 */
export function runPython(args, threads, log = () => {}) {
  return new Promise((resolve) => {
    const child = spawn(PYTHON, args, { env: torchEnv(threads), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => {
      err += d;
      log(`[torch] ${String(d).trimEnd()}`);
    });
    child.on('error', (e) => resolve({ error: e.message }));
    child.on('close', (code) => {
      if (code !== 0) resolve({ error: `python exited ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}` });
      else resolve(JSON.parse(out.trim().split('\n').pop()));
    });
  });
}

/** As torchRun, in the background: a Promise of its JSON. */
export async function torchRunAsync(cmd, job, threads, log = () => {}) {
  const { dir, file } = writeJob(job);
  try {
    return await runPython([TORCH_SCRIPT, cmd, file], threads, log);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function torchVersion() {
  const r = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { env: torchEnv(1), encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

// ---------------------------------------------------------------- profile

const STORAGE = ['zero', 'write', 'writeTokens', 'read'];

/**
 * Wraps every kernel and storage method of the backend (instance properties shadowing the
 * prototype: what GPT / AdamW call) and every kernel of the napi addon under it, each
 * with a timer. Backend time − addon time = the TypeScript checks and dispatch (base.ts,
 * native.ts); step time − backend time = the TypeScript of the model, loss and optimizer.
 */
function instrument(backend, KERNELS) {
  const stats = { be: {}, addon: {} };
  const addon = backend.native?.addon;
  const undo = [];
  const wrap = (obj, name, bucket, extra) => {
    const orig = obj[name];
    if (typeof orig !== 'function') return;
    const rec = (bucket[name] = { calls: 0, ms: 0 });
    obj[name] = function (...args) {
      const t0 = performance.now();
      const r = orig.apply(this, args);
      rec.ms += performance.now() - t0;
      rec.calls++;
      if (extra) extra(args);
      return r;
    };
    undo.push(() => {
      if (obj === backend) delete obj[name];
      else obj[name] = orig;
    });
  };
  for (const k of [...KERNELS, ...STORAGE]) {
    // Nominal FLOPs: matmul 2·N·C·OC forward, twice that backward (dinp and dweight; once
    // for a frozen weight, whose dweight is null);
    // causal attention 2·B·NH·T²·HS forward (QKᵀ and PV over the lower triangle), 2.5×
    // that backward (scores recomputed from lse, then dP, dQ, dK, dV).
    const flops =
      k === 'matmulForward' ? (a) => 2 * a[4] * a[5] * a[6]
      : k === 'matmulBackward' ? (a) => (a[1] === null ? 2 : 4) * a[6] * a[7] * a[8]
      : k === 'attentionForward' ? (a) => 2 * a[3] * a[4] * a[4] * a[5]
      : k === 'attentionBackward' ? (a) => 5 * a[5] * a[6] * a[6] * a[7]
      : null;
    wrap(backend, k, stats.be, flops ? (a) => (stats.be[k].flops = (stats.be[k].flops ?? 0) + flops(a)) : null);
  }
  if (addon) for (const k of KERNELS) wrap(addon, k, stats.addon);
  return {
    stats,
    reset() {
      for (const b of [stats.be, stats.addon]) for (const r of Object.values(b)) (r.calls = 0), (r.ms = 0), r.flops && (r.flops = 0);
    },
    restore() {
      for (const u of undo.reverse()) u();
    },
  };
}

function ferroProfile(lib, cfg, model, opt, threads, steps) {
  lib.backend.setThreads(threads);
  const { batch: B } = cfg;
  const { blockSize: T, vocabSize: V } = cfg.model;
  const batches = randomBatches(2, B, T, V, 2);
  if (!lib.KERNEL_NAMES) throw new Error('profile: this build has no kernel registry (src/backend/kernels.js)');
  const KERNELS = lib.KERNEL_NAMES; // every kernel of the registry (src/backend/kernels.ts); unused ones are left out of the table
  const ins = instrument(lib.backend, KERNELS);
  try {
    ferroStep(lib, model, opt, batches[0].ids, batches[0].targets, B, T); // warm the wrappers
    ins.reset();
    const phase = { zeroGrad: 0, forwardBackward: 0, clip: 0, adamw: 0 };
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      const { ids, targets } = batches[i % 2];
      let t = performance.now();
      model.zeroGrad();
      phase.zeroGrad += performance.now() - t;
      t = performance.now();
      model.forwardBackward(ids, targets, B, T);
      phase.forwardBackward += performance.now() - t;
      t = performance.now();
      lib.clipGradNorm(model, 1.0);
      phase.clip += performance.now() - t;
      t = performance.now();
      opt.step();
      phase.adamw += performance.now() - t;
    }
    const stepMs = (performance.now() - t0) / steps;
    const { be, addon } = ins.stats;
    const rows = [];
    for (const k of [...KERNELS, ...STORAGE]) {
      const r = be[k];
      if (!r || r.calls === 0) continue;
      const a = addon[k];
      rows.push({ op: k, calls: r.calls / steps, ms: r.ms / steps, addonMs: a ? a.ms / steps : null, gflops: r.flops && a ? r.flops / (a.ms / 1e3) / 1e9 : null });
    }
    const beMs = rows.reduce((s, r) => s + r.ms, 0);
    const addonMs = rows.reduce((s, r) => s + (r.addonMs ?? 0), 0);
    const storageMs = rows.filter((r) => STORAGE.includes(r.op)).reduce((s, r) => s + r.ms, 0);
    const kernelCalls = rows.filter((r) => !STORAGE.includes(r.op)).reduce((s, r) => s + r.calls, 0);
    const mm = rows.filter((r) => r.op.startsWith('matmul'));
    const mmAddonMs = mm.reduce((s, r) => s + r.addonMs, 0);
    const flops = mm.reduce((s, r) => s + r.gflops * r.addonMs / 1e3 * 1e9, 0) * steps;
    return {
      threads,
      steps,
      stepMs,
      phaseMs: Object.fromEntries(Object.entries(phase).map(([k, v]) => [k, v / steps])),
      rows,
      kernelCalls,
      addonMs, // time inside the napi addon (Rust kernels + napi argument handling)
      checksMs: beMs - storageMs - addonMs, // base.ts checks + native.ts dispatch around kernel calls
      storageMs, // zero / write / read (TypeScript typed-array work)
      modelTsMs: stepMs - beMs, // gpt.ts, lm.ts, optimizer.ts between backend calls
      matmulGflops: flops / steps / (mmAddonMs / 1e3) / 1e9,
    };
  } finally {
    ins.restore();
  }
}

// ---------------------------------------------------------------- report

const fx = (x, d = 0) => (x == null || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));
const ms = (x) => (x == null || !Number.isFinite(x) ? 'n/a' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

function summarize(run, tokens) {
  if (!run || run.error || !run.step_s?.length) return run ?? null;
  const med = median(run.step_s);
  const cpuMed = run.cpu_s?.length ? median(run.cpu_s) : null;
  return { ...run, median_s: med, min_s: Math.min(...run.step_s), max_s: Math.max(...run.step_s), tokPerS: tokens / med, cpuMedian_s: cpuMed };
}

// PyTorch's profiler op kinds (torch_train.py KINDS) vs ferrogpt's kernels.
const KIND_MAP = [
  ['matmul', ['matmulForward', 'matmulBackward'], 'matmul'],
  ['attention', ['attentionForward', 'attentionBackward'], 'attention (bmm, softmax, mask)'],
  ['layernorm', ['layernormForward', 'layernormBackward'], 'layernorm'],
  ['gelu', ['geluForward', 'geluBackward'], 'gelu'],
  ['crossentropy', ['crossentropyForward', 'crossentropyBackward'], 'crossentropy'],
  ['embedding', ['encoderForward', 'encoderBackward'], 'embedding'],
];

export function torchLine(env) {
  const b = env.torchBlas ?? {};
  const blasText = b.warning ? `**${b.warning}**` : `${b.coretype ? `OPENBLAS_CORETYPE=${b.coretype}` : 'OPENBLAS_CORETYPE unset'}: ${b.reason}`;
  return `${env.torch ?? 'n/a'} (${PYTHON}, Debian python3-torch) with OMP_WAIT_POLICY=passive, OPENBLAS_L2_SIZE unset, GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184; BLAS ${(b.auto?.libs ?? [])[0] ?? 'n/a'}; ${blasText}`;
}

export function renderTrain(doc) {
  const L = [];
  const { env } = doc;
  L.push('# ferrogpt training throughput');
  L.push('');
  L.push(`Generated by \`npm run bench:train\` (bench/benchmark.js train) on ${env.date}${env.quick ? ' — **--quick run: few steps**' : ''}.`);
  L.push('');
  L.push('| | |');
  L.push('|---|---|');
  L.push(`| CPU | ${env.cpu}, ${env.cores} cores, ${env.memoryGiB} GiB |`);
  L.push(`| ferrogpt | ${env.ferrogpt} (${env.commit ?? 'n/a'}), native backend, simd ${env.native?.simd ?? 'n/a'} |`);
  L.push(`| PyTorch | ${torchLine(env)} |`);
  L.push(`| Load average | ${env.loadAverageStart.join(' ')} at start, ${(env.loadAverageEnd ?? []).join(' ')} at end${env.loadAverageStart[0] > env.cores * 0.5 ? ' — **other work was competing for the cores: numbers are noisy**' : ''} |`);
  L.push(`| Whole run | ${env.wallSeconds} s |`);
  L.push('');
  L.push('A step is one full training update on a fresh batch: zero_grad, forward + cross-entropy, backward, global grad-norm clip (1.0), AdamW (β 0.9/0.99, wd 0.1 on rank ≥ 2). Dropout 0, fp32. tok/s = B·T / median step time; ratio = ferrogpt / PyTorch (> 1: ferrogpt faster); the ratio of the fastest steps (min step times) is less sensitive to other work on the machine than the median. "Ratio of CPU time" compares the median process CPU time (user + system, all threads) per step: on a busy machine it is the steadier measure at 1 thread (at 2 threads it also counts time a thread spends waiting for the other).');
  L.push('');
  L.push('| config | threads | ferrogpt tok/s | PyTorch tok/s | ratio | target | ratio of fastest steps | ratio of CPU time per step | ferrogpt step (median, min–max) | PyTorch step (median, min–max) |');
  L.push('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const c of doc.configs) {
    for (const row of c.rows) {
      const f = row.ferrogpt;
      const t = row.torch;
      const ratio = f?.tokPerS && t?.tokPerS ? f.tokPerS / t.tokPerS : null;
      const span = (r) => (r?.median_s ? `${ms(r.median_s * 1e3)} ms (${ms(r.min_s * 1e3)}–${ms(r.max_s * 1e3)}), n=${r.step_s.length}` : r?.error ? `error: ${r.error}` : 'n/a');
      const ok = ratio == null ? '' : ratio >= c.target ? ' ✅' : ' ❌';
      const best = f?.min_s && t?.min_s ? t.min_s / f.min_s : null;
      const cpuRatio = f?.cpuMedian_s && t?.cpuMedian_s ? t.cpuMedian_s / f.cpuMedian_s : null;
      L.push(`| ${c.name} | ${row.threads} | ${fx(f?.tokPerS)} | ${fx(t?.tokPerS)} | ${ratio == null ? 'n/a' : ratio.toFixed(2)}${ok} | ≥ ${c.target} | ${best == null ? 'n/a' : best.toFixed(2)} | ${cpuRatio == null ? 'n/a' : cpuRatio.toFixed(2)} | ${span(f)} | ${span(t)} |`);
    }
  }
  L.push('');
  if (doc.configs.some((c) => c.rows.some((r) => r.ferrogptBf16))) {
    L.push('## bf16 mixed precision');
    L.push('');
    L.push("ferrogpt with `precision: 'bf16'` (GPT.precision: the matmuls read a bf16 copy of the weights, re-rounded once per update, and bf16-rounded activations, accumulating in f32; master weights, gradients, AdamW, LayerNorm, softmax and attention in f32) against its own f32 step (target ≥ 1.4× on GPT-2 small), and PyTorch's CPU autocast to bf16 (`torch.autocast('cpu', dtype=torch.bfloat16)` around the forward) in the same run.");
    L.push('');
    L.push('| config | threads | ferrogpt bf16 tok/s | vs ferrogpt f32 | PyTorch bf16 autocast tok/s | PyTorch bf16 vs its f32 | ferrogpt bf16 / PyTorch bf16 |');
    L.push('|---|--:|--:|--:|--:|--:|--:|');
    for (const c of doc.configs) {
      for (const row of c.rows) {
        const b = row.ferrogptBf16;
        const tb = row.torchBf16;
        if (!b) continue;
        const r = (x, y) => (x?.tokPerS && y?.tokPerS ? (x.tokPerS / y.tokPerS).toFixed(2) : 'n/a');
        L.push(`| ${c.name} | ${row.threads} | ${b.error ? `error: ${b.error}` : fx(b.tokPerS)} | ${r(b, row.ferrogpt)} | ${tb?.error ? `error: ${tb.error}` : fx(tb?.tokPerS)} | ${r(tb, row.torch)} | ${r(b, tb)} |`);
      }
    }
    L.push('');
  }
  if (doc.profiles?.length) {
    L.push('## Where the time goes');
    L.push('');
    L.push('ferrogpt: every backend method and every napi addon function wrapped with a timer (performance.now, ~0.1 µs per call), steps after one warm-up. "in addon" is the time inside the napi call (Rust kernel + napi argument handling); "TS checks" is base.ts\'s per-call argument checks and native.ts\'s dispatch around it; "model TS" is everything between backend calls (gpt.ts, lm.ts, optimizer.ts). PyTorch: torch.autograd.profiler self CPU time per op kind (the profiler adds overhead of its own, so its step time is longer than in the table above).');
    L.push('');
    for (const p of doc.profiles) {
      const f = p.ferrogpt;
      const t = p.torch;
      L.push(`### ${p.name}, ${f?.threads ?? p.threads} thread(s)`);
      L.push('');
      if (!f || f.error) {
        L.push(`ferrogpt profile failed: ${f?.error ?? 'not run'}`);
        L.push('');
        continue;
      }
      L.push(`ferrogpt step ${ms(f.stepMs)} ms = ${ms(f.addonMs)} ms in ${fx(f.kernelCalls)} kernel calls + ${ms(f.checksMs)} ms TS checks/dispatch + ${ms(f.storageMs)} ms zero/write/read + ${ms(f.modelTsMs)} ms model TS. Phases: zeroGrad ${ms(f.phaseMs.zeroGrad)}, forward+backward ${ms(f.phaseMs.forwardBackward)}, clip ${ms(f.phaseMs.clip)}, AdamW ${ms(f.phaseMs.adamw)} ms. Matmul kernels run at ${fx(f.matmulGflops, 1)} GFLOPS.`);
      if (t && !t.error) L.push(`PyTorch step ${ms(t.step_ms)} ms under the profiler. Phases: zero_grad ${ms(t.phase_ms.zero_grad)}, forward ${ms(t.phase_ms.forward)}, backward ${ms(t.phase_ms.backward)}, clip ${ms(t.phase_ms.clip)}, AdamW ${ms(t.phase_ms.adamw)} ms.`);
      else L.push(`PyTorch profile: ${t?.error ?? 'not run'}`);
      L.push('');
      L.push('| ferrogpt op | calls/step | ms/step | in addon | TS overhead | kernel GFLOPS | PyTorch op kind | PyTorch ms/step |');
      L.push('|---|--:|--:|--:|--:|--:|---|--:|');
      const byOp = Object.fromEntries(f.rows.map((r) => [r.op, r]));
      const used = new Set();
      for (const [, ops, tk] of KIND_MAP) {
        ops.forEach((op, i) => {
          const r = byOp[op];
          if (!r) return;
          used.add(op);
          const tcol = i === 0 ? `${tk} | ${t && !t.error ? ms(t.kinds_ms[tk]) : 'n/a'}` : ' | ';
          L.push(`| ${op} | ${fx(r.calls)} | ${ms(r.ms)} | ${ms(r.addonMs)} | ${ms(r.ms - (r.addonMs ?? 0))} | ${r.gflops ? fx(r.gflops, 1) : ''} | ${tcol} |`);
        });
      }
      for (const r of f.rows) {
        if (used.has(r.op)) continue;
        const tcol = r.op === 'adamwUpdate' ? `optimizer.step (wall) | ${t && !t.error ? ms(t.phase_ms.adamw) : 'n/a'}` : r.op === 'sumSquares' ? `clip_grad_norm_ (wall) | ${t && !t.error ? ms(t.phase_ms.clip) : 'n/a'}` : r.op === 'zero' ? `zero_grad (wall) | ${t && !t.error ? ms(t.phase_ms.zero_grad) : 'n/a'}` : ' | ';
        L.push(`| ${r.op} | ${fx(r.calls)} | ${ms(r.ms)} | ${r.addonMs == null ? '—' : ms(r.addonMs)} | ${r.addonMs == null ? '—' : ms(r.ms - r.addonMs)} | | ${tcol} |`);
      }
      L.push(`| (model TS between calls) | | ${ms(f.modelTsMs)} | | ${ms(f.modelTsMs)} | | | |`);
      L.push('');
      if (t && !t.error) {
        L.push(`PyTorch top ops (self ms/step): ${t.top_ops.slice(0, 10).map((o) => `${o.op} ${o.self_ms}`).join(', ')}.`);
        L.push('');
      }
    }
  }
  if (doc.notes?.length) {
    L.push('## Notes');
    L.push('');
    for (const n of doc.notes) L.push(`- ${n}`);
    L.push('');
  }
  return L.join('\n');
}

// ---------------------------------------------------------------- main

function parseArgs(argv) {
  const a = { suite: 'train', quick: false, threads: [1, 2], configs: ['nano', 'gpt2'], torch: true, profile: true, profileThreads: null, install: true, bf16: true };
  for (let i = 0; i < argv.length; i++) {
    const s = argv[i];
    if (s === '--quick') a.quick = true;
    else if (s === '--threads') a.threads = argv[++i].split(',').map(Number);
    else if (s === '--configs') a.configs = argv[++i].split(',');
    else if (s === '--no-torch') a.torch = false;
    else if (s === '--no-profile') a.profile = false;
    else if (s === '--profile-threads') a.profileThreads = Number(argv[++i]);
    else if (s === '--no-install') a.install = false;
    else if (s === '--no-bf16') a.bf16 = false;
    else if (s === '-h' || s === '--help') {
      console.log('usage: node bench/benchmark.js train [--quick] [--threads 1,2] [--configs nano,gpt2] [--no-torch] [--no-profile] [--profile-threads N] [--no-bf16] [--no-install]');
      process.exit(0);
    } else if (!s.startsWith('-')) a.suite = s;
    else throw new Error(`unknown option ${s}`);
  }
  for (const c of a.configs) if (!CONFIGS[c]) throw new Error(`unknown config ${c} (available: ${Object.keys(CONFIGS).join(', ')})`);
  return a;
}

export function baseEnv(lib) {
  let commit = null;
  const git = (args) => spawnSync('git', args, { cwd: root, encoding: 'utf8' }).stdout?.trim();
  try {
    const head = git(['rev-parse', '--short', 'HEAD']);
    commit = head ? (git(['status', '--porcelain', '--untracked-files=no']) ? `${head}+dirty` : head) : null;
  } catch {
    /* no git */
  }
  return {
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism?.() ?? os.cpus().length,
    memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    platform: `${process.platform}-${process.arch}`,
    node: process.version,
    ferrogpt: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version,
    commit,
    native: lib.backend.info(),
    torch: torchVersion(),
    torchBlas: blasChoice(console.log),
    loadAverageStart: os.loadavg().map((x) => +x.toFixed(2)),
  };
}

export function writeResults(name, doc, md, log) {
  const outDir = join(benchDir, 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, `${name}.json`), JSON.stringify(doc, null, 2) + '\n');
  writeFileSync(join(outDir, `${name}.md`), md);
  log('');
  log(md);
  log(`wrote ${relative(root, join(outDir, `${name}.json`))} and ${relative(root, join(outDir, `${name}.md`))} in ${doc.env.wallSeconds} s`);
}

async function runTrain(args, log) {
  const started = Date.now();
  const lib = await loadLib();
  const env = { ...baseEnv(lib), quick: args.quick };
  log(`ferrogpt ${env.ferrogpt} (${env.commit ?? 'no git'})  ${env.cpu}  ${env.cores} cores  native ${JSON.stringify(env.native)}  torch ${env.torch ?? 'n/a'}`);
  log(`load average at start: ${env.loadAverageStart.join(' ')}`);
  const profThreads = args.profileThreads ?? Math.max(...args.threads);
  const doc = { suite: 'train', env, configs: [], profiles: [], notes: [] };

  for (const key of args.configs) {
    const cfg = CONFIGS[key];
    const warmup = args.quick ? 1 : cfg.warmup;
    const steps = args.quick ? Math.max(2, Math.ceil(cfg.steps / 4)) : cfg.steps;
    const tokens = cfg.batch * cfg.model.blockSize;
    const entry = { key, name: cfg.name, model: cfg.model, batch: cfg.batch, tokensPerStep: tokens, warmup, steps, target: cfg.target, rows: [] };
    doc.configs.push(entry);
    log(`\n== ${cfg.name}: ${tokens} tokens/step, ${warmup} warm-up + ${steps} timed steps`);
    let mo = makeModel(lib, cfg);
    entry.params = mo.model.numParameters();
    for (const threads of args.threads) {
      const row = { threads };
      entry.rows.push(row);
      try {
        row.ferrogpt = summarize(ferroBench(lib, cfg, mo.model, mo.opt, threads, warmup, steps), tokens);
      } catch (e) {
        row.ferrogpt = { error: e.message.split('\n')[0] };
      }
      log(`ferrogpt ${threads}T: ${row.ferrogpt.error ?? `${fx(row.ferrogpt.tokPerS)} tok/s (median ${ms(row.ferrogpt.median_s * 1e3)} ms)`}`);
      if (args.torch) {
        const job = { model: cfg.model, batch: cfg.batch, threads, warmup, steps, clip: 1.0, optim: { lr: 1e-3, betas: [0.9, 0.99], weightDecay: 0.1 } };
        row.torch = summarize(torchRun('bench', job, threads), tokens);
        log(`PyTorch  ${threads}T: ${row.torch.error ?? `${fx(row.torch.tokPerS)} tok/s (median ${ms(row.torch.median_s * 1e3)} ms)`}`);
        if (row.ferrogpt?.tokPerS && row.torch?.tokPerS) log(`ratio ${(row.ferrogpt.tokPerS / row.torch.tokPerS).toFixed(2)} (target ≥ ${cfg.target})`);
      }
      if (args.bf16) {
        // bf16 mixed precision: the same model and optimizer, GPT.precision 'bf16' (train's
        // precision option), next to PyTorch's CPU autocast to bf16.
        try {
          mo.model.precision = 'bf16';
          row.ferrogptBf16 = summarize(ferroBench(lib, cfg, mo.model, mo.opt, threads, warmup, steps), tokens);
        } catch (e) {
          row.ferrogptBf16 = { error: e.message.split('\n')[0] };
        } finally {
          mo.model.precision = 'f32';
        }
        log(`ferrogpt bf16 ${threads}T: ${row.ferrogptBf16.error ?? `${fx(row.ferrogptBf16.tokPerS)} tok/s (median ${ms(row.ferrogptBf16.median_s * 1e3)} ms)`}`);
        if (args.torch) {
          const job = { model: cfg.model, batch: cfg.batch, threads, warmup, steps, clip: 1.0, optim: { lr: 1e-3, betas: [0.9, 0.99], weightDecay: 0.1 }, autocast: 'bf16' };
          row.torchBf16 = summarize(torchRun('bench', job, threads), tokens);
          log(`PyTorch bf16 autocast ${threads}T: ${row.torchBf16.error ?? `${fx(row.torchBf16.tokPerS)} tok/s (median ${ms(row.torchBf16.median_s * 1e3)} ms)`}`);
        }
      }
    }
    if (args.profile) {
      const psteps = args.quick ? 1 : key === 'gpt2' ? 1 : 20;
      const prof = { key, name: cfg.name, threads: profThreads };
      try {
        prof.ferrogpt = ferroProfile(lib, cfg, mo.model, mo.opt, profThreads, psteps);
      } catch (e) {
        prof.ferrogpt = { error: e.message.split('\n')[0] };
      }
      log(`ferrogpt profile ${profThreads}T: ${prof.ferrogpt.error ?? `${ms(prof.ferrogpt.stepMs)} ms/step, ${ms(prof.ferrogpt.addonMs)} in addon, ${ms(prof.ferrogpt.checksMs)} checks, ${ms(prof.ferrogpt.storageMs)} storage, ${ms(prof.ferrogpt.modelTsMs)} model TS`}`);
      if (args.torch) {
        prof.torch = torchRun('profile', { model: cfg.model, batch: cfg.batch, threads: profThreads, warmup: key === 'gpt2' ? 1 : 3, steps: psteps, optim: { weightDecay: 0.1 } }, profThreads);
        log(`PyTorch profile ${profThreads}T: ${prof.torch.error ?? `${ms(prof.torch.step_ms)} ms/step`}`);
      }
      doc.profiles.push(prof);
    }
    mo.opt.dispose();
    mo.model.dispose();
    mo = null;
  }
  env.loadAverageEnd = os.loadavg().map((x) => +x.toFixed(2));
  env.wallSeconds = +((Date.now() - started) / 1e3).toFixed(1);
  if (env.loadAverageStart[0] > env.cores * 0.5) doc.notes.push(`The load average was ${env.loadAverageStart[0]} on ${env.cores} cores at the start: other processes shared the cores, so absolute numbers are low and ratios noisy. Rerun on an idle machine.`);
  writeResults('train', doc, renderTrain(doc), log);
}

/** Debian packages the PyTorch side needs: torch, and OpenBLAS behind its libblas.so.3
 * (without it Debian's reference BLAS runs PyTorch's matmuls ~50x slower). */
const TORCH_PACKAGES = ['python3-torch', 'libopenblas0-openmp'];

/**
 * Makes sure the PyTorch peer can run: on a fresh machine, as root on Debian, installs
 * TORCH_PACKAGES (and says so) unless `install` is false (--no-install); otherwise prints
 * the command that would. The suites still run without it, with the PyTorch columns marked
 * as not measured.
 */
export function ensurePyTorch(log, install = true) {
  const debian = existsSync('/etc/debian_version');
  const installed = (pkg) => spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' }).stdout?.includes('install ok installed');
  const missing = debian ? TORCH_PACKAGES.filter((p) => !installed(p)) : torchVersion() == null ? ['PyTorch'] : [];
  if (missing.length === 0) return;
  if (install && canAptInstall()) {
    log(`installing Debian packages ${missing.join(' ')} for the PyTorch comparison`);
    if (aptInstall(missing)) return;
  }
  log(`PyTorch comparison needs ${missing.join(', ')}: ${debian ? aptCommand(missing) : 'install PyTorch for ' + PYTHON} (as root), then rerun`);
}

/** Entry from bench/benchmark.js for the `train` and `quality` suites. */
export async function main(argv) {
  const log = (s) => console.log(s);
  const suite = argv.find((s) => !s.startsWith('-'));
  if (suite === 'quality') return (await import('./train.quality.js')).main(argv, log);
  const args = parseArgs(argv);
  if (args.torch) ensurePyTorch(log, args.install);
  await runTrain(args, log);
}
