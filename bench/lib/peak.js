// The machine's peak fp32 FMA rate, from the addon's peakGflops(iters) (independent FMA
// chains on the widest vector unit; crates/kernels/src/peak.rs).
// - 1 thread: best of a few calls, each ~0.2 s.
// - n threads: n worker threads each load the addon and call peakGflops at the same moment
//   (a SharedArrayBuffer barrier); the per-thread rates are summed. Falls back to
//   per-core × n if workers cannot load the addon.

import { Worker } from 'node:worker_threads';

/** iters such that one peakGflops(iters) call takes about `targetS` seconds. */
export function calibrate(addon, targetS = 0.2) {
  let iters = 1e6;
  for (;;) {
    const t = performance.now();
    addon.peakGflops(iters);
    const dt = (performance.now() - t) / 1e3;
    if (dt > targetS / 4 || iters > 1e12) return Math.max(1, Math.round((iters * targetS) / Math.max(dt, 1e-6)));
    iters *= 8;
  }
}

export function peakOneThread(addon, iters, reps = 5) {
  let best = 0;
  const all = [];
  for (let i = 0; i < reps; i++) {
    const g = addon.peakGflops(iters);
    all.push(g);
    best = Math.max(best, g);
  }
  return { gflops: best, samples: all };
}


export async function peakParallel(how, iters, n, reps = 3) {
  const sab = new SharedArrayBuffer(8);
  const flag = new Int32Array(sab);
  const loaderUrl = new URL('./ferrogpt.js', import.meta.url).href;
  const workers = [];
  const results = [];
  try {
    const done = [];
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL('./peak-worker.js', import.meta.url), {
        workerData: { loaderUrl, how, iters, reps, sab, index: i },
      });
      workers.push(w);
      done.push(
        new Promise((resolve, reject) => {
          w.on('message', (m) => {
            results.push(m);
            resolve();
          });
          w.on('error', reject);
          w.on('exit', (c) => (c ? reject(new Error(`peak worker exited ${c}`)) : resolve()));
        }),
      );
    }
    const deadline = Date.now() + 30000;
    while (Atomics.load(flag, 1) < n) {
      if (Date.now() > deadline) throw new Error('peak workers did not start');
      await new Promise((r) => setTimeout(r, 5));
    }
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
    await Promise.all(done);
  } finally {
    for (const w of workers) await w.terminate();
  }
  // Rep r of every worker ran at the same time (same iters, same start): sum them per rep.
  let best = 0;
  for (let r = 0; r < reps; r++) best = Math.max(best, results.reduce((s, m) => s + m.rates[r], 0));
  return { gflops: best, perThread: results.map((m) => Math.max(...m.rates)) };
}
