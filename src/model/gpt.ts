// The GPT model, read like nanoGPT's model.py but over the Backend: config, parameters,
// forward, loss, backward. Parameters, gradients and activations are backend tensors
// (handles); each layer is a kernel call.
//
//   embeddings: x = drop(wte[ids] + wpe[t])
//   blocks:     GPT-2 pre-LN (default) or GPT-1 post-LN, see blocks.ts; pre-LN ends with ln_f
//   lm head tied to the token embedding: logits = h · wteᵀ (no bias)
//
// A training pass is a value:
//
//   const pass = model.trainForward(ids, B, T);   // dropout on; pass.hidden, pass.dhidden
//   const loss = model.lmLoss(pass, targets);     // L1 and its gradient into pass.dhidden
//   model.backward(pass);                         // dhidden → parameter gradients (accumulated)
//
// (forwardBackward is those three lines.) Task heads read pass.hidden and add their gradient
// into pass.dhidden between trainForward and backward (src/tasks). The activations are not
// the pass's own: they live in the model's activation memory, planned per (B, T) and reused
// by every pass (llm.c style, see ActivationPlan), so the next full pass (forward,
// forwardHidden, evalLoss, trainForward) overwrites them. A pass records the plan's
// generation, and lmLoss and backward refuse a stale pass, or one already backpropagated,
// with an error, never with wrong numbers. KV-cached decoding (kv-cache.ts) has its own
// activation memory, so generating text in the middle of a pass leaves the pass intact.
//
// Dropout (embeddings, attention weights, residual branches) runs only in training passes,
// never in forward / forwardHidden / evalLoss / forwardCached. Its masks come from the
// counter RNG keyed by (seed, stream, element): seed = dropoutSeed(config.seed, training
// step), stream = a fixed number per dropout site, so a run is reproducible on any backend.
//
// LoRA (lora.ts): attachAdapter gives the blocks an adapter, whose low-rank branches then
// run beside the targeted linear layers in every pass (training, evaluation, KV-cached
// decoding), and freezes the base: a training pass computes the adapter's gradients only
// (no base gradient buffer, no dW products, no embedding backward), and the base's
// parameterBuffers / zeroGrad refuse, so that no optimizer can touch the frozen weights.
// mergeAdapter folds it into the weights and detaches it.
//
// Compact weights (weights.ts): GPT.load(dir, { dtype }) and model.toDtype(dtype) hold the
// matmul weights and wte in bf16 or int8 for inference, which reads half or about a quarter
// of the bytes. The passes run the same code over them (linearForward, embedForward pick
// the kernel); training needs f32 weights and refuses a compact model, naming the fix.
//
// Every public method checks its arguments once, at its entry, and names itself in its
// errors (inputs.ts); the code behind the checks trusts them.

import type { Backend, Tensor } from '../backend/backend.js';
import { getBackend } from '../backend/index.js';
import { gpt2FromContents, loadGPT, saveGPT, type HFGPT2Config } from '../io/hf-gpt2.js';
import type { StoredParam } from './weights.js';
import { readAdapterFolder, writeAdapterFolder, type AdapterFolder } from '../io/peft.js';
import { IGNORE_INDEX, lmLossBackward, lmLossForward } from '../objectives/lm.js';
import { ActivationPlan, type Acts } from './activations.js';
import { Blocks, NO_DROP, STREAM_EMBED, dropoutOf, type Dropout } from './blocks.js';
import { resolveConfig, type GPTConfig, type GPTConfigInput } from './config.js';
import { dropoutSeed, initParameters } from './init.js';
import { checkIds, checkTargets } from './inputs.js';
import { Decoder, type KVCache, type KVCacheOptions } from './kv-cache.js';
import { LORA_SITES, LoraAdapter, siteModule } from './lora.js';
import { ParamTensors, paramLayout, type ModelParams, type ParamSpec } from './params.js';
import { CompactWeights, WeightCopy, PRECISIONS, checkFitsDType, checkWeightDType, convertStored, embedForward, isCompactParam, linearBackward, linearForward, storedToF32, type Precision, type Weight, type WeightDType } from './weights.js';

/** Options of GPT.load and GPT.fromSafetensors. */
export interface LoadOptions {
  /** The dtype to hold the weights in (weights.ts); default: the folder's (ferrogpt.dtype in config.json), else 'f32'. */
  dtype?: WeightDType;
  /** The backend (default: the current one). */
  backend?: Backend;
  /** Keep a packed copy of the weights for prompts and scoring (see GPT.packWeights); default false. */
  packWeights?: boolean;
}

export interface NamedParameter {
  /** A copy of the parameter, in our layout (see GPT.namedParameters). */
  data(): Float32Array;
  /** A copy of its gradient; null until the model has gradients (first training pass or zeroGrad). */
  grad(): Float32Array | null;
  shape: number[];
}

/** The contiguous buffers behind the parameters, for optimizers and gradient clipping. */
export interface ParameterBuffers {
  backend: Backend;
  params: Tensor; // (P)
  grads: Tensor; // (P), same layout
  specs: readonly ParamSpec[];
}

/**
 * One training pass, from trainForward: valid until backward(pass), or until the model
 * runs its next full pass (see the top of this file).
 */
export interface TrainPass {
  readonly B: number;
  readonly T: number;
  /** (B, T, C): the final hidden state, what the lm head and task heads read. */
  readonly hidden: Tensor;
  /** (B, T, C): its gradient, zeroed by trainForward; lmLoss and task heads add into it. */
  readonly dhidden: Tensor;
  /** The model's training step this pass is (trainingSteps before it). */
  readonly step: number;
  /** The seed of its dropout masks; null when neither the model nor its adapter has dropout. */
  readonly dropoutSeed: number | null;
}

/** A TrainPass with what its loss and backward need: the model's activations of it. */
class Pass implements TrainPass {
  backpropagated = false;

  constructor(
    readonly model: GPT,
    readonly generation: number, // of the model's ActivationPlan when the pass ran
    readonly B: number,
    readonly T: number,
    readonly step: number,
    readonly dropoutSeed: number | null,
    readonly drop: Dropout,
    readonly acts: Acts<Tensor>,
    readonly grads: Acts<Tensor>, // the gradient activations
    readonly idsT: Tensor, // (B, T) i32
    readonly targetsT: Tensor, // (B, T) i32
    readonly hidden: Tensor,
    readonly dhidden: Tensor,
  ) {}
}

export class GPT {
  readonly config: Readonly<GPTConfig>;
  readonly backend: Backend;
  /**
   * The folder the weights came from (GPT.load; kept by rebuildGPT), or null: what an
   * adapter saved from this model names as its base (PEFT's base_model_name_or_path).
   */
  nameOrPath: string | null = null;

  private readonly layout: { specs: ParamSpec[]; total: number };
  // The weights: f32 in one buffer (P), or compact (weights.ts). Exactly one is set.
  private weights: ParamTensors | null = null; // (P) every weight, back to back
  private compact: CompactWeights | null = null;
  private bf16: WeightCopy | null = null; // bf16 mixed precision: the copy the GEMMs read
  private packed: WeightCopy | null = null; // packWeights: the f32 weights packed for the GEMM
  private grads: ParamTensors | null = null; // (P) same layout, allocated on first need
  private readonly blocks: Blocks;
  private readonly plan: ActivationPlan; // the activations of the full passes
  private readonly decoder: Decoder; // KV-cached decoding, with its own activations
  private trainSteps = 0; // training passes so far; keys the dropout seed
  private disposed = false;

  // ---- config and parameters ----

  /**
   * `random`: seeded N(0, 0.02) f32 weights; `zeros`: f32 zeros, for a caller that loads
   * every parameter; or compact weights of `dtype` filled from `values` (weights.ts).
   */
  private constructor(config: GPTConfig, backend: Backend, init: 'random' | 'zeros' | { dtype: 'bf16' | 'int8'; values: (spec: ParamSpec) => StoredParam }) {
    this.config = Object.freeze({ ...config });
    this.backend = backend;
    this.layout = paramLayout(config);
    const { specs, total } = this.layout;
    if (typeof init === 'string') {
      const params = backend.alloc(total); // zero-filled
      if (init === 'random') backend.write(params, initParameters(specs, total, config.nLayer, config.seed));
      this.weights = new ParamTensors(backend, config, specs, params);
    } else {
      this.compact = new CompactWeights(backend, this.config, specs, init.dtype, init.values);
    }
    this.blocks = new Blocks(backend, this.config, this.tree);
    this.plan = new ActivationPlan(backend, this.config);
    this.decoder = new Decoder(this.blocks);
  }

  /** A new model with seeded N(0, 0.02) weights (see init.ts), on `backend` (default: the current one). */
  static create(config: GPTConfigInput, backend: Backend = getBackend()): GPT {
    return new GPT(resolveConfig(config), backend, 'random');
  }

  /**
   * A model with the given weights: every parameter by name, in our layout (as
   * loadParameters takes them). No random initialisation runs first (8 s of the 124M draws
   * at GPT-2 small), since every weight is overwritten.
   */
  static fromParameters(config: GPTConfigInput, params: Iterable<readonly [string, Float32Array]>, backend: Backend = getBackend()): GPT {
    const model = new GPT(resolveConfig(config), backend, 'zeros');
    try {
      model.loadParameters(params);
    } catch (err) {
      model.dispose();
      throw err;
    }
    return model;
  }

  /** A model holding `stored` (every parameter, as storedParamsFromHF gives them) in `dtype`. */
  private static fromStored(config: GPTConfig, stored: Map<string, StoredParam>, dtype: WeightDType, backend: Backend, fn: string, packWeights = false): GPT {
    checkFitsDType(fn, config, dtype);
    if (packWeights && dtype !== 'f32') throw new Error(`${fn}: packWeights needs f32 weights, and the model would hold ${dtype} (pass dtype: 'f32', or leave packWeights out)`);
    if (dtype !== 'f32') return new GPT(config, backend, { dtype, values: (spec) => stored.get(spec.name)! });
    const model = GPT.fromParameters(config, [...stored].map(([name, p]) => [name, storedToF32(p)] as const), backend);
    model.packWeights = packWeights;
    return model;
  }

  /**
   * Loads a Hugging Face GPT-2 folder (config.json + model.safetensors) or one written by
   * `save`. Conv1D weights are transposed into our (OC, C) layout; names may carry the
   * `transformer.` prefix or not; lm_head.weight, if present, must equal wte (tied).
   * The format is src/io/hf-gpt2.ts's. `options.dtype` holds the weights in bf16 or int8
   * (default: the dtype the folder was saved in; f32 for Hugging Face folders); the second
   * argument may also be the backend itself.
   */
  static async load(dir: string, options: LoadOptions | Backend = {}): Promise<GPT> {
    const { dtype, backend, packWeights } = loadOptions('GPT.load', options);
    const { config, stored, dtype: saved, path } = await loadGPT(dir);
    const model = GPT.fromStored(config, stored, dtype ?? saved, backend, 'GPT.load', packWeights);
    model.nameOrPath = path;
    return model;
  }

  /**
   * As `load`, from the two files' contents instead of a folder: `config` is config.json
   * (its text or the parsed object), `bytes` model.safetensors. Touches no file system, so
   * it works in browsers and Web Workers (fetch the files, pass what they hold).
   */
  static fromSafetensors(config: string | HFGPT2Config, bytes: Uint8Array | ArrayBuffer, options: LoadOptions | Backend = {}): GPT {
    const { dtype, backend, packWeights } = loadOptions('GPT.fromSafetensors', options);
    const { config: resolved, stored, dtype: saved } = gpt2FromContents(config, bytes);
    return GPT.fromStored(resolved, stored, dtype ?? saved, backend, 'GPT.fromSafetensors', packWeights);
  }

  /**
   * Writes config.json + model.safetensors in the Hugging Face GPT-2 layout (see load), in
   * the dtype the model holds: a bf16 model writes BF16 tensors, an int8 one I8 tensors with
   * their scales (src/io/hf-gpt2.ts), so that loading it back gives the same bits.
   */
  async save(dir: string): Promise<void> {
    this.alive();
    const params = this.layout.specs.map((s) => [s.name, this.stored(s.name), s.shape] as const);
    await saveGPT(dir, this.config, params, [], this.dtype);
  }

  /**
   * The precision of the passes over f32 weights: 'f32', or 'bf16' mixed precision, where
   * every matmul (the blocks' linear layers and the lm head, forward and backward) reads a
   * bf16 copy of the weights and rounds its activations to bf16, accumulating in f32, while
   * the master weights, gradients, optimizer state, LayerNorm, softmax and attention stay f32.
   * The copy is re-rounded once per update (when the master weights have changed). `train` and
   * `finetune` set it for a run (`precision`); a compact model has no f32 weights to train.
   */
  get precision(): Precision {
    return this.bf16 === null ? 'f32' : 'bf16';
  }

  set precision(p: Precision) {
    this.alive();
    if (!(PRECISIONS as readonly string[]).includes(p)) throw new Error(`precision must be one of ${PRECISIONS.map((x) => `'${x}'`).join(', ')}, got ${JSON.stringify(p)}`);
    if (p === this.precision) return;
    if (p === 'bf16') {
      const weights = this.f32Weights('precision');
      this.bf16 = new WeightCopy(this.backend, this.config, this.layout.specs, weights, 'bf16');
    } else {
      this.bf16!.dispose();
      this.bf16 = null;
    }
    this.blocks.p = this.tree;
  }

  /**
   * Whether the model keeps a packed copy of its f32 matmul weights and wte (default
   * false): the layout the GEMM of a many-row product (a prompt, scoring, evaluation)
   * packs each weight into on every call, made once and repacked only when the weights
   * change (an optimizer step, a load). GPT-2 small's lm head, (256, 768, 50257), spends
   * about a tenth of its call packing. The price is a second f32 copy of those weights
   * (GPT-2 small: +498 MB); decoding one token at a time reads the weights in place and
   * gains nothing. The outputs are the same bits either way. f32 models only: a bf16 or
   * int8 model's GEMM reads its compact weights. Under bf16 mixed precision the GEMMs
   * read the bf16 copy instead, and the packed one waits.
   */
  get packWeights(): boolean {
    return this.packed !== null;
  }

  set packWeights(on: boolean) {
    this.alive();
    if (typeof on !== 'boolean') throw new Error(`packWeights must be true or false, got ${JSON.stringify(on)}`);
    if (on === this.packWeights) return;
    if (on) {
      if (this.weights === null) throw new Error(`packWeights: the model holds ${this.dtype} weights; a packed copy is of f32 weights, whose GEMM repacks them (load it in f32 or convert it: model.toDtype('f32'))`);
      this.packed = new WeightCopy(this.backend, this.config, this.layout.specs, this.weights, 'packed');
    } else {
      this.packed!.dispose();
      this.packed = null;
    }
    this.blocks.p = this.tree;
  }

  /** The dtype the weights are held in: 'f32', or a compact one ('bf16', 'int8'; see weights.ts). */
  get dtype(): WeightDType {
    return this.compact?.dtype ?? 'f32';
  }

  /**
   * Holds the weights in `dtype` from now on (in place; returns this model): bf16 or int8
   * for inference (the matmul weights and wte; the rest stays f32), or back to f32 (exact
   * from bf16; from int8, the dequantized values). Gradients, and a packed copy (packWeights), are dropped. Refused while a
   * LoRA adapter is attached.
   */
  toDtype(dtype: WeightDType): this {
    this.alive();
    checkWeightDType('toDtype', dtype);
    checkFitsDType('toDtype', this.config, dtype);
    if (this.blocks.adapter !== null) throw new Error('toDtype: the model has a LoRA adapter attached; merge or detach it first');
    if (dtype === this.dtype) return this;
    this.precision = 'f32';
    this.packWeights = false; // a packed copy is of f32 weights: gone with them
    const { specs, total } = this.layout;
    const target = (spec: ParamSpec) => (isCompactParam(spec) ? dtype : 'f32');
    const old = { weights: this.weights, compact: this.compact };
    if (dtype === 'f32') {
      const params = this.backend.alloc(total);
      for (const s of specs) this.backend.write(params, storedToF32(this.stored(s.name)), s.offset);
      this.weights = new ParamTensors(this.backend, this.config, specs, params);
      this.compact = null;
    } else {
      this.compact = new CompactWeights(this.backend, this.config, specs, dtype, (spec) => convertStored(this.storedIn(old, spec.name), target(spec)));
      this.weights = null;
    }
    if (old.weights !== null) this.backend.free(old.weights.buffer);
    old.compact?.dispose();
    if (this.grads !== null) this.backend.free(this.grads.buffer);
    this.grads = null;
    this.blocks.p = this.tree;
    return this;
  }

  numParameters(): number {
    return this.layout.total;
  }

  /**
   * Every parameter by its Hugging Face GPT-2 name (transformer.h.0.attn.c_attn.weight, ...),
   * in HF order. Data and shape are in OUR layout: matmul weights are (OC, C) (llm.c /
   * nn.Linear), whereas HF's Conv1D stores attn.c_attn, attn.c_proj, mlp.c_fc and
   * mlp.c_proj weights transposed, (C, OC). GPT.load / save transpose; code that moves
   * these weights to or from HF tensors must too (see src/io/hf-gpt2.ts). The tied lm head is wte.
   */
  namedParameters(): Array<[string, NamedParameter]> {
    this.alive();
    return this.layout.specs.map((s) => {
      return [s.name, {
        shape: [...s.shape],
        data: () => storedToF32(this.stored(s.name)),
        grad: () => {
          const gv = this.grads?.views.get(s.name);
          return gv === undefined ? null : (this.backend.read(gv) as Float32Array);
        },
      }];
    });
  }

  /**
   * Overwrites parameters by name (our layout). Every parameter must be given, once; all
   * are checked before any is written, so a bad call leaves the model unchanged.
   */
  loadParameters(values: Iterable<readonly [string, Float32Array]>): void {
    this.alive();
    const { specs } = this.layout;
    const byName = new Map(specs.map((s) => [s.name, s]));
    const writes: Array<[ParamSpec, Float32Array]> = [];
    const seen = new Set<string>();
    for (const [name, data] of values) {
      const spec = byName.get(name);
      if (spec === undefined) throw new Error(`loadParameters: unknown parameter ${name}`);
      if (!(data instanceof Float32Array)) throw new Error(`loadParameters: ${name} must be a Float32Array`);
      if (data.length !== spec.length) {
        throw new Error(`loadParameters: ${name} has ${data.length} values, expected ${spec.length} (shape [${spec.shape.join(', ')}])`);
      }
      if (seen.has(name)) throw new Error(`loadParameters: ${name} given twice`);
      seen.add(name);
      writes.push([spec, data]);
    }
    const missing = specs.filter((s) => !seen.has(s.name)).map((s) => s.name);
    if (missing.length > 0) throw new Error(`loadParameters: missing ${missing.join(', ')}`);
    for (const [spec, data] of writes) {
      if (this.weights !== null) this.backend.write(this.weights.buffer, data, spec.offset);
      else this.compact!.write(spec.name, { dtype: 'f32', data });
    }
  }

  /** Parameter `name` as this model stores it (f32 ones as a copy). */
  private stored(name: string): StoredParam {
    return this.storedIn({ weights: this.weights, compact: this.compact }, name);
  }

  private storedIn(w: { weights: ParamTensors | null; compact: CompactWeights | null }, name: string): StoredParam {
    if (w.compact !== null) return w.compact.stored(name);
    return { dtype: 'f32', data: this.backend.read(w.weights!.views.get(name)!) as Float32Array };
  }

  /** The structure the passes walk, over the weights in whatever dtype they are held. */
  private get tree(): ModelParams<Tensor, Weight> {
    return this.bf16?.tree ?? this.packed?.tree ?? this.weights?.tree ?? this.compact!.tree;
  }

  /** Rows `ids` of the token embedding wte, (ids.length, C) row-major (a copy). */
  embeddingRows(ids: readonly number[]): Float32Array {
    this.alive();
    const { nEmbd: C, vocabSize: V } = this.config;
    const name = 'transformer.wte.weight';
    const out = new Float32Array(ids.length * C);
    ids.forEach((id, i) => {
      if (!Number.isSafeInteger(id) || id < 0 || id >= V) throw new Error(`embeddingRows: id ${id} is out of range (must be in 0..${V - 1})`);
      const row = this.compact !== null ? this.compact.rows(name, id, 1, C) : (this.backend.read(this.weights!.views.get(name)!, id * C, C) as Float32Array);
      out.set(row, i * C);
    });
    return out;
  }

  /**
   * Training passes run so far; it keys the dropout masks, so a checkpoint that restores
   * it resumes with the same masks as an uninterrupted run.
   */
  get trainingSteps(): number {
    return this.trainSteps;
  }

  set trainingSteps(n: number) {
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`trainingSteps must be an integer >= 0, got ${n}`);
    this.trainSteps = n;
  }

  /** The contiguous parameter and gradient buffers (allocates gradients if needed). Refused while the model is frozen (an adapter is attached). */
  parameterBuffers(): ParameterBuffers {
    this.alive();
    this.notFrozen('parameterBuffers');
    return { backend: this.backend, params: this.f32Weights('parameterBuffers').buffer, grads: this.ensureGrads().buffer, specs: this.layout.specs };
  }

  zeroGrad(): void {
    this.alive();
    this.notFrozen('zeroGrad');
    this.backend.zero(this.ensureGrads().buffer);
  }

  // ---- LoRA adapters (lora.ts) ----

  /** The attached LoRA adapter, or null. */
  get adapter(): LoraAdapter | null {
    return this.blocks.adapter;
  }

  /**
   * Attaches a LoRA adapter (made for this model's shape, on its backend): every pass runs
   * its branches from now on, and the base weights are frozen (see the top of this file).
   * The model owns it from now on (dispose, mergeAdapter). A pass in progress is over.
   */
  attachAdapter(adapter: LoraAdapter): void {
    this.alive();
    if (!(adapter instanceof LoraAdapter) || adapter.isDisposed) throw new Error('attachAdapter: adapter must be a live LoraAdapter');
    if (this.blocks.adapter !== null) throw new Error('attachAdapter: the model already has an adapter; detach or merge it first');
    this.f32Weights('attachAdapter');
    adapter.checkFits(this.config, this.backend, 'attachAdapter');
    this.setAdapter(adapter);
  }

  /** Detaches the adapter and returns it (the caller owns it then); null when there is none. The base is trainable again. */
  detachAdapter(): LoraAdapter | null {
    this.alive();
    const adapter = this.blocks.adapter;
    if (adapter !== null) this.setAdapter(null);
    return adapter;
  }

  /**
   * Folds the attached adapter into the weights, W += (alpha / r) · B A for every adapted
   * layer (on the host in float64, so the merged weights are the same on every backend),
   * then detaches and disposes it: a plain GPT whose passes give what the adapted one gave
   * (to float32 rounding). Returns this model.
   */
  mergeAdapter(): this {
    this.alive();
    const adapter = this.blocks.adapter;
    if (adapter === null) throw new Error('mergeAdapter: the model has no adapter attached');
    const weights = this.f32Weights('mergeAdapter');
    for (let l = 0; l < this.config.nLayer; l++) {
      for (const site of LORA_SITES) {
        const view = weights.views.get(`${siteModule(l, site)}.weight`)!;
        const merged = adapter.merged(l, site, this.backend.read(view) as Float32Array);
        if (merged !== null) this.backend.write(view, merged);
      }
    }
    this.setAdapter(null);
    adapter.dispose();
    return this;
  }

  /**
   * Reads a PEFT LoRA adapter folder (src/io/peft.ts: adapter_config.json +
   * adapter_model.safetensors, ours or PEFT's for GPT-2) and attaches it. Embedding rows the
   * folder holds (trainable_token_indices: a fine-tuned model's task tokens) replace those
   * rows of wte; a task head in it is FineTunedGPT.load's. Everything is checked before the
   * model changes; an adapter made for another model shape is an error saying so.
   */
  async loadAdapter(dir: string): Promise<LoraAdapter> {
    this.alive();
    return this.applyAdapterFolder(await readAdapterFolder(dir, 'loadAdapter'), dir, 'loadAdapter');
  }

  /** @internal loadAdapter's work on a folder already read (FineTunedGPT.load reads its head from the same one). */
  applyAdapterFolder(folder: AdapterFolder, dir: string, fn: string): LoraAdapter {
    this.alive();
    if (this.blocks.adapter !== null) throw new Error(`${fn}: the model already has an adapter; detach or merge it first`);
    const weights = this.f32Weights(fn);
    const { nEmbd: C, vocabSize: V } = this.config;
    const tokens = folder.tokens;
    if (tokens !== null) {
      if (tokens.rows.shape[1] !== C) throw new Error(`${fn}: ${dir}: the adapter's embedding rows have ${tokens.rows.shape[1]} channels, the model ${C}: it was made for another model`);
      const beyond = tokens.ids.filter((id) => id >= V);
      if (beyond.length > 0) throw new Error(`${fn}: ${dir}: the adapter sets embedding rows ${beyond.join(', ')}, the model has ${V} (grow it first: resizeTokenEmbeddings, or FineTunedGPT.load for a fine-tuned folder)`);
    }
    let adapter: LoraAdapter;
    try {
      adapter = new LoraAdapter(this.backend, this.config, folder.config);
    } catch (err) {
      throw new Error(`${fn}: ${dir}: ${(err as Error).message}`, { cause: err });
    }
    try {
      adapter.loadParameters([...folder.lora].map(([name, t]) => [name, t.data] as const), `${fn}: ${dir}: the adapter does not fit this model (${this.config.nLayer} layers of ${C} channels)`);
    } catch (err) {
      adapter.dispose();
      throw err;
    }
    if (tokens !== null) {
      const wte = weights.views.get('transformer.wte.weight')!;
      tokens.ids.forEach((id, i) => this.backend.write(wte, tokens.rows.data.subarray(i * C, (i + 1) * C), id * C));
    }
    this.setAdapter(adapter);
    return adapter;
  }

  /**
   * Writes the attached adapter as a PEFT LoRA folder (task_type CAUSAL_LM; its base is
   * nameOrPath). A fine-tuned model's folder, with its head and task tokens, is
   * FineTunedGPT.save's.
   */
  async saveAdapter(dir: string): Promise<void> {
    this.alive();
    const adapter = this.blocks.adapter;
    if (adapter === null) throw new Error('saveAdapter: the model has no adapter attached');
    await writeAdapterFolder(dir, { config: adapter.config, baseModel: this.nameOrPath, lora: adapter.namedParameters() });
  }

  private setAdapter(adapter: LoraAdapter | null): void {
    this.blocks.adapter = adapter;
    this.plan.setLora(adapter?.shape ?? null);
    this.decoder.setLora(adapter?.shape ?? null);
  }

  /** @internal An Error naming `fn` unless the model can be trained: its weights are f32 (train and finetune call it first). */
  checkTrainable(fn: string): void {
    this.alive();
    this.f32Weights(fn);
  }

  /** The f32 weights, or an Error naming `fn` for a compact model (training and adapters need f32 weights). */
  private f32Weights(fn: string): ParamTensors {
    if (this.weights !== null) return this.weights;
    const fix = `load it in f32 (GPT.load(dir, { dtype: 'f32' })) or convert it (model.toDtype('f32'))`;
    if (this.dtype === 'int8') throw new Error(`${fn}: the model holds int8 weights; training and adapters need f32 master weights: ${fix}`);
    throw new Error(`${fn}: the model holds bf16 weights; training needs f32 master weights (train converts a bf16 model and trains it in bf16 mixed precision): ${fix}`);
  }

  private notFrozen(fn: string): void {
    if (this.blocks.adapter !== null) {
      throw new Error(`${fn}: the model is frozen while a LoRA adapter is attached; train the adapter (model.adapter) instead, or merge / detach it first`);
    }
  }

  // ---- forward ----

  /** Logits (B·T·V, row-major (B, T, V)) of `ids` (B, T); evaluation mode (no dropout). */
  forward(ids: Int32Array, batch: number, seq: number): Float32Array {
    this.alive();
    const { acts, hidden } = this.trunk(this.inputs('forward', ids, batch, seq), batch, seq, NO_DROP);
    this.lmHead(acts.logits, hidden, batch * seq);
    return this.backend.read(acts.logits) as Float32Array;
  }

  /**
   * The final hidden state (B·T·C, row-major (B, T, C)): after ln_f (GPT-2) or the last
   * block (GPT-1), i.e. what the lm head and fine-tuning heads read. Evaluation mode.
   */
  forwardHidden(ids: Int32Array, batch: number, seq: number): Float32Array {
    this.alive();
    return this.backend.read(this.trunk(this.inputs('forwardHidden', ids, batch, seq), batch, seq, NO_DROP).hidden) as Float32Array;
  }

  /**
   * Starts a training pass over `ids` (B, T): the transformer with dropout on, the gradient
   * activations zeroed (pass.dhidden among them). Counts a training step. Continue with
   * lmLoss(pass, ...) and/or a task head, then backward(pass).
   */
  trainForward(ids: Int32Array, batch: number, seq: number): TrainPass {
    this.alive();
    this.f32Weights('trainForward');
    return this.startPass(this.inputs('trainForward', ids, batch, seq), batch, seq);
  }

  /**
   * Checks a pass's inputs (shapes and lengths: inputs.ts) and writes its ids (and targets)
   * into the planned i32 tensors, checking every one is a token id (targets: or -1): the
   * one range check of each, named after the public method `fn`. Targets go first, so a bad call leaves the ids of a pass in progress untouched.
   * The backend remembers the check (writeTokens), so the kernels do not scan them again.
   */
  private inputs(fn: string, ids: Int32Array, B: number, T: number, targets?: Int32Array): { idsT: Tensor; targetsT: Tensor } {
    checkIds(fn, this.config, ids, B, T);
    if (targets !== undefined) checkTargets(fn, targets, B * T);
    const V = this.config.vocabSize;
    const { ids: idsT, targets: targetsT } = this.plan.tokens(B, T);
    if (targets !== undefined) this.backend.writeTokens(targetsT, targets, V, fn, 'targets', IGNORE_INDEX);
    this.backend.writeTokens(idsT, ids, V, fn, 'ids');
    return { idsT, targetsT };
  }

  /** Embeddings and blocks (and ln_f) over the planned activations: the hidden state (B, T, C). */
  private trunk(inputs: { idsT: Tensor; targetsT: Tensor }, B: number, T: number, drop: Dropout): { acts: Acts<Tensor>; idsT: Tensor; targetsT: Tensor; hidden: Tensor } {
    this.syncCopies();
    const { acts: a } = this.plan.forward(B, T);
    const { idsT, targetsT } = inputs;
    const be = this.backend;
    const p = this.tree;
    const C = this.config.nEmbd;
    embedForward(be, a.encoded, idsT, p.wte, p.wpe, B, T, C); // wte[ids] + wpe[t] (B, T, C)
    if (drop.on) be.dropoutForward(a.encodedDrop!, a.encoded, B * T * C, drop.at(STREAM_EMBED)); // drop(·)
    const hidden = this.blocks.forward(a, B * T, drop, this.blocks.causalAttention(B, T, drop)); // blocks, ln_f
    return { acts: a, idsT, targetsT, hidden };
  }

  /** logits (N, V) = hidden (N, C) · wteᵀ: the lm head, tied to the token embedding. */
  private lmHead(logits: Tensor, hidden: Tensor, N: number): void {
    const { nEmbd: C, vocabSize: V } = this.config;
    linearForward(this.backend, logits, hidden, this.tree.wte, null, N, C, V); // (B, T, V)
  }

  private startPass(inputs: { idsT: Tensor; targetsT: Tensor }, B: number, T: number): Pass {
    const adapter = this.blocks.adapter;
    if (adapter === null) this.ensureGrads(); // frozen: only the adapter has gradients
    const step = this.trainSteps++;
    const pLora = adapter?.config.dropout ?? 0;
    const seed = this.config.dropout > 0 || pLora > 0 ? dropoutSeed(this.config.seed, step) : null;
    const drop = seed === null ? NO_DROP : dropoutOf(this.config.dropout, seed, pLora);
    const { acts, idsT, targetsT, hidden } = this.trunk(inputs, B, T, drop);
    const ga = this.plan.zeroedGrads(B, T);
    return new Pass(this, this.plan.generation, B, T, step, seed, drop, acts, ga, idsT, targetsT, hidden, this.blocks.hiddenOf(ga));
  }

  // ---- loss ----

  /**
   * L1 of a training pass: the mean next-token cross-entropy over the positions whose target
   * is not -1 (0 when none is), with weight·its gradient added into pass.dhidden and wte's
   * gradient (fused, as the crossentropy kernels are). Returns the loss.
   */
  lmLoss(pass: TrainPass, targets: Int32Array, weight = 1): number {
    const p = this.checkPass('lmLoss', pass);
    checkTargets('lmLoss', targets, p.B * p.T);
    if (typeof weight !== 'number' || !Number.isFinite(weight)) throw new Error(`lmLoss: weight must be a finite number, got ${String(weight)}`);
    this.backend.writeTokens(p.targetsT, targets, this.config.vocabSize, 'lmLoss', 'targets', IGNORE_INDEX);
    return this.passLoss(p, targets, weight);
  }

  /**
   * The mean LM loss of `ids` (B, T) at `targets` (B, T; -1 skips a position) in evaluation
   * mode: no dropout, no gradients, nothing read back but the B·T per-position losses.
   * 0 when every target is -1.
   */
  evalLoss(ids: Int32Array, targets: Int32Array, batch: number, seq: number): number {
    this.alive();
    const N = batch * seq;
    const { acts: a, targetsT, hidden } = this.trunk(this.inputs('evalLoss', ids, batch, seq, targets), batch, seq, NO_DROP);
    this.lmHead(a.logits, hidden, N);
    return lmLossForward(this.backend, { logits: a.logits, targets: targetsT, losses: a.losses }, targets, N, this.config.vocabSize, IGNORE_INDEX);
  }

  private passLoss(pass: Pass, targets: Int32Array, weight: number): number {
    const N = pass.B * pass.T;
    const { nEmbd: C, vocabSize: V } = this.config;
    const be = this.backend;
    const { acts: a, grads: ga } = pass;
    this.lmHead(a.logits, pass.hidden, N); // targets: written by the caller (inputs or lmLoss)
    const bufs = { logits: a.logits, targets: pass.targetsT, losses: a.losses };
    const loss = lmLossForward(be, bufs, targets, N, V, IGNORE_INDEX);
    lmLossBackward(be, { ...bufs, dlogits: ga.logits, dlosses: ga.losses }, targets, N, V, IGNORE_INDEX, weight, true);
    const dwte = this.blocks.adapter === null ? this.grads!.tree.wte : null; // frozen: no dW of the tied head
    linearBackward(be, pass.dhidden, dwte, null, ga.logits, pass.hidden, this.tree.wte, N, C, V);
    return loss;
  }

  // ---- backward ----

  /**
   * Backpropagates pass.dhidden through the transformer into the parameter gradients
   * (accumulated: zeroGrad between steps). Ends the pass.
   */
  backward(pass: TrainPass): void {
    this.passBackward(this.checkPass('backward', pass));
  }

  private passBackward(pass: Pass): void {
    pass.backpropagated = true;
    const { B, T, drop, acts: a, grads: ga } = pass;
    const be = this.backend;
    const C = this.config.nEmbd;
    if (this.blocks.adapter !== null) {
      this.blocks.backward(null, a, ga, B, T, drop); // frozen: the adapter's gradients only; the embeddings get none
      return;
    }
    const g = this.grads!.tree;
    this.blocks.backward(g, a, ga, B, T, drop);
    if (drop.on) be.dropoutBackward(ga.encoded, ga.encodedDrop!, B * T * C, drop.at(STREAM_EMBED));
    be.encoderBackward(g.wte, g.wpe, ga.encoded, pass.idsT, B, T, C);
  }

  /**
   * One training pass of L1 (trainForward, lmLoss, backward): mean next-token cross-entropy
   * over the positions whose target is not -1; accumulates `weight` times its gradient
   * (call zeroGrad between steps; 1/gradAccum for gradient accumulation). Returns the loss.
   */
  forwardBackward(ids: Int32Array, targets: Int32Array, batch: number, seq: number, weight = 1): number {
    // Check everything before anything runs, so a bad call leaves no half-done pass.
    this.alive();
    this.f32Weights('forwardBackward');
    if (typeof weight !== 'number' || !Number.isFinite(weight)) throw new Error(`forwardBackward: weight must be a finite number, got ${String(weight)}`);
    const pass = this.startPass(this.inputs('forwardBackward', ids, batch, seq, targets), batch, seq);
    const loss = this.passLoss(pass, targets, weight);
    this.passBackward(pass);
    return loss;
  }

  // ---- KV-cached inference (generation, scoring): kv-cache.ts ----

  /**
   * A KV cache for `batch` sequences of up to `maxT` tokens (default and maximum: blockSize).
   * `kvDtype`: 'f32' (default) or 'bf16' (half the memory; k and v are rounded to bf16 as
   * they are appended, attention computes in f32). See kv-cache.ts for the layout and the
   * sliding rule; free it with cache.dispose().
   */
  createCache(batch: number, maxT: number = this.config.blockSize, options: KVCacheOptions = {}): KVCache {
    this.alive();
    return this.decoder.createCache(batch, maxT, options);
  }

  /**
   * Runs the new tokens of each sequence through the model over the cache and appends them
   * to it: `tokens[b]` are sequence b's new ids (a whole prompt, one sampled token, or none).
   * Evaluation mode. Returns logits, row-major:
   * - `logits: 'last'` (default): (B, V), the last new position of each sequence;
   * - `logits: 'all'`: (B, Tn, V) with Tn = the most new tokens of any sequence: row t of
   *   sequence b follows its new token t (rows past its count are 0).
   * A sequence with no new tokens keeps its cache and gets rows of 0. Sequences whose new
   * tokens do not fit slide first (see kv-cache.ts), so any number of tokens is accepted;
   * the logits equal those of a full forward pass over what the cache then holds.
   */
  forwardCached(tokens: ReadonlyArray<ArrayLike<number>>, cache: KVCache, options: { logits?: 'last' | 'all' } = {}): Float32Array {
    this.alive();
    this.syncCopies();
    return this.decoder.forward(tokens, cache, options);
  }

  /** Brings the copies the GEMMs read (bf16, packed) up to date with the master weights. */
  private syncCopies(): void {
    if (this.bf16 !== null) this.bf16.sync();
    else this.packed?.sync();
  }

  /** Frees every backend tensor of the model; the model cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.blocks.adapter?.dispose();
    this.blocks.adapter = null;
    this.plan.dispose();
    this.decoder.dispose();
    this.blocks.dispose();
    if (this.grads !== null) this.backend.free(this.grads.buffer);
    if (this.weights !== null) this.backend.free(this.weights.buffer);
    this.compact?.dispose();
    this.bf16?.dispose();
    this.packed?.dispose();
  }

  // ---- checks ----

  private ensureGrads(): ParamTensors {
    if (this.grads === null) this.grads = new ParamTensors(this.backend, this.config, this.layout.specs, this.backend.alloc(this.layout.total));
    return this.grads;
  }

  /** `pass` as this model's live training pass, or an error naming `fn`. */
  private checkPass(fn: string, pass: TrainPass): Pass {
    this.alive();
    if (!(pass instanceof Pass) || pass.model !== this) throw new Error(`${fn}: pass must be the TrainPass this model's trainForward returned`);
    if (pass.backpropagated) throw new Error(`${fn}: the pass was already backpropagated (backward ends a pass; call trainForward for a new one)`);
    if (pass.generation !== this.plan.generation) {
      throw new Error(`${fn}: the pass is stale: the model has run another pass (forward, forwardHidden, evalLoss, trainForward or forwardBackward) since its trainForward, over the same activation memory; finish a pass with backward before starting the next`);
    }
    return pass;
  }

  private alive(): void {
    if (this.disposed) throw new Error('GPT: the model has been disposed');
  }
}

/** The options of GPT.load / fromSafetensors, which also take a backend in their place. */
function loadOptions(fn: string, options: LoadOptions | Backend): { dtype: WeightDType | undefined; backend: Backend; packWeights: boolean } {
  if (options !== null && typeof options === 'object' && typeof (options as Backend).alloc === 'function') return { dtype: undefined, backend: options as Backend, packWeights: false };
  const { dtype, backend, packWeights = false } = (options ?? {}) as LoadOptions;
  if (typeof packWeights !== 'boolean') throw new Error(`${fn}: packWeights must be true or false, got ${JSON.stringify(packWeights)}`);
  return { dtype: dtype === undefined ? undefined : checkWeightDType(fn, dtype), backend: backend ?? getBackend(), packWeights };
}
