// A fine-tuned model: the GPT, its tokenizer (with the task tokens), the task head and the
// task definition, together. It computes one training pass of L3 (for `finetune`, and for
// tests), predicts, evaluates, and saves to / loads from a folder:
//
//   config.json, model.safetensors   the GPT (Hugging Face GPT-2 layout) plus the head as two
//                                    extra tensors, score.weight (K, C) and score.bias (K);
//                                    GPT.load(dir) reads the folder too (without the head)
//   tokenizer.json                   with <|start|>, <|delim|>, <|extract|>
//   task.json                        the task definition (TaskSpec below)
//
// With a LoRA adapter attached (finetune({ lora })), save writes PEFT's adapter folder
// instead of the weights, as PeftModel.save_pretrained does (src/io/peft.ts):
// adapter_config.json and adapter_model.safetensors (A and B of every adapted layer, the
// head as modules_to_save, the task tokens' wte rows as trainable_token_indices) next to
// tokenizer.json and task.json: a few percent of the model's size. load reads it back onto
// its base model (the folder the adapter names, or one given), and mergeAdapter turns the
// result into a plain fine-tuned model whose save writes the layout above.

import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backend, Tensor } from '../backend/backend.js';
import { getBackend } from '../backend/index.js';
import { writeFileAtomic } from '../io/atomic.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, isAdapterFolder, readAdapterFolder, writeAdapterFolder } from '../io/peft.js';
import { GPT } from '../model/gpt.js';
import { rebuildGPT } from '../model/resize.js';
import { HEAD_BIAS, HEAD_WEIGHT, TaskHead } from '../model/head.js';
import { f32Params, loadGPT, saveGPT } from '../io/hf-gpt2.js';
import { dropoutSeed } from '../model/init.js';
import { Arena } from '../model/activations.js';
import { IGNORE_INDEX } from '../objectives/lm.js';
import { classificationLoss, regressionLoss } from '../objectives/task.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { accuracy, f1Score, meanSquaredError, pearson, spearman, type TaskMetrics } from './metrics.js';
import { TASK_TOKENS } from './special.js';
import {
  TASK_TYPES,
  collate,
  encodeExample,
  poolFor,
  type EncodedExample,
  type Label,
  type SpecialIds,
  type TaskBatch,
  type TaskExample,
  type TaskType,
} from './transform.js';

export const TASK_FORMAT = 'ferrogpt-task';

/** The task definition (task.json). */
export interface TaskSpec {
  format: typeof TASK_FORMAT;
  version: 1;
  type: TaskType;
  /** Class names, in head-output order (classification, entailment, similarity classes); null for choice and regression. */
  labels: string[] | null;
  /** Similarity scored by a number (one output, MSE) rather than classes. */
  regression: boolean;
  /** Longest sequence fed to the model (see the truncation rule in transform.ts). */
  maxLength: number;
  /** Dropout before the head during training. */
  clfDropout: number;
  /** The added tokens, by role: spelling and id. */
  tokens: { [K in keyof SpecialIds]: { content: string; id: number } };
}

/** What `FineTunedGPT.create` needs to define a task. */
export interface TaskDefinition {
  type: TaskType;
  labels?: Array<string | number> | null;
  regression?: boolean;
  maxLength?: number;
  clfDropout?: number;
}

export interface Prediction {
  /** The predicted class name, choice index, or score (regression). */
  label: string | number;
  /** Index of the predicted class or choice (absent for a regression). */
  index?: number;
  /** Softmax over the classes or the choices (absent for a regression). */
  probabilities?: number[];
  /** The regression output. */
  score?: number;
}

/** Gold values per example: class/choice index (-1: none) or score (NaN: none). */
export interface Gold {
  labels: Int32Array; // (E)
  scores: Float32Array; // (E)
}

/** The task inputs encoded once, for batching. */
export interface EncodedTaskData {
  examples: EncodedExample[];
  gold: Gold;
  /** Examples that lost tokens to fit maxLength. */
  truncated: number;
}

export interface LossParts {
  /** L3 = L2 + λ·L1 (L2 when λ = 0). */
  loss: number;
  l2: number;
  /** L1 on the task inputs; NaN when λ = 0 (not computed). */
  l1: number;
}

// Classifier dropout: its own stream and seed schedule, apart from the model's sites.
const CLF_STREAM = 0xc1f;
const CLF_SEED_SALT = 0x0c1f5eed;

export class FineTunedGPT {
  readonly model: GPT;
  readonly tokenizer: Tokenizer;
  readonly head: TaskHead;
  readonly task: Readonly<TaskSpec>;
  readonly ids: SpecialIds;

  /** Training passes of the head: keys its dropout masks (a checkpoint restores it, as GPT.trainingSteps). */
  headSteps = 0;
  private readonly lossArena: Arena;
  private readonly labelArena: Arena;
  private lossN = -1;
  private lossBufs: { losses: Tensor; dlosses: Tensor; labels: Tensor } | null = null;

  private constructor(model: GPT, tokenizer: Tokenizer, head: TaskHead, task: TaskSpec) {
    this.model = model;
    this.tokenizer = tokenizer;
    this.head = head;
    this.task = Object.freeze({ ...task, labels: task.labels === null ? null : Object.freeze([...task.labels]) as string[] });
    this.ids = { start: task.tokens.start.id, delim: task.tokens.delim.id, extract: task.tokens.extract.id };
    this.lossArena = new Arena(model.backend);
    this.labelArena = new Arena(model.backend, 'i32');
  }

  /**
   * A new head on a model and tokenizer that already have the task tokens (see
   * prepareForTask). The head is N(0, 0.02), seeded with `seed` (default the model's).
   */
  static create(model: GPT, tokenizer: Tokenizer, def: TaskDefinition, options: { seed?: number } = {}): FineTunedGPT {
    const spec = resolveTaskSpec(model, tokenizer, def);
    const head = new TaskHead(model.backend, model.config.nEmbd, outputsOf(spec), options.seed ?? model.config.seed);
    return new FineTunedGPT(model, tokenizer, head, spec);
  }

  /**
   * Loads a folder written by save(): a fine-tuned model, or a LoRA adapter folder on its
   * base model (see the top of this file). The base is `options.base`, a model folder or a
   * GPT (which is copied, not changed), else the folder the adapter names
   * (base_model_name_or_path); it gets the tokenizer's rows if it lacks them, and the
   * adapter's task-token rows.
   */
  static async load(dir: string, backend: Backend = getBackend(), options: { base?: string | GPT } = {}): Promise<FineTunedGPT> {
    const spec = checkTaskSpec(await readJson(join(dir, 'task.json')), join(dir, 'task.json'));
    const tokenizer = await Tokenizer.load(join(dir, 'tokenizer.json'));
    if (await isAdapterFolder(dir)) return FineTunedGPT.loadAdapterFolder(dir, spec, tokenizer, backend, options.base);
    const { config, stored, tensors } = await loadGPT(dir, 'FineTunedGPT.load');
    const w = tensors.get(HEAD_WEIGHT);
    const b = tensors.get(HEAD_BIAS);
    if (w === undefined || b === undefined) throw new Error(`${dir}: model.safetensors has no task head (${HEAD_WEIGHT}, ${HEAD_BIAS}); is this a fine-tuned model folder?`);
    const model = GPT.fromParameters(config, f32Params(stored), backend);
    return FineTunedGPT.assemble(dir, model, tokenizer, spec, w, b);
  }

  private static async loadAdapterFolder(dir: string, spec: TaskSpec, tokenizer: Tokenizer, backend: Backend, base: string | GPT | undefined): Promise<FineTunedGPT> {
    const fn = 'FineTunedGPT.load';
    const folder = await readAdapterFolder(dir, fn);
    if (folder.head === null) throw new Error(`${fn}: ${dir} is a LoRA adapter folder without a task head (modules_to_save "score"); load it onto a GPT with model.loadAdapter`);
    const basePath = typeof base === 'string' ? base : folder.baseModel;
    if (base === undefined && basePath === null) throw new Error(`${fn}: ${dir} is a LoRA adapter folder that names no base model (base_model_name_or_path); pass one: FineTunedGPT.load(dir, backend, { base })`);
    const loaded = typeof base === 'object' ? null : await GPT.load(basePath!, backend).catch((err: Error) => {
      throw new Error(`${fn}: ${dir}: cannot load its base model ${basePath}: ${err.message}`, { cause: err });
    });
    const baseModel = loaded ?? (base as GPT);
    // Rows for every token the tokenizer has (the task tokens may be new to the base).
    const V = Math.max(baseModel.config.vocabSize, tokenizer.vocabSize);
    let model: GPT;
    try {
      model = loaded !== null && V === loaded.config.vocabSize ? loaded : rebuildGPT(baseModel, { vocabSize: V });
    } finally {
      if (loaded !== null && model! !== loaded) loaded.dispose();
    }
    try {
      model.applyAdapterFolder(folder, dir, fn);
    } catch (err) {
      model.dispose();
      throw err;
    }
    const C = model.config.nEmbd;
    const K = outputsOf(spec);
    const bias = folder.head.bias ?? { shape: [K], data: new Float32Array(K) }; // HF's score has no bias
    return FineTunedGPT.assemble(dir, model, tokenizer, spec, folder.head.weight, bias, C);
  }

  /** The fine-tuned model from its parts; checks the head's shapes and the task against the model (disposing it on error). */
  private static assemble(dir: string, model: GPT, tokenizer: Tokenizer, spec: TaskSpec, w: { shape: number[]; data: Float32Array }, b: { shape: number[]; data: Float32Array }, C = model.config.nEmbd): FineTunedGPT {
    try {
      const K = outputsOf(spec);
      if (w.shape.join() !== `${K},${C}` || b.shape.join() !== `${K}`) {
        throw new Error(`${dir}: the task head has shapes [${w.shape}] and [${b.shape}], task.json needs [${K}, ${C}] and [${K}]`);
      }
      resolveTaskSpec(model, tokenizer, spec); // the ids and sizes fit together
      const head = new TaskHead(model.backend, C, K);
      head.loadParameters(w.data, b.data);
      return new FineTunedGPT(model, tokenizer, head, spec);
    } catch (err) {
      model.dispose();
      throw err;
    }
  }

  /**
   * Writes the folder described at the top of this file: the fine-tuned model, or (with an
   * adapter attached) the adapter folder, whose base is model.nameOrPath.
   */
  async save(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    const adapter = this.model.adapter;
    // The other layout's files, from an earlier save into the same folder, would be read instead.
    const stale = adapter !== null ? ['config.json', 'model.safetensors'] : [ADAPTER_CONFIG, ADAPTER_WEIGHTS];
    for (const f of stale) await rm(join(dir, f), { force: true });
    if (adapter !== null) {
      const ids = [this.ids.start, this.ids.delim, this.ids.extract];
      const tokens = { ids, rows: this.model.embeddingRows(ids), C: this.model.config.nEmbd };
      await writeAdapterFolder(dir, { config: adapter.config, baseModel: this.model.nameOrPath, lora: adapter.namedParameters(), head: this.head.namedParameters(), tokens });
    } else {
      const params = this.model.namedParameters().map(([name, p]) => [name, { dtype: 'f32', data: p.data() }, p.shape] as const);
      await saveGPT(dir, this.model.config, params, this.head.namedParameters());
    }
    await this.tokenizer.save(join(dir, 'tokenizer.json'));
    await writeFileAtomic(join(dir, 'task.json'), JSON.stringify(this.task, null, 2) + '\n');
  }

  /**
   * Folds the LoRA adapter into the model's weights (GPT.mergeAdapter): a plain fine-tuned
   * model, whose save writes the full layout. Returns this.
   */
  mergeAdapter(): this {
    this.model.mergeAdapter();
    return this;
  }

  /** Head outputs per sequence or example: classes, 1 (a choice's score, a regression). */
  get outputs(): number {
    return this.head.K;
  }

  // ---- data ----

  /** Tokenizes and transforms examples once (validating their labels against the task). */
  encode(examples: readonly TaskExample[], source = 'examples'): EncodedTaskData {
    const E = examples.length;
    const out: EncodedExample[] = new Array(E);
    const labels = new Int32Array(E).fill(IGNORE_INDEX);
    const scores = new Float32Array(E).fill(NaN);
    let truncated = 0;
    let choices = -1;
    examples.forEach((ex, i) => {
      const enc = encodeExample(this.task.type, ex, this.tokenizer, this.ids, this.task.maxLength);
      if (this.task.type === 'choice') {
        if (choices === -1) choices = enc.seqs.length;
        else if (enc.seqs.length !== choices) throw new Error(`${source}[${i}]: ${enc.seqs.length} choices, but the examples before it have ${choices}; every example needs the same number`);
      }
      out[i] = enc;
      if (enc.truncated) truncated++;
      const g = this.goldOf(ex, `${source}[${i}]`);
      if (typeof g === 'number' && this.task.regression) scores[i] = g;
      else if (g !== undefined) labels[i] = g;
    });
    return { examples: out, gold: { labels, scores }, truncated };
  }

  /** Class index / choice index / score of one example; undefined when it has none. */
  goldOf(ex: TaskExample, where: string): number | undefined {
    const t = this.task;
    if (t.regression) {
      const s = (ex as { score?: number }).score;
      return s === undefined ? undefined : s;
    }
    const label = (ex as { label?: Label }).label;
    if (label === undefined) return undefined;
    if (t.type === 'choice') return label as number;
    const i = t.labels!.indexOf(String(label));
    if (i < 0) throw new Error(`${where}: label ${JSON.stringify(label)} is not one of the task's labels (${t.labels!.join(', ')})`);
    return i;
  }

  /** The batch of examples `idx` of `data`, and their gold values. */
  batch(data: EncodedTaskData, idx: ArrayLike<number>): { batch: TaskBatch; gold: Gold } {
    const ex: EncodedExample[] = [];
    const labels = new Int32Array(idx.length);
    const scores = new Float32Array(idx.length);
    for (let i = 0; i < idx.length; i++) {
      ex.push(data.examples[idx[i]]);
      labels[i] = data.gold.labels[idx[i]];
      scores[i] = data.gold.scores[idx[i]];
    }
    return { batch: collate(ex), gold: { labels, scores } };
  }

  // ---- training ----

  /**
   * One training pass of L3 = L2 + λ·L1 over a batch (dropout on): accumulates the gradients
   * of the model and of the head (zero them between steps). Returns the losses.
   */
  lossBackward(batch: TaskBatch, gold: Gold, lambda = 0.5): LossParts {
    if (!(lambda >= 0) || !Number.isFinite(lambda)) throw new Error(`lambda must be a finite number >= 0, got ${lambda}`);
    const { type, clfDropout, regression } = this.task;
    const { S, T, E } = batch;
    const model = this.model;
    const pass = model.trainForward(batch.ids, S, T); // pass.hidden, pass.dhidden: (S, T, C)
    const pool = poolFor(type, batch);
    const step = this.headSteps++;
    const drop = clfDropout > 0 ? { p: clfDropout, seed: dropoutSeed((model.config.seed ^ CLF_SEED_SALT) >>> 0, step), stream: CLF_STREAM } : undefined;
    const headPass = this.head.forward(pass.hidden, pool, drop);
    const { logits, dlogits } = headPass; // (F, K) each
    let l2: number;
    if (regression) {
      l2 = regressionLoss(model.backend, logits, dlogits, gold.scores, E);
    } else {
      // Classes: (E, K). Choice: the (E·k, 1) scores are (E, k), one softmax per example.
      const K = type === 'choice' ? batch.perExample : this.head.K;
      const bufs = this.planLoss(E);
      l2 = classificationLoss(model.backend, { logits, dlogits, ...bufs }, gold.labels, E, K);
    }
    this.head.backward(headPass, pass.dhidden);
    // L1 on the same inputs, its gradient added (times λ) to the same dhidden.
    const l1 = lambda > 0 ? model.lmLoss(pass, batch.targets, lambda) : NaN;
    model.backward(pass);
    return { loss: lambda > 0 ? l2 + lambda * l1 : l2, l2, l1 };
  }

  // ---- inference ----

  /**
   * Head outputs of a batch in evaluation mode (no dropout): (E, K) logits for classes,
   * (E, k) choice scores, or (E, 1) regression outputs. Returns them with their row width.
   */
  outputsOf(batch: TaskBatch): { values: Float32Array; width: number } {
    const { S, T, E } = batch;
    const C = this.model.config.nEmbd;
    const hidden = this.model.forwardHidden(batch.ids, S, T); // (S, T, C)
    const pool = poolFor(this.task.type, batch);
    const feat = new Float32Array(pool.F * C); // (F, C): the extract rows, similarity's two added
    for (let f = 0; f < pool.F; f++) {
      const a = pool.rowA[f] * C;
      for (let c = 0; c < C; c++) feat[f * C + c] = hidden[a + c];
      if (pool.rowB !== null) {
        const b = pool.rowB[f] * C;
        for (let c = 0; c < C; c++) feat[f * C + c] += hidden[b + c];
      }
    }
    const values = this.head.forwardFeatures(feat, pool.F); // (F, K)
    const width = this.task.type === 'choice' ? batch.perExample : this.head.K;
    if (values.length !== E * width) throw new Error('internal: head outputs do not match the batch');
    return { values, width };
  }

  /** Predictions for many examples, `batchSize` at a time (default 32). Labels are not needed. */
  predictBatch(examples: readonly TaskExample[], options: { batchSize?: number } = {}): Prediction[] {
    const { predictions } = this.run(examples, options.batchSize ?? 32, 'predict', false);
    return predictions;
  }

  /** The prediction for one example: label (class name, choice index or score) and probabilities. */
  predict(example: TaskExample): Prediction {
    return this.predictBatch([example])[0];
  }

  /** Metrics over labeled examples (see metrics.ts); also returns the predictions. */
  evaluate(examples: readonly TaskExample[], options: { batchSize?: number } = {}): TaskMetrics & { predictions: Prediction[]; truncated: number } {
    const { predictions, metrics, truncated } = this.run(examples, options.batchSize ?? 32, 'evaluate', true);
    return { ...metrics!, predictions, truncated };
  }

  /** Frees the model's and the head's backend memory. */
  dispose(): void {
    this.lossArena.dispose();
    this.labelArena.dispose();
    this.head.dispose();
    this.model.dispose();
  }

  // ---- internals ----

  private run(examples: readonly TaskExample[], batchSize: number, source: string, withMetrics: boolean): { predictions: Prediction[]; metrics: TaskMetrics | null; truncated: number } {
    if (!Array.isArray(examples)) throw new Error(`${source}: examples must be an array`);
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new Error(`${source}: batchSize must be a positive integer, got ${batchSize}`);
    const data = this.encode(examples, source);
    const predictions: Prediction[] = [];
    let lossSum = 0;
    for (let i = 0; i < examples.length; i += batchSize) {
      const idx = Array.from({ length: Math.min(batchSize, examples.length - i) }, (_, k) => i + k);
      const { batch, gold } = this.batch(data, idx);
      const { values, width } = this.outputsOf(batch);
      for (let e = 0; e < batch.E; e++) {
        const row = values.subarray(e * width, (e + 1) * width);
        if (this.task.regression) {
          predictions.push({ label: row[0], score: row[0] });
          if (!Number.isNaN(gold.scores[e])) lossSum += (row[0] - gold.scores[e]) ** 2;
          continue;
        }
        const probs = softmax(row);
        let best = 0;
        for (let k = 1; k < width; k++) if (probs[k] > probs[best]) best = k;
        const label = this.task.type === 'choice' ? best : this.task.labels![best];
        predictions.push({ label, index: best, probabilities: Array.from(probs) });
        if (gold.labels[e] >= 0) lossSum -= Math.log(Math.max(probs[gold.labels[e]], 1e-30));
      }
    }
    if (!withMetrics) return { predictions, metrics: null, truncated: data.truncated };
    return { predictions, metrics: this.metrics(predictions, data.gold, lossSum), truncated: data.truncated };
  }

  private metrics(predictions: Prediction[], gold: Gold, lossSum: number): TaskMetrics {
    const m: TaskMetrics = { count: predictions.length };
    if (this.task.regression) {
      const keep = predictions.map((_, i) => i).filter((i) => !Number.isNaN(gold.scores[i]));
      if (keep.length < predictions.length) throw new Error(`evaluate: ${predictions.length - keep.length} examples have no score`);
      const pred = keep.map((i) => predictions[i].score!);
      const g = keep.map((i) => gold.scores[i]);
      m.pearson = pearson(pred, g);
      m.spearman = spearman(pred, g);
      m.mse = meanSquaredError(pred, g);
      m.loss = lossSum / keep.length;
      return m;
    }
    const missing = gold.labels.filter((l) => l < 0).length;
    if (missing > 0) throw new Error(`evaluate: ${missing} examples have no label`);
    const pred = predictions.map((p) => p.index!);
    m.accuracy = accuracy(pred, gold.labels);
    if (this.task.type !== 'choice' && this.head.K === 2) m.f1 = f1Score(pred, gold.labels, 1);
    m.loss = lossSum / predictions.length;
    return m;
  }

  private planLoss(N: number): { losses: Tensor; dlosses: Tensor; labels: Tensor } {
    if (this.lossBufs === null || this.lossN !== N) {
      const f = this.lossArena.cut((take) => ({ losses: take(N), dlosses: take(N) }));
      const labels = this.labelArena.cut((take) => take(N));
      this.lossBufs = { ...f, labels };
      this.lossN = N;
    }
    return this.lossBufs;
  }
}

/** Head outputs for a task: its classes, or 1 (choice scores, regression). */
function outputsOf(spec: TaskSpec): number {
  if (spec.type === 'choice' || spec.regression) return 1;
  return spec.labels!.length;
}

/** Fills defaults and checks a task definition against the model and tokenizer. */
export function resolveTaskSpec(model: GPT, tokenizer: Tokenizer, def: TaskDefinition | TaskSpec): TaskSpec {
  if (def === null || typeof def !== 'object') throw new Error('task must be an object with at least a type');
  const type = def.type;
  if (!(TASK_TYPES as readonly string[]).includes(type)) throw new Error(`task.type must be one of ${TASK_TYPES.join(', ')}, got ${JSON.stringify(type)}`);
  const regression = def.regression ?? false;
  if (regression && type !== 'similarity') throw new Error(`task.regression is for similarity tasks only (got type ${type})`);
  let labels: string[] | null = null;
  if (type !== 'choice' && !regression) {
    if (!Array.isArray(def.labels) || def.labels.length < 2) throw new Error(`task.labels must list at least 2 classes for a ${type} task, got ${JSON.stringify(def.labels)}`);
    labels = def.labels.map(String);
    const dup = labels.find((l, i) => labels!.indexOf(l) !== i);
    if (dup !== undefined) throw new Error(`task.labels has ${JSON.stringify(dup)} twice`);
  }
  const maxLength = def.maxLength ?? model.config.blockSize;
  if (!Number.isSafeInteger(maxLength) || maxLength < 3 || maxLength > model.config.blockSize) {
    throw new Error(`task.maxLength must be an integer in 3..${model.config.blockSize} (the model's blockSize), got ${maxLength}`);
  }
  const clfDropout = def.clfDropout ?? 0.1;
  if (typeof clfDropout !== 'number' || !(clfDropout >= 0 && clfDropout < 1)) throw new Error(`task.clfDropout must be in [0, 1), got ${clfDropout}`);
  const tokens = {} as TaskSpec['tokens'];
  for (const key of ['start', 'delim', 'extract'] as const) {
    const content = 'tokens' in def && def.tokens ? def.tokens[key].content : TASK_TOKENS[key];
    const id = tokenizer.specialTokens.get(content);
    if (id === undefined) throw new Error(`the tokenizer has no ${content} token (prepare the model with prepareForTask, or fine-tune with finetune())`);
    if ('tokens' in def && def.tokens && def.tokens[key].id !== id) throw new Error(`task.json gives ${content} the id ${def.tokens[key].id}, the tokenizer ${id}`);
    if (id >= model.config.vocabSize) throw new Error(`the model has no embedding row for ${content} (id ${id}, vocabSize ${model.config.vocabSize})`);
    tokens[key] = { content, id };
  }
  return { format: TASK_FORMAT, version: 1, type, labels, regression, maxLength, clfDropout, tokens };
}

function checkTaskSpec(x: unknown, path: string): TaskSpec {
  const t = x as Partial<TaskSpec> | null;
  if (t === null || typeof t !== 'object' || t.format !== TASK_FORMAT) throw new Error(`${path}: not a ${TASK_FORMAT} file`);
  if (t.version !== 1) throw new Error(`${path}: version ${String(t.version)}; this ferrogpt reads version 1`);
  if (t.tokens === null || typeof t.tokens !== 'object') throw new Error(`${path}: missing tokens`);
  for (const key of ['start', 'delim', 'extract'] as const) {
    const tok = t.tokens[key];
    if (tok === undefined || typeof tok.content !== 'string' || !Number.isSafeInteger(tok.id)) throw new Error(`${path}: tokens.${key} must be { content, id }`);
  }
  return t as TaskSpec;
}

function softmax(x: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of x) max = Math.max(max, v);
  const out = new Float64Array(x.length);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += out[i] = Math.exp(x[i] - max);
  for (let i = 0; i < x.length; i++) out[i] /= s;
  return out;
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
  }
}
