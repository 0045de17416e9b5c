// Hugging Face PEFT LoRA adapter folders, the format of PeftModel.save_pretrained and
// PeftModel.from_pretrained, for GPT-2 (ferrogpt's adapters: src/model/lora.ts):
//
//   adapter_config.json         PEFT's LoraConfig: peft_type "LORA", r, lora_alpha,
//                               lora_dropout, target_modules, fan_in_fan_out true (GPT-2's
//                               Conv1D stores its weight (in, out)), bias "none", task_type,
//                               modules_to_save, trainable_token_indices, base_model_name_or_path
//   adapter_model.safetensors   get_peft_model_state_dict's names (the adapter name removed):
//     base_model.model.transformer.h.<l>.<site>.lora_A.weight                (r, in_features)
//     base_model.model.transformer.h.<l>.<site>.lora_B.weight                (out_features, r)
//     base_model.model.score.weight (K, C), score.bias (K)                   a task head (modules_to_save)
//     base_model.model.transformer.wte.token_adapter.trainable_tokens_delta  (n, C): rows of wte
//                                                                            (trainable_token_indices)
//
// PEFT's trainable tokens replace rows of the embedding (index_copy: the tensor holds the
// rows themselves, not a difference); ferrogpt stores the task tokens' rows there, so that
// the base model plus the folder gives the fine-tuned model exactly, in PEFT too (given a
// base whose embedding was resized to the tokenizer, as PEFT expects). GPT-1's head has a
// bias, HF's GPT2ForSequenceClassification's score has none: PEFT reports score.bias as an
// unexpected key and loads the rest.
//
// Reading accepts what PEFT writes for GPT-2 (with or without the transformer. prefix, a
// GPT2Model base has none) and refuses, naming it, any LoRA variant whose maths is not
// y = x Wᵀ + b + (alpha / r) · B A x: DoRA, rsLoRA, trained biases, per-layer ranks or
// alphas, layers_to_transform, regex target_modules. Nothing in the files is trusted: names,
// shapes and fields are checked, and the safetensors reader checks the header.

import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ALL_LINEAR, resolveLoraConfig, type LoraConfig } from '../model/lora.js';
import { writeFileAtomic } from './atomic.js';
import { readSafetensorsFile, writeSafetensorsFile, type LoadedTensor } from './safetensors.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

/** PEFT's prefix of every tensor of a PeftModel (its base_model is the LoraModel, whose .model is the transformers model). */
const PREFIX = 'base_model.model.';
/** Our name of the embedding's trainable-tokens tensor (PEFT's TrainableTokensWrapper on wte), after PREFIX. */
const TOKENS = 'transformer.wte.token_adapter.trainable_tokens_delta';
const HEAD_MODULE = 'score';
const LORA_TENSOR = /^(?:transformer\.)?(h\.\d+\.(?:attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.lora_[AB]\.weight)$/;

/** What an adapter folder holds, in our names (lora.ts: transformer.h.<l>.<site>.lora_A.weight). */
export interface AdapterFolder {
  config: LoraConfig;
  /** base_model_name_or_path, or null. */
  baseModel: string | null;
  /** task_type: 'SEQ_CLS' (with a task head), 'CAUSAL_LM', or another PEFT task type, or null. */
  taskType: string | null;
  lora: Map<string, LoadedTensor>;
  /** The task head (modules_to_save: score), or null. */
  head: { weight: LoadedTensor; bias: LoadedTensor | null } | null;
  /** Embedding rows that replace the base's (trainable_token_indices), or null. */
  tokens: { ids: number[]; rows: LoadedTensor } | null;
}

export interface AdapterToWrite {
  config: LoraConfig;
  baseModel: string | null;
  /** The adapter's A and B: [our name, data, shape]. */
  lora: ReadonlyArray<readonly [string, Float32Array, number[]]>;
  /** A task head (score.weight, score.bias: [name, data, shape]); written as modules_to_save, task_type SEQ_CLS. */
  head?: ReadonlyArray<readonly [string, Float32Array, number[]]>;
  /** Rows of wte to restore: token ids and their rows (n, C). */
  tokens?: { ids: readonly number[]; rows: Float32Array; C: number };
}

/** Whether `dir` holds an adapter folder (adapter_config.json). */
export async function isAdapterFolder(dir: string): Promise<boolean> {
  return stat(join(dir, ADAPTER_CONFIG)).then((s) => s.isFile(), () => false);
}

/** Writes adapter_config.json and adapter_model.safetensors into `dir` (see the top of this file). */
export async function writeAdapterFolder(dir: string, a: AdapterToWrite): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tensors: Array<[string, { shape: number[]; data: Float32Array }]> = a.lora.map(([name, data, shape]) => [PREFIX + name, { shape: [...shape], data }]);
  for (const [name, data, shape] of a.head ?? []) tensors.push([PREFIX + name, { shape: [...shape], data }]);
  if (a.tokens !== undefined) tensors.push([PREFIX + TOKENS, { shape: [a.tokens.ids.length, a.tokens.C], data: a.tokens.rows }]);
  await writeSafetensorsFile(join(dir, ADAPTER_WEIGHTS), tensors, { format: 'pt' });
  const { rank, alpha, dropout, targets } = a.config;
  const config = {
    peft_type: 'LORA',
    task_type: a.head !== undefined ? 'SEQ_CLS' : 'CAUSAL_LM',
    base_model_name_or_path: a.baseModel,
    r: rank,
    lora_alpha: alpha,
    lora_dropout: dropout,
    target_modules: targets === ALL_LINEAR ? ALL_LINEAR : [...targets],
    fan_in_fan_out: true,
    bias: 'none',
    use_rslora: false,
    use_dora: false,
    init_lora_weights: true,
    inference_mode: true,
    modules_to_save: a.head !== undefined ? [HEAD_MODULE] : null,
    trainable_token_indices: a.tokens !== undefined ? [...a.tokens.ids] : null,
    rank_pattern: {},
    alpha_pattern: {},
    layers_to_transform: null,
  };
  await writeFileAtomic(join(dir, ADAPTER_CONFIG), JSON.stringify(config, null, 2) + '\n');
}

/** Reads and checks an adapter folder; errors start with `fn` and the file. */
export async function readAdapterFolder(dir: string, fn: string): Promise<AdapterFolder> {
  const configPath = join(dir, ADAPTER_CONFIG);
  const fail = (msg: string): Error => new Error(`${fn}: ${configPath}: ${msg}`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${fn}: cannot read ${configPath}: ${(err as Error).message}`, { cause: err });
  }
  if (raw === null || typeof raw !== 'object') throw fail('not a JSON object');
  if (raw.peft_type !== 'LORA') throw fail(`peft_type is ${JSON.stringify(raw.peft_type)}; ferrogpt reads LoRA adapters ("LORA") only`);
  const unsupported: Array<[string, boolean]> = [
    ['use_dora', raw.use_dora === true],
    ['use_rslora', raw.use_rslora === true],
    ['bias', raw.bias !== undefined && raw.bias !== 'none'],
    ['lora_bias', raw.lora_bias === true],
    ['rank_pattern', isNonEmpty(raw.rank_pattern)],
    ['alpha_pattern', isNonEmpty(raw.alpha_pattern)],
    ['layers_to_transform', raw.layers_to_transform !== undefined && raw.layers_to_transform !== null],
  ];
  for (const [field, bad] of unsupported) if (bad) throw fail(`${field} ${JSON.stringify(raw[field])} is not supported (ferrogpt's LoRA is y = x Wᵀ + b + (lora_alpha / r) · B A x on every targeted layer, bias "none")`);
  const targets = raw.target_modules;
  if (typeof targets === 'string' && targets !== ALL_LINEAR) throw fail(`target_modules ${JSON.stringify(targets)} is a regular expression; ferrogpt reads a list of module names or "${ALL_LINEAR}"`);
  let config: LoraConfig;
  try {
    config = resolveLoraConfig({ rank: raw.r as number, alpha: raw.lora_alpha as number, dropout: (raw.lora_dropout ?? 0) as number, targets: targets as string[] }, 'adapter');
  } catch (err) {
    throw fail((err as Error).message);
  }
  const modulesToSave = raw.modules_to_save ?? null;
  if (modulesToSave !== null && (!Array.isArray(modulesToSave) || modulesToSave.some((m) => m !== HEAD_MODULE && m !== 'classifier'))) {
    throw fail(`modules_to_save ${JSON.stringify(modulesToSave)}: ferrogpt reads a task head ("${HEAD_MODULE}") only`);
  }
  const tokenIds = raw.trainable_token_indices ?? null;
  if (tokenIds !== null && (!Array.isArray(tokenIds) || tokenIds.length === 0 || !tokenIds.every((i) => Number.isSafeInteger(i) && i >= 0))) {
    throw fail(`trainable_token_indices must be a list of token ids (a dict of them per module is not supported), got ${JSON.stringify(tokenIds)}`);
  }

  const weightsPath = join(dir, ADAPTER_WEIGHTS);
  const { tensors } = await readSafetensorsFile(weightsPath).catch((err: Error) => {
    throw new Error(`${fn}: ${weightsPath}: ${err.message}`, { cause: err });
  });
  const failW = (msg: string): Error => new Error(`${fn}: ${weightsPath}: ${msg}`);
  const lora = new Map<string, LoadedTensor>();
  let headW: LoadedTensor | undefined;
  let headB: LoadedTensor | undefined;
  let rows: LoadedTensor | undefined;
  for (const [name, t] of tensors) {
    if (!name.startsWith(PREFIX)) throw failW(`tensor ${name} is not a PEFT adapter tensor (names start with ${PREFIX})`);
    const rest = name.slice(PREFIX.length);
    const m = LORA_TENSOR.exec(rest);
    if (m !== null) {
      const ours = `transformer.${m[1]}`;
      if (lora.has(ours)) throw failW(`tensor ${ours} appears twice (with and without the transformer. prefix)`);
      lora.set(ours, t);
    } else if (rest === `${HEAD_MODULE}.weight`) headW = t;
    else if (rest === `${HEAD_MODULE}.bias`) headB = t;
    else if (rest === TOKENS || rest === TOKENS.slice('transformer.'.length)) rows = t;
    else throw failW(`unexpected tensor ${name} (ferrogpt reads LoRA A and B of c_attn, c_proj and c_fc, a ${HEAD_MODULE} head and embedding rows)`);
  }
  if ((headW !== undefined || headB !== undefined) && modulesToSave === null) throw failW(`holds a ${HEAD_MODULE} head, but modules_to_save does not name it`);
  if (modulesToSave !== null && modulesToSave.includes(HEAD_MODULE) && headW === undefined) throw failW(`modules_to_save names "${HEAD_MODULE}", but there is no ${PREFIX}${HEAD_MODULE}.weight`);
  if ((rows === undefined) !== (tokenIds === null)) throw failW(tokenIds === null ? 'holds embedding rows, but adapter_config.json has no trainable_token_indices' : 'adapter_config.json names trainable_token_indices, but there are no embedding rows');
  if (rows !== undefined && (rows.shape.length !== 2 || rows.shape[0] !== (tokenIds as number[]).length)) {
    throw failW(`the embedding rows have shape [${rows.shape.join(', ')}], expected [${(tokenIds as number[]).length}, C] for trainable_token_indices ${JSON.stringify(tokenIds)}`);
  }
  return {
    config,
    baseModel: typeof raw.base_model_name_or_path === 'string' ? raw.base_model_name_or_path : null,
    taskType: typeof raw.task_type === 'string' ? raw.task_type : null,
    lora,
    head: headW === undefined ? null : { weight: headW, bias: headB ?? null },
    tokens: rows === undefined ? null : { ids: tokenIds as number[], rows },
  };
}

function isNonEmpty(x: unknown): boolean {
  return x !== undefined && x !== null && (typeof x !== 'object' || Object.keys(x).length > 0);
}
