// The `train` verb: pre-training (L1, next-token prediction) on a token file, the loop of
// nanoGPT's train.py, run by the step loop that `finetune` shares (loop.ts):
//
//   for step in steps:
//     lr = schedule(step); zero the gradients
//     for micro in gradAccum:                      # one update = gradAccum micro-batches
//       ids, targets = random windows of the train split
//       loss += lmMicroStep(ids, targets) with the gradient scaled by 1/gradAccum
//     clip the global gradient norm; AdamW step
//     every evalEvery steps: mean loss over a fixed set of val windows
//     every checkpointEvery steps: checkpoint (atomic, see checkpoint.ts)
//
// Determinism: the windows come from the counter RNG (seed, windows drawn), the dropout
// masks from (model seed, model.trainingSteps), and the kernels are deterministic for a
// given backend and thread count, so a run is a pure function of its inputs; a run resumed
// from a checkpoint restores all of that state and gives the same losses bit for bit.

import { AdamW } from './optimizer.js';
import { makeSchedule, type ScheduleKind } from './schedule.js';
import { TokenDataset, WindowSampler, evalWindowStarts } from './data.js';
import { loadCheckpoint, saveCheckpoint, repairCheckpoint, resumeSource, trainerHeader, type TrainerState } from './checkpoint.js';
import { lmMicroStep, runStepLoop, trainingPrecision } from './loop.js';
import type { GPT } from '../model/gpt.js';
import type { Precision } from '../model/weights.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

export interface StepInfo {
  /** Updates done, counting this one (1 for the first). */
  step: number;
  /** Mean training loss of this update's micro-batches. */
  loss: number;
  /** Learning rate this update used. */
  lr: number;
  /** Global gradient L2 norm before clipping. */
  gradNorm: number;
  /** Training tokens (B·T·gradAccum) per second of this update's wall time. */
  tokensPerSec: number;
  /** Validation loss, on steps where it was evaluated. */
  valLoss?: number;
}

export interface TrainOptions {
  model: GPT;
  /** A TokenDataset, or the path of a token file written by prepareData. */
  data: TokenDataset | string;
  /** Total updates to reach (a resumed run continues up to this). Give steps or epochs. */
  steps?: number;
  /** Passes over the train tokens: steps = ceil(epochs · trainTokens / (batchSize · gradAccum · blockSize)). */
  epochs?: number;
  /** Windows per micro-batch. Default 8. */
  batchSize?: number;
  /** Tokens per window; default the model's blockSize. */
  blockSize?: number;
  /** Peak learning rate. Default 2.5e-4 (GPT-1 pre-training). */
  lr?: number;
  /** Learning rate at the end of the decay. Default lr / 10 (nanoGPT). */
  minLr?: number;
  /** Linear warmup updates. Default 0. */
  warmup?: number;
  /** Decay after the warmup. Default 'cosine' (GPT-1 pre-training). */
  schedule?: ScheduleKind;
  /** AdamW; defaults as the AdamW class: [0.9, 0.999], 1e-8, 0.01 (GPT-1). */
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** Global gradient-norm clip; 0 disables. Default 1.0. */
  gradClip?: number;
  /** Micro-batches per update. Default 1. */
  gradAccum?: number;
  /** Evaluate the val split every this many updates (and after the last); 0: only after the last. Default 0. */
  evalEvery?: number;
  /** Batches (of batchSize windows) per evaluation; 0 disables evaluation. Default 10. */
  evalBatches?: number;
  /** Seed of the window sampler. Default 1337. */
  seed?: number;
  /** Fraction of the token file held out for validation when `data` is a path. Default 0.1. */
  valFraction?: number;
  /** Called after every update (awaited if it returns a promise). */
  onStep?: (info: StepInfo) => void | Promise<void>;
  /** Where checkpoints go (one directory, replaced atomically; see checkpoint.ts). */
  checkpointDir?: string;
  /** Checkpoint every this many updates (and after the last, and when stopped); 0: only then. Default 0. */
  checkpointEvery?: number;
  /**
   * Continue from the checkpoint at checkpointDir (or at the path given): true requires one,
   * 'auto' resumes if there is one and starts afresh otherwise. The model must have the
   * checkpoint's config; its weights are replaced. Default false.
   */
  resume?: boolean | 'auto' | string;
  /** Saved into every checkpoint (tokenizer.json) when given. */
  tokenizer?: Tokenizer;
  /** Stops the run after the current update (with a checkpoint if checkpointDir is set). */
  signal?: AbortSignal;
  /**
   * 'bf16': mixed precision (the matmuls read bf16 weights and activations, accumulate in
   * f32; master weights, gradients and AdamW stay f32; see GPT.precision). Default 'f32'
   * ('bf16' for a model held in bf16, whose weights become the f32 master).
   */
  precision?: Precision;
}

export interface TrainResult {
  /** Updates done in total (the step a resumed run ended at). */
  step: number;
  /** The step this call started from (0, or the checkpoint's). */
  startStep: number;
  /** Loss of every update this call ran: losses[i] is step startStep + i + 1. */
  losses: number[];
  /** Loss of the last update (NaN if none ran). */
  finalLoss: number;
  /** Last validation loss (null if none was computed). */
  valLoss: number | null;
  valLosses: Array<{ step: number; loss: number }>;
  /** true when `signal` stopped the run early. */
  stopped: boolean;
  elapsedMs: number;
}

interface Resolved {
  steps: number;
  batchSize: number;
  blockSize: number;
  lr: number;
  minLr: number;
  warmup: number;
  schedule: ScheduleKind;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  gradClip: number;
  gradAccum: number;
  evalEvery: number;
  evalBatches: number;
  seed: number;
  checkpointEvery: number;
}

/** Pre-trains `model` on `data` (L1); see TrainOptions and the top of this file. */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const t0 = performance.now();
  const { model, onStep, checkpointDir, tokenizer, signal } = options;
  if (model === null || typeof model !== 'object' || typeof model.forwardBackward !== 'function') throw new Error('train: model must be a GPT');
  const ownData = typeof options.data === 'string';
  const restorePrecision = trainingPrecision(model, options.precision, 'train');
  let data: TokenDataset;
  try {
    data = typeof options.data === 'string' ? TokenDataset.open(options.data, { valFraction: options.valFraction }) : options.data;
  } catch (err) {
    restorePrecision();
    throw err;
  }
  try {
    if (!(data instanceof TokenDataset)) throw new Error('train: data must be a TokenDataset or the path of a token file (see prepareData)');
    if (data.vocabSize > model.config.vocabSize) {
      throw new Error(`train: the data's vocabulary (${data.vocabSize}) is larger than the model's (${model.config.vocabSize})`);
    }
    const o = resolveOptions(options, model, data);
    const B = o.batchSize;
    const T = o.blockSize;

    const optimizer = new AdamW(model, { lr: o.lr, betas: o.betas, eps: o.eps, weightDecay: o.weightDecay });
    try {
      const sampler = new WindowSampler(data, { batchSize: B, blockSize: T, seed: o.seed });
      // A run shorter than its warmup just warms up (the decay would end before it starts).
      const schedule = makeSchedule({ kind: o.schedule, maxLr: o.lr, minLr: o.minLr, warmupSteps: o.warmup, totalSteps: Math.max(o.steps, o.warmup) });
      const evalStarts = o.evalBatches > 0 ? evalWindowStarts(data, T, o.evalBatches * B) : [];

      // ---- resume ----
      let startStep = 0;
      let lastVal: number | null = null;
      if (checkpointDir !== undefined) await repairCheckpoint(checkpointDir);
      const resumeFrom = await resumeSource('train', options.resume, checkpointDir);
      if (resumeFrom !== null) {
        const ck = await loadCheckpoint(resumeFrom, { model }); // weights + model.trainingSteps
        const { trainer } = ck;
        if (trainer.data.id !== data.id || trainer.data.trainTokens !== data.trainTokens) {
          throw new Error(
            `train: the checkpoint at ${ck.dir} was trained on different data (${trainer.data.id}, ${trainer.data.trainTokens} train tokens) ` +
              `than ${data.id} (${data.trainTokens} train tokens); resuming would not continue the same run`,
          );
        }
        optimizer.loadState(ck.optimizer);
        sampler.loadState(trainer.sampler);
        startStep = trainer.step;
        lastVal = trainer.valLoss;
      }

      const losses: number[] = [];
      const valLosses: TrainResult['valLosses'] = [];
      let lastLoss = NaN;
      const { step, stopped } = await runStepLoop<{ loss: number }, number>({
        verb: 'train',
        startStep,
        steps: o.steps,
        schedule,
        params: [model],
        optimizers: [optimizer],
        gradClip: o.gradClip,
        lossHint: 'try a lower lr or a gradClip',
        // lmMicroStep's gradient is that of the MEAN loss over its B·T positions, so each
        // micro-batch's is scaled by 1/gradAccum: the update then follows the mean over all
        // B·T·gradAccum positions, as one big batch would (same for the reported loss).
        micro: () => {
          let loss = 0;
          for (let micro = 0; micro < o.gradAccum; micro++) {
            const { ids, targets } = sampler.next();
            loss += lmMicroStep(model, ids, targets, B, T, 1 / o.gradAccum);
          }
          return { loss: loss / o.gradAccum };
        },
        evaluate: (step) => {
          if (evalStarts.length === 0 || !((o.evalEvery > 0 && step % o.evalEvery === 0) || step === o.steps)) return undefined;
          lastVal = evaluateWindows(model, data, evalStarts, T);
          valLosses.push({ step, loss: lastVal });
          return lastVal;
        },
        onUpdate: async ({ step, lr, gradNorm, parts: { loss }, ms, evaluation }) => {
          lastLoss = loss;
          losses.push(loss);
          const info: StepInfo = { step, loss, lr, gradNorm, tokensPerSec: (B * T * o.gradAccum * 1000) / Math.max(ms, 1e-3) };
          if (evaluation !== undefined) info.valLoss = evaluation;
          await onStep?.(info);
        },
        checkpointDue: (step) => (o.checkpointEvery > 0 && step % o.checkpointEvery === 0) || step === o.steps,
        checkpoint:
          checkpointDir === undefined
            ? undefined
            : async (step) => {
                const trainer: TrainerState = {
                  ...trainerHeader(step, model),
                  sampler: sampler.state(),
                  data: { id: data.id, count: data.count, trainTokens: data.trainTokens },
                  options: { ...o },
                  valLoss: lastVal,
                  loss: Number.isNaN(lastLoss) ? null : lastLoss,
                };
                await saveCheckpoint(checkpointDir, { model, optimizer: optimizer.state(), trainer, tokenizer });
              },
        signal,
      });

      return {
        step,
        startStep,
        losses,
        finalLoss: lastLoss,
        valLoss: lastVal,
        valLosses,
        stopped,
        elapsedMs: performance.now() - t0,
      };
    } finally {
      optimizer.dispose();
    }
  } finally {
    if (ownData) data.close();
    restorePrecision();
  }
}

/**
 * Mean next-token loss of `model` (evaluation mode: no dropout) over `batches` batches of
 * the fixed val windows (see evalWindowStarts). NaN when the val split is too small.
 */
export function evaluate(model: GPT, data: TokenDataset, options: { batchSize?: number; blockSize?: number; batches?: number } = {}): number {
  const T = options.blockSize ?? Math.min(model.config.blockSize, 1024);
  const starts = evalWindowStarts(data, T, (options.batches ?? 10) * (options.batchSize ?? 8));
  return starts.length === 0 ? NaN : evaluateWindows(model, data, starts, T);
}

/**
 * Mean cross-entropy (float64) over every position of the windows at `starts`, by
 * model.evalLoss (on the backend). Windows are run a few at a time to keep the logits
 * (rows · T · V floats) near 16M floats whatever the batch size.
 */
function evaluateWindows(model: GPT, data: TokenDataset, starts: readonly number[], T: number): number {
  const V = model.config.vocabSize;
  const rowsPerPass = Math.max(1, Math.floor((1 << 24) / (T * V)));
  const window = new Int32Array(T + 1);
  let sum = 0;
  let count = 0;
  for (let i = 0; i < starts.length; i += rowsPerPass) {
    const rows = Math.min(rowsPerPass, starts.length - i);
    const ids = new Int32Array(rows * T);
    const targets = new Int32Array(rows * T);
    for (let r = 0; r < rows; r++) {
      data.readInto(starts[i + r], window);
      ids.set(window.subarray(0, T), r * T);
      targets.set(window.subarray(1), r * T);
    }
    sum += model.evalLoss(ids, targets, rows, T) * rows * T;
    count += rows * T;
  }
  return sum / count;
}

function resolveOptions(options: TrainOptions, model: GPT, data: TokenDataset): Resolved {
  const int = (name: string, v: unknown, min: number): number => {
    if (!Number.isSafeInteger(v) || (v as number) < min) throw new Error(`train: ${name} must be an integer >= ${min}, got ${String(v)}`);
    return v as number;
  };
  const num = (name: string, v: unknown, min: number): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new Error(`train: ${name} must be a finite number >= ${min}, got ${String(v)}`);
    return v;
  };
  const batchSize = int('batchSize', options.batchSize ?? 8, 1);
  const blockSize = int('blockSize', options.blockSize ?? model.config.blockSize, 1);
  if (blockSize > model.config.blockSize) throw new Error(`train: blockSize ${blockSize} exceeds the model's blockSize ${model.config.blockSize}`);
  const gradAccum = int('gradAccum', options.gradAccum ?? 1, 1);
  let steps: number;
  if (options.steps !== undefined) {
    if (options.epochs !== undefined) throw new Error('train: give steps or epochs, not both');
    steps = int('steps', options.steps, 0);
  } else if (options.epochs !== undefined) {
    const epochs = num('epochs', options.epochs, 0);
    steps = Math.ceil((epochs * data.trainTokens) / (batchSize * gradAccum * blockSize));
  } else {
    throw new Error('train: give steps (updates) or epochs');
  }
  const lr = num('lr', options.lr ?? 2.5e-4, 0);
  const minLr = num('minLr', options.minLr ?? lr / 10, 0);
  if (minLr > lr) throw new Error(`train: minLr (${minLr}) must not exceed lr (${lr})`);
  const schedule = options.schedule ?? 'cosine';
  if (schedule !== 'constant' && schedule !== 'linear' && schedule !== 'cosine') {
    throw new Error(`train: schedule must be 'constant', 'linear' or 'cosine', got ${JSON.stringify(schedule)}`);
  }
  const seed = int('seed', options.seed ?? 1337, 0);
  if (seed > 0xffffffff) throw new Error(`train: seed must be below 2^32, got ${seed}`);
  return {
    steps,
    batchSize,
    blockSize,
    lr,
    minLr,
    warmup: int('warmup', options.warmup ?? 0, 0),
    schedule,
    betas: options.betas ?? [0.9, 0.999],
    eps: num('eps', options.eps ?? 1e-8, 0),
    weightDecay: num('weightDecay', options.weightDecay ?? 0.01, 0),
    gradClip: num('gradClip', options.gradClip ?? 1.0, 0),
    gradAccum,
    evalEvery: int('evalEvery', options.evalEvery ?? 0, 0),
    evalBatches: int('evalBatches', options.evalBatches ?? 10, 0),
    seed,
    checkpointEvery: int('checkpointEvery', options.checkpointEvery ?? 0, 0),
  };
}
