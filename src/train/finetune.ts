// The `finetune` verb: GPT-1's supervised fine-tuning (section 3.2), the loop of
// openai/finetune-transformer-lm's train.py over the task transformations of src/tasks, run
// by the step loop that `train` shares (loop.ts):
//
//   prepare: add <|start|> <|delim|> <|extract|> to the tokenizer and wte; new head W_y
//   for epoch in epochs:
//     for batch in shuffled train examples (batchSize examples):
//       lr = linear warmup over `warmup` of the updates, then linear decay to 0
//       L3 = L2 + λ·L1 on the batch (L2 alone when λ = 0); backward into model and head
//       clip the global gradient norm (model and head together); AdamW (both)
//       every checkpointEvery updates: checkpoint
//     evaluate on the validation examples; checkpoint
//
// Defaults (FINETUNE_PRESETS): GPT-1's published recipe — batch 32, 3 epochs, warmup 0.2%,
// linear decay, λ 0.5, dropout 0.1 (embeddings, attention, residual and classifier), AdamW
// β (0.9, 0.999), ε 1e-8, weight decay 0.01 on tensors of rank >= 2, gradient clip 1.0 —
// with two changes, for the small models and small tasks this library is mostly run on:
// - the learning rate scales with the model's width, lr = 6.25e-5 · 768 / nEmbd, so GPT-1's
//   6.25e-5 is what a 768-wide model gets and a 128-wide one gets 3.75e-4 (Adam's update
//   size per weight is set by lr, and a narrower layer needs a larger one to move its
//   outputs as far; µP's rule for hidden weights);
// - batch 8 (Hugging Face Trainer's default too): GPT-1's tasks had 10⁴–10⁵ examples, and
//   at batch 32 a task of a thousand or two gets too few updates in 3 epochs.
// Measured on a 128-wide model pre-trained on 70% of data/corpus.txt, 4-way choice of a
// held-out sentence's ending (1426 examples), 3 epochs, one standard error 2.3 points:
// batch 32: 41.1% at 6.25e-5, 47.5% at 2.5e-4, 48.1% at 1e-3 (random init 38.4%); with
// 3000 pre-training steps, at 3.75e-4: batch 32 46.3%, batch 8 55.4%, against 44.2% for the
// same model's best zero-shot score (one fine-tuning seed; bench/results/finetune.md runs the
// defaults on the bench's own build of the task, with three seeds: 44.6–51.9%, against
// 45.9% zero-shot and 37.6% for GPT-1's recipe). `preset: 'gpt1'` restores GPT-1's recipe exactly.
//
// A run that has not started to learn says so: when an epoch's mean L2 is within 2% of
// ln K (K classes or choices: what guessing uniformly gives), onWarning is called with
// what to try.
//
// The model passed in is trained in place when it already has the task tokens and the
// dropout asked for; otherwise a new GPT is built from it (rebuildGPT) and the one passed in
// is left unchanged. Either way the result's `model.model` is the trained one.
//
// Determinism: the epoch orders come from the counter RNG (seed, epoch), the dropout masks
// from the model seed and model.trainingSteps (the head's from ft.headSteps), so a run is a
// pure function of its inputs and backend.
//
// LoRA (`lora: { rank, alpha, dropout, targets }`, src/model/lora.ts): the prepared model
// gets a LoRA adapter and is frozen; the adapter and the head are what the optimizers and
// the gradient clip see (AdamW's state is theirs alone), at the LoRA default lr when none is
// given. The three task-token rows of wte stay at their N(0, 0.02) init, frozen like the rest
// of the embedding: a LoRA run trains no embedding row (PEFT's trainable_token_indices would;
// see docs/ARCHITECTURE.md#lora); the adapter folder stores them, so base + adapter
// reproduces the model exactly.
//
// Resume (checkpointDir + resume, as train's; the format is checkpoint.ts's): a checkpoint
// holds the model and head weights, both AdamW states, the step and both dropout counters.
// Update k (0-based) is batch k mod perEpoch of epoch floor(k / perEpoch) + 1, whose order
// is a pure function of (seed, epoch), so a checkpoint may be taken after ANY update, in the
// middle of an epoch too (checkpointEvery), and the resumed run continues bit for bit: the
// same batches, masks, learning rates and moments as an uninterrupted one.

import { createHash } from 'node:crypto';
import { prepareForTask } from '../tasks/special.js';
import { loadTaskData, validateExample } from '../tasks/data.js';
import { FineTunedGPT, type EncodedTaskData, type LossParts, type TaskDefinition } from '../tasks/finetuned.js';
import type { TaskMetrics } from '../tasks/metrics.js';
import type { TaskExample, TaskType } from '../tasks/transform.js';
import type { GPT } from '../model/gpt.js';
import type { Precision } from '../model/weights.js';
import { LoraAdapter, resolveLoraConfig, targetedSites, type LoraConfig, type LoraOptions } from '../model/lora.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { AdamW } from './optimizer.js';
import { uniformInt } from '../backend/rng.js';
import { makeSchedule, type ScheduleKind } from './schedule.js';
import { trainerHeader, loadTaskCheckpoint, repairCheckpoint, resumeSource, saveCheckpoint, type FineTuneTrainerState } from './checkpoint.js';
import { runStepLoop, trainingPrecision } from './loop.js';

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

/** Named recipes: their values are the defaults of every option below that is not given. */
export type FineTunePreset = 'default' | 'gpt1';

/** The options a preset fixes (see the top of this file); lr null: scaled with the width. */
export const FINETUNE_PRESETS: Readonly<Record<FineTunePreset, Readonly<Omit<FineTuneRecipe, 'lr'> & { lr: number | null }>>> = Object.freeze({
  default: Object.freeze({ epochs: 3, batchSize: 8, lr: null, warmup: 0.002, schedule: 'linear' as ScheduleKind, lambda: 0.5, dropout: 0.1, clfDropout: 0.1, weightDecay: 0.01, gradClip: 1.0 }),
  gpt1: Object.freeze({ epochs: 3, batchSize: 32, lr: 6.25e-5, warmup: 0.002, schedule: 'linear' as ScheduleKind, lambda: 0.5, dropout: 0.1, clfDropout: 0.1, weightDecay: 0.01, gradClip: 1.0 }),
});

/** What a preset sets. */
export interface FineTuneRecipe {
  epochs: number;
  batchSize: number;
  lr: number;
  warmup: number;
  schedule: ScheduleKind;
  lambda: number;
  dropout: number;
  clfDropout: number;
  weightDecay: number;
  gradClip: number;
}

/** GPT-1's fine-tuning lr (at its width, 768), scaled as 1 / nEmbd for other widths. */
export function widthScaledLr(nEmbd: number): number {
  return (6.25e-5 * 768) / nEmbd;
}

/** A preset's values for a model of width nEmbd: the defaults finetune uses. */
export function finetuneRecipe(nEmbd: number, preset: FineTunePreset = 'default', lora = false): FineTuneRecipe {
  const p = FINETUNE_PRESETS[preset];
  if (p === undefined) throw new Error(`finetune: preset must be ${Object.keys(FINETUNE_PRESETS).map((k) => `'${k}'`).join(' or ')}, got ${JSON.stringify(preset)}`);
  const lr = p.lr ?? widthScaledLr(nEmbd);
  return { ...p, lr: lora ? LORA_LR_RATIO * lr : lr };
}

export interface FineTuneOptions {
  model: GPT;
  /** Whose defaults the options not given take: 'default' (see the top of this file) or 'gpt1' (GPT-1's, lr 6.25e-5). */
  preset?: FineTunePreset;
  /** The model's tokenizer; the task tokens are added to a copy. */
  tokenizer: Tokenizer;
  task: FineTuneTask;
  epochs?: number;
  /** Examples per update. Default 8 (preset 'gpt1': 32). */
  batchSize?: number;
  /** Peak learning rate. Default 6.25e-5 · 768 / nEmbd (preset 'gpt1': 6.25e-5); with `lora`, LORA_LR_RATIO times that. */
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
  /** Told when an epoch ends with L2 still at chance (and what to try). Default console.warn. */
  onWarning?: (message: string) => void;
  /**
   * Checkpoints go here (one directory, replaced atomically; see checkpoint.ts): after every
   * epoch, every checkpointEvery updates, after the last and when stopped. It is also a
   * fine-tuned model folder (FineTunedGPT.load reads it).
   */
  checkpointDir?: string;
  /** Also checkpoint every this many updates (mid-epoch too); 0: only at the ends of epochs, the last update and a stop. Default 0. */
  checkpointEvery?: number;
  /**
   * Continue from the checkpoint at checkpointDir (or at the path given): true requires one,
   * 'auto' resumes if there is one and starts afresh otherwise. The model, tokenizer, task,
   * training examples, batchSize and seed must be those of the run that wrote it; the
   * weights (model and head) are replaced by the checkpoint's. Default false.
   */
  resume?: boolean | 'auto' | string;
  /** Stops after the current update (with a checkpoint if checkpointDir is set). */
  signal?: AbortSignal;
  /** 'bf16': mixed precision, as train's (GPT.precision). Default 'f32' ('bf16' for a model held in bf16). */
  precision?: Precision;
  /**
   * LoRA instead of full fine-tuning: the model is frozen and a low-rank adapter (rank,
   * alpha, dropout, targets: src/model/lora.ts, defaults LORA_DEFAULTS) is trained with the
   * head. The result's model has the adapter attached (merge it with mergeAdapter).
   */
  lora?: LoraOptions;
}

/**
 * A LoRA run's default peak learning rate is this many times full fine-tuning's (same preset
 * and width). B starts at zero and only the rank-r update moves, so a LoRA run takes larger
 * steps than one that moves every weight; how much larger was measured
 * (docs/ARCHITECTURE.md#lora): on the synthetic tasks c_attn adapters reach full fine-tuning
 * from 3.3× to 10× its lr; on the held-out ending choice (width 128, full lr 3.75e-4) they
 * get 45.2% at 1e-3, 44.0% at 3.75e-3 and 38.6% at 1e-2. 3× sits where both are good.
 */
export const LORA_LR_RATIO = 3;

export interface FineTuneResult {
  model: FineTunedGPT;
  /** Updates done in total (the step a resumed run ended at). */
  steps: number;
  /** The step this call started from (0, or the checkpoint's). */
  startStep: number;
  /** Loss of every update this call ran: losses[i] is step startStep + i + 1. */
  losses: number[];
  /** Validation metrics after each epoch (empty without validation data); a resumed run's include the checkpoint's. */
  history: Array<{ epoch: number; step: number; metrics: TaskMetrics }>;
  /** The last validation metrics (null without validation data). */
  validation: TaskMetrics | null;
  /** Examples cut to fit maxLength (see src/tasks/transform.ts). */
  truncated: { train: number; validation: number };
  /** Task tokens that were new to the tokenizer (and got fresh embedding rows). */
  addedTokens: string[];
  /** Parameters the run trained: the model's and the head's, or (LoRA) the adapter's and the head's. */
  trainableParameters: number;
  stopped: boolean;
  elapsedMs: number;
  /** What onWarning was told, in order. */
  warnings: string[];
  /** The options this run used, defaults filled in. */
  settings: FineTuneRecipe & { seed: number };
}

/** Fine-tunes `model` on a task; see FineTuneOptions and the top of this file. */
export async function finetune(options: FineTuneOptions): Promise<FineTuneResult> {
  const t0 = performance.now();
  if (options === null || typeof options !== 'object') throw new Error('finetune: options must be an object');
  const { model, tokenizer, task, onStep, checkpointDir, signal } = options;
  if (model === null || typeof model !== 'object' || typeof model.trainForward !== 'function') throw new Error('finetune: model must be a GPT');
  if (tokenizer === null || typeof tokenizer !== 'object' || typeof tokenizer.encode !== 'function') throw new Error('finetune: tokenizer must be a Tokenizer');
  if (task === null || typeof task !== 'object') throw new Error('finetune: task must be { type, train, validation?, labels? }');
  const o = resolve(options, model.config.nEmbd);

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

  if (model.adapter !== null) throw new Error('finetune: the model has a LoRA adapter attached; merge it (model.mergeAdapter()) or detach it first');
  const restorePrecision = trainingPrecision(model, options.precision, 'finetune');
  let prepared: ReturnType<typeof prepareForTask>;
  try {
    prepared = prepareForTask(model, tokenizer, { dropout: o.dropout });
    if (prepared.rebuilt) prepared.model.precision = model.precision;
  } catch (err) {
    restorePrecision();
    throw err;
  }
  let ft: FineTunedGPT;
  try {
    if (o.lora !== null) prepared.model.attachAdapter(LoraAdapter.create(prepared.model.config, o.lora, o.seed, prepared.model.backend));
    ft = FineTunedGPT.create(prepared.model, prepared.tokenizer, def, { seed: o.seed });
  } catch (err) {
    if (prepared.rebuilt) prepared.model.dispose();
    else prepared.model.detachAdapter()?.dispose();
    restorePrecision();
    throw err;
  }
  // What the optimizer and the clip see: the model, or (LoRA) its adapter, and the head.
  const trained = ft.model.adapter ?? ft.model;
  const trainData = ft.encode(train, 'task.train');
  const valData = validation === null ? null : ft.encode(validation, 'task.validation');

  const N = train.length;
  const batches = batchSchedule(N, o.batchSize, o.seed);
  const perEpoch = batches.perEpoch;
  const totalSteps = Math.min(o.maxSteps ?? Infinity, o.epochs * perEpoch);
  const warmupSteps = o.warmup < 1 ? Math.ceil(o.warmup * totalSteps) : Math.round(o.warmup);
  const schedule = makeSchedule({ kind: o.schedule, maxLr: o.lr, minLr: 0, warmupSteps, totalSteps: Math.max(totalSteps, warmupSteps) });

  const adamModel = new AdamW(trained, { lr: o.lr, betas: o.betas, eps: o.eps, weightDecay: o.weightDecay });
  const adamHead = new AdamW(ft.head, { lr: o.lr, betas: o.betas, eps: o.eps, weightDecay: o.weightDecay });
  const losses: number[] = [];
  const warnings: string[] = [];
  const warn = (message: string): void => {
    warnings.push(message);
    (options.onWarning ?? console.warn)(message);
  };
  // Guessing uniformly among K classes or choices costs ln K; a regression has no such level.
  const K = regression ? null : def.type === 'choice' ? (trainData.examples[0]?.seqs.length ?? 0) : ft.head.K;
  let epochL2 = { sum: 0, updates: 0 };
  let history: FineTuneResult['history'] = [];
  let startStep = 0;
  let lastLoss: number | null = null;
  let run: { step: number; stopped: boolean };
  try {
    // ---- resume ----
    const checkpointing = checkpointDir !== undefined || Boolean(options.resume);
    const dataId = checkpointing ? encodingDigest(trainData) : '';
    // LoRA: the frozen base is not in the checkpoint, so its digest is, to refuse another base.
    const baseId = checkpointing && o.lora !== null ? weightsDigest(ft.model) : undefined;
    if (checkpointDir !== undefined) await repairCheckpoint(checkpointDir);
    const resumeFrom = await resumeSource('finetune', options.resume, checkpointDir);
    if (resumeFrom !== null) {
      const ck = await loadTaskCheckpoint(resumeFrom, ft); // weights, head, both dropout counters
      const { trainer } = ck;
      if (trainer.data.id !== dataId || trainer.data.count !== N) {
        throw new Error(`finetune: the checkpoint at ${ck.dir} was trained on other examples (${trainer.data.count}, digest ${trainer.data.id}) than these (${N}, digest ${dataId}); resuming would not continue the same run`);
      }
      for (const k of ['batchSize', 'seed'] as const) {
        if (trainer.options[k] !== o[k]) throw new Error(`finetune: the checkpoint at ${ck.dir} was written with ${k} ${String(trainer.options[k])}, not ${o[k]}: the epoch orders would differ`);
      }
      if (trainer.base !== baseId) throw new Error(`finetune: the checkpoint at ${ck.dir} was fine-tuned from another base model (weights digest ${String(trainer.base)}, this one's ${String(baseId)}); its LoRA adapter belongs to that one`);
      adamModel.loadState(ck.optimizer);
      adamHead.loadState(ck.headOptimizer);
      startStep = trainer.step;
      lastLoss = trainer.loss;
      history = trainer.history;
    }

    const epochOf = batches.epochOf;
    const endOfEpoch = (step: number): boolean => step % perEpoch === 0 || step === totalSteps; // step: updates done
    run = await runStepLoop<LossParts & { examples: number }, TaskMetrics>({
      verb: 'finetune',
      startStep,
      steps: totalSteps,
      schedule,
      params: [trained, ft.head],
      optimizers: [adamModel, adamHead],
      gradClip: o.gradClip,
      lossHint: 'try a lower lr',
      micro: (step) => {
        const idx = batches.indices(step);
        const { batch, gold } = ft.batch(trainData, idx);
        return { ...ft.lossBackward(batch, gold, o.lambda), examples: idx.length };
      },
      evaluate: (step) => {
        if (validation === null || !endOfEpoch(step)) return undefined;
        const metrics = evaluateData(ft, validation, o.evalBatchSize);
        history.push({ epoch: epochOf(step - 1), step, metrics });
        return metrics;
      },
      onUpdate: async ({ step, lr, gradNorm, parts: { examples, ...parts }, ms, evaluation }) => {
        lastLoss = parts.loss;
        losses.push(parts.loss);
        epochL2.sum += parts.l2;
        epochL2.updates++;
        if (endOfEpoch(step)) {
          if (K !== null && K >= 2) {
            const message = stillAtChance(epochL2.sum / epochL2.updates, K, epochOf(step - 1), o, evaluation?.accuracy);
            if (message !== null) warn(message);
          }
          epochL2 = { sum: 0, updates: 0 };
        }
        const info: FineTuneStepInfo = { step, totalSteps, epoch: epochOf(step - 1), ...parts, lr, gradNorm, examplesPerSec: (examples * 1000) / Math.max(ms, 1e-3) };
        if (evaluation !== undefined) info.validation = evaluation;
        await onStep?.(info);
      },
      checkpointDue: (step) => endOfEpoch(step) || (o.checkpointEvery > 0 && step % o.checkpointEvery === 0),
      checkpoint:
        checkpointDir === undefined
          ? undefined
          : async (step) => {
              const trainer: FineTuneTrainerState = {
                ...trainerHeader(step, ft.model),
                verb: 'finetune',
                headSteps: ft.headSteps,
                data: { id: dataId, count: N },
                options: { ...o },
                loss: lastLoss,
                history,
                ...(baseId === undefined ? {} : { base: baseId }),
              };
              await saveCheckpoint(checkpointDir, { model: ft, optimizer: adamModel.state(), headOptimizer: adamHead.state(), trainer });
            },
      signal,
    });
  } catch (err) {
    if (prepared.rebuilt) ft.dispose();
    else {
      ft.head.dispose();
      ft.model.detachAdapter()?.dispose();
    }
    throw err;
  } finally {
    adamModel.dispose();
    adamHead.dispose();
    restorePrecision();
  }
  if (prepared.rebuilt) ft.model.precision = 'f32'; // the caller's model was restored above
  return {
    model: ft,
    steps: run.step,
    startStep,
    losses,
    history,
    validation: history.at(-1)?.metrics ?? null,
    truncated: { train: trainData.truncated, validation: valData?.truncated ?? 0 },
    addedTokens: prepared.added,
    trainableParameters: (ft.model.adapter?.numParameters() ?? ft.model.numParameters()) + ft.head.numParameters(),
    stopped: run.stopped,
    elapsedMs: performance.now() - t0,
    warnings,
    settings: recipeOf(o),
  };
}

/**
 * The warning for an epoch whose mean L2 is within 2% of ln K (the loss of a uniform guess
 * among K): the head has learned nothing the loss can see yet. Null when it has.
 */
export function stillAtChance(meanL2: number, K: number, epoch: number, o: { lr: number; batchSize: number; epochs: number; lambda: number }, validationAccuracy?: number): string | null {
  const chance = Math.log(K);
  if (!(Math.abs(meanL2 - chance) <= 0.02 * chance)) return null;
  // A hard task can sit near ln K with the validation accuracy already above chance: say both.
  const accuracy = validationAccuracy === undefined ? '' : ` (validation accuracy ${(100 * validationAccuracy).toFixed(1)}%; guessing gets ${(100 / K).toFixed(1)}%)`;
  return (
    `finetune: after epoch ${epoch} the task loss L2 averages ${meanL2.toFixed(4)}, within 2% of ln ${K} = ${chance.toFixed(4)} ` +
    `(what guessing among ${K} gives): the model has learned little or nothing of the task so far${accuracy}. Try a higher lr (now ${o.lr}` +
    `${o.lr > 0 ? `; e.g. ${+(o.lr * 4).toPrecision(3)}` : ''}), more epochs (now ${o.epochs}) or a smaller batch (now ${o.batchSize}) for more updates` +
    `${o.lambda > 0 ? `, λ 0 (now ${o.lambda})` : ''}; and check that the labels follow from the inputs.`
  );
}

function evaluateData(ft: FineTunedGPT, examples: TaskExample[], batchSize: number): TaskMetrics {
  const { predictions: _p, truncated: _t, ...metrics } = ft.evaluate(examples, { batchSize });
  return metrics;
}

/**
 * A digest of encoded training examples (every sequence's tokens, the gold labels and
 * scores): a checkpoint records it so that a resumed run on other examples, another
 * tokenizer or another maxLength is refused.
 */
function encodingDigest(data: EncodedTaskData): string {
  const h = createHash('sha256');
  const bytes = (a: Int32Array | Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  for (const ex of data.examples) {
    h.update(bytes(Int32Array.of(ex.seqs.length)));
    for (const seq of ex.seqs) h.update(bytes(Int32Array.of(seq.length))).update(bytes(seq));
  }
  h.update(bytes(data.gold.labels)).update(bytes(data.gold.scores));
  return h.digest('hex').slice(0, 16);
}

/** Which examples each update of `finetune` takes; see batchSchedule. */
export interface BatchSchedule {
  /** Updates per epoch: ceil(N / batchSize). */
  perEpoch: number;
  /** The 1-based epoch of update `step` (0-based). */
  epochOf: (step: number) => number;
  /**
   * The example indices of update `step` (0-based): batch step mod perEpoch of the order
   * permutation(N, seed, epochOf(step)). A view, valid until indices() is asked for an
   * update of another epoch.
   */
  indices: (step: number) => Int32Array;
}

/**
 * The batches of a fine-tuning run over N examples: finetune takes them from here, and so can
 * anything that must see the very same batches (bench/finetune-parity.js).
 */
export function batchSchedule(N: number, batchSize: number, seed: number): BatchSchedule {
  const perEpoch = Math.ceil(N / batchSize);
  const epochOf = (step: number): number => Math.floor(step / perEpoch) + 1;
  let order: Int32Array | null = null;
  let orderEpoch = 0;
  return {
    perEpoch,
    epochOf,
    indices: (step) => {
      const epoch = epochOf(step);
      if (order === null || orderEpoch !== epoch) {
        order = permutation(N, seed, epoch);
        orderEpoch = epoch;
      }
      const b = step % perEpoch;
      return order.subarray(b * batchSize, Math.min(N, (b + 1) * batchSize));
    },
  };
}

/** A digest of a model's weights (every parameter, in order): what a LoRA checkpoint records of its frozen base. */
function weightsDigest(model: GPT): string {
  const h = createHash('sha256');
  for (const [, p] of model.namedParameters()) {
    const d = p.data();
    h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return h.digest('hex').slice(0, 16);
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

/** The recipe part of resolved options (what a run reports as its settings). */
function recipeOf(o: Resolved): FineTuneRecipe & { seed: number } {
  const { betas: _b, eps: _e, maxSteps: _m, evalBatchSize: _v, checkpointEvery: _c, ...recipe } = o;
  return recipe;
}

/** A preset's recipe with every option given or defaulted. */
interface Resolved extends FineTuneRecipe {
  betas: [number, number];
  eps: number;
  seed: number;
  maxSteps?: number;
  evalBatchSize: number;
  checkpointEvery: number;
  /** The LoRA settings (resolved), or null for full fine-tuning. */
  lora: LoraConfig | null;
}

function resolve(o: FineTuneOptions, nEmbd: number): Resolved {
  const int = (name: string, v: unknown, min: number): number => {
    if (!Number.isSafeInteger(v) || (v as number) < min) throw new Error(`finetune: ${name} must be an integer >= ${min}, got ${String(v)}`);
    return v as number;
  };
  const num = (name: string, v: unknown, min: number, max = Infinity): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw new Error(`finetune: ${name} must be a number in [${min}, ${max}], got ${String(v)}`);
    return v;
  };
  const lora = o.lora === undefined ? null : resolveLoraConfig(o.lora, 'finetune: lora');
  if (lora !== null) targetedSites(lora, o.model.config.nLayer, 'finetune: lora'); // a target that matches nothing: said before anything runs
  const d = finetuneRecipe(nEmbd, o.preset ?? 'default', lora !== null);
  const schedule = o.schedule ?? d.schedule;
  if (!['linear', 'cosine', 'constant'].includes(schedule)) throw new Error(`finetune: schedule must be 'linear', 'cosine' or 'constant', got ${JSON.stringify(schedule)}`);
  const batchSize = int('batchSize', o.batchSize ?? d.batchSize, 1);
  const dropout = num('dropout', o.dropout ?? d.dropout, 0, 0.999);
  const clfDropout = num('clfDropout', o.clfDropout ?? d.clfDropout, 0, 0.999);
  const seed = int('seed', o.seed ?? 1337, 0);
  if (seed > 0xffffffff) throw new Error(`finetune: seed must be below 2^32, got ${seed}`);
  return {
    epochs: int('epochs', o.epochs ?? d.epochs, 1),
    batchSize,
    lr: num('lr', o.lr ?? d.lr, 0),
    warmup: num('warmup', o.warmup ?? d.warmup, 0),
    schedule,
    lambda: num('lambda', o.lambda ?? d.lambda, 0),
    dropout,
    clfDropout,
    weightDecay: num('weightDecay', o.weightDecay ?? d.weightDecay, 0),
    betas: o.betas ?? [0.9, 0.999],
    eps: num('eps', o.eps ?? 1e-8, 0),
    gradClip: num('gradClip', o.gradClip ?? d.gradClip, 0),
    seed,
    maxSteps: o.maxSteps === undefined ? undefined : int('maxSteps', o.maxSteps, 1),
    evalBatchSize: int('evalBatchSize', o.evalBatchSize ?? batchSize, 1),
    checkpointEvery: int('checkpointEvery', o.checkpointEvery ?? 0, 0),
    lora,
  };
}
