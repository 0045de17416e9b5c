// Hugging Face GPT-2 folders (config.json + model.safetensors) to and from our config and
// parameters: GPT.load, GPT.save and GPT.fromSafetensors delegate here, and fine-tuned
// folders (src/tasks) and checkpoints (src/train) read and write through it.
//
// config.json maps to GPTConfig here too (not in src/model/config.ts): it is half of the
// same format, and the model's config knows no file format (see config.ts's header).
//
// Differences between the two tensor layouts, and what we do about each:
// - HF's Conv1D (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) stores its weight
//   (C, OC) — input rows — while our matmul kernel takes (OC, C) (llm.c, nn.Linear). We
//   transpose on the way in and out.
// - GPT2Model checkpoints name tensors without the `transformer.` prefix (h.0.ln_1.weight),
//   GPT2LMHeadModel ones with it. Both load; we write the prefix (GPT2LMHeadModel).
// - lm_head.weight is tied to wte: save_pretrained drops it, older files keep a copy. If
//   present it must equal wte (we have no untied head), otherwise loading fails.
// - Older GPT-2 files carry the causal-mask buffers h.{i}.attn.bias / attn.masked_bias;
//   they are not parameters and are ignored.
// - A fine-tuned folder (src/tasks) adds its task head, score.weight / score.bias (the name
//   of HF's GPT2ForSequenceClassification head); loading the transformer ignores them.
// - Compact weights (src/model/weights.ts) keep the names and the HF layout: a bf16 model
//   writes its matmul weights and wte as BF16 (what save_pretrained writes for a bfloat16
//   model; config.json gets torch_dtype "bfloat16"); an int8 model writes them as I8 plus
//   an F32 `<name>_scale` tensor of one scale per block of 32 along the input dimension
//   (HF layout: a Conv1D weight (C, OC) has scales (C/32, OC); wte (V, C) has (V, C/32)).
//   config.json's `ferrogpt.dtype` says which; docs/ARCHITECTURE.md has the layout. BF16 and
//   F16 files load into a bf16 model without an f32 copy of the weights.

import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { resolveConfig, type GPTConfig } from '../model/config.js';
import { paramLayout } from '../model/params.js';
import { checkWeightDType, storedToF32, type StoredParam, type WeightDType } from '../model/weights.js';
import { writeFileAtomic } from './atomic.js';
import { expectTensors, readSafetensors, readSafetensorsFile, writeSafetensorsFile, type LoadedTensor, type TensorToWrite } from './safetensors.js';

// ---- config.json ----

/** Hugging Face GPT-2 config.json (the fields we read and write). */
export interface HFGPT2Config {
  model_type?: string;
  vocab_size: number;
  n_positions: number;
  n_ctx?: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  activation_function?: string;
  layer_norm_epsilon?: number;
  resid_pdrop?: number;
  embd_pdrop?: number;
  attn_pdrop?: number;
  [key: string]: unknown;
}

/**
 * Reads a Hugging Face GPT-2 config (or one written by GPT.save, which adds a `ferrogpt`
 * section for the fields HF has no name for: bias, postLN, seed).
 */
export function configFromHF(hf: HFGPT2Config): GPTConfig {
  if (hf === null || typeof hf !== 'object') throw new Error('config.json must hold a JSON object');
  for (const k of ['vocab_size', 'n_embd', 'n_layer', 'n_head'] as const) {
    if (typeof hf[k] !== 'number') throw new Error(`config.json: missing or non-numeric ${k}`);
  }
  const blockSize = typeof hf.n_positions === 'number' ? hf.n_positions : hf.n_ctx;
  if (typeof blockSize !== 'number') throw new Error('config.json: missing n_positions');
  const act = hf.activation_function;
  if (act !== undefined && act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') {
    throw new Error(`config.json: activation_function ${String(act)} is not supported (only tanh GELU, "gelu_new")`);
  }
  const eps = hf.layer_norm_epsilon;
  if (eps !== undefined && Math.abs(eps - 1e-5) > 1e-12) {
    throw new Error(`config.json: layer_norm_epsilon ${eps} is not supported (the kernels use 1e-5)`);
  }
  const extra = (hf.ferrogpt ?? {}) as Partial<GPTConfig>;
  // HF has one dropout per site; our kernels take one p for all, so use the residual one.
  const dropout = extra.dropout ?? hf.resid_pdrop ?? 0;
  return resolveConfig({
    vocabSize: hf.vocab_size,
    blockSize,
    nLayer: hf.n_layer,
    nHead: hf.n_head,
    nEmbd: hf.n_embd,
    dropout,
    bias: extra.bias,
    postLN: extra.postLN,
    seed: extra.seed,
  });
}

/** The dtype a config.json written by GPT.save names for its weights ('f32' when it names none). */
export function dtypeFromHF(hf: HFGPT2Config): WeightDType {
  const dtype = (hf.ferrogpt as { dtype?: unknown } | undefined)?.dtype;
  return dtype === undefined ? 'f32' : checkWeightDType('config.json: ferrogpt.dtype', dtype);
}

/** The config.json GPT.save writes: HF GPT-2 fields, plus our own under `ferrogpt`. */
export function configToHF(cfg: GPTConfig, dtype: WeightDType = 'f32'): HFGPT2Config {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: cfg.vocabSize,
    n_positions: cfg.blockSize,
    n_ctx: cfg.blockSize,
    n_embd: cfg.nEmbd,
    n_layer: cfg.nLayer,
    n_head: cfg.nHead,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    resid_pdrop: cfg.dropout,
    embd_pdrop: cfg.dropout,
    attn_pdrop: cfg.dropout,
    tie_word_embeddings: true,
    ...(dtype === 'bf16' ? { torch_dtype: 'bfloat16' } : {}),
    ferrogpt: { bias: cfg.bias, postLN: cfg.postLN, seed: cfg.seed, dropout: cfg.dropout, ...(dtype === 'f32' ? {} : { dtype }) },
  };
}

// ---- model.safetensors ----

const CONV1D = /\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/;
const MASK_BUFFER = /^(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)$/;
const TASK_HEAD = /^score\.(weight|bias)$/;

/** Whether a parameter (HF name) is a Conv1D weight, stored transposed in HF files. */
export function isConv1DWeight(name: string): boolean {
  return CONV1D.test(name);
}

type Elements = Float32Array | Uint16Array | Int8Array;

/** (rows, cols) row-major → (cols, rows) row-major, in the same array type. */
export function transpose<A extends Elements>(data: A, rows: number, cols: number): A {
  const out = new (data.constructor as new (n: number) => A)(data.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  }
  return out;
}

/** An HF tensor (shape as stored) → our layout: Conv1D weights (C, OC) become (OC, C). */
export function fromHFLayout<A extends Elements>(name: string, shape: readonly number[], data: A): A {
  return isConv1DWeight(name) ? transpose(data, shape[0], shape[1]) : data;
}

/** One of our parameters → the HF tensor: Conv1D weights (OC, C) become (C, OC). */
export function toHFLayout<A extends Elements>(name: string, ourShape: readonly number[], data: A): { shape: number[]; data: A } {
  if (!isConv1DWeight(name)) return { shape: [...ourShape], data };
  const [oc, c] = ourShape;
  return { shape: [c, oc], data: transpose(data, oc, c) };
}

/** The name of an int8 tensor's scales. */
const SCALE_SUFFIX = '_scale';

/**
 * HF tensors (either naming) → our parameters by name, in our layout, as the file stores
 * them: F32 (and F16, F64) as f32, BF16 as bf16, I8 with its `_scale` tensor as int8. Checks
 * names and shapes against the config (listing every problem at once) and the lm_head tie.
 * Errors start with `fn`, the public function reading them.
 */
export function storedParamsFromHF(config: GPTConfig, tensors: Map<string, LoadedTensor>, fn = 'GPT.load'): Map<string, StoredParam> {
  const byName = new Map<string, LoadedTensor>();
  const scales = new Map<string, LoadedTensor>();
  let lmHead: LoadedTensor | undefined;
  for (const [raw, t] of tensors) {
    if (MASK_BUFFER.test(raw) || TASK_HEAD.test(raw)) continue;
    if (raw === 'lm_head.weight') {
      lmHead = t;
      continue;
    }
    const name = raw.startsWith('transformer.') ? raw : `transformer.${raw}`;
    const into = name.endsWith(SCALE_SUFFIX) ? scales : byName;
    const key = name.endsWith(SCALE_SUFFIX) ? name.slice(0, -SCALE_SUFFIX.length) : name;
    if (into.has(key)) throw new Error(`${fn}: tensor ${name} appears twice (with and without the transformer. prefix)`);
    into.set(key, t);
  }
  const { specs } = paramLayout(config);
  const expected: Record<string, number[]> = {};
  for (const s of specs) expected[s.name] = isConv1DWeight(s.name) ? [s.shape[1], s.shape[0]] : s.shape;
  try {
    expectTensors(byName, expected);
  } catch (err) {
    throw new Error(`${fn}: ${(err as Error).message}`, { cause: err });
  }

  const out = new Map<string, StoredParam>();
  for (const s of specs) {
    const t = byName.get(s.name)!;
    const scale = scales.get(s.name);
    scales.delete(s.name);
    if (t.dtype === 'I8') {
      if (scale === undefined) throw new Error(`${fn}: ${s.name} is I8 but there is no ${s.name}${SCALE_SUFFIX} tensor (an int8 weight needs its scales)`);
      const [rows, cols] = t.shape; // HF layout
      const want = isConv1DWeight(s.name) ? [rows / 32, cols] : [rows, cols / 32];
      if (scale.dtype !== 'F32' || scale.shape.length !== 2 || scale.shape[0] !== want[0] || scale.shape[1] !== want[1]) {
        throw new Error(`${fn}: ${s.name}${SCALE_SUFFIX} must be F32 of shape [${want.join(', ')}] (one scale per 32 weights along the input), got ${scale.dtype} [${scale.shape.join(', ')}]`);
      }
      const q = t.raw as Int8Array;
      const bad = q.indexOf(-128); // the format's values are -127..127, which the kernels rely on
      if (bad >= 0) throw new Error(`${fn}: ${s.name}[${bad}] is -128; int8 weights are in -127..127 (Q8_0: q = round(x · 127 / amax))`);
      out.set(s.name, { dtype: 'int8', data: fromHFLayout(s.name, t.shape, q), scales: fromHFLayout(s.name, scale.shape, scale.raw as Float32Array) });
    } else if (scale !== undefined) {
      throw new Error(`${fn}: ${s.name}${SCALE_SUFFIX} scales a ${t.dtype} tensor; only I8 tensors have scales`);
    } else if (t.dtype === 'BF16') {
      out.set(s.name, { dtype: 'bf16', data: fromHFLayout(s.name, t.shape, t.raw as Uint16Array) });
    } else {
      out.set(s.name, { dtype: 'f32', data: fromHFLayout(s.name, t.shape, t.data) });
    }
  }
  if (scales.size > 0) throw new Error(`${fn}: unexpected tensors: ${[...scales.keys()].map((n) => n + SCALE_SUFFIX).join(', ')}`);
  if (lmHead !== undefined) {
    const wte = storedToF32(out.get('transformer.wte.weight')!);
    const head = lmHead.data;
    const same = head.length === wte.length && head.every((x, i) => x === wte[i]);
    if (!same) {
      throw new Error(`${fn}: lm_head.weight differs from transformer.wte.weight; ferrogpt ties the lm head to the token embedding and cannot load an untied head`);
    }
  }
  return out;
}

/** As storedParamsFromHF, every parameter as f32 (widened, or dequantized). */
export function paramsFromHF(config: GPTConfig, tensors: Map<string, LoadedTensor>, fn = 'GPT.load'): Map<string, Float32Array> {
  return f32Params(storedParamsFromHF(config, tensors, fn));
}

/** Stored parameters as f32 values. */
export function f32Params(stored: Map<string, StoredParam>): Map<string, Float32Array> {
  return new Map([...stored].map(([name, p]) => [name, storedToF32(p)]));
}

/** One stored parameter → the tensors of the file (HF layout; an int8 one with its scales). */
function tensorsToWrite(name: string, shape: readonly number[], p: StoredParam): Array<[string, TensorToWrite]> {
  if (p.dtype !== 'int8') return [[name, toHFLayout<Elements>(name, shape, p.data)]];
  return [[name, toHFLayout(name, shape, p.data)], [name + SCALE_SUFFIX, toHFLayout(name, [shape[0], shape[1] / 32], p.scales)]];
}

/**
 * The two files' contents (config.json as text or parsed, model.safetensors as bytes) →
 * our config and parameters as stored, and the dtype config.json names; touches no file
 * system (GPT.fromSafetensors, browsers).
 */
export function gpt2FromContents(config: string | HFGPT2Config, bytes: Uint8Array | ArrayBuffer): { config: GPTConfig; stored: Map<string, StoredParam>; dtype: WeightDType } {
  const hf = (typeof config === 'string' ? JSON.parse(config) : config) as HFGPT2Config;
  const resolved = configFromHF(hf);
  const { tensors } = readSafetensors(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));
  return { config: resolved, stored: storedParamsFromHF(resolved, tensors, 'GPT.fromSafetensors'), dtype: dtypeFromHF(hf) };
}

/**
 * Reads a Hugging Face GPT-2 folder: its config, our parameters as stored (storedParamsFromHF),
 * the dtype config.json names, every tensor of model.safetensors (a fine-tuned folder's
 * head too) and the folder's absolute path. Errors name `fn`, the public caller.
 */
export async function loadGPT(dir: string, fn = 'GPT.load'): Promise<{ config: GPTConfig; stored: Map<string, StoredParam>; dtype: WeightDType; tensors: Map<string, LoadedTensor>; path: string }> {
  let hf: HFGPT2Config;
  const configPath = join(dir, 'config.json');
  try {
    hf = JSON.parse(await readFile(configPath, 'utf8')) as HFGPT2Config;
  } catch (err) {
    throw new Error(`${fn}: cannot read ${configPath}: ${(err as Error).message}`, { cause: err });
  }
  const config = configFromHF(hf);
  const dtype = dtypeFromHF(hf);
  // Views into the file's bytes: the parameters are copied once, into the model.
  const { tensors } = await readSafetensorsFile(join(dir, 'model.safetensors'), { views: true });
  return { config, stored: storedParamsFromHF(config, tensors, fn), dtype, tensors, path: resolve(dir) };
}

/**
 * Writes config.json + model.safetensors (HF names with `transformer.`, Conv1D transposed,
 * each parameter in the dtype it is stored in; `dtype` is what config.json names).
 * `extra` tensors (e.g. a task head) are written after the parameters, as they are.
 */
export async function saveGPT(
  dir: string,
  config: GPTConfig,
  params: ReadonlyArray<readonly [string, StoredParam, number[]]>,
  extra: ReadonlyArray<readonly [string, Float32Array, number[]]> = [],
  dtype: WeightDType = 'f32',
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tensors: Array<[string, TensorToWrite]> = [
    ...params.flatMap(([name, p, shape]) => tensorsToWrite(name, shape, p)),
    ...extra.map(([name, data, shape]): [string, TensorToWrite] => [name, { shape: [...shape], data }]),
  ];
  await writeSafetensorsFile(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  await writeFileAtomic(join(dir, 'config.json'), JSON.stringify(configToHF(config, dtype), null, 2) + '\n');
}
