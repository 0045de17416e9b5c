// The one step loop of `train` (pre-training, L1) and `finetune` (GPT-1's L2 / L3 over task
// batches). Each verb supplies what differs: its micro-steps (the forward/backward passes of
// one update), its evaluation, what it reports and what its checkpoint holds. The loop owns
// the order of everything else, identical for both:
//
//   for step in startStep .. steps-1:
//     stop here if the signal is aborted
//     lr = schedule(step) on every optimizer
//     zero the gradients of every parameter set
//     parts = micro(step)                    the verb's passes, accumulating the gradients
//     check the loss; gradNorm = clipGradNorm(every set together, gradClip); check it
//     step every optimizer; step + 1 updates are done
//     evaluation = evaluate(step)            when the verb says one is due
//     onUpdate(...)                          the verb's record and the user's onStep
//     checkpoint when due
//   stopped early: checkpoint what was done (unless this update's was just written)
//
// The loop itself calls no model: train's micro-steps go through lmMicroStep (below),
// finetune's through FineTunedGPT.lossBackward (src/tasks/finetuned.ts).

import type { GPT } from '../model/gpt.js';
import { PRECISIONS, type Precision } from '../model/weights.js';
import { clipGradNorm, type AdamW, type Optimizable } from './optimizer.js';

/** A parameter set the loop zeroes and clips (a GPT, a task head). */
export interface Trainable extends Optimizable {
  zeroGrad(): void;
}

/** One finished update, as the loop hands it to the verb. */
export interface Update<P extends { loss: number }, E> {
  /** Updates done, counting this one (1 for the first). */
  step: number;
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** What the micro-steps returned (parts.loss is the update's loss). */
  parts: P;
  /** Wall time of the update (schedule to optimizer step), before any evaluation. */
  ms: number;
  /** The evaluation of this step, when one was due. */
  evaluation?: E;
}

export interface StepLoop<P extends { loss: number }, E> {
  /** 'train' or 'finetune': starts every error message. */
  verb: string;
  /** Updates already done (0, or a checkpoint's step). */
  startStep: number;
  /** Updates to reach. */
  steps: number;
  /** Learning rate of update `step` (0-based). */
  schedule: (step: number) => number;
  /** Every parameter set, zeroed before and clipped (together) after the micro-steps. */
  params: readonly Trainable[];
  optimizers: readonly AdamW[];
  /** Global gradient-norm clip; 0 measures the norm without clipping. */
  gradClip: number;
  /** What to try when the loss is not finite: "try a lower lr…". */
  lossHint: string;
  /** The forward/backward passes of update `step` (0-based), accumulating the gradients. */
  micro: (step: number) => P;
  /** The evaluation after update `step` (1-based), or undefined when none is due. */
  evaluate?: (step: number) => E | undefined;
  onUpdate: (update: Update<P, E>) => void | Promise<void>;
  /** Whether a checkpoint is due after update `step` (1-based). */
  checkpointDue: (step: number) => boolean;
  /** Writes a checkpoint of the state after update `step`; absent: no checkpoints. */
  checkpoint?: (step: number) => Promise<void>;
  /** Stops the loop before the next update. */
  signal?: AbortSignal;
}

/** Runs the loop described at the top of this file; returns the updates done and whether it was stopped. */
export async function runStepLoop<P extends { loss: number }, E>(loop: StepLoop<P, E>): Promise<{ step: number; stopped: boolean }> {
  const { verb, params, optimizers, signal, checkpoint } = loop;
  const maxNorm = loop.gradClip > 0 ? loop.gradClip : Infinity;
  let step = loop.startStep;
  let stopped = false;
  let savedAt = -1;
  while (step < loop.steps) {
    if (signal?.aborted) {
      stopped = true;
      break;
    }
    const t0 = performance.now();
    const lr = loop.schedule(step);
    for (const o of optimizers) o.setLr(lr);
    for (const p of params) p.zeroGrad();
    const parts = loop.micro(step);
    if (!Number.isFinite(parts.loss)) {
      throw new Error(`${verb}: the loss is ${parts.loss} at step ${step + 1}; the weights were not updated (${loop.lossHint})`);
    }
    const gradNorm = clipGradNorm(params, maxNorm);
    if (!Number.isFinite(gradNorm)) {
      throw new Error(`${verb}: the gradient norm is ${gradNorm} at step ${step + 1}; the weights were not updated (try a lower lr)`);
    }
    for (const o of optimizers) o.step();
    step++;
    const update: Update<P, E> = { step, lr, gradNorm, parts, ms: performance.now() - t0 };
    const evaluation = loop.evaluate?.(step);
    if (evaluation !== undefined) update.evaluation = evaluation;
    await loop.onUpdate(update);
    if (checkpoint !== undefined && loop.checkpointDue(step)) {
      await checkpoint(step);
      savedAt = step;
    }
  }
  // Stopped early: keep what was done (unless it was just checkpointed).
  if (stopped && checkpoint !== undefined && step > loop.startStep && savedAt !== step) await checkpoint(step);
  return { step, stopped };
}

// ---- train's model call ----

/**
 * One micro-batch of pre-training: forward, next-token loss, backward; the gradient is that
 * of the mean loss over the B·T positions times `weight` (1/gradAccum), accumulated into the
 * model's. Returns the (unweighted) mean loss.
 */
export function lmMicroStep(model: GPT, ids: Int32Array, targets: Int32Array, B: number, T: number, weight: number): number {
  return model.forwardBackward(ids, targets, B, T, weight);
}

/**
 * Sets up `model` to be trained at `precision` by the verb `fn` (train, finetune), and
 * returns what puts it back. A bf16 model (compact, for inference) becomes its f32 master
 * weights, exactly, and trains in bf16 mixed precision unless another precision is asked
 * for; an int8 one is refused (its weights are not what was trained). Default precision:
 * 'f32'.
 */
export function trainingPrecision(model: GPT, precision: Precision | undefined, fn: string): () => void {
  if (precision !== undefined && !(PRECISIONS as readonly string[]).includes(precision)) {
    throw new Error(`${fn}: precision must be one of ${PRECISIONS.map((p) => `'${p}'`).join(', ')}, got ${JSON.stringify(precision)}`);
  }
  let p = precision ?? 'f32';
  if (model.dtype === 'bf16') {
    model.toDtype('f32');
    p = precision ?? 'bf16';
  }
  model.checkTrainable(fn);
  const before = model.precision;
  model.precision = p;
  return () => {
    model.precision = before;
  };
}
