// Suite "kernels": matmul GFLOPS against the machine's peak and against peers at equal
// thread counts, and causal attention forward+backward time and memory, native vs the
// reference backend. Called by bench/benchmark.js, which prints and writes the results.

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { measure } from '../lib/timing.js';
import { randomF32 } from '../lib/rng.js';
import { MATMUL_SHAPES, QUICK_SHAPES, sampleError } from '../lib/matmul.js';
import { setNativeThreads, addonCall } from '../lib/ferrogpt.js';
import { calibrate, peakOneThread, peakParallel } from '../lib/peak.js';
import { errText } from '../lib/util.js';

export { MATMUL_SHAPES } from '../lib/matmul.js';


/**
 * matmulForward on `backend`; `packed`: matmulForwardPacked over the weight packed once
 * beforehand, outside the timing (what GPT.packWeights keeps), so no call repacks it.
 */
async function ferroMatmul(backend, M, K, N, x, W, packed = false) {
  const inp = backend.alloc(M * K); // (M, K)
  const w = backend.alloc(N * K); // (N, K)
  const out = backend.alloc(M * N); // (M, N)
  backend.write(inp, x);
  backend.write(w, W);
  // The registry's helper, from the same dist/ the backends come from (only packed rows need it).
  const P = packed ? (await import(new URL('../../dist/src/backend/kernels.js', import.meta.url))).packedRows(N) : 0;
  const wp = packed ? backend.alloc(P * K) : null; // (P, K), the backend's packed layout
  if (wp) backend.packWeight(wp, w, K, N, P);
  return {
    run: wp ? () => backend.matmulForwardPacked(out, inp, w, wp, null, M, K, N, P) : () => backend.matmulForward(out, inp, w, null, M, K, N),
    read: () => backend.read(out),
    dispose: () => {
      for (const t of [inp, w, out, ...(wp ? [wp] : [])]) backend.free(t);
    },
  };
}

function gcFn() {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc');
}

export async function run(ctx) {
  const { fg, peers, quick, log, nThreads } = ctx;
  const res = { peak: null, matmul: [], attention: [], notes: [] };
  const gc = gcFn();
  const timing = quick
    ? { maxTime: 0.2, minSamples: 2, slowCallS: 0.5, slowCalls: 1 }
    : { maxTime: 1, minSamples: 3, slowCallS: 0.75, slowCalls: 2 };

  // ---------- peak ----------
  // Sampled at the start, after every matmul shape and at the end; the best of each is the
  // peak (on a shared machine most samples lose the core to other work, and a kernel cannot
  // beat the FMA rate, so the maximum is the honest estimate). % peak is computed at the end.
  const peakState = { iters: 0, one: [], par: [], parError: null };
  const samplePeak = async (where) => {
    if (!fg.addon) return;
    if (typeof fg.addon.peakGflops !== 'function') {
      if (!res.notes.some((n) => n.startsWith('peak:'))) res.notes.push('peak: not measured (the addon was built without the bench feature: npm run build:native:bench)');
      return;
    }
    try {
      if (!peakState.iters) peakState.iters = calibrate(fg.addon, quick ? 0.05 : 0.1);
      const one = peakOneThread(fg.addon, peakState.iters, quick ? 2 : where === 'start' ? 10 : 4);
      peakState.one.push(one.gflops);
      let par = null;
      if (nThreads > 1 && !peakState.parError) {
        try {
          par = await peakParallel(fg.addonHow, peakState.iters, nThreads, quick ? 1 : 3);
          peakState.par.push(par.gflops);
        } catch (e) {
          peakState.parError = errText(e);
        }
      }
      if (where === 'start') log(`peak fp32 FMA (first sample): 1 thread ${one.gflops.toFixed(1)} GFLOPS${par ? `; ${nThreads} threads in parallel ${par.gflops.toFixed(1)} GFLOPS` : ''}`);
    } catch (e) {
      if (!res.notes.some((n) => n.startsWith('peak:'))) res.notes.push(`peak: ${errText(e)}`);
    }
  };
  const finishPeak = () => {
    if (!peakState.one.length) {
      if (!res.notes.some((n) => n.startsWith('peak:'))) res.notes.push(`peak: not measured (${fg.addon ? 'peakGflops failed' : `no addon: ${fg.errors.addon}`})`);
      return;
    }
    const one = Math.max(...peakState.one);
    const par = peakState.par.length ? Math.max(...peakState.par) : null;
    let nG = one * nThreads;
    let method = nThreads > 1 ? `per-core × ${nThreads} (${peakState.parError ? `parallel measurement failed: ${peakState.parError}` : 'not measured in parallel'})` : 'single core';
    if (par != null) {
      // On idle cores n threads reach ~n× one (a little less if the all-core clock is lower).
      // Well under that, the cores were shared with other work and the sum is too low, which
      // would inflate % peak: then the stricter per-core × n is used.
      if (par >= 0.9 * nThreads * one) {
        nG = par;
        method = `measured: ${nThreads} worker threads calling peakGflops at once`;
      } else {
        method = `per-core × ${nThreads}; measured in parallel only ${par.toFixed(1)} GFLOPS (cores busy with other work)`;
        res.notes.push(`The ${nThreads}-thread peak measured in parallel (best ${par.toFixed(1)} GFLOPS) stayed under 0.9 × ${nThreads} × the 1-thread peak: the cores were not free. % peak for ${nThreads}-thread rows uses per-core × ${nThreads} instead.`);
      }
    }
    res.peak = { iters: peakState.iters, oneThread: one, oneThreadSamples: peakState.one, nThreads: nG, threads: nThreads, nMethod: method, nThreadsParallelSamples: peakState.par };
    log(`peak fp32 FMA (best of ${peakState.one.length} samplings): 1 thread ${one.toFixed(1)} GFLOPS; ${nThreads} threads ${nG.toFixed(1)} GFLOPS (${method})`);
    for (const e of res.matmul) {
      for (const r of Object.values(e.rows)) if (r.gflops != null) r.pctPeak = (100 * r.gflops) / (r.threads > 1 ? nG : one);
    }
    const over = res.matmul.flatMap((e) => Object.entries(e.rows).filter(([, r]) => r.pctPeak > 100).map(([k]) => `${k} @ ${e.M}×${e.K}×${e.N}`));
    if (over.length) res.notes.push(`Above 100% of the measured peak: ${over.join(', ')} — the peak samples all lost the core to other work; treat % peak as unreliable in this run.`);
  };
  await samplePeak('start');

  // ---------- matmul ----------
  const impls = [];
  const nativeRow = (label, threads, packed = false) => ({
    label,
    threads,
    available: fg.native ? null : `native backend: ${fg.errors.native}`,
    make: async (M, K, N, x, W) => {
      const got = setNativeThreads(fg, threads);
      if (got !== threads) throw new Error(`setThreads(${threads}) left ${got} threads`);
      return ferroMatmul(fg.native, M, K, N, x, W, packed);
    },
  });
  for (const packed of [false, true]) {
    const kind = packed ? 'native-packed' : 'native';
    impls.push(nativeRow(`ferrogpt-${kind}-1T`, 1, packed));
    if (nThreads > 1) impls.push(nativeRow(`ferrogpt-${kind}-${nThreads}T`, nThreads, packed));
  }
  impls.push({
    label: 'ferrogpt-wasm',
    threads: 1,
    available: fg.wasm ? null : `wasm backend: ${fg.errors.wasm}`,
    make: async (M, K, N, x, W) => {
      // One thread, like the tfjs-wasm peer: the loader's default variant is threaded.
      if (typeof fg.wasm.setThreads === 'function') fg.wasm.setThreads(1);
      if (fg.wasm.info().threads !== 1) throw new Error(`the wasm backend runs ${fg.wasm.info().threads} threads, not 1`);
      return ferroMatmul(fg.wasm, M, K, N, x, W);
    },
  });
  for (const t of nThreads > 1 ? [1, nThreads] : [1]) {
    impls.push({
      label: `ort-${t}T`,
      threads: t,
      async: true,
      available: peers.ort ? null : `onnxruntime-node: ${peers.errors.ort}`,
      make: async (M, K, N, x, W) => peers.ort.ortMatmul(M, K, N, x, W, t),
    });
  }
  for (const variant of ['preTransposed', 'transposeB']) {
    impls.push({
      label: variant === 'transposeB' ? 'tfjs-wasm-transB' : 'tfjs-wasm',
      threads: peers.tfjsInfo?.threads ?? 1,
      variant,
      available: peers.tfjs ? null : `tfjs-backend-wasm: ${peers.errors.tfjs}`,
      make: async (M, K, N, x, W) => peers.tfjs.tfjsMatmul(M, K, N, x, W, variant),
    });
  }

  const shapes = ctx.only === 'attention' ? [] : quick ? QUICK_SHAPES : MATMUL_SHAPES;
  for (const shape of shapes) {
    const [M, K, N] = shape;
    const flop = 2 * M * K * N;
    const x = randomF32(M * K, 1); // (M, K)
    const W = randomF32(N * K, 2, 1 / Math.sqrt(K)); // (N, K)
    const entry = { M, K, N, gflop: flop / 1e9, rows: {} };
    log(`matmul ${M}x${K}x${N} (${(flop / 1e9).toFixed(2)} GFLOP)`);
    for (const impl of impls) {
      if (impl.available) {
        entry.rows[impl.label] = { threads: impl.threads, error: impl.available };
        continue;
      }
      let h = null;
      try {
        if (impl.variant === 'transposeB' && shapes.indexOf(shape) > 0 && !ctx.fullTransB) {
          entry.rows[impl.label] = { threads: impl.threads, skipped: 'tfjs transposeB is measured on the first shape only; pass --full-transb' };
          continue;
        }
        h = await impl.make(M, K, N, x, W);
        // tfjs-wasm's transposeB path is ~10x slower than the others: a warm-up call and one
        // timed call, on the first shape only unless --full-transb (it would add ~30 s).
        const slowPeer = impl.variant === 'transposeB';
        const t = await measure(h.run, { async: !!impl.async, ...timing, ...(slowPeer ? { slowCallS: 0, slowCalls: 1 } : {}) });
        const err = sampleError(h.read(), x, W, M, K, N);
        const gflops = flop / t.median_s / 1e9;
        entry.rows[impl.label] = { threads: impl.threads, gflops, pctPeak: null, maxAbsErr: err, ...t };
        log(`  ${impl.label.padEnd(22)} ${gflops.toFixed(1).padStart(7)} GFLOPS  (median ${(t.median_s * 1e3).toFixed(2)} ms, ${t.samples} samples, ${t.method}; max |err| ${err.toExponential(1)})`);
      } catch (e) {
        entry.rows[impl.label] = { threads: impl.threads, error: errText(e) };
        log(`  ${impl.label.padEnd(22)} error: ${errText(e)}`);
      } finally {
        if (h) await h.dispose();
        h = null;
      }
    }
    res.matmul.push(entry);
    gc();
    await samplePeak('shape');
  }

  // The ceiling of the wasm rows: simd128 has no fused multiply-add, so its peak is a
  // multiply then an add per 4 lanes, measured like the native peak (best of samples).
  if (fg.wasm?.peakGflops) {
    try {
      res.wasmPeak = { gflops: fg.wasm.peakGflops(quick ? 2e7 : 1e8), simd: fg.wasm.info().simd }; // best of its own 3 runs
      log(`wasm ${res.wasmPeak.simd} peak (multiply + add, no FMA): ${res.wasmPeak.gflops.toFixed(1)} GFLOPS`);
    } catch (e) {
      res.notes.push(`wasm peak: ${errText(e)}`);
    }
  }

  // ---------- attention ----------
  if (ctx.only !== 'matmul') res.attention = await attentionSuite(ctx);
  await samplePeak('end');
  finishPeak();
  return res;
}


/** Runs bench/lib/attention-child.js (one measurement in a fresh process); resolves its JSON. */
function runChild(args, timeoutS) {
  return new Promise((resolve, reject) => {
    const file = fileURLToPath(new URL('../lib/attention-child.js', import.meta.url));
    execFile(process.execPath, ['--expose-gc', file, JSON.stringify(args)], { timeout: timeoutS * 1000, maxBuffer: 1 << 20, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) return reject(new Error(err.killed ? `timed out after ${timeoutS} s` : (stderr || err.message).trim().split('\n').filter((l) => /Error/.test(l))[0] ?? err.message));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop()));
      } catch (e) {
        reject(new Error(`bad child output: ${stdout.slice(0, 200)}`));
      }
    });
  });
}

function maxDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function readDump(path) {
  const b = readFileSync(path);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

async function attentionSuite(ctx) {
  const { fg, quick, log, nThreads, root } = ctx;
  const [B, NH, HS] = quick ? [1, 2, 16] : [4, 12, 64];
  const C = NH * HS;
  const Ts = quick ? [32, 64] : [256, 1024];
  const capS = ctx.refCapS;
  const out = [];
  const tmp = mkdtempSync(join(os.tmpdir(), 'ferrogpt-bench-'));
  let refPerT2 = null; // reference seconds / T² at the smaller T, to predict the larger
  try {
    for (const T of Ts) {
      // Forward ≈ 2·B·NH·T²·HS flops (QKᵀ and AV over the causal half), backward ≈ 2× that.
      const flop = 3 * 2 * B * NH * T * T * HS;
      const e = { B, NH, HS, T, C, approxGflop: flop / 1e9, native: null, reference: null };
      log(`attention fwd+bwd B=${B} NH=${NH} HS=${HS} T=${T} (fresh process per backend)`);
      const compare = T === Ts[0] && fg.native && fg.reference;
      const base = { root, B, T, C, NH, threads: nThreads, quick };
      if (fg.native) {
        try {
          e.native = await runChild({ ...base, backend: 'native', dump: compare ? join(tmp, 'native.f32') : null }, 120);
          e.native.approxGflops = flop / e.native.median_s / 1e9;
          const m = e.native.memory;
          log(`  native ${e.native.threads}T: median ${(e.native.median_s * 1e3).toFixed(1)} ms (${e.native.samples} samples); peak RSS +${fmtBytes(m.peakRssDelta)} over the first call; scratch ${m.scratchBytes != null ? fmtBytes(m.scratchBytes) : 'not reported by the addon'}, lse ${fmtBytes(m.lseBytes)}`);
        } catch (err) {
          e.native = { error: errText(err) };
          log(`  native error: ${errText(err)}`);
        }
      } else e.native = { error: `native backend: ${fg.errors.native}` };

      if (fg.reference) {
        const predicted = refPerT2 != null ? refPerT2 * T * T : null;
        if (predicted != null && predicted > capS) {
          e.reference = { skipped: `predicted ${predicted.toFixed(0)} s (T² scaling from T=${Ts[0]}) exceeds the cap of ${capS} s (--ref-cap)`, predicted_s: predicted };
          log(`  reference: skipped, predicted ${predicted.toFixed(0)} s > cap ${capS} s`);
        } else {
          try {
            // One call, no warm-up: the reference is plain TypeScript loops and slow at T = 1024.
            e.reference = await runChild({ ...base, backend: 'reference', dump: compare ? join(tmp, 'reference.f32') : null }, Math.max(60, 3 * capS));
            refPerT2 = e.reference.median_s / (T * T);
            const m = e.reference.memory;
            log(`  reference: ${e.reference.median_s.toFixed(2)} s (1 call); peak RSS +${fmtBytes(m.peakRssDelta)}; typed arrays allocated ${fmtBytes(m.typedArrayBytesAllocated)} in ${m.typedArrayCount} (largest ${fmtBytes(m.largestTypedArray)})`);
          } catch (err) {
            e.reference = { error: errText(err) };
            log(`  reference error: ${errText(err)}`);
          }
        }
      } else e.reference = { error: `reference backend: ${fg.errors.reference}` };

      if (compare && e.native?.median_s != null && e.reference?.median_s != null) {
        const a = readDump(join(tmp, 'native.f32'));
        const b = readDump(join(tmp, 'reference.f32'));
        const n = B * T * C;
        e.maxAbsDiffOut = maxDiff(a.subarray(0, n), b.subarray(0, n));
        e.maxAbsDiffDqkv = maxDiff(a.subarray(n), b.subarray(n));
        log(`  max |native - reference|: out ${e.maxAbsDiffOut.toExponential(1)}, dqkv ${e.maxAbsDiffDqkv.toExponential(1)}`);
      }
      if (e.native?.median_s && e.reference?.median_s) e.speedup = e.reference.median_s / e.native.median_s;
      out.push(e);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}

export function fmtBytes(b) {
  if (b == null) return 'n/a';
  const a = Math.abs(b);
  if (a >= 1 << 30) return `${(b / (1 << 30)).toFixed(2)} GiB`;
  if (a >= 1 << 20) return `${(b / (1 << 20)).toFixed(1)} MiB`;
  if (a >= 1 << 10) return `${(b / (1 << 10)).toFixed(1)} KiB`;
  return `${b} B`;
}
