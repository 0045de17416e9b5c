// What every command needs from its surroundings: the package's own files (version, the
// bundled corpus) and the backend, chosen and announced in one line.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BACKEND_NAMES, backendInfo, getBackend, initBackend, setThreads, useBackend } from '../backend/index.js';
import type { BackendName } from '../backend/backend.js';
import { GPT } from '../model/gpt.js';
import { WEIGHT_DTYPES, type WeightDType } from '../model/weights.js';
import { KV_DTYPES, type KVDType } from '../model/kv-cache.js';
import { FineTunedGPT } from '../tasks/finetuned.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { VERSION } from '../version.js';
import { choiceValue, intValue, type OptionTable } from './args.js';

/**
 * The package root: the nearest folder above this module with ferrogpt's package.json.
 * Walking up (rather than a fixed '../../..') finds it both from the TypeScript sources
 * (src/cli/) and from the build (dist/src/cli/), and from node_modules/ferrogpt/.
 */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'ferrogpt') return dir;
      } catch {
        // not ours (or unreadable): keep walking
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find ferrogpt's package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** package.json's version, as the build wrote it into src/version.ts. */
export function packageVersion(): string {
  return VERSION;
}

/** Progress and notices go to stderr, a line at a time, so stdout carries only results. */
export function logLine(line: string): void {
  process.stderr.write(line + '\n');
}

/** data/corpus.txt, shipped with the package (see data/README.md). */
export function bundledCorpus(): string {
  const path = join(packageRoot(), 'data', 'corpus.txt');
  if (!existsSync(path)) throw new Error(`the bundled corpus is missing: ${path} (reinstall ferrogpt, or pass --data)`);
  return path;
}

/** The --backend / --threads flags, shared by every command that computes. */
export const BACKEND_OPTIONS: OptionTable = {
  backend: { type: 'string', value: 'NAME', help: `native, wasm or reference (default: best available; env FERROGPT_BACKEND)` },
  threads: { type: 'string', value: 'N', help: 'threads for the native backend (default: all cores)' },
};

/** The --dtype flag of the commands that only run a model (inference). */
export const DTYPE_OPTIONS: OptionTable = {
  dtype: { type: 'string', value: 'DTYPE', help: "hold the weights in f32, bf16 or int8 (less memory, faster decoding; default: the folder's, f32 for Hugging Face folders)" },
};

/** Validates --dtype. */
export function dtypeChoice(values: Record<string, unknown>): WeightDType | undefined {
  return choiceValue(values, 'dtype', WEIGHT_DTYPES);
}

/** The --kv-dtype flag of the commands that decode with a KV cache (sample, generate, score). */
export const KV_DTYPE_OPTIONS: OptionTable = {
  'kv-dtype': { type: 'string', value: 'DTYPE', help: 'hold the KV cache in f32 or bf16 (half the cache memory; default f32)' },
};

/** Validates --kv-dtype. */
export function kvDtypeChoice(values: Record<string, unknown>): KVDType | undefined {
  return choiceValue(values, 'kv-dtype', KV_DTYPES);
}

/** Validates --backend/--threads without loading anything (so usage errors come first). */
export function backendChoice(values: Record<string, unknown>): { backend?: BackendName; threads?: number } {
  const backend = choiceValue(values, 'backend', BACKEND_NAMES);
  const threads = values.threads === undefined ? undefined : intValue(values, 'threads', 0, 1);
  return { backend, threads };
}

/** Loads the backend and prints one line saying what computes: name, SIMD level and extensions, threads. */
export async function setupBackend(choice: { backend?: BackendName; threads?: number }, log: (line: string) => void): Promise<void> {
  if (choice.backend) await useBackend(choice.backend);
  else await initBackend();
  if (choice.threads !== undefined) setThreads(choice.threads);
  const info = backendInfo();
  const simd = [info.simd, ...info.extensions].join('+');
  log(`ferrogpt ${packageVersion()} · backend ${info.name} (simd ${simd}, ${info.threads} thread${info.threads === 1 ? '' : 's'})`);
}

/**
 * The model folder a command was given (config.json, model.safetensors, tokenizer.json, as
 * `ferrogpt train` writes it): checks it, sets up the backend, loads model and tokenizer.
 */
export async function loadModelFolder(
  modelDir: string,
  choice: { backend?: BackendName; threads?: number },
  log: (line: string) => void,
  dtype?: WeightDType,
): Promise<{ dir: string; model: GPT; tokenizer: Tokenizer }> {
  const dir = resolve(modelDir);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) {
    if (!existsSync(join(dir, f))) {
      throw new Error(`${dir} has no ${f}; --model takes a folder written by \`ferrogpt train\` (or a Hugging Face GPT-2 folder with its tokenizer.json)`);
    }
  }
  await setupBackend(choice, log);
  const [model, tokenizer] = await Promise.all([GPT.load(dir, { dtype }), Tokenizer.load(join(dir, 'tokenizer.json'))]);
  if (tokenizer.vocabSize > model.config.vocabSize) {
    model.dispose();
    throw new Error(`${dir}: tokenizer.json has ${tokenizer.vocabSize} ids but the model only ${model.config.vocabSize}`);
  }
  return { dir, model, tokenizer };
}

/**
 * The --model folder of `eval` and `predict`: checks it was written by `ferrogpt finetune`
 * (it has task.json), sets up the backend, loads it (a LoRA folder onto `base`, or the base
 * it names). The caller disposes it.
 */
export async function loadFineTunedFolder(
  modelDir: string,
  choice: { backend?: BackendName; threads?: number },
  log: (line: string) => void,
  base?: string,
  dtype?: WeightDType,
): Promise<FineTunedGPT> {
  const dir = resolve(modelDir);
  if (!existsSync(join(dir, 'task.json'))) throw new Error(`${dir} has no task.json; --model takes a folder written by \`ferrogpt finetune\``);
  await setupBackend(choice, log);
  const ft = await FineTunedGPT.load(dir, getBackend(), { base: base === undefined ? undefined : resolve(base) });
  if (dtype !== undefined && dtype !== ft.model.dtype) {
    // A compact model holds no adapter: fold it in first (PEFT's merge_and_unload), then convert.
    if (ft.model.adapter !== null) {
      ft.model.mergeAdapter();
      log(`merged the LoRA adapter into the base weights to hold them in ${dtype}`);
    }
    ft.model.toDtype(dtype);
  }
  return ft;
}
