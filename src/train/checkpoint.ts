// Training checkpoints: everything a resumed run needs to continue EXACTLY (bit for bit, on
// the same backend) where an uninterrupted run would be.
//
// A checkpoint is a directory:
//   config.json, model.safetensors   the weights (GPT.save; GPT.load reads the folder as is)
//   optimizer.safetensors            AdamW's m and v, (P) each, our parameter layout;
//                                    metadata { step }: updates done
//   trainer.json                     step, model.trainingSteps (keys the dropout masks), the
//                                    window sampler's { seed, drawn }, the data it was
//                                    drawn from, the run's hyper-parameters; written LAST
//   tokenizer.json                   if the run was given a tokenizer
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
import { expectTensors, readSafetensorsFile, writeSafetensorsFile } from '../io/safetensors.js';
import type { GPTConfig } from '../model/config.js';
import { GPT } from '../model/gpt.js';
import { loadGPT } from '../io/hf-gpt2.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { SamplerState } from './data.js';
import type { AdamWState } from './optimizer.js';

export const CHECKPOINT_FORMAT = 'ferrogpt-checkpoint';

/** trainer.json. */
export interface TrainerState {
  format: typeof CHECKPOINT_FORMAT;
  version: 1;
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

export interface CheckpointContents {
  model: GPT;
  optimizer: AdamWState;
  trainer: TrainerState;
  tokenizer?: Tokenizer;
}

export interface LoadedCheckpoint {
  /** The directory actually read: `dir`, or `dir.old` after a save was interrupted. */
  dir: string;
  model: GPT;
  optimizer: AdamWState;
  trainer: TrainerState;
}

/** Writes a checkpoint to `dir` atomically (see the top of this file). */
export async function saveCheckpoint(dir: string, contents: CheckpointContents): Promise<void> {
  const { model, optimizer, trainer, tokenizer } = contents;
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
    await writeSafetensorsFile(
      join(tmp, 'optimizer.safetensors'),
      [['m', { shape: [P], data: optimizer.m }], ['v', { shape: [P], data: optimizer.v }]],
      { format: 'ferrogpt-adamw', step: String(optimizer.step) },
    );
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
 * Reads a checkpoint written by saveCheckpoint (falling back to `dir.old`, see the top of
 * this file) and checks it: the config against `model` when one is given (the weights are
 * then loaded into it), every tensor's name and shape, and trainer.json's fields. Without
 * `model`, a new GPT is created on `backend` (default: the current one).
 */
export async function loadCheckpoint(dir: string, options: { model?: GPT; backend?: Backend } = {}): Promise<LoadedCheckpoint> {
  const found = await findCheckpoint(dir);
  if (found === null) {
    throw new Error(`loadCheckpoint: no checkpoint at ${dir} (a checkpoint directory holds trainer.json, optimizer.safetensors, config.json and model.safetensors)`);
  }
  const where = (msg: string): Error => new Error(`loadCheckpoint: ${found}: ${msg}`);

  const trainer = checkTrainerState(await readJson(join(found, 'trainer.json')), where);
  const { config, params } = await loadGPT(found).catch((err: Error) => {
    throw where(err.message);
  });
  let model = options.model;
  if (model) {
    const diffs = configDiff(config, model.config);
    if (diffs.length > 0) throw where(`it was written for a different model: ${diffs.join(', ')} (checkpoint vs model)`);
  } else {
    model = GPT.create(config, options.backend ?? getBackend());
  }

  const P = model.numParameters();
  const { tensors, metadata } = await readSafetensorsFile(join(found, 'optimizer.safetensors')).catch((err: Error) => {
    throw where(err.message);
  });
  try {
    expectTensors(tensors, { m: [P], v: [P] });
  } catch (err) {
    throw where(`optimizer.safetensors: ${(err as Error).message}`);
  }
  const step = Number(metadata.step);
  if (!Number.isSafeInteger(step) || step < 0) throw where(`optimizer.safetensors: metadata step ${JSON.stringify(metadata.step)} is not an integer >= 0`);
  if (tensors.get('m')!.dtype !== 'F32' || tensors.get('v')!.dtype !== 'F32') throw where('optimizer.safetensors: m and v must be F32');

  // Everything checked: only now touch the model.
  model.loadParameters(params);
  model.trainingSteps = trainer.trainingSteps;
  return { dir: found, model, optimizer: { step, m: tensors.get('m')!.data, v: tensors.get('v')!.data }, trainer };
}

/** Names every field on which two configs differ: "nLayer 4 vs 2". */
export function configDiff(a: Readonly<GPTConfig>, b: Readonly<GPTConfig>): string[] {
  const keys: Array<keyof GPTConfig> = ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd', 'dropout', 'bias', 'postLN', 'seed'];
  return keys.filter((k) => a[k] !== b[k]).map((k) => `${k} ${String(a[k])} vs ${String(b[k])}`);
}

function checkTrainerState(x: unknown, where: (msg: string) => Error): TrainerState {
  const t = x as Partial<TrainerState> | null;
  if (t === null || typeof t !== 'object' || t.format !== CHECKPOINT_FORMAT) throw where(`trainer.json is not a ${CHECKPOINT_FORMAT} file`);
  if (t.version !== 1) throw where(`trainer.json has version ${String(t.version)}; this ferrogpt reads version 1`);
  const int = (v: unknown, name: string): void => {
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw where(`trainer.json: ${name} must be an integer >= 0, got ${JSON.stringify(v)}`);
  };
  int(t.step, 'step');
  int(t.trainingSteps, 'trainingSteps');
  if (t.sampler === null || typeof t.sampler !== 'object') throw where('trainer.json: missing sampler');
  int(t.sampler.seed, 'sampler.seed');
  int(t.sampler.drawn, 'sampler.drawn');
  if (t.data === null || typeof t.data !== 'object' || typeof t.data.id !== 'string') throw where('trainer.json: missing data');
  int(t.data.count, 'data.count');
  int(t.data.trainTokens, 'data.trainTokens');
  return t as TrainerState;
}

/**
 * Cleans up what a killed save left at `dir` (see the top of this file). For the one
 * writer of `dir`: `train` calls it before resuming, so that a run which has nothing left
 * to do (and so never saves again) still leaves only `dir` behind.
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
