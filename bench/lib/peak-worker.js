// Worker thread for peakParallel (peak.js): loads the addon, waits at a barrier, then calls
// peakGflops `reps` times, in step with the other workers.
import { workerData, parentPort } from 'node:worker_threads';

const { loaderUrl, how, iters, reps, sab, index } = workerData;
const { loadAddonLike } = await import(loaderUrl);
const addon = await loadAddonLike(how);
addon.peakGflops(Math.max(1, Math.floor(iters / 4))); // warm up this thread
const flag = new Int32Array(sab);
Atomics.add(flag, 1, 1); // ready
Atomics.wait(flag, 0, 0); // start
const rates = [];
const t0 = performance.now();
for (let r = 0; r < reps; r++) rates.push(addon.peakGflops(iters));
parentPort.postMessage({ index, rates, t0, t1: performance.now() });
