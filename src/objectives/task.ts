// L2 and L3, the fine-tuning objectives of GPT-1 (section 3.2):
//
//   L2(C) = Σ_(x,y) log P(y | x¹..xᵐ),  P(y | x) = softmax(h_l^m · W_y)
//   L3(C) = L2(C) + λ · L1(C)            L1: the language-model loss on the same inputs
//
// (written here as losses to minimise: means of negative log-likelihoods). L2 is the
// cross-entropy of the head's logits at the labels — over the classes, or, for multiple
// choice, over one score per choice, i.e. the (E·k, 1) scores viewed as (E, k) — or, for a
// scored similarity task, the mean squared error of a single output. The cross-entropy runs
// on the same fused kernels as L1 (lm.ts): the labels are simply the "targets" of a
// vocabulary of K classes.
//
// Gradients add: the head's backward puts dL2/dhidden at the extract rows, L1's backward
// (GPT.lmLoss(pass, targets, λ)) adds λ·dL1/dhidden at every row, and one
// GPT.backward(pass) carries the sum into the transformer, so ∇L3 = ∇L2 + λ·∇L1 exactly
// (test/finetune.test.ts checks it).

import type { Backend, Tensor } from '../backend/backend.js';
import { IGNORE_INDEX, lmLossBackward, lmLossForward } from './lm.js';

export interface ClassBuffers {
  logits: Tensor; // (N, K)
  dlogits: Tensor; // (N, K), accumulated into
  labels: Tensor; // (N) i32, written here
  losses: Tensor; // (N)
  dlosses: Tensor; // (N)
}

/**
 * Mean cross-entropy of softmax(logits (N, K)) at `labels` (N; -1 skips an example);
 * accumulates weight·∂loss/∂logits into dlogits. Returns the loss (0 when nothing counts).
 */
export function classificationLoss(backend: Backend, bufs: ClassBuffers, labels: Int32Array, N: number, K: number, weight = 1): number {
  if (labels.length !== N) throw new Error(`classificationLoss: ${labels.length} labels for N = ${N}`);
  for (let i = 0; i < N; i++) {
    if ((labels[i] < 0 || labels[i] >= K) && labels[i] !== IGNORE_INDEX) throw new Error(`classificationLoss: label ${labels[i]} at ${i} is outside 0..${K - 1}`);
  }
  backend.write(bufs.labels, labels);
  const lm = { logits: bufs.logits, targets: bufs.labels, losses: bufs.losses };
  const loss = lmLossForward(backend, lm, labels, N, K, IGNORE_INDEX);
  lmLossBackward(backend, { ...lm, dlogits: bufs.dlogits, dlosses: bufs.dlosses }, labels, N, K, IGNORE_INDEX, weight);
  return loss;
}

/**
 * Mean squared error of the outputs (N) against `scores` (N; NaN skips an example);
 * accumulates weight·2(y - t)/n into dlogits. Only N floats cross the boundary each way.
 */
export function regressionLoss(backend: Backend, logits: Tensor, dlogits: Tensor, scores: Float32Array, N: number, weight = 1): number {
  if (scores.length !== N) throw new Error(`regressionLoss: ${scores.length} scores for N = ${N}`);
  const y = backend.read(logits) as Float32Array; // (N)
  let n = 0;
  for (let i = 0; i < N; i++) if (!Number.isNaN(scores[i])) n++;
  if (n === 0) return 0;
  let sum = 0;
  const grad = backend.read(dlogits) as Float32Array; // accumulate, like the kernels
  for (let i = 0; i < N; i++) {
    if (Number.isNaN(scores[i])) continue;
    const d = y[i] - scores[i];
    sum += d * d;
    grad[i] += (weight * 2 * d) / n;
  }
  backend.write(dlogits, grad);
  return sum / n;
}
