// L1, the language-modelling objective (GPT-1 eq. 1): the mean next-token cross-entropy
// over a context window, -1/|S| Σ_{i∈S} log P(u_i | u_{i-k}..u_{i-1}), where S are the
// positions whose target is not the ignore index. Built on the fused crossentropy kernels:
// the forward pass gives per-position losses, the backward pass takes dlosses = 1/|S| at
// counted positions (times a weight, so that L3 = L2 + λ·L1 can reuse it).

import type { Backend, Tensor } from '../backend/backend.js';

export const IGNORE_INDEX = -1;

/**
 * Splits windows of seq + 1 tokens into inputs and next-token targets:
 * ids[b, t] = tokens[b, t], targets[b, t] = tokens[b, t + 1].
 * `tokens` holds `batch` windows of `seq + 1` ids, back to back.
 */
export function shiftTargets(tokens: Int32Array | ArrayLike<number>, batch: number, seq: number): { ids: Int32Array; targets: Int32Array } {
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`shiftTargets: batch must be a positive integer, got ${batch}`);
  if (!Number.isInteger(seq) || seq < 1) throw new Error(`shiftTargets: seq must be a positive integer, got ${seq}`);
  if (tokens.length !== batch * (seq + 1)) {
    throw new Error(`shiftTargets: tokens must hold batch * (seq + 1) = ${batch * (seq + 1)} ids, got ${tokens.length}`);
  }
  const ids = new Int32Array(batch * seq);
  const targets = new Int32Array(batch * seq);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < seq; t++) {
      ids[b * seq + t] = tokens[b * (seq + 1) + t];
      targets[b * seq + t] = tokens[b * (seq + 1) + t + 1];
    }
  }
  return { ids, targets };
}

/** Number of positions that count (target != ignoreIndex). */
export function countTargets(targets: Int32Array, ignoreIndex = IGNORE_INDEX): number {
  let n = 0;
  for (let i = 0; i < targets.length; i++) if (targets[i] !== ignoreIndex) n++;
  return n;
}

export interface LMBuffers {
  logits: Tensor; // (N, V)
  targets: Tensor; // (N) i32, already written
  losses: Tensor; // (N)
}

/**
 * Mean cross-entropy over the counted positions (0 when none count). `targetsHost` is the
 * host copy of `bufs.targets`, used to count positions without a read-back.
 */
export function lmLossForward(backend: Backend, bufs: LMBuffers, targetsHost: Int32Array, N: number, V: number, ignoreIndex = IGNORE_INDEX): number {
  backend.crossentropyForward(bufs.losses, bufs.logits, bufs.targets, N, V, ignoreIndex);
  const count = countTargets(targetsHost, ignoreIndex);
  if (count === 0) return 0;
  const losses = backend.read(bufs.losses) as Float32Array;
  let sum = 0; // float64 sum of the float32 losses
  for (let i = 0; i < N; i++) if (targetsHost[i] !== ignoreIndex) sum += losses[i];
  return sum / count;
}

/**
 * dlogits (N, V) += weight · ∂(mean loss)/∂logits: writes dlosses = weight / count at counted
 * positions and runs the crossentropy backward kernel. It accumulates, or with `overwrite`
 * writes dlogits whole (zeros when no position counts), so that a dlogits buffer used only
 * for this gradient needs no zeroing.
 */
export function lmLossBackward(
  backend: Backend,
  bufs: LMBuffers & { dlogits: Tensor; dlosses: Tensor },
  targetsHost: Int32Array,
  N: number,
  V: number,
  ignoreIndex = IGNORE_INDEX,
  weight = 1,
  overwrite = false,
): void {
  const count = countTargets(targetsHost, ignoreIndex);
  if (count === 0) {
    if (overwrite) backend.zero(bufs.dlogits);
    return;
  }
  const dlosses = new Float32Array(N);
  for (let i = 0; i < N; i++) if (targetsHost[i] !== ignoreIndex) dlosses[i] = weight / count;
  backend.write(bufs.dlosses, dlosses);
  backend.crossentropyBackward(bufs.dlogits, bufs.dlosses, bufs.logits, bufs.targets, N, V, ignoreIndex, overwrite);
}
