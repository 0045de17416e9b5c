// Timing helpers around benchmark.js (the `benchmark` npm package): one Benchmark per
// measurement, run to completion, summarised as seconds per call. Calls slower than
// `slowCallS` are timed by hand instead (a fixed number of calls, each timed), because
// benchmark.js insists on several samples and that would blow the run's time budget.

import { createRequire } from 'node:module';
import { median } from './util.js';

const require = createRequire(import.meta.url);
const Benchmark = require('benchmark');

export const benchmarkVersion = Benchmark.version;

function summary(method, samples, extra = {}) {
  return {
    method,
    median_s: median(samples),
    mean_s: samples.reduce((a, b) => a + b, 0) / samples.length,
    min_s: Math.min(...samples),
    samples: samples.length,
    ...extra,
  };
}

/**
 * Times `fn` (sync, or async when `async: true`) and returns
 * { method, median_s, mean_s, min_s, samples, rme?, first_s }.
 * A first (warm-up) call is always made and timed separately.
 * Options: maxTime (s, benchmark.js budget), minSamples, slowCallS, slowCalls.
 */
export async function measure(fn, opts = {}) {
  const { async = false, maxTime = 1, minSamples = 3, slowCallS = 0.75, slowCalls = 2 } = opts;
  const t0 = performance.now();
  await fn();
  const first_s = (performance.now() - t0) / 1e3;

  if (first_s >= slowCallS) {
    const samples = [];
    for (let i = 0; i < slowCalls; i++) {
      const t = performance.now();
      await fn();
      samples.push((performance.now() - t) / 1e3);
    }
    return summary('manual', samples, { first_s });
  }

  const bench = async
    ? new Benchmark({
        defer: true,
        fn(deferred) {
          fn().then(
            () => deferred.resolve(),
            (e) => {
              bench.error = e;
              deferred.resolve();
            },
          );
        },
        maxTime,
        minSamples,
      })
    : new Benchmark(fn, { maxTime, minSamples, initCount: 1 });
  await new Promise((resolve) => {
    bench.on('complete', resolve);
    bench.run({ async: true });
  });
  if (bench.error) throw bench.error;
  return summary('benchmark.js', bench.stats.sample, { rme_pct: bench.stats.rme, first_s });
}

/** Times one call (no warm-up): for runs too slow to repeat. */
export async function timeOnce(fn) {
  const t = performance.now();
  await fn();
  return summary('single', [(performance.now() - t) / 1e3]);
}
