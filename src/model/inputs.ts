// Argument checks of GPT's public methods: batch shapes, and the types and lengths of ids
// and targets. Each public method checks its arguments at its entry, naming itself in the
// message. The token values are checked once, as the model writes them to the backend
// (backend.writeTokens: `forward: ids[3] = 99 is out of range (must be in 0..63)`), which
// remembers it so the kernels reading them do not scan them again. The KV-cached decoder
// takes arrays of plain numbers, checked with the backend's checkTokens (base.ts).

import type { GPTConfig } from './config.js';

/** ids (B·T, an Int32Array) for a (batch, seq) pass of a model with this config. */
export function checkIds(fn: string, config: Readonly<GPTConfig>, ids: Int32Array, batch: number, seq: number): void {
  const { blockSize } = config;
  if (!Number.isSafeInteger(batch) || batch < 1) throw new Error(`${fn}: batch must be a positive integer, got ${String(batch)}`);
  if (!Number.isSafeInteger(seq) || seq < 1) throw new Error(`${fn}: seq must be a positive integer, got ${String(seq)}`);
  if (seq > blockSize) throw new Error(`${fn}: seq ${seq} exceeds the model's blockSize ${blockSize}`);
  checkLength(fn, 'ids', ids, batch * seq);
}

/** Next-token targets (N = B·T, an Int32Array); their values are checked as they are written. */
export function checkTargets(fn: string, targets: Int32Array, N: number): void {
  checkLength(fn, 'targets', targets, N);
}

function checkLength(fn: string, name: string, a: Int32Array, n: number): void {
  if (!(a instanceof Int32Array)) throw new Error(`${fn}: ${name} must be an Int32Array, got ${describe(a)}`);
  if (a.length !== n) throw new Error(`${fn}: ${name} has length ${a.length}, expected batch * seq = ${n}`);
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'Array';
  if (typeof x === 'object') return (x as object).constructor?.name ?? 'object';
  return typeof x;
}
