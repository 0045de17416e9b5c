// The `finetune` verb: GPT-1's supervised fine-tuning (section 3.2), the loop of
// openai/finetune-transformer-lm's train.py over the task transformations of src/tasks:
//
//   prepare: add <|start|> <|delim|> <|extract|> to the tokenizer and wte; new head W_y
//   for epoch in epochs:
//     for batch in shuffled train examples (batchSize examples):
//       lr = linear warmup over `warmup` of the updates, then linear decay to 0
//       L3 = L2 + λ·L1 on the batch (L2 alone when λ = 0); backward into model and head
//       clip the global gradient norm (model and head together); AdamW (both)
//     evaluate on the validation examples; checkpoint
//
// Defaults are GPT-1's: lr 6.25e-5, batch 32, 3 epochs, warmup 0.2%, linear decay, λ 0.5,
// dropout 0.1 (embeddings, attention, residual and classifier), AdamW β (0.9, 0.999),
// ε 1e-8, weight decay 0.01 on tensors of rank >= 2, gradient clip 1.0.
//
// The model passed in is trained in place when it already has the task tokens and the
// dropout asked for; otherwise a new GPT is built from it (rebuildGPT) and the one passed in
// is left unchanged. Either way the result's `model.model` is the trained one.
//
// Determinism: the epoch orders come from the counter RNG (seed, epoch), the dropout masks
// from the model seed and step, so a run is a pure function of its inputs and backend.

import { prepareForTask } from '../tasks/special.js';
import { loadTaskData, validateExample } from '../tasks/data.js';
import { FineTunedGPT, type TaskDefinition } from '../tasks/finetuned.js';
import type { TaskMetrics } from '../tasks/metrics.js';
import type { TaskExample, TaskType } from '../tasks/transform.js';
import type { GPT } from '../model/gpt.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { AdamW, type Optimizable } from './optimizer.js';
import { uniformInt } from '../backend/rng.js';
import { makeSchedule, type ScheduleKind } from './schedule.js';

export interface FineTuneTask {
  type: TaskType;
  /** Examples, or the path of a .jsonl / .json / .csv / .tsv file (fields: src/tasks/data.ts). */
  train: TaskExample[] | string;
  validation?: TaskExample[] | string;
  /** Class names in head order; default: the train labels, sorted (numerically when all are numbers). */
  labels?: Array<string | number>;
  /** Similarity as a regression on `score`; default: when the train examples have scores. */
  regression?: boolean;
  /** Longest sequence (default: the model's blockSize). */
  maxLength?: number;
}

export interface FineTuneStepInfo {
  /** Updates done, counting this one. */
  step: number;
  totalSteps: number;
  /** 1-based epoch of this update. */
  epoch: number;
  loss: number;
  l2: number;
  /** NaN when λ = 0. */
  l1: number;
  lr: number;
  gradNorm: number;
  examplesPerSec: number;
  /** Validation metrics, on the last update of an epoch. */
  validation?: TaskMetrics;
}

export interface FineTuneOptions {
  model: GPT;
  /** The model's tokenizer; the task tokens are added to a copy. */
  tokenizer: Tokenizer;
  task: FineTuneTask;
  epochs?: number;
  /** Examples per update. Default 32. */
  batchSize?: number;
  /** Peak learning rate. Default 6.25e-5. */
  lr?: number;
  /** Warmup: a fraction of the updates (< 1; default 0.002 = 0.2%) or a number of updates (>= 1). */
  warmup?: number;
  /** Decay after the warmup: 'linear' (default, to 0), 'cosine' or 'constant'. */
  schedule?: ScheduleKind;
  /** λ of L3 = L2 + λ·L1. Default 0.5; 0 turns the auxiliary LM objective off. */
  lambda?: number;
  /** Model dropout (embeddings, attention, residual). Default 0.1. */
  dropout?: number;
  /** Dropout before the head. Default 0.1. */
  clfDropout?: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  /** Global gradient-norm clip over model and head; 0 disables. Default 1.0. */
  gradClip?: number;
  /** Seed of the epoch orders and of the head's init. Default 1337. */
  seed?: number;
  /** Stop after this many updates (default: epochs × ceil(train / batchSize)). */
  maxSteps?: number;
  /** Examples per forward pass when evaluating. Default batchSize. */
  evalBatchSize?: number;
  onStep?: (info: FineTuneStepInfo) => void | Promise<void>;
  /** Saves the fine-tuned model here after every epoch (FineTunedGPT.save). */
  checkpointDir?: string;
  /** Stops after the current update. */
  signal?: AbortSignal;
}

export interface FineTuneResult {
  model: FineTunedGPT;
  steps: number;
  losses: number[];
  /** Validation metrics after each epoch (empty without validation data). */
  history: Array<{ epoch: number; step: number; metrics: TaskMetrics }>;
  /** The last validation metrics (null without validation data). */
  validation: TaskMetrics | null;
  /** Examples cut to fit maxLength (see src/tasks/transform.ts). */
  truncated: { train: number; validation: number };
  /** Task tokens that were new to the tokenizer (and got fresh embedding rows). */
  addedTokens: string[];
  stopped: boolean;
  elapsedMs: number;
}

/** Fine-tunes `model` on a task; see FineTuneOptions and the top of this file. */
export async function finetune(options: FineTuneOptions): Promise<FineTuneResult> {
  const t0 = performance.now();
  if (options === null || typeof options !== 'object') throw new Error('finetune: options must be an object');
  const { model, tokenizer, task, onStep, checkpointDir, signal } = options;
  if (model === null || typeof model !== 'object' || typeof model.trainForward !== 'function') throw new Error('finetune: model must be a GPT');
  if (tokenizer === null || typeof tokenizer !== 'object' || typeof tokenizer.encode !== 'function') throw new Error('finetune: tokenizer must be a Tokenizer');
  if (task === null || typeof task !== 'object') throw new Error('finetune: task must be { type, train, validation?, labels? }');
  const o = resolve(options);

  const train = await examplesOf(task.train, task.type, 'task.train', true);
  const validation = task.validation === undefined ? null : await examplesOf(task.validation, task.type, 'task.validation', true);
  const regression = task.regression ?? (task.type === 'similarity' && train.every((e) => (e as { score?: number }).score !== undefined));
  const def: TaskDefinition = {
    type: task.type,
    regression,
    labels: task.type === 'choice' || regression ? null : (task.labels ?? inferLabels(train)),
    maxLength: task.maxLength,
    clfDropout: o.clfDropout,
  };

  const prepared = prepareForTask(model, tokenizer, { dropout: o.dropout });
  let ft: FineTunedGPT;
  try {
    ft = FineTunedGPT.create(prepared.model, prepared.tokenizer, def, { seed: o.seed });
  } catch (err) {
    if (prepared.rebuilt) prepared.model.dispose();
    throw err;
  }
  const trainData = ft.encode(train, 'task.train');
  const valData = validation === null ? null : ft.encode(validation, 'task.validation');

  const N = train.length;
  const perEpoch = Math.ceil(N / o.batchSize);
  const totalSteps = Math.min(o.maxSteps ?? Infinity, o.epochs * perEpoch);
  const warmupSteps = o.warmup < 1 ? Math.ceil(o.warmup * totalSteps) : Math.round(o.warmup);
  const schedule = makeSchedule({ kind: o.schedule, maxLr: o.lr, minLr: 0, warmupSteps, totalSteps: Math.max(totalSteps, warmupSteps) });

  const adamModel = new AdamW(ft.model, { lr: o.lr, betas: o.betas, eps: o.eps, weightDecay: o.weightDecay });
  const adamHead = new AdamW(ft.head, { lr: o.lr, betas: o.betas, eps: o.eps, weightDecay: o.weightDecay });
  const losses: number[] = [];
  const history: FineTuneResult['history'] = [];
  let validationMetrics: TaskMetrics | null = null;
  let step = 0;
  let stopped = false;
  try {
    for (let epoch = 1; epoch <= o.epochs && step < totalSteps && !stopped; epoch++) {
      const order = permutation(N, o.seed, epoch);
      for (let b = 0; b < perEpoch && step < totalSteps; b++) {
        if (signal?.aborted) {
          stopped = true;
          break;
        }
        const tStep = performance.now();
        const lr = schedule(step);
        adamModel.setLr(lr);
        adamHead.setLr(lr);
        ft.model.zeroGrad();
        ft.head.zeroGrad();
        const idx = order.subarray(b * o.batchSize, Math.min(N, (b + 1) * o.batchSize));
        const { batch, gold } = ft.batch(trainData, idx);
        const parts = ft.lossBackward(batch, gold, o.lambda);
        if (!Number.isFinite(parts.loss)) {
          throw new Error(`finetune: the loss is ${parts.loss} at step ${step + 1}; the weights were not updated (try a lower lr)`);
        }
        const gradNorm = clipGlobal([ft.model, ft.head], o.gradClip);
        if (!Number.isFinite(gradNorm)) throw new Error(`finetune: the gradient norm is ${gradNorm} at step ${step + 1}; the weights were not updated (try a lower lr)`);
        adamModel.step();
        adamHead.step();
        step++;
        losses.push(parts.loss);
        const info: FineTuneStepInfo = {
          step,
          totalSteps,
          epoch,
          ...parts,
          lr,
          gradNorm,
          examplesPerSec: (idx.length * 1000) / Math.max(performance.now() - tStep, 1e-3),
        };
        const endOfEpoch = b === perEpoch - 1 || step === totalSteps;
        if (endOfEpoch && validation !== null) {
          validationMetrics = evaluateData(ft, validation, o.evalBatchSize);
          history.push({ epoch, step, metrics: validationMetrics });
          info.validation = validationMetrics;
        }
        await onStep?.(info);
        if (endOfEpoch && checkpointDir !== undefined) await ft.save(checkpointDir);
      }
    }
    if (stopped && checkpointDir !== undefined && step > 0) await ft.save(checkpointDir);
  } catch (err) {
    if (prepared.rebuilt) ft.dispose();
    else ft.head.dispose();
    throw err;
  } finally {
    adamModel.dispose();
    adamHead.dispose();
  }
  return {
    model: ft,
    steps: step,
    losses,
    history,
    validation: validationMetrics,
    truncated: { train: trainData.truncated, validation: valData?.truncated ?? 0 },
    addedTokens: prepared.added,
    stopped,
    elapsedMs: performance.now() - t0,
  };
}

function evaluateData(ft: FineTunedGPT, examples: TaskExample[], batchSize: number): TaskMetrics {
  const { predictions: _p, truncated: _t, ...metrics } = ft.evaluate(examples, { batchSize });
  return metrics;
}

/**
 * Clips the global gradient L2 norm of several parameter sets taken together (the model and
 * its head: one norm, as torch.nn.utils.clip_grad_norm_ over all parameters). Returns the
 * norm before clipping.
 */
export function clipGlobal(sets: ReadonlyArray<Optimizable>, maxNorm: number): number {
  let sq = 0;
  const bufs = sets.map((s) => s.parameterBuffers());
  for (const { backend, grads } of bufs) sq += backend.sumSquares(grads, grads.length);
  const norm = Math.sqrt(sq);
  if (maxNorm > 0 && Number.isFinite(norm)) {
    const coef = maxNorm / (norm + 1e-6);
    if (coef < 1) for (const { backend, grads } of bufs) backend.scale(grads, grads.length, coef);
  }
  return norm;
}

/** A permutation of 0..n-1 for (seed, epoch): Fisher–Yates on the counter RNG. */
export function permutation(n: number, seed: number, epoch: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const s = (seed ^ Math.imul(epoch, 0x9e3779b1)) >>> 0;
  for (let i = n - 1; i > 0; i--) {
    const j = uniformInt(s, n - 1 - i, i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** Distinct train labels, sorted: numerically when all are numbers, else as text. */
export function inferLabels(examples: readonly TaskExample[]): string[] {
  const set = new Set<string>();
  for (const e of examples) {
    const l = (e as { label?: string | number }).label;
    if (l !== undefined) set.add(String(l));
  }
  const labels = [...set];
  const numeric = labels.every((l) => l.trim() !== '' && Number.isFinite(Number(l)));
  labels.sort(numeric ? (a, b) => Number(a) - Number(b) : undefined);
  if (labels.length < 2) throw new Error(`finetune: the train examples have ${labels.length} distinct label(s) (${labels.join(', ')}); a classifier needs at least 2`);
  return labels;
}

async function examplesOf(x: TaskExample[] | string, type: TaskType, name: string, requireLabels: boolean): Promise<TaskExample[]> {
  if (typeof x === 'string') return loadTaskData(x, type, { requireLabels });
  if (!Array.isArray(x)) throw new Error(`finetune: ${name} must be an array of examples or a file path`);
  if (x.length === 0) throw new Error(`finetune: ${name} has no examples`);
  return x.map((e, i) => validateExample(type, e, `${name}[${i}]`, requireLabels));
}

interface Resolved {
  epochs: number;
  batchSize: number;
  lr: number;
  warmup: number;
  schedule: ScheduleKind;
  lambda: number;
  dropout: number;
  clfDropout: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  gradClip: number;
  seed: number;
  maxSteps?: number;
  evalBatchSize: number;
}

function resolve(o: FineTuneOptions): Resolved {
  const int = (name: string, v: unknown, min: number): number => {
    if (!Number.isSafeInteger(v) || (v as number) < min) throw new Error(`finetune: ${name} must be an integer >= ${min}, got ${String(v)}`);
    return v as number;
  };
  const num = (name: string, v: unknown, min: number, max = Infinity): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw new Error(`finetune: ${name} must be a number in [${min}, ${max}], got ${String(v)}`);
    return v;
  };
  const schedule = o.schedule ?? 'linear';
  if (!['linear', 'cosine', 'constant'].includes(schedule)) throw new Error(`finetune: schedule must be 'linear', 'cosine' or 'constant', got ${JSON.stringify(schedule)}`);
  const batchSize = int('batchSize', o.batchSize ?? 32, 1);
  const dropout = num('dropout', o.dropout ?? 0.1, 0, 0.999);
  const clfDropout = num('clfDropout', o.clfDropout ?? 0.1, 0, 0.999);
  const seed = int('seed', o.seed ?? 1337, 0);
  if (seed > 0xffffffff) throw new Error(`finetune: seed must be below 2^32, got ${seed}`);
  return {
    epochs: int('epochs', o.epochs ?? 3, 1),
    batchSize,
    lr: num('lr', o.lr ?? 6.25e-5, 0),
    warmup: num('warmup', o.warmup ?? 0.002, 0),
    schedule,
    lambda: num('lambda', o.lambda ?? 0.5, 0),
    dropout,
    clfDropout,
    weightDecay: num('weightDecay', o.weightDecay ?? 0.01, 0),
    betas: o.betas ?? [0.9, 0.999],
    eps: num('eps', o.eps ?? 1e-8, 0),
    gradClip: num('gradClip', o.gradClip ?? 1.0, 0),
    seed,
    maxSteps: o.maxSteps === undefined ? undefined : int('maxSteps', o.maxSteps, 1),
    evalBatchSize: int('evalBatchSize', o.evalBatchSize ?? batchSize, 1),
  };
}
