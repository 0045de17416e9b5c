// The wasm measurements of the browser suite (bench/suites/browser.js), written once and run
// in two places: in the Chromium page (bench/browser/page.js bundles this file) and in a
// Node child (bench/lib/wasm-node-child.js, started with --experimental-wasm-relaxed-simd).
// So both sides time the same calls the same way; no node: imports here.
//
// What it measures, for each ferrogpt wasm variant and thread count it is asked for:
//   - matmul out (M,N) = x (M,K) · W (N,K)ᵀ on bench:kernels' shapes (bench/lib/matmul.js), in
//     GFLOPS, and the same product on the peers the caller passes (onnxruntime-web,
//     tfjs-backend-wasm in the page); every result is checked against float64 dot products
//     at sampled entries (sampleError) and against ferrogpt's own output (max |Δ|), so a peer
//     that computes nothing, or the wrong thing, shows;
//   - the nanoGPT training step (bench/lib/train-step.js, bench:train's `nano` config: the
//     full step, zeroGrad, forward + loss, backward, clip, AdamW) in ms;
//   - greedy KV-cached decode at GPT-2 small's shape (bench/lib/decode.js, random weights,
//     batch 1) in tokens/s.
// A variant this build or this engine does not have, or one that cannot run the thread
// count, gives rows with `error` (the reason) instead of numbers.
//
// Timing: each row is warmed up, then timed in rounds (3 in a full run) in which the rows
// compared with each other take turns; in a round `measure` times calls one by one until it
// has its share of minSamples and of the time budget. The median over all rounds' samples
// is reported (min and max kept).
// Contention: when the caller gives ctx.contention(t0, t1) (the cores other processes took
// between two Date.now() times, bench/lib/cpu-monitor.js), a measurement during which they
// took CONTENDED cores or more is taken again after ctx.waitIdle(), up to ctx.retries times;
// every row keeps othersCores and attempts, so the report can mark the ones that stayed
// contended.

import { MATMUL_SHAPES, QUICK_SHAPES, sampleError } from './matmul.js';
import { errText, median } from './util.js';
import { randomF32, mulberry32 } from './rng.js';
import { CONFIGS, ferroStep, makeModel, randomBatches } from './train-step.js';
import { GPT2, QUICK as QUICK_DECODE, timeDecode } from './decode.js';

/** Best first: the first one available at a thread count is "ours" for the peer ratios. */
export const VARIANTS = ['relaxed-simd-threads', 'simd128-threads', 'simd128', 'scalar'];
/**
 * "Today's" build (bench/lib/baseline.js: the library at the commit before the threaded and
 * relaxed-SIMD builds, its simd128 module built as it shipped), when the caller gives
 * ctx.todayApi: measured like a variant, with its own GPT, AdamW and kernels.
 */
export const TODAY = 'today-simd128';
export const BASELINE = 'simd128'; // one thread: what the wasm backend was before threads
export const isThreaded = (v) => v.endsWith('-threads');
export const CONTENDED = 0.15; // cores of other processes that make a measurement suspect

/**
 * Times `fn` (sync or async): `warmup` calls, then one timed call at a time until there are
 * minSamples (slowSamples when a warm-up call took over slowMs) and budgetS has passed, or
 * maxSamples. Returns { median_ms, min_ms, max_ms, samples, warmup_ms, times }.
 */
export async function measure(fn, { warmup = 1, minSamples = 5, maxSamples = 40, budgetS = 1, slowMs = 500, slowSamples = 3 } = {}) {
  const t0 = performance.now();
  for (let i = 0; i < warmup; i++) await fn();
  const warmupMs = (performance.now() - t0) / Math.max(1, warmup);
  const need = warmupMs >= slowMs ? Math.min(minSamples, slowSamples) : minSamples;
  const samples = [];
  const start = performance.now();
  while (samples.length < maxSamples && (samples.length < need || performance.now() - start < budgetS * 1e3)) {
    const t = performance.now();
    await fn();
    samples.push(performance.now() - t);
  }
  return { median_ms: median(samples), min_ms: Math.min(...samples), max_ms: Math.max(...samples), samples: samples.length, warmup_ms: warmupMs, times: samples };
}

const sleep = (ms) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());

export function maxAbsDiff(a, b) {
  if (!a || !b || a.length !== b.length) return null;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = d; // NaN propagates
  }
  return m;
}

/**
 * A backend of `variant` from `api.createWasmBackend`, or { error }. The new API takes
 * { variant, threads }; a build from before it knows only { simd } and the variants
 * 'simd128' | 'scalar', so 'scalar' falls back to { simd: false }, and a variant the build
 * does not make is refused here (its b.variant says what came instead).
 */
export async function openVariant(api, variant, threads) {
  if (variant === TODAY) {
    try {
      const b = await api.createWasmBackend({ simd: true });
      if (b.variant !== 'simd128') return { error: `today's build gave ${b.variant}, not simd128` };
      return { backend: b, info: b.info() };
    } catch (e) {
      return { error: `today's build: createWasmBackend({ simd: true }) threw: ${errText(e)}` };
    }
  }
  const opts = isThreaded(variant) ? { variant, threads } : { variant };
  let b;
  try {
    b = await api.createWasmBackend(opts);
  } catch (e) {
    return { error: `createWasmBackend(${JSON.stringify(opts)}) threw: ${errText(e)}` };
  }
  if (b.variant !== variant && variant === 'scalar') {
    try {
      b = await api.createWasmBackend({ simd: false });
    } catch (e) {
      return { error: `createWasmBackend({ simd: false }) threw: ${errText(e)}` };
    }
  }
  if (b.variant !== variant) return { error: `this build has no ${variant} variant (createWasmBackend(${JSON.stringify(opts)}) gave ${b.variant})` };
  return { backend: b, info: b.info() };
}

/** Puts `b` on n threads and waits for them; throws when it cannot. */
export async function useThreads(b, variant, n) {
  if (!isThreaded(variant)) {
    if (n !== 1) throw new Error(`${variant} is single-threaded`);
  } else {
    if (typeof b.setThreads !== 'function') throw new Error(`${variant}: the backend has no setThreads`);
    b.setThreads(n);
    if (typeof b.ready === 'function') await b.ready();
  }
  const got = b.info().threads;
  if (got !== n) throw new Error(`${variant}: info().threads is ${got}, not ${n}`);
}

/** A runnable matmul on a ferrogpt backend (tensors allocated and written outside the timing). */
function ferroMatmul(b, M, K, N, x, W) {
  const inp = b.alloc(M * K); // (M, K)
  const w = b.alloc(N * K); // (N, K)
  const out = b.alloc(M * N); // (M, N)
  b.write(inp, x);
  b.write(w, W);
  return {
    run: () => b.matmulForward(out, inp, w, null, M, K, N),
    read: () => b.read(out),
    dispose: () => {
      for (const t of [inp, w, out]) b.free(t);
    },
  };
}

/**
 * GPT-2-small-shaped weights without GPT.create's 8 s of normal draws: a seeded uniform of
 * the same std (0.02; the residual projections' 0.02/√(2L) does not change the speed), ones
 * and zeros where init.ts puts them. Decode speed does not depend on the values.
 */
export function fastParameters(api, cfg) {
  const { specs, total } = api.paramLayout(api.resolveConfig(cfg));
  const all = new Float32Array(total);
  const r = mulberry32(7);
  const a = 0.02 * Math.sqrt(3);
  for (const s of specs) {
    const v = all.subarray(s.offset, s.offset + s.length);
    if (s.init === 'ones') v.fill(1);
    else if (s.init !== 'zeros') for (let i = 0; i < v.length; i++) v[i] = (r() * 2 - 1) * a;
  }
  return specs.map((s) => [s.name, all.subarray(s.offset, s.offset + s.length)]);
}

const contendedNote = (r) => (r.othersCores == null ? '' : `; others ${r.othersCores.toFixed(2)} cores${r.attempts > (r.rounds ?? 1) ? `, ${r.attempts - (r.rounds ?? 1)} round(s) taken again` : ''}`);

/**
 * What a run does: shapes, timing budgets, step counts, decode lengths, rounds. settleMs
 * (--settle MS): a pause before each matmul turn. 0 by default: with 300 ms, the threaded
 * variants at 2 threads ran whole rounds at the 1-thread rate (31 against 66 GFLOPS), in
 * Chromium and in Node. Both threads were busy meanwhile (CPU/wall 2.0 in Node), so it is
 * this VM's cores running slower after idling, not the pool waking late; kept as an option
 * to reproduce that.
 */
export function plan(quick, settleMs = 0) {
  const nano = CONFIGS.nano;
  return quick
    ? {
        rounds: 1,
        settleMs,
        shapes: QUICK_SHAPES,
        timing: { warmup: 1, minSamples: 3, maxSamples: 20, budgetS: 0.2 },
        train: { cfg: nano, warmup: 1, steps: 3 },
        decode: { cfg: QUICK_DECODE, prompt: 8, newTokens: 8, name: 'toy (2L 4H 128d, V 512)' },
      }
    : {
        rounds: 3,
        settleMs,
        shapes: MATMUL_SHAPES,
        timing: { warmup: 1, minSamples: 6, maxSamples: 45, budgetS: 1.2 },
        train: { cfg: nano, warmup: 3, steps: 15 },
        decode: { cfg: GPT2, prompt: 16, newTokens: 30, name: 'GPT-2 small (12L 12H 768d, V 50257)' },
      };
}

/** The timing of one round: its share of the samples and of the time budget, no warm-up (done before the rounds). */
const roundTiming = (t, rounds) => ({ warmup: 0, minSamples: Math.max(1, Math.ceil(t.minSamples / rounds)), maxSamples: Math.max(1, Math.ceil(t.maxSamples / rounds)), budgetS: t.budgetS / rounds, slowMs: t.slowMs ?? 500, slowSamples: 1 });

/** Summary of the samples of every round of one row. */
function pooled(times, rounds) {
  return { median_ms: median(times), min_ms: Math.min(...times), max_ms: Math.max(...times), samples: times.length, rounds };
}

/**
 * Runs the measurements. ctx: { api, threads: [n, ...], variants, quick, parts: { matmul,
 * train, decode }, peers: [{ name, threads, make(M, K, N, x, W) → { run, read, dispose } }],
 * log, contention?(t0, t1) → cores, waitIdle?(maxS), retries?, retryBudgetS?, settleMs?, shapes? }.
 * api: { createWasmBackend, GPT, AdamW, clipGradNorm, paramLayout, resolveConfig }.
 * Returns { variants, matmul, train, decode, plan } (plain JSON).
 *
 * Every row is measured in P.rounds rounds, and the rows that are compared with each other
 * (the variants and peers of a shape at a thread count; the variants' training steps; their
 * decodes) take turns round by round, so a slow spell of the machine lands on all of them
 * instead of on whichever ran during it. The median is over the samples of all rounds.
 */
export async function runWasmSuite(ctx) {
  const { api, log = () => {} } = ctx;
  const P = plan(ctx.quick, ctx.settleMs ?? 0);
  if (ctx.shapes) P.shapes = ctx.shapes;
  const R = P.rounds;
  const variants = [...(ctx.variants ?? VARIANTS), ...(ctx.todayApi ? [TODAY] : [])];
  const apiFor = (v) => (v === TODAY ? ctx.todayApi : api);
  const threadsList = ctx.threads;
  const parts = { matmul: true, train: true, decode: true, ...ctx.parts };
  const peers = ctx.peers ?? [];
  const retries = ctx.retries ?? (ctx.quick ? 0 : 2);
  let retryBudgetMs = (ctx.retryBudgetS ?? 180) * 1e3; // for the whole run: waits and measuring again
  /**
   * Runs `once` (→ { times, ... }) until other processes left the cores alone, or retries (or
   * their time budget) run out; returns its result with othersCores and attempts.
   */
  const clean = async (label, once) => {
    for (let attempt = 1; ; attempt++) {
      const t0 = Date.now();
      const r = await once();
      const t1 = Date.now();
      if (attempt > 1) retryBudgetMs -= t1 - t0;
      const others = ctx.contention ? await ctx.contention(t0, t1) : null;
      Object.assign(r, { othersCores: others, attempts: attempt });
      if (others == null || others < CONTENDED || attempt > retries || retryBudgetMs <= 0) return r;
      log(`  ${label.padEnd(28)} (other processes took ${others.toFixed(2)} cores meanwhile: measuring again)`);
      const w0 = Date.now();
      if (ctx.waitIdle) await ctx.waitIdle(Math.min(30, retryBudgetMs / 1e3));
      retryBudgetMs -= Date.now() - w0;
    }
  };
  /** Folds one round's contention into a row: the worst round counts. */
  const addRound = (row, r, value) => {
    if (value != null) (row.roundMedians ??= []).push(+value.toFixed(3));
    row.othersCores = r.othersCores == null ? (row.othersCores ?? null) : Math.max(row.othersCores ?? 0, r.othersCores);
    row.attempts = (row.attempts ?? 0) + r.attempts;
  };
  const out = {
    variants: {},
    matmul: [],
    train: [],
    decode: [],
    plan: { rounds: R, settleMs: P.settleMs, shapes: P.shapes, timing: P.timing, train: { config: P.train.cfg.name, warmup: P.train.warmup, steps: P.train.steps }, decode: { config: P.decode.name, prompt: P.decode.prompt, newTokens: P.decode.newTokens } },
  };

  // One backend per variant, made once and reused at every thread count.
  const made = new Map();
  const backendFor = async (variant) => {
    if (!made.has(variant)) {
      const r = await openVariant(apiFor(variant), variant, Math.max(...threadsList));
      made.set(variant, r);
      out.variants[variant] = r.error ? { error: r.error } : { info: r.info };
      log(`  ${variant}: ${r.error ? `n/a (${r.error})` : JSON.stringify(r.info)}`);
    }
    return made.get(variant);
  };
  /** The backend of `variant` on n threads, or { error }. */
  const ready = async (variant, n) => {
    const r = await backendFor(variant);
    if (r.error) return { error: r.error };
    try {
      await useThreads(r.backend, variant, n);
      return { backend: r.backend };
    } catch (e) {
      return { error: errText(e) };
    }
  };
  for (const v of variants) await backendFor(v);
  const tag = (v, n) => `${v} ${n}T`.padEnd(28);

  if (parts.matmul) {
    const rt = roundTiming(P.timing, R);
    for (const [M, K, N] of P.shapes) {
      const flop = 2 * M * K * N;
      const x = randomF32(M * K, 1); // (M, K), the inputs bench:kernels uses
      const W = randomF32(N * K, 2, 1 / Math.sqrt(K)); // (N, K)
      const entry = { M, K, N, gflop: flop / 1e9, rows: {} };
      log(`matmul ${M}x${K}x${N} (${(flop / 1e9).toFixed(2)} GFLOP)`);
      for (const n of threadsList) {
        // Every row of this shape and thread count: made, warmed up, then timed in turns.
        const live = [];
        const fail = (label, base, e) => {
          entry.rows[label] = { ...base, error: errText(e) };
          log(`  ${label.padEnd(28)} error: ${errText(e)}`);
        };
        const candidates = [];
        for (const v of variants) candidates.push({ label: `${v} ${n}T`, base: { impl: 'ferrogpt', variant: v, threads: n }, variant: v });
        for (const p of peers.filter((q) => q.threads === n)) candidates.push({ label: `${p.name} ${n}T`, base: { impl: p.name, threads: n }, peer: p });
        for (const c of candidates) {
          try {
            if (c.variant) {
              const r = await ready(c.variant, n);
              if (r.error) {
                entry.rows[c.label] = { ...c.base, error: r.error };
                continue;
              }
              c.h = ferroMatmul(r.backend, M, K, N, x, W);
            } else c.h = await c.peer.make(M, K, N, x, W);
            c.times = [];
            c.row = { ...c.base };
            live.push(c);
          } catch (e) {
            fail(c.label, c.base, e);
            if (c.h) await c.h.dispose();
          }
        }
        let ours = null; // the output of the first ferrogpt row at this thread count
        try {
          // ferrogpt's variants take turns with each other, then the peers with each other:
          // a peer's thread pool that keeps spinning after its calls (onnxruntime's does)
          // would otherwise take a core from the ferrogpt row after it, in the same process
          // where the CPU monitor cannot see it.
          for (const group of [live.filter((c) => c.base.impl === 'ferrogpt'), live.filter((c) => c.base.impl !== 'ferrogpt')]) {
            for (const c of group) {
              try {
                const t0 = performance.now();
                for (let i = 0; i < P.timing.warmup; i++) await c.h.run();
                c.warmup_ms = (performance.now() - t0) / Math.max(1, P.timing.warmup);
              } catch (e) {
                c.failed = true;
                fail(c.label, c.base, e);
              }
            }
            for (let round = 0; round < R; round++) {
              for (const c of group) {
                if (c.failed) continue;
                try {
                  // A call slower than slowMs gets one sample per round (warm-up time decides).
                  const timing = c.warmup_ms >= rt.slowMs ? { ...rt, minSamples: 1, maxSamples: 1 } : rt;
                  await sleep(P.settleMs); // 0 unless --settle: see plan()
                  const r = await clean(c.label, async () => {
                    const m = await measure(c.h.run, timing);
                    return { times: m.times };
                  });
                  c.times.push(...r.times);
                  addRound(c.row, r, median(r.times));
                } catch (e) {
                  c.failed = true;
                  fail(c.label, c.base, e);
                }
              }
            }
          }
          for (const c of live) {
            if (c.failed) continue;
            try {
              const got = await c.h.read();
              const t = pooled(c.times, R);
              const row = Object.assign(c.row, { gflops: flop / (t.median_ms / 1e3) / 1e9, ...t, warmup_ms: c.warmup_ms, maxAbsErr: sampleError(got, x, W, M, K, N) });
              if (ours) {
                row.maxAbsDiffVsOurs = maxAbsDiff(got, ours.out);
                row.comparedWith = ours.label;
              } else if (c.base.impl === 'ferrogpt') ours = { out: got instanceof Float32Array ? got : Float32Array.from(got), label: c.label };
              entry.rows[c.label] = row;
              log(`  ${c.label.padEnd(28)} ${row.gflops.toFixed(1).padStart(7)} GFLOPS  (median ${t.median_ms.toFixed(2)} ms of ${t.samples} in ${R} rounds; max |err| ${row.maxAbsErr.toExponential(1)}${row.maxAbsDiffVsOurs != null ? `, max |Δ| vs ${row.comparedWith} ${row.maxAbsDiffVsOurs.toExponential(1)}` : ''}${contendedNote(row)})`);
            } catch (e) {
              fail(c.label, c.base, e);
            }
          }
        } finally {
          for (const c of live) await c.h.dispose();
        }
      }
      out.matmul.push(entry);
    }
  }

  if (parts.train) {
    const { cfg, warmup, steps } = P.train;
    const { batch: B } = cfg;
    const { blockSize: T, vocabSize: V } = cfg.model;
    const batches = randomBatches(Math.min(warmup + steps, 8), B, T, V, 1);
    const per = Math.ceil(steps / R);
    log(`training step: ${cfg.name}, ${warmup} warm-up + ${per * R} timed steps in ${R} rounds`);
    for (const n of threadsList) {
      const live = [];
      for (const v of variants) {
        const row = { variant: v, threads: n };
        out.train.push(row);
        const r = await ready(v, n);
        if (r.error) {
          row.error = r.error;
          continue;
        }
        try {
          const A = apiFor(v);
          const lib = { GPT: A.GPT, AdamW: A.AdamW, clipGradNorm: A.clipGradNorm, backend: r.backend };
          const mo = makeModel(lib, cfg);
          live.push({ v, row, lib, mo, times: [], step: 0, loss: NaN });
        } catch (e) {
          row.error = errText(e);
        }
      }
      const stepOnce = (c) => {
        const { ids, targets } = batches[c.step++ % batches.length];
        const t0 = performance.now();
        c.loss = ferroStep(c.lib, c.mo.model, c.mo.opt, ids, targets, B, T);
        return performance.now() - t0;
      };
      try {
        for (const c of live) for (let i = 0; i < warmup; i++) stepOnce(c);
        for (let round = 0; round < R; round++) {
          for (const c of live) {
            if (c.row.error) continue;
            try {
              const r = await clean(`${c.v} ${n}T`, async () => ({ times: Array.from({ length: per }, () => stepOnce(c)) }));
              c.times.push(...r.times);
              addRound(c.row, r, median(r.times));
            } catch (e) {
              c.row.error = errText(e);
            }
          }
        }
        for (const c of live) {
          if (c.row.error) {
            log(`  ${tag(c.v, n)} error: ${c.row.error}`);
            continue;
          }
          const t = pooled(c.times, R);
          Object.assign(c.row, { ...t, steps: t.samples, tokensPerS: (B * T) / (t.median_ms / 1e3), lastLoss: c.loss });
          log(`  ${tag(c.v, n)} ${c.row.median_ms.toFixed(1).padStart(7)} ms/step (median of ${c.row.steps}; ${c.row.tokensPerS.toFixed(0)} tok/s; loss ${c.loss.toFixed(3)}${contendedNote(c.row)})`);
        }
      } finally {
        for (const c of live) {
          c.mo.opt.dispose?.();
          c.mo.model.dispose();
        }
      }
    }
  }

  if (parts.decode) {
    const { cfg, prompt, newTokens } = P.decode;
    const per = Math.ceil(newTokens / R);
    log(`decode: ${P.decode.name}, random weights, batch 1, greedy, ${prompt}-token prompt, ${per} new tokens per round, ${R} rounds`);
    let params = null;
    for (const n of threadsList) {
      const rows = [];
      for (const v of variants) {
        const row = { variant: v, threads: n };
        out.decode.push(row);
        const r = await ready(v, n);
        if (r.error) row.error = r.error;
        else rows.push({ v, row, backend: r.backend, steps: [], prompts: [] });
      }
      // A GPT-2-small model per variant would not fit next to the others: each round builds
      // it from the same weights (fromParameters: a copy into the backend, no init), decodes
      // and frees it.
      for (let round = 0; round < R; round++) {
        for (const c of rows) {
          if (c.row.error) continue;
          let model = null;
          try {
            params ??= fastParameters(api, { ...cfg, seed: 1 });
            const A = apiFor(c.v);
            if (typeof A.GPT.fromParameters === 'function') model = A.GPT.fromParameters({ ...cfg, seed: 1 }, params, c.backend);
            else {
              // An older build without fromParameters: create (its init runs) and load the same weights.
              model = A.GPT.create({ ...cfg, seed: 1 }, c.backend);
              model.loadParameters(params);
            }
            const md = model;
            timeDecode(md, 4, 2); // warm-up: scratch, caches, the pool
            const r = await clean(`${c.v} ${n}T`, async () => timeDecode(md, prompt, per));
            c.steps.push(...r.stepsMs);
            c.prompts.push(r.promptMs);
            addRound(c.row, r, median(r.stepsMs));
          } catch (e) {
            c.row.error = errText(e);
          } finally {
            model?.dispose();
          }
        }
      }
      for (const c of rows) {
        if (c.row.error) {
          log(`  ${tag(c.v, n)} error: ${c.row.error}`);
          continue;
        }
        const total = c.steps.reduce((a, b) => a + b, 0);
        const promptMs = median(c.prompts);
        Object.assign(c.row, { promptLen: prompt, newTokens: c.steps.length, rounds: R, promptMs, promptTokPerS: prompt / (promptMs / 1e3), decodeTokPerS: c.steps.length / (total / 1e3), medianStepMs: median(c.steps) });
        log(`  ${tag(c.v, n)} ${c.row.decodeTokPerS.toFixed(2).padStart(7)} tok/s (median step ${c.row.medianStepMs.toFixed(1)} ms; prompt ${promptMs.toFixed(0)} ms${contendedNote(c.row)})`);
      }
    }
  }
  return out;
}
