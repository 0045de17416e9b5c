// Training checkpoints: everything a resumed run needs to continue EXACTLY (bit for bit, on
// the same backend) where an uninterrupted run would be. One format and one writer for both
// verbs, `train` (pre-training) and `finetune` (GPT-1 fine-tuning).
//
// A checkpoint is a directory:
//   config.json, model.safetensors   the weights, written by the model's own save(): GPT.save
//                                    for train; FineTunedGPT.save for finetune, which adds
//                                    the task head (score.weight, score.bias) to
//                                    model.safetensors, tokenizer.json and task.json. So
//                                    GPT.load (and for finetune FineTunedGPT.load) reads the
//                                    folder as is.
//   optimizer.safetensors            AdamW's m and v, (P) each, our parameter layout;
//                                    finetune adds head.m and head.v (the head's AdamW);
//                                    metadata { step (, head.step) }: updates done
//   trainer.json                     the loop's state, written LAST. Both verbs: step,
//                                    model.trainingSteps (keys the dropout masks), the data
//                                    it was trained on, the run's hyper-parameters, the last
//                                    loss. train: the window sampler's { seed, drawn } and the
//                                    last validation loss. finetune ("verb": "finetune"): the
//                                    head's headSteps (keys its dropout masks) and the
//                                    validation metrics so far; its epoch orders are a pure
//                                    function of (seed, epoch), so `step` places it in them.
//   tokenizer.json                   if the run was given a tokenizer (finetune: always)
//
// A LoRA fine-tuning checkpoint (finetune({ lora })) holds the adapter folder that
// FineTunedGPT.save writes with an adapter attached (adapter_config.json,
// adapter_model.safetensors: adapter, head, task-token rows) instead of config.json and
// model.safetensors; its optimizer state is the adapter's, and trainer.json records a
// digest of the frozen base weights, so a resume on another base is refused.
//
// Atomicity. Saving to `ckpt` never touches `ckpt` until a complete new one exists:
//   1. write everything into `ckpt.tmp-<pid>/` (every file fsynced, then the directory)
//   2. rename `ckpt` → `ckpt.old`               (fsync the parent directory)
//   3. rename `ckpt.tmp-<pid>` → `ckpt`          (fsync the parent directory)
//   4. remove `ckpt.old`
// A kill before 2 leaves `ckpt` as it was; between 2 and 3 only `ckpt.old` exists, and the
// loader falls back to it; after 3 `ckpt` is the new one. The next save first repairs
// what a kill left behind (stale temp directories, a lone `ckpt.old`). Renaming a
// directory is atomic on POSIX file systems when source and target are in the same
// directory, which they are. One writer per checkpoint path.

import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Backend } from '../backend/backend.js';
import { getBackend } from '../backend/index.js';
import { syncDirectory, writeFileAtomic } from '../io/atomic.js';
import { isAdapterFolder, readAdapterFolder } from '../io/peft.js';
import { expectTensors, readSafetensorsFile, writeSafetensorsFile } from '../io/safetensors.js';
import type { GPTConfig } from '../model/config.js';
import { f32Params, loadGPT } from '../io/hf-gpt2.js';
import { GPT } from '../model/gpt.js';
import { paramLayout } from '../model/params.js';
import { HEAD_BIAS, HEAD_WEIGHT } from '../model/head.js';
import { FineTunedGPT } from '../tasks/finetuned.js';
import type { TaskMetrics } from '../tasks/metrics.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { SamplerState } from './data.js';
import type { AdamWState } from './optimizer.js';

export const CHECKPOINT_FORMAT = 'ferrogpt-checkpoint';

/** trainer.json of a `train` (pre-training) checkpoint. */
export interface TrainerState {
  format: typeof CHECKPOINT_FORMAT;
  version: 1;
  /** Absent for train (checkpoints from before finetune had them have none either). */
  verb?: 'train';
  /** Optimizer updates done (the next one is step + 1). */
  step: number;
  /** model.trainingSteps: training passes run, which keys the dropout masks. */
  trainingSteps: number;
  sampler: SamplerState;
  /** The data the sampler drew from: a resumed run must draw from the same. */
  data: { id: string; count: number; trainTokens: number };
  /** The run's hyper-parameters, for the record (and to spot a changed setup). */
  options: Record<string, unknown>;
  /** Last validation loss, if one was computed. */
  valLoss: number | null;
  /** Training loss of the last step. */
  loss: number | null;
}

/** trainer.json of a `finetune` checkpoint. */
export interface FineTuneTrainerState {
  format: typeof CHECKPOINT_FORMAT;
  version: 1;
  verb: 'finetune';
  /** Optimizer updates done; with the batch size and seed it places the run in its epoch orders. */
  step: number;
  /** model.trainingSteps: keys the model's dropout masks. */
  trainingSteps: number;
  /** FineTunedGPT.headSteps: keys the classifier dropout masks. */
  headSteps: number;
  /** The training examples: their count and a digest of their encoding (a resumed run must use the same). */
  data: { id: string; count: number };
  /** The run's hyper-parameters (batchSize and seed must not change on resume). */
  options: Record<string, unknown>;
  /** Training loss of the last step. */
  loss: number | null;
  /** Validation metrics after each epoch so far (the last ones are its last entry). */
  history: Array<{ epoch: number; step: number; metrics: TaskMetrics }>;
  /** LoRA runs: a digest of the frozen base weights (a resumed run must start from the same). */
  base?: string;
}

export interface CheckpointContents {
  /** The weights: a GPT (train), or a FineTunedGPT (finetune: with its head, tokenizer and task). */
  model: GPT | FineTunedGPT;
  optimizer: AdamWState;
  /** finetune: the head's AdamW state. */
  headOptimizer?: AdamWState;
  trainer: TrainerState | FineTuneTrainerState;
  /** Written as tokenizer.json (a FineTunedGPT writes its own). */
  tokenizer?: Tokenizer;
}

export interface LoadedCheckpoint {
  /** The directory actually read: `dir`, or `dir.old` after a save was interrupted. */
  dir: string;
  model: GPT;
  optimizer: AdamWState;
  trainer: TrainerState;
}

export interface LoadedTaskCheckpoint {
  /** The directory actually read: `dir`, or `dir.old` after a save was interrupted. */
  dir: string;
  model: FineTunedGPT;
  optimizer: AdamWState;
  headOptimizer: AdamWState;
  trainer: FineTuneTrainerState;
}

/** Writes a checkpoint to `dir` atomically (see the top of this file). */
export async function saveCheckpoint(dir: string, contents: CheckpointContents): Promise<void> {
  const { model, optimizer, headOptimizer, trainer, tokenizer } = contents;
  const task = model instanceof FineTunedGPT;
  if (task !== (trainer.verb === 'finetune') || task !== (headOptimizer !== undefined)) {
    throw new Error('saveCheckpoint: a FineTunedGPT goes with a finetune trainer state and a headOptimizer, a GPT with neither');
  }
  const target = resolve(dir);
  const parent = dirname(target);
  await mkdir(parent, { recursive: true });
  await repair(target);

  const tmp = `${target}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
  await mkdir(tmp);
  try {
    await model.save(tmp);
    await testPause('tmp', trainer.step);
    const P = optimizer.m.length;
    const tensors: Array<[string, { shape: number[]; data: Float32Array }]> = [['m', { shape: [P], data: optimizer.m }], ['v', { shape: [P], data: optimizer.v }]];
    const metadata: Record<string, string> = { format: 'ferrogpt-adamw', step: String(optimizer.step) };
    if (headOptimizer !== undefined) {
      const H = headOptimizer.m.length;
      tensors.push(['head.m', { shape: [H], data: headOptimizer.m }], ['head.v', { shape: [H], data: headOptimizer.v }]);
      metadata['head.step'] = String(headOptimizer.step);
    }
    await writeSafetensorsFile(join(tmp, 'optimizer.safetensors'), tensors, metadata);
    if (tokenizer) await tokenizer.save(join(tmp, 'tokenizer.json'));
    await writeFileAtomic(join(tmp, 'trainer.json'), JSON.stringify(trainer, null, 2) + '\n');
    await syncDirectory(tmp);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }

  const old = `${target}.old`;
  if (await exists(target)) {
    await rename(target, old);
    await syncDirectory(parent);
  }
  await testPause('swap', trainer.step);
  await rename(tmp, target);
  await syncDirectory(parent);
  await rm(old, { recursive: true, force: true });
}

/**
 * Where the last good checkpoint at `dir` is: `dir` itself, or `dir.old` if a save was
 * killed between its two renames; null when there is none.
 */
export async function findCheckpoint(dir: string): Promise<string | null> {
  const target = resolve(dir);
  for (const d of [target, `${target}.old`]) if (await exists(join(d, 'trainer.json'))) return d;
  return null;
}

/**
 * Reads a `train` checkpoint written by saveCheckpoint (falling back to `dir.old`, see the
 * top of this file) and checks it: the config against `model` when one is given (the weights
 * are then loaded into it), every tensor's name and shape, and trainer.json's fields. Without
 * `model`, a new GPT is created on `backend` (default: the current one).
 */
export async function loadCheckpoint(dir: string, options: { model?: GPT; backend?: Backend } = {}): Promise<LoadedCheckpoint> {
  const { found, where, raw } = await openCheckpoint(dir, 'loadCheckpoint');
  if ((raw as { verb?: unknown } | null)?.verb === 'finetune') {
    throw where('it is a finetune checkpoint: resume it with finetune({ resume }), or load the fine-tuned model with FineTunedGPT.load');
  }
  const trainer = checkTrainerState(raw, where);
  const { config, stored } = await readWeights(found, where);
  const params = f32Params(stored);
  const own = options.model;
  if (own) {
    const diffs = configDiff(config, own.config);
    if (diffs.length > 0) throw where(`it was written for a different model: ${diffs.join(', ')} (checkpoint vs model)`);
  }
  const { optimizer } = await readOptimizer(found, where, paramLayout(config).total, null);

  // Everything checked: only now touch (or make) the model.
  if (own) own.loadParameters(params);
  const model = own ?? GPT.fromParameters(config, params, options.backend ?? getBackend());
  model.trainingSteps = trainer.trainingSteps;
  return { dir: found, model, optimizer, trainer };
}

/**
 * Reads a `finetune` checkpoint into `ft` (falling back to `dir.old`): checks the config, the
 * task (task.json against ft.task), the head's and the optimizers' shapes and trainer.json,
 * then loads the model's (a LoRA run's: its adapter's) and the head's weights and their
 * dropout counters (model.trainingSteps, ft.headSteps). Returns both optimizer states and
 * trainer.json.
 */
export async function loadTaskCheckpoint(dir: string, ft: FineTunedGPT): Promise<LoadedTaskCheckpoint> {
  const { found, where, raw } = await openCheckpoint(dir, 'loadTaskCheckpoint');
  if ((raw as { verb?: unknown } | null)?.verb !== 'finetune') throw where('it is a train (pre-training) checkpoint, not a finetune one');
  const trainer = checkFineTuneState(raw, where);
  const task = await readJson(join(found, 'task.json')).catch((err: Error) => {
    throw where(err.message);
  });
  const taskDiffs = Object.keys({ ...(task as object), ...ft.task }).filter(
    (k) => JSON.stringify((task as Record<string, unknown>)[k]) !== JSON.stringify((ft.task as unknown as Record<string, unknown>)[k]),
  );
  if (taskDiffs.length > 0) throw where(`task.json differs from the task being fine-tuned in ${taskDiffs.join(', ')}`);
  const K = ft.head.K;
  const C = ft.model.config.nEmbd;
  const headShapes = (w: { shape: number[] } | undefined, b: { shape: number[] } | undefined): void => {
    if (w === undefined || b === undefined || w.shape.join() !== `${K},${C}` || b.shape.join() !== `${K}`) {
      throw where(`the task head (${HEAD_WEIGHT}, ${HEAD_BIAS}) must have shapes [${K}, ${C}] and [${K}]`);
    }
  };
  const adapter = ft.model.adapter;
  const lora = await isAdapterFolder(found);
  if (lora !== (adapter !== null)) {
    throw where(lora ? 'it is a LoRA fine-tuning checkpoint: resume it with the same lora settings' : 'it is a full fine-tuning checkpoint: resume it without lora');
  }
  if (adapter !== null) {
    const folder = await readAdapterFolder(found, 'loadTaskCheckpoint');
    const diffs = (['rank', 'alpha', 'dropout', 'targets'] as const).filter((k) => JSON.stringify(folder.config[k]) !== JSON.stringify(adapter.config[k]));
    if (diffs.length > 0) throw where(`it was written for another LoRA adapter: ${diffs.map((k) => `${k} ${JSON.stringify(folder.config[k])} vs ${JSON.stringify(adapter.config[k])}`).join(', ')} (checkpoint vs run)`);
    headShapes(folder.head?.weight, folder.head?.bias ?? undefined);
    const ids = [ft.ids.start, ft.ids.delim, ft.ids.extract];
    const rows = ft.model.embeddingRows(ids);
    if (folder.tokens === null || folder.tokens.ids.join() !== ids.join() || !folder.tokens.rows.data.every((x, i) => x === rows[i])) {
      throw where('its task-token rows differ from the model\'s: it was fine-tuned from another base model');
    }
    const { optimizer, headOptimizer } = await readOptimizer(found, where, adapter.numParameters(), ft.head.numParameters());
    // Everything checked: only now touch the adapter and the head.
    adapter.loadParameters([...folder.lora].map(([name, t]) => [name, t.data] as const), `loadTaskCheckpoint: ${found}`);
    ft.head.loadParameters(folder.head!.weight.data, folder.head!.bias!.data);
    ft.model.trainingSteps = trainer.trainingSteps;
    ft.headSteps = trainer.headSteps;
    return { dir: found, model: ft, optimizer, headOptimizer: headOptimizer!, trainer };
  }
  const { config, stored, tensors } = await readWeights(found, where);
  const params = f32Params(stored);
  const diffs = configDiff(config, ft.model.config);
  if (diffs.length > 0) throw where(`it was written for a different model: ${diffs.join(', ')} (checkpoint vs model)`);
  headShapes(tensors.get(HEAD_WEIGHT), tensors.get(HEAD_BIAS));
  const { optimizer, headOptimizer } = await readOptimizer(found, where, ft.model.numParameters(), ft.head.numParameters());

  // Everything checked: only now touch the model and the head.
  ft.model.loadParameters(params);
  ft.head.loadParameters(tensors.get(HEAD_WEIGHT)!.data, tensors.get(HEAD_BIAS)!.data);
  ft.model.trainingSteps = trainer.trainingSteps;
  ft.headSteps = trainer.headSteps;
  return { dir: found, model: ft, optimizer, headOptimizer: headOptimizer!, trainer };
}

/**
 * Where to resume from, for a verb's `resume` option: null (start afresh), `checkpointDir`
 * (resume: true; 'auto' when a checkpoint is there) or the path given.
 */
export async function resumeSource(verb: string, resume: boolean | 'auto' | string | undefined, checkpointDir: string | undefined): Promise<string | null> {
  if (resume === undefined || resume === false) return null;
  if (resume !== true && resume !== 'auto') {
    if (typeof resume === 'string' && resume !== '') return resume;
    throw new Error(`${verb}: resume must be true, false, 'auto' or a checkpoint path, got ${JSON.stringify(resume)}`);
  }
  if (checkpointDir === undefined) throw new Error(`${verb}: resume needs checkpointDir (or a checkpoint path as resume)`);
  if (resume === 'auto' && (await findCheckpoint(checkpointDir)) === null) return null;
  return checkpointDir; // resume: true and no checkpoint → the loader says so
}

async function openCheckpoint(dir: string, fn: string): Promise<{ found: string; where: (msg: string) => Error; raw: unknown }> {
  const found = await findCheckpoint(dir);
  if (found === null) {
    throw new Error(`${fn}: no checkpoint at ${dir} (a checkpoint directory holds trainer.json, optimizer.safetensors, config.json and model.safetensors)`);
  }
  const where = (msg: string): Error => new Error(`${fn}: ${found}: ${msg}`);
  return { found, where, raw: await readJson(join(found, 'trainer.json')) };
}

/** config.json and model.safetensors (the model folder's loader), errors placed in the checkpoint. */
function readWeights(found: string, where: (msg: string) => Error): ReturnType<typeof loadGPT> {
  return loadGPT(found).catch((err: Error) => {
    throw where(err.message);
  });
}

/** optimizer.safetensors: m and v of P values, and head.m, head.v of H when H is not null. */
async function readOptimizer(found: string, where: (msg: string) => Error, P: number, H: number | null): Promise<{ optimizer: AdamWState; headOptimizer: AdamWState | null }> {
  const { tensors, metadata } = await readSafetensorsFile(join(found, 'optimizer.safetensors')).catch((err: Error) => {
    throw where(err.message);
  });
  try {
    expectTensors(tensors, H === null ? { m: [P], v: [P] } : { m: [P], v: [P], 'head.m': [H], 'head.v': [H] });
  } catch (err) {
    throw where(`optimizer.safetensors: ${(err as Error).message}`);
  }
  const state = (prefix: string): AdamWState => {
    const key = `${prefix}step`;
    const step = Number(metadata[key]);
    if (!Number.isSafeInteger(step) || step < 0) throw where(`optimizer.safetensors: metadata ${key} ${JSON.stringify(metadata[key])} is not an integer >= 0`);
    const m = tensors.get(`${prefix}m`)!;
    const v = tensors.get(`${prefix}v`)!;
    if (m.dtype !== 'F32' || v.dtype !== 'F32') throw where(`optimizer.safetensors: ${prefix}m and ${prefix}v must be F32`);
    return { step, m: m.data, v: v.data };
  };
  return { optimizer: state(''), headOptimizer: H === null ? null : state('head.') };
}

/** Names every field on which two configs differ: "nLayer 4 vs 2". */
export function configDiff(a: Readonly<GPTConfig>, b: Readonly<GPTConfig>): string[] {
  const keys: Array<keyof GPTConfig> = ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd', 'dropout', 'bias', 'postLN', 'seed'];
  return keys.filter((k) => a[k] !== b[k]).map((k) => `${k} ${String(a[k])} vs ${String(b[k])}`);
}

function checkTrainerState(x: unknown, where: (msg: string) => Error): TrainerState {
  const t = checkHeader(x, where) as Partial<TrainerState>;
  const int = intChecker(where);
  if (t.sampler === null || typeof t.sampler !== 'object') throw where('trainer.json: missing sampler');
  int(t.sampler.seed, 'sampler.seed');
  int(t.sampler.drawn, 'sampler.drawn');
  if (t.data === null || typeof t.data !== 'object' || typeof t.data.id !== 'string') throw where('trainer.json: missing data');
  int(t.data.count, 'data.count');
  int(t.data.trainTokens, 'data.trainTokens');
  return t as TrainerState;
}

function checkFineTuneState(x: unknown, where: (msg: string) => Error): FineTuneTrainerState {
  const t = checkHeader(x, where) as Partial<FineTuneTrainerState>;
  const int = intChecker(where);
  int(t.headSteps, 'headSteps');
  if (t.data === null || typeof t.data !== 'object' || typeof t.data.id !== 'string') throw where('trainer.json: missing data');
  int(t.data.count, 'data.count');
  if (t.options === null || typeof t.options !== 'object') throw where('trainer.json: missing options');
  if (!Array.isArray(t.history)) throw where('trainer.json: missing history');
  return t as FineTuneTrainerState;
}

/** What every trainer.json has: format, version, step, trainingSteps. */
/** The fields every trainer.json starts with (checkHeader reads them back): train's and finetune's alike. */
export function trainerHeader(step: number, model: GPT): Pick<TrainerState, 'format' | 'version' | 'step' | 'trainingSteps'> {
  return { format: CHECKPOINT_FORMAT, version: 1, step, trainingSteps: model.trainingSteps };
}

function checkHeader(x: unknown, where: (msg: string) => Error): Partial<TrainerState | FineTuneTrainerState> {
  const t = x as Partial<TrainerState | FineTuneTrainerState> | null;
  if (t === null || typeof t !== 'object' || t.format !== CHECKPOINT_FORMAT) throw where(`trainer.json is not a ${CHECKPOINT_FORMAT} file`);
  if (t.version !== 1) throw where(`trainer.json has version ${String(t.version)}; this ferrogpt reads version 1`);
  const int = intChecker(where);
  int(t.step, 'step');
  int(t.trainingSteps, 'trainingSteps');
  return t;
}

function intChecker(where: (msg: string) => Error): (v: unknown, name: string) => void {
  return (v, name) => {
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw where(`trainer.json: ${name} must be an integer >= 0, got ${JSON.stringify(v)}`);
  };
}

/**
 * Cleans up what a killed save left at `dir` (see the top of this file). For the one
 * writer of `dir`: `train` and `finetune` call it before resuming, so that a run which has
 * nothing left to do (and so never saves again) still leaves only `dir` behind.
 */
export async function repairCheckpoint(dir: string): Promise<void> {
  const target = resolve(dir);
  if (await exists(dirname(target))) await repair(target);
}

/** Cleans up after a save that was killed: stale temp dirs, and a lone `.old`. */
async function repair(target: string): Promise<void> {
  const parent = dirname(target);
  const prefix = `${basename(target)}.tmp-`;
  for (const name of await readdir(parent)) {
    if (name.startsWith(prefix)) await rm(join(parent, name), { recursive: true, force: true });
  }
  const old = `${target}.old`;
  if (await exists(old)) {
    if (await exists(target)) await rm(old, { recursive: true, force: true });
    else await rename(old, target); // killed between the renames: `.old` is the last good one
    await syncDirectory(parent);
  }
}

async function readJson(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/**
 * Test hook (fault injection, used by test/checkpoint.test.ts's kill test): with
 * FERROGPT_TEST_CHECKPOINT_PAUSE_MS set, saving announces
 * "ferrogpt-test: checkpoint pause <phase> <step>" on stderr and sleeps that long at each
 * phase: 'tmp' (the temp directory half written) and 'swap' (the old checkpoint renamed
 * away, the new one not yet in place). FERROGPT_TEST_CHECKPOINT_PAUSE_AT=<phase>[@<step>]
 * limits it to one phase (and to the checkpoint of one step). Unset, it does nothing.
 */
async function testPause(phase: 'tmp' | 'swap', step: number): Promise<void> {
  const env = process.env;
  const ms = Number(env.FERROGPT_TEST_CHECKPOINT_PAUSE_MS ?? 0);
  if (!(ms > 0)) return;
  const [atPhase, atStep] = (env.FERROGPT_TEST_CHECKPOINT_PAUSE_AT ?? '').split('@');
  if (atPhase && atPhase !== phase) return;
  if (atStep !== undefined && Number(atStep) !== step) return;
  process.stderr.write(`ferrogpt-test: checkpoint pause ${phase} ${step}\n`);
  await new Promise((r) => setTimeout(r, ms));
}
