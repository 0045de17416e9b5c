// The GPT model, read like nanoGPT's model.py but over the Backend: parameters,
// gradients and activations are backend tensors (handles); each layer is a kernel call.
//
//   GPT-2 block (default, pre-LN):   x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))
//   GPT-1 block (postLN: true):       x = ln_1(x + attn(x));  x = ln_2(x + mlp(x))
//   embeddings: x = drop(wte[ids] + wpe[t]);  pre-LN models end with ln_f
//   lm head tied to the token embedding: logits = h · wteᵀ (no bias)
//
// Dropout (embeddings, attention weights, residual branches) runs only in training passes
// (forwardBackward / trainForward), never in forward / forwardHidden. Its masks come from
// the counter RNG keyed by (seed, stream, element): seed = dropoutSeed(config.seed, training
// step), stream = a fixed number per dropout site, so a run is reproducible on any backend.
//
// Backward kernels accumulate into a gradient, so where several branches feed one (the
// residual stream, the tied wte) each simply adds its share into a buffer zeroed first.
// A gradient with a single writer is written instead (the kernels' overwrite flags) and
// never zeroed: the branches' inner gradients and dlogits. Gradients inside a block live
// in one set of buffers that all blocks share (llm.c style, see layoutGradActivations).
// Post-LN blocks (GPT-1) zero the shared buffers they add into before each block and keep
// the residual stream between blocks in buffers zeroed per pass; pre-LN blocks (GPT-2)
// keep the stream's gradient in one buffer: see residualStreamBackward.

import { NO_DROPOUT, type Backend, type DropoutSpec, type Tensor } from '../backend/backend.js';
import { getBackend } from '../backend/index.js';
import { IGNORE_INDEX, lmLossBackward, lmLossForward } from '../objectives/lm.js';
import { Arena, layoutActivations, layoutGradActivations, layoutLayerActs, type Acts, type LayerActs } from './activations.js';
import { KVCache, slideWindow } from './kv-cache.js';
import { resolveConfig, type GPTConfig, type GPTConfigInput } from './config.js';
import { dropoutSeed, initParameters } from './init.js';
import { paramLayout, structure, type ModelParams, type ParamSpec } from './params.js';
import { gpt2FromContents, loadGPT, saveGPT, type HFGPT2Config } from '../io/hf-gpt2.js';

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

// Dropout streams: 0 for the embeddings, then three per layer.
const STREAM_EMBED = 0;
const streamAttn = (l: number): number => 1 + 3 * l;
const streamAttnResid = (l: number): number => 2 + 3 * l;
const streamMlpResid = (l: number): number => 3 + 3 * l;

interface Pass {
  B: number;
  T: number;
  training: boolean;
  drop: boolean; // dropout on in this pass (training and config.dropout > 0)
  seed: number; // its dropout seed
  hidden: Tensor; // (B, T, C)
}

export class GPT {
  readonly config: Readonly<GPTConfig>;
  readonly backend: Backend;

  private readonly specs: ParamSpec[];
  private readonly numParams: number;
  private readonly params: Tensor; // (P) every weight, back to back
  private readonly paramViews = new Map<string, Tensor>();
  private readonly p: ModelParams<Tensor>;
  private grads: Tensor | null = null; // (P) same layout, allocated on first need
  private readonly gradViews = new Map<string, Tensor>();
  private g: ModelParams<Tensor> | null = null;

  // Stand-ins for the LayerNorm biases of bias-free models: zeros in, gradients to a sink.
  private zeroC: Tensor | null = null; // (C)
  private sinkC: Tensor | null = null; // (C)

  private readonly actArena: Arena;
  private readonly gradArena: Arena; // gradients of the residual stream, embeddings, head
  private readonly gradLayerArena: Arena; // gradients inside a block, shared by all blocks
  // dlogits (206 MB at GPT-2 small) apart, as lmLossBackward writes it whole: never zeroed.
  private readonly dlogitsArena: Arena;
  private readonly intArena: Arena;
  private acts: Acts<Tensor> | null = null;
  private gacts: Acts<Tensor> | null = null;
  private actsBT = '';
  private gactsBT = '';
  private idsT: Tensor | null = null; // (B, T) i32
  private targetsT: Tensor | null = null; // (B, T) i32
  private pass: Pass | null = null;
  // Activations of the KV-cached path, planned per (B, Tq) apart from the full passes' so
  // that generation between trainForward and trainBackward cannot clobber a training pass.
  private readonly decArena: Arena;
  private readonly decIntArena: Arena;
  private decActs: Acts<Tensor> | null = null;
  private decIds: Tensor | null = null; // (B, Tq) i32
  private decBT = '';
  private trainSteps = 0; // training passes so far; keys the dropout seed
  private disposed = false;

  private constructor(config: GPTConfig, backend: Backend, initial: Float32Array | null) {
    this.config = Object.freeze({ ...config });
    this.backend = backend;
    const { specs, total } = paramLayout(config);
    this.specs = specs;
    this.numParams = total;
    this.params = backend.alloc(total);
    backend.write(this.params, initial ?? initParameters(specs, total, config.nLayer, config.seed));
    for (const s of specs) this.paramViews.set(s.name, backend.view(this.params, s.offset, s.length));
    this.p = structure(config, this.paramViews);
    if (!config.bias) {
      this.zeroC = backend.alloc(config.nEmbd);
      this.sinkC = backend.alloc(config.nEmbd);
    }
    this.actArena = new Arena(backend);
    this.gradArena = new Arena(backend);
    this.gradLayerArena = new Arena(backend);
    this.dlogitsArena = new Arena(backend);
    this.intArena = new Arena(backend, 'i32');
    this.decArena = new Arena(backend);
    this.decIntArena = new Arena(backend, 'i32');
  }

  /** A new model with seeded N(0, 0.02) weights (see init.ts), on `backend` (default: the current one). */
  static create(config: GPTConfigInput, backend: Backend = getBackend()): GPT {
    return new GPT(resolveConfig(config), backend, null);
  }

  /**
   * Loads a Hugging Face GPT-2 folder (config.json + model.safetensors) or one written by
   * `save`. Conv1D weights are transposed into our (OC, C) layout; names may carry the
   * `transformer.` prefix or not; lm_head.weight, if present, must equal wte (tied).
   */
  static async load(dir: string, backend: Backend = getBackend()): Promise<GPT> {
    const { config, params } = await loadGPT(dir);
    const model = new GPT(config, backend, null);
    model.loadParameters(params);
    return model;
  }

  /**
   * As `load`, from the two files' contents instead of a folder: `config` is config.json
   * (its text or the parsed object), `bytes` model.safetensors. Touches no file system, so
   * it works in browsers and Web Workers (fetch the files, pass what they hold).
   */
  static fromSafetensors(config: string | HFGPT2Config, bytes: Uint8Array | ArrayBuffer, backend: Backend = getBackend()): GPT {
    const { config: resolved, params } = gpt2FromContents(config, bytes);
    const model = new GPT(resolved, backend, null);
    model.loadParameters(params);
    return model;
  }

  /** Writes config.json + model.safetensors in the Hugging Face GPT-2 layout (see load). */
  async save(dir: string): Promise<void> {
    this.alive();
    await saveGPT(dir, this.config, this.namedParameters().map(([name, p]) => [name, p.data(), p.shape] as const));
  }

  numParameters(): number {
    return this.numParams;
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
    return this.specs.map((s) => {
      const view = this.paramViews.get(s.name)!;
      return [s.name, {
        shape: [...s.shape],
        data: () => this.backend.read(view) as Float32Array,
        grad: () => {
          const gv = this.gradViews.get(s.name);
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
    const byName = new Map(this.specs.map((s) => [s.name, s]));
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
    const missing = this.specs.filter((s) => !seen.has(s.name)).map((s) => s.name);
    if (missing.length > 0) throw new Error(`loadParameters: missing ${missing.join(', ')}`);
    for (const [spec, data] of writes) this.backend.write(this.params, data, spec.offset);
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

  /** The contiguous parameter and gradient buffers (allocates gradients if needed). */
  parameterBuffers(): ParameterBuffers {
    this.alive();
    return { backend: this.backend, params: this.params, grads: this.ensureGrads(), specs: this.specs };
  }

  zeroGrad(): void {
    this.alive();
    this.backend.zero(this.ensureGrads());
  }

  /** Logits (B·T·V, row-major (B, T, V)) of `ids` (B, T); evaluation mode (no dropout). */
  forward(ids: Int32Array, batch: number, seq: number): Float32Array {
    this.checkIds('forward', ids, batch, seq);
    const hidden = this.trunkForward(ids, batch, seq, false);
    const a = this.acts!;
    const { nEmbd: C, vocabSize: V } = this.config;
    this.backend.matmulForward(a.logits, hidden, this.p.wte, null, batch * seq, C, V);
    return this.backend.read(a.logits) as Float32Array;
  }

  /**
   * The final hidden state (B·T·C, row-major (B, T, C)): after ln_f (GPT-2) or the last
   * block (GPT-1), i.e. what the lm head and fine-tuning heads read. Evaluation mode.
   */
  forwardHidden(ids: Int32Array, batch: number, seq: number): Float32Array {
    this.checkIds('forwardHidden', ids, batch, seq);
    return this.backend.read(this.trunkForward(ids, batch, seq, false)) as Float32Array;
  }

  // ---- KV-cached inference (generation, scoring) ----

  /**
   * A KV cache for `batch` sequences of up to `maxT` tokens (default and maximum: blockSize).
   * See kv-cache.ts for the layout and the sliding rule; free it with cache.dispose().
   */
  createCache(batch: number, maxT: number = this.config.blockSize): KVCache {
    this.alive();
    const { blockSize, nLayer, nEmbd } = this.config;
    if (!Number.isSafeInteger(batch) || batch < 1) throw new Error(`createCache: batch must be a positive integer, got ${String(batch)}`);
    if (!Number.isSafeInteger(maxT) || maxT < 1 || maxT > blockSize) {
      throw new Error(`createCache: maxT must be an integer in 1..blockSize (${blockSize}), got ${String(maxT)}`);
    }
    return new KVCache(this.backend, nLayer, nEmbd, batch, maxT);
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
    const { nEmbd: C, nHead: NH, vocabSize: V, nLayer: L } = this.config;
    const mode = options.logits ?? 'last';
    if (mode !== 'last' && mode !== 'all') throw new Error(`forwardCached: logits must be 'last' or 'all', got ${String(mode)}`);
    if (!(cache instanceof KVCache) || cache.backend !== this.backend || cache.nLayer !== L || cache.nEmbd !== C) {
      throw new Error('forwardCached: cache must come from this model\'s createCache');
    }
    cache.alive();
    const B = cache.batch;
    const maxT = cache.maxT;
    if (!Array.isArray(tokens as unknown) || tokens.length !== B) throw new Error(`forwardCached: tokens must be an array of ${B} token lists (one per sequence in the cache)`);
    const counts = tokens.map((t, b) => {
      if (t === null || typeof t !== 'object' || typeof t.length !== 'number') throw new Error(`forwardCached: tokens[${b}] must be an array of token ids`);
      for (let i = 0; i < t.length; i++) {
        const id = t[i];
        if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`forwardCached: tokens[${b}][${i}] = ${id} is out of range (vocabSize ${V})`);
      }
      return t.length;
    });
    const Tn = Math.max(0, ...counts);
    // What each sequence feeds: its new tokens, or (sliding) a re-encoded tail plus them.
    const feed: number[][] = tokens.map((t, b) => {
      const slid = slideWindow(cache.tokensView(b), t, maxT);
      if (slid === null) return Array.from(t);
      cache.reset(b);
      return slid;
    });
    const Tq = Math.max(0, ...feed.map((f) => f.length));
    const out = new Float32Array(mode === 'last' ? B * V : B * Tn * V);
    if (Tq === 0) return out;

    const be = this.backend;
    const p = this.p;
    const a = this.planDecode(B, Tq);
    const ids = new Int32Array(B * Tq); // right-padded with 0
    feed.forEach((f, b) => ids.set(f, b * Tq));
    be.write(this.decIds!, ids);
    cache.syncPos();
    // Embeddings at each sequence's own positions: wte[id] + wpe[len_b + t].
    const views: Tensor[] = [];
    const view = (t: Tensor, offset: number, length: number): Tensor => {
      const v = be.view(t, offset, length);
      views.push(v);
      return v;
    };
    try {
      feed.forEach((f, b) => {
        const n = f.length;
        if (n === 0) return;
        const start = cache.length(b);
        be.encoderForward(view(a.encoded, b * Tq * C, n * C), view(this.decIds!, b * Tq, n), p.wte,
          view(p.wpe, start * C, (this.config.blockSize - start) * C), 1, n, C);
      });
      this.blocksForward(a, B * Tq, false, 0, (la, l) => {
        be.attentionDecode(la.atty, cache.k[l], cache.v[l], la.qkv, cache.pos, B, Tq, C, NH, maxT); // (B, Tq, C)
      });
      feed.forEach((f, b) => cache.appended(b, f));
      cache.syncPos();
      const hidden = this.hiddenOf(a); // (B, Tq, C)
      if (mode === 'all' || Tq === 1) {
        const rows = B * Tq;
        const logits = view(a.logits, 0, rows * V);
        be.matmulForward(logits, hidden, p.wte, null, rows, C, V); // (B, Tq, V)
        const all = be.read(logits) as Float32Array;
        feed.forEach((f, b) => {
          const n = counts[b];
          if (n === 0) return;
          // The caller's token t is feed row f.length - n + t.
          const from = (b * Tq + f.length - n) * V;
          if (mode === 'all') out.set(all.subarray(from, from + n * V), b * Tn * V);
          else out.set(all.subarray(from + (n - 1) * V, from + n * V), b * V);
        });
      } else {
        feed.forEach((f, b) => {
          if (counts[b] === 0) return;
          const row = view(a.logits, b * V, V);
          be.matmulForward(row, view(hidden, (b * Tq + f.length - 1) * C, C), p.wte, null, 1, C, V); // (V)
          out.set(be.read(row) as Float32Array, b * V);
        });
      }
    } finally {
      for (const v of views) be.free(v);
    }
    return out;
  }

  /**
   * One training pass of L1: mean next-token cross-entropy over the positions whose target
   * is not -1; accumulates the gradients (call zeroGrad between steps). Returns the loss.
   */
  forwardBackward(ids: Int32Array, targets: Int32Array, batch: number, seq: number): number {
    // Check everything before anything runs, so a bad call leaves no half-done pass.
    this.checkIds('forwardBackward', ids, batch, seq);
    this.checkTargets(targets, batch * seq);
    this.trainForward(ids, batch, seq);
    const loss = this.lmLossBackward(targets);
    this.trainBackward();
    return loss;
  }

  // ---- the training pass in three steps, for objectives that add heads (fine-tuning) ----

  /**
   * Runs the transformer with dropout on and zeroes the gradient activations. Returns the
   * hidden state (B, T, C) and its gradient buffer, into which heads accumulate before
   * trainBackward().
   */
  trainForward(ids: Int32Array, batch: number, seq: number): { hidden: Tensor; dhidden: Tensor } {
    this.checkIds('forwardBackward', ids, batch, seq);
    this.ensureGrads();
    const hidden = this.trunkForward(ids, batch, seq, true);
    const ga = this.planGrads(batch, seq);
    this.backend.zero(this.gradArena.tensor!);
    return { hidden, dhidden: this.hiddenOf(ga) };
  }

  /**
   * L1 on the current training pass: logits from the hidden state, mean cross-entropy over
   * targets != -1, and weight·gradient accumulated into dhidden and wte's gradient.
   */
  lmLossBackward(targets: Int32Array, weight = 1): number {
    const pass = this.currentTrainingPass('lmLossBackward');
    const { B, T } = pass;
    const N = B * T;
    const { nEmbd: C, vocabSize: V } = this.config;
    this.checkTargets(targets, N);
    const be = this.backend;
    const a = this.acts!;
    const ga = this.gacts!;
    be.matmulForward(a.logits, pass.hidden, this.p.wte, null, N, C, V); // (B, T, V)
    be.write(this.targetsT!, targets);
    const bufs = { logits: a.logits, targets: this.targetsT!, losses: a.losses };
    const loss = lmLossForward(be, bufs, targets, N, V, IGNORE_INDEX);
    lmLossBackward(be, { ...bufs, dlogits: ga.logits, dlosses: ga.losses }, targets, N, V, IGNORE_INDEX, weight, true);
    be.matmulBackward(this.hiddenOf(ga), this.g!.wte, null, ga.logits, pass.hidden, this.p.wte, N, C, V);
    return loss;
  }

  /** Backpropagates dhidden through the transformer into the parameter gradients (accumulates). */
  trainBackward(): void {
    const pass = this.currentTrainingPass('trainBackward');
    this.pass = null; // a pass is backpropagated once
    if (!this.config.postLN) {
      this.residualStreamBackward(pass);
      return;
    }
    // Post-LN (GPT-1) blocks: LayerNorms sit on the stream, so its gradient is copied and
    // accumulated buffer by buffer.
    const { B, T, N, C, L, drop, d, be, a, ga, p, g } = this.backwardState(pass);
    for (let l = L - 1; l >= 0; l--) {
      const la = a.layers[l];
      const lg = ga.layers[l];
      const lp = p.blocks[l];
      const lgp = g.blocks[l];
      const x = this.blockInput(a, l, drop); // (B, T, C)
      const dx = this.blockInput(ga, l, drop);
      // Of the block's own gradient buffers (shared with every block), those that kernels
      // add into start from zero; the branches' inner ones are overwritten. Its stream
      // gradient (lg.ln2) and dx are separate and were zeroed per pass.
      for (const t of [lg.res3, lg.ln1, lg.res2, lg.attproj, lg.fcproj, lg.attprojDrop, lg.fcprojDrop]) if (t) be.zero(t);
      // ln2 = LN(res3), res3 = ln1 + drop(fcproj)
      be.layernormBackward(lg.res3, lgp.ln2w, this.lnBiasGrad(lgp.ln2b), lg.ln2, la.res3, lp.ln2w, la.ln2Mean, la.ln2Rstd, N, C);
      be.residualBackward(lg.ln1, drop ? lg.fcprojDrop! : lg.fcproj, lg.res3, N * C);
      if (drop) be.dropoutBackward(lg.fcproj, lg.fcprojDrop!, N * C, d(streamMlpResid(l)));
      this.mlpBackward(la, lg, lp, lgp, lg.fcproj, la.ln1, lg.ln1, N, false);
      // ln1 = LN(res2), res2 = x + drop(attproj)
      be.layernormBackward(lg.res2, lgp.ln1w, this.lnBiasGrad(lgp.ln1b), lg.ln1, la.res2, lp.ln1w, la.ln1Mean, la.ln1Rstd, N, C);
      be.residualBackward(dx, drop ? lg.attprojDrop! : lg.attproj, lg.res2, N * C);
      if (drop) be.dropoutBackward(lg.attproj, lg.attprojDrop!, N * C, d(streamAttnResid(l)));
      this.attnBackward(la, lg, lp, lgp, lg.attproj, x, dx, B, T, d(streamAttn(l)), false);
    }
    if (drop) be.dropoutBackward(ga.encoded, ga.encodedDrop!, N * C, d(STREAM_EMBED));
    be.encoderBackward(g.wte, g.wpe, ga.encoded, this.idsT!, B, T, C);
  }

  /**
   * trainBackward for pre-LN blocks. The residual stream's gradient lives in one buffer,
   * dstream: a block's branches add to the stream (x + drop(attn(ln_1(x))), then
   * + drop(mlp(ln_2(·)))), so each branch's output gradient is the stream gradient as it
   * stands (through the branch's dropout mask, when there is one), and each LayerNorm
   * adds its input's share back into it in place. No residual copies and no zeroing of
   * the block's buffers: every one of them has a single writer, which overwrites it
   * (dropoutBackward accumulates, so only its two targets are zeroed). The same bits as
   * the copy-and-accumulate form the post-LN path keeps.
   */
  private residualStreamBackward(pass: Pass): void {
    const { B, T, N, C, L, drop, d, be, a, ga, p, g } = this.backwardState(pass);
    // (B, T, C), zeroed with the gradient arena this pass: the gradient of the first
    // block's input, drop(encoded) when the embeddings have dropout.
    const dstream = this.blockInput(ga, 0, drop);
    // A branch's output gradient: dstream itself, or through its dropout mask into `buf`.
    const branchGrad = (buf: Tensor, stream: number): Tensor => {
      if (!drop) return dstream;
      be.zero(buf);
      be.dropoutBackward(buf, dstream, N * C, d(stream));
      return buf;
    };
    be.layernormBackward(dstream, g.lnfw!, this.lnBiasGrad(g.lnfb), ga.lnf!, a.layers[L - 1].res3, p.lnfw!, a.lnfMean!, a.lnfRstd!, N, C);
    for (let l = L - 1; l >= 0; l--) {
      const la = a.layers[l];
      const lg = ga.layers[l];
      const lp = p.blocks[l];
      const lgp = g.blocks[l];
      // dstream = d res3 here
      this.mlpBackward(la, lg, lp, lgp, branchGrad(lg.fcproj, streamMlpResid(l)), la.ln2, lg.ln2, N, true);
      be.layernormBackward(dstream, lgp.ln2w, this.lnBiasGrad(lgp.ln2b), lg.ln2, la.res2, lp.ln2w, la.ln2Mean, la.ln2Rstd, N, C);
      // dstream = d res2 here
      this.attnBackward(la, lg, lp, lgp, branchGrad(lg.attproj, streamAttnResid(l)), la.ln1, lg.ln1, B, T, d(streamAttn(l)), true);
      be.layernormBackward(dstream, lgp.ln1w, this.lnBiasGrad(lgp.ln1b), lg.ln1, this.blockInput(a, l, drop), lp.ln1w, la.ln1Mean, la.ln1Rstd, N, C);
      // dstream = d x, the previous block's d res3
    }
    if (drop) be.dropoutBackward(ga.encoded, ga.encodedDrop!, N * C, d(STREAM_EMBED));
    be.encoderBackward(g.wte, g.wpe, ga.encoded, this.idsT!, B, T, C);
  }

  /** What both forms of trainBackward read: the pass's sizes and dropout, and the buffers. */
  private backwardState(pass: Pass) {
    const { B, T, seed, drop } = pass;
    const d = (stream: number): DropoutSpec => this.dropSpec(drop, seed, stream);
    const { nEmbd: C, nLayer: L } = this.config;
    return { B, T, N: B * T, C, L, drop, d, be: this.backend, a: this.acts!, ga: this.gacts!, p: this.p, g: this.g! };
  }

  /** Frees every backend tensor of the model; the model cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const be = this.backend;
    this.actArena.dispose();
    this.gradArena.dispose();
    this.gradLayerArena.dispose();
    this.dlogitsArena.dispose();
    this.intArena.dispose();
    this.decArena.dispose();
    this.decIntArena.dispose();
    for (const t of [this.zeroC, this.sinkC, this.grads, this.params]) if (t !== null) be.free(t);
    this.paramViews.clear();
    this.gradViews.clear();
  }

  // ---- forward internals ----

  /** Embeddings and blocks (and ln_f): the hidden state (B, T, C). */
  private trunkForward(ids: Int32Array, B: number, T: number, training: boolean): Tensor {
    const a = this.planActs(B, T);
    const be = this.backend;
    const p = this.p;
    const { nEmbd: C, nHead: NH } = this.config;
    const N = B * T;
    const drop = training && this.dropping();
    const seed = drop ? dropoutSeed(this.config.seed, this.trainSteps) : 0;
    if (training) this.trainSteps++;
    const d = (stream: number): DropoutSpec => this.dropSpec(drop, seed, stream);

    be.write(this.idsT!, ids);
    be.encoderForward(a.encoded, this.idsT!, p.wte, p.wpe, B, T, C); // (B, T, C)
    if (drop) be.dropoutForward(a.encodedDrop!, a.encoded, N * C, d(STREAM_EMBED));

    this.blocksForward(a, N, drop, seed, (la, l) => {
      be.attentionForward(la.atty, la.lse, la.qkv, B, T, C, NH, d(streamAttn(l))); // (B, T, C), (B, NH, T)
    });
    const hidden = this.hiddenOf(a);
    this.pass = { B, T, training, drop, seed, hidden };
    return hidden;
  }

  /**
   * The transformer blocks (and ln_f) over the embeddings in `a`: the one place the block's
   * sequence of layernorm / matmul / gelu / residual calls is written. `attend(la, l)` is the
   * attention core of layer l: it reads la.qkv (N, 3C) and writes la.atty (N, C), either by
   * full causal attention (trunkForward) or over a KV cache (forwardCached).
   */
  private blocksForward(a: Acts<Tensor>, N: number, drop: boolean, seed: number, attend: (la: LayerActs<Tensor>, l: number) => void): void {
    const be = this.backend;
    const p = this.p;
    const { nEmbd: C, postLN } = this.config;
    const d = (stream: number): DropoutSpec => this.dropSpec(drop, seed, stream);
    for (let l = 0; l < this.config.nLayer; l++) {
      const la = a.layers[l];
      const lp = p.blocks[l];
      const x = this.blockInput(a, l, drop); // (B, T, C)
      const att = (inp: Tensor): void => this.attnForward(la, lp, inp, N, () => attend(la, l));
      if (!postLN) {
        // x = x + attn(ln_1(x))
        this.layernorm(la.ln1, la.ln1Mean, la.ln1Rstd, x, lp.ln1w, lp.ln1b, N);
        att(la.ln1);
        be.residualForward(la.res2, x, this.dropout(la.attproj, la.attprojDrop, N * C, d(streamAttnResid(l))), N * C);
        // x = x + mlp(ln_2(x))
        this.layernorm(la.ln2, la.ln2Mean, la.ln2Rstd, la.res2, lp.ln2w, lp.ln2b, N);
        this.mlpForward(la, lp, la.ln2, N);
        be.residualForward(la.res3, la.res2, this.dropout(la.fcproj, la.fcprojDrop, N * C, d(streamMlpResid(l))), N * C);
      } else {
        // x = ln_1(x + attn(x))
        att(x);
        be.residualForward(la.res2, x, this.dropout(la.attproj, la.attprojDrop, N * C, d(streamAttnResid(l))), N * C);
        this.layernorm(la.ln1, la.ln1Mean, la.ln1Rstd, la.res2, lp.ln1w, lp.ln1b, N);
        // x = ln_2(x + mlp(x))
        this.mlpForward(la, lp, la.ln1, N);
        be.residualForward(la.res3, la.ln1, this.dropout(la.fcproj, la.fcprojDrop, N * C, d(streamMlpResid(l))), N * C);
        this.layernorm(la.ln2, la.ln2Mean, la.ln2Rstd, la.res3, lp.ln2w, lp.ln2b, N);
      }
    }
    if (!postLN) {
      const last = a.layers[this.config.nLayer - 1].res3;
      this.layernorm(a.lnf!, a.lnfMean!, a.lnfRstd!, last, p.lnfw!, p.lnfb, N);
    }
  }

  /** qkv = inp · c_attn; atty = attend(qkv); attproj = atty · c_proj. */
  private attnForward(la: LayerActs<Tensor>, lp: ModelParams<Tensor>['blocks'][number], inp: Tensor, N: number, attend: () => void): void {
    const C = this.config.nEmbd;
    const be = this.backend;
    be.matmulForward(la.qkv, inp, lp.qkvw, lp.qkvb, N, C, 3 * C); // (B, T, 3C)
    attend(); // atty (B, T, C) from qkv
    be.matmulForward(la.attproj, la.atty, lp.attprojw, lp.attprojb, N, C, C); // (B, T, C)
  }

  /** fch = inp · c_fc; fchGelu = gelu(fch); fcproj = fchGelu · c_proj. */
  private mlpForward(la: Acts<Tensor>['layers'][number], lp: ModelParams<Tensor>['blocks'][number], inp: Tensor, N: number): void {
    const C = this.config.nEmbd;
    const be = this.backend;
    be.matmulForward(la.fch, inp, lp.fcw, lp.fcb, N, C, 4 * C); // (B, T, 4C)
    be.geluForward(la.fchGelu, la.fch, N * 4 * C);
    be.matmulForward(la.fcproj, la.fchGelu, lp.fcprojw, lp.fcprojb, N, 4 * C, C); // (B, T, C)
  }

  /**
   * The attention branch backward from dattproj, its output's gradient, into dinp (added,
   * or written when overwriteDinp). Its inner gradients have one writer each: written.
   */
  private attnBackward(
    la: Acts<Tensor>['layers'][number], lg: Acts<Tensor>['layers'][number],
    lp: ModelParams<Tensor>['blocks'][number], lgp: ModelParams<Tensor>['blocks'][number],
    dattproj: Tensor, inp: Tensor, dinp: Tensor, B: number, T: number, drop: DropoutSpec, overwriteDinp: boolean,
  ): void {
    const { nEmbd: C, nHead: NH } = this.config;
    const N = B * T;
    const be = this.backend;
    be.matmulBackward(lg.atty, lgp.attprojw, lgp.attprojb, dattproj, la.atty, lp.attprojw, N, C, C, true);
    be.attentionBackward(lg.qkv, lg.atty, la.qkv, la.atty, la.lse, B, T, C, NH, drop, true);
    be.matmulBackward(dinp, lgp.qkvw, lgp.qkvb, lg.qkv, inp, lp.qkvw, N, C, 3 * C, overwriteDinp);
  }

  /** The MLP branch backward from dfcproj into dinp, as attnBackward. */
  private mlpBackward(
    la: Acts<Tensor>['layers'][number], lg: Acts<Tensor>['layers'][number],
    lp: ModelParams<Tensor>['blocks'][number], lgp: ModelParams<Tensor>['blocks'][number],
    dfcproj: Tensor, inp: Tensor, dinp: Tensor, N: number, overwriteDinp: boolean,
  ): void {
    const C = this.config.nEmbd;
    const be = this.backend;
    be.matmulBackward(lg.fchGelu, lgp.fcprojw, lgp.fcprojb, dfcproj, la.fchGelu, lp.fcprojw, N, 4 * C, C, true);
    be.geluBackward(lg.fch, la.fch, lg.fchGelu, N * 4 * C, true);
    be.matmulBackward(dinp, lgp.fcw, lgp.fcb, lg.fch, inp, lp.fcw, N, C, 4 * C, overwriteDinp);
  }

  private layernorm(out: Tensor, mean: Tensor, rstd: Tensor, inp: Tensor, w: Tensor, b: Tensor | null, N: number): void {
    this.backend.layernormForward(out, mean, rstd, inp, w, b ?? this.zeroC!, N, this.config.nEmbd);
  }

  private lnBiasGrad(db: Tensor | null): Tensor {
    return db ?? this.sinkC!;
  }

  /** Applies dropout into `out` when the spec drops, else passes `inp` through. */
  private dropout(inp: Tensor, out: Tensor | null, N: number, spec: DropoutSpec): Tensor {
    if (spec.p === 0) return inp;
    this.backend.dropoutForward(out!, inp, N, spec);
    return out!;
  }

  private dropping(): boolean {
    return this.config.dropout > 0;
  }

  private dropSpec(drop: boolean, seed: number, stream: number): DropoutSpec {
    return drop ? { p: this.config.dropout, seed, stream } : NO_DROPOUT;
  }

  /** The input of block l: the (dropped-out) embeddings, or the previous block's output. */
  private blockInput<T>(a: Acts<T>, l: number, drop: boolean): T {
    if (l === 0) return drop ? a.encodedDrop! : a.encoded;
    const prev = a.layers[l - 1];
    return this.config.postLN ? prev.ln2 : prev.res3;
  }

  /** The hidden state the lm head reads: ln_f's output, or (post-LN) the last block's. */
  private hiddenOf<T>(a: Acts<T>): T {
    return this.config.postLN ? a.layers[this.config.nLayer - 1].ln2 : a.lnf!;
  }

  // ---- planning and checks ----

  private planActs(B: number, T: number): Acts<Tensor> {
    const key = `${B}x${T}`;
    if (this.acts === null || this.actsBT !== key) {
      this.acts = this.actArena.cut((take) => layoutActivations(this.config, B, T, take));
      [this.idsT, this.targetsT] = this.intArena.cut((take) => [take(B * T), take(B * T)]);
      this.actsBT = key;
    }
    return this.acts;
  }

  private planDecode(B: number, T: number): Acts<Tensor> {
    const key = `${B}x${T}`;
    if (this.decActs === null || this.decBT !== key) {
      this.decActs = this.decArena.cut((take) => layoutActivations(this.config, B, T, take));
      [this.decIds] = this.decIntArena.cut((take) => [take(B * T)]);
      this.decBT = key;
    }
    return this.decActs;
  }

  private planGrads(B: number, T: number): Acts<Tensor> {
    const key = `${B}x${T}`;
    if (this.gacts === null || this.gactsBT !== key) {
      const shared = this.gradLayerArena.cut((take) => layoutLayerActs(this.config, B, T, take));
      const [dlogits] = this.dlogitsArena.cut((take) => [take(B * T * this.config.vocabSize)]);
      this.gacts = this.gradArena.cut((take) => layoutGradActivations(this.config, B, T, shared, dlogits, take));
      this.gactsBT = key;
    }
    return this.gacts;
  }

  private ensureGrads(): Tensor {
    if (this.grads === null) {
      this.grads = this.backend.alloc(this.numParams);
      for (const s of this.specs) this.gradViews.set(s.name, this.backend.view(this.grads, s.offset, s.length));
      this.g = structure(this.config, this.gradViews);
    }
    return this.grads;
  }

  private currentTrainingPass(fn: string): Pass {
    this.alive();
    const pass = this.pass;
    if (pass === null || !pass.training) throw new Error(`${fn}: call trainForward first (no training pass in progress)`);
    return pass;
  }

  private alive(): void {
    if (this.disposed) throw new Error('GPT: the model has been disposed');
  }

  private checkIds(fn: string, ids: Int32Array, batch: number, seq: number): void {
    this.alive();
    const { blockSize, vocabSize } = this.config;
    if (!Number.isSafeInteger(batch) || batch < 1) throw new Error(`${fn}: batch must be a positive integer, got ${String(batch)}`);
    if (!Number.isSafeInteger(seq) || seq < 1) throw new Error(`${fn}: seq must be a positive integer, got ${String(seq)}`);
    if (seq > blockSize) throw new Error(`${fn}: seq ${seq} exceeds the model's blockSize ${blockSize}`);
    if (!(ids instanceof Int32Array)) throw new Error(`${fn}: ids must be an Int32Array, got ${describe(ids)}`);
    if (ids.length !== batch * seq) throw new Error(`${fn}: ids has length ${ids.length}, expected batch * seq = ${batch * seq}`);
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] < 0 || ids[i] >= vocabSize) throw new Error(`${fn}: ids[${i}] = ${ids[i]} is out of range (vocabSize ${vocabSize})`);
    }
  }

  private checkTargets(targets: Int32Array, N: number): void {
    const V = this.config.vocabSize;
    if (!(targets instanceof Int32Array)) throw new Error(`forwardBackward: targets must be an Int32Array, got ${describe(targets)}`);
    if (targets.length !== N) throw new Error(`forwardBackward: targets has length ${targets.length}, expected batch * seq = ${N}`);
    for (let i = 0; i < N; i++) {
      const t = targets[i];
      if ((t < 0 || t >= V) && t !== IGNORE_INDEX) {
        throw new Error(`forwardBackward: targets[${i}] = ${t} is out of range (must be in 0..${V - 1}, or ${IGNORE_INDEX} to skip)`);
      }
    }
  }
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'Array';
  if (typeof x === 'object') return (x as object).constructor?.name ?? 'object';
  return typeof x;
}
