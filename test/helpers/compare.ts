// Comparisons with an asserted bound. The error measure is normwise relative:
//   rel = max_i |actual_i - expected_i| / max_i |expected_i|
// which is what a float32 kernel can promise (elementwise relative error is unbounded where
// a sum cancels to near zero). Every measured difference can be logged for the report with
// FERROGPT_DIFF_LOG=<file> (one JSON object per line).

import { appendFileSync } from 'node:fs';

export interface Diff {
  maxAbs: number; // max |actual - expected|
  scale: number; // max |expected|
  rel: number; // maxAbs / scale (maxAbs when scale is 0)
  index: number; // where maxAbs occurs
}

export function diff(actual: ArrayLike<number>, expected: ArrayLike<number>, floor = 0): Diff {
  if (actual.length !== expected.length) throw new Error(`length mismatch: actual ${actual.length}, expected ${expected.length}`);
  let maxAbs = 0;
  let scale = 0;
  let index = -1;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    // NaN must fail: treat it as an infinite difference.
    if (!(d <= maxAbs)) {
      maxAbs = Number.isNaN(d) ? Infinity : d;
      index = i;
      if (maxAbs === Infinity) break;
    }
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  const denom = Math.max(scale, floor);
  return { maxAbs, scale, rel: denom > 0 ? maxAbs / denom : maxAbs, index };
}

/**
 * Asserts rel <= rtol; the message names the label, the measure and the worst element.
 * `floor` bounds the denominator from below, for results that are legitimately ~0.
 */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, label: string, floor = 0): Diff {
  const d = diff(actual, expected, floor);
  logDiff(label, d, rtol);
  if (!(d.rel <= rtol)) {
    throw new Error(
      `${label}: max relative difference ${d.rel.toExponential(3)} > ${rtol.toExponential(1)} ` +
        `(max |diff| ${d.maxAbs.toExponential(3)} at [${d.index}]: actual ${actual[d.index]}, expected ${expected[d.index]}; max |expected| ${d.scale.toExponential(3)})`,
    );
  }
  return d;
}

/** Asserts bit-for-bit equality (Object.is per element, so -0 vs 0 and NaN are distinguished). */
export function expectIdentical(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): void {
  if (actual.length !== expected.length) throw new Error(`${label}: length ${actual.length}, expected ${expected.length}`);
  let count = 0;
  let first = -1;
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) {
      if (first < 0) first = i;
      count++;
    }
  }
  logDiff(label, { maxAbs: count, scale: expected.length, rel: count / Math.max(1, expected.length), index: first }, 0, 'mismatches');
  if (count > 0) {
    throw new Error(`${label}: ${count} of ${expected.length} elements differ; first at [${first}]: actual ${actual[first]}, expected ${expected[first]}`);
  }
}

function logDiff(label: string, d: Diff, bound: number, kind = 'rel'): void {
  const file = process.env.FERROGPT_DIFF_LOG;
  if (!file) return;
  appendFileSync(file, JSON.stringify({ label, kind, ...d, bound }) + '\n');
}

/**
 * d loss / d x by central differences, (loss(x + h) − loss(x − h)) / 2h: `set(delta)` moves
 * the one input by delta from where it started (set(0) puts it back, as this leaves it).
 */
export function centralDifference(loss: () => number, set: (delta: number) => void, h: number): number {
  set(h);
  const plus = loss();
  set(-h);
  const minus = loss();
  set(0);
  return (plus - minus) / (2 * h);
}

/** A `set` for centralDifference: entry i of `data` moved by delta, on a fresh copy, handed to `load`. */
export function nudgeEntry(data: Float32Array, i: number, load: (moved: Float32Array) => void): (delta: number) => void {
  return (delta) => {
    const moved = data.slice();
    moved[i] += delta;
    load(moved);
  };
}
