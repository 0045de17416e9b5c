// The fine-tuning head of GPT-1 (section 3.2): a linear layer W_y (with bias) over the final
// hidden state at each sequence's extract token, with dropout before it:
//
//   feat[f] = hidden[rowA[f]] (+ hidden[rowB[f]] for similarity: the two orders, added)  (F, C)
//   logits  = drop(feat) · W_yᵀ + b_y                                                      (F, K)
//
// Everything runs on the Backend kernels, so the head works on every backend: the pooling is
// gatherRows (a second gather with accumulate adds rowB's rows), and its backward,
// scatterAddRows (which accumulates), carries dfeat into the training pass's dhidden — from
// where GPT.backward(pass) carries it into the transformer, next to the L1 gradient
// GPT.lmLoss(pass, ...) put there.
//
// Like the model, the head's parameters and gradients are each one contiguous buffer (so
// AdamW and the gradient clip treat it as one more model: it implements Optimizable).
// Names follow Hugging Face's GPT2ForSequenceClassification head, `score` (whose weight has
// the same (K, C) layout), plus the bias GPT-1 has.

import { NO_DROPOUT, type Backend, type DropoutSpec, type Tensor } from '../backend/backend.js';
import type { ParameterBuffers } from './gpt.js';
import { normal } from './init.js';
import { Arena } from './activations.js';
import type { ParamSpec } from './params.js';

/** Which rows of the hidden state (B·T, C) make each feature: row = b·T + t. */
export interface Pool {
  /** Features (F). */
  F: number;
  rowA: Int32Array; // (F)
  /** Second row added to the first (similarity), or null. */
  rowB: Int32Array | null; // (F)
}

export const HEAD_WEIGHT = 'score.weight';
export const HEAD_BIAS = 'score.bias';

interface HeadActs {
  rowA: Tensor; // (F) i32, pool.rowA
  rowB: Tensor; // (F) i32, pool.rowB when there is one
  feat: Tensor; // (F, C)
  featDrop: Tensor; // (F, C) dropout(feat); feat itself when there is no dropout
  logits: Tensor; // (F, K)
}

/**
 * One training pass of the head, from forward: the logits to take a loss of, and dlogits
 * for that loss to fill; backward(pass, dhidden) ends it. Like GPT's TrainPass it is a
 * value, valid until the head's next forward.
 */
export interface HeadPass {
  /** (F, K): the head's outputs. */
  readonly logits: Tensor;
  /** (F, K): their gradient, zeroed by forward; the loss writes it. */
  readonly dlogits: Tensor;
}

class Pass implements HeadPass {
  used = false;
  constructor(
    readonly head: TaskHead,
    readonly generation: number,
    readonly pool: Pool,
    readonly drop: DropoutSpec,
    readonly acts: HeadActs,
    readonly logits: Tensor,
    readonly dlogits: Tensor,
  ) {}
}

export class TaskHead {
  readonly backend: Backend;
  /** Input channels (the model's nEmbd). */
  readonly C: number;
  /** Outputs: classes, or 1 (a choice's score, a regression). */
  readonly K: number;

  private readonly params: Tensor; // (K·C + K)
  private readonly grads: Tensor; // (K·C + K)
  private readonly w: Tensor; // (K, C)
  private readonly b: Tensor; // (K)
  private readonly dw: Tensor;
  private readonly db: Tensor;
  private readonly specs: ParamSpec[];
  private readonly arena: Arena;
  // rowA and rowB apart: writing one must not clear the other's writeTokens mark.
  private readonly rowAArena: Arena;
  private readonly rowBArena: Arena;
  private readonly gradArena: Arena;
  private actsF = -1;
  private acts: HeadActs | null = null;
  private gacts: { feat: Tensor; featDrop: Tensor; logits: Tensor } | null = null;
  private passes = 0; // forward calls so far: a pass is the latest one while this is unchanged
  private disposed = false;

  /** A new head: W_y ~ N(0, 0.02) from (seed, a stream of its own), b_y = 0 (GPT-1). */
  constructor(backend: Backend, C: number, K: number, seed = 1337) {
    for (const [name, v] of [['C', C], ['K', K]] as const) {
      if (!Number.isSafeInteger(v) || v < 1) throw new Error(`TaskHead: ${name} must be a positive integer, got ${String(v)}`);
    }
    this.backend = backend;
    this.C = C;
    this.K = K;
    this.specs = [
      { name: HEAD_WEIGHT, shape: [K, C], offset: 0, length: K * C, init: 'normal' },
      { name: HEAD_BIAS, shape: [K], offset: K * C, length: K, init: 'zeros' },
    ];
    const P = K * C + K;
    this.params = backend.alloc(P);
    this.grads = backend.alloc(P);
    const init = new Float32Array(P);
    for (let i = 0; i < K * C; i++) init[i] = 0.02 * normal(seed >>> 0, HEAD_INIT_STREAM, i);
    backend.write(this.params, init);
    this.w = backend.view(this.params, 0, K * C);
    this.b = backend.view(this.params, K * C, K);
    this.dw = backend.view(this.grads, 0, K * C);
    this.db = backend.view(this.grads, K * C, K);
    this.arena = new Arena(backend);
    this.rowAArena = new Arena(backend, 'i32');
    this.rowBArena = new Arena(backend, 'i32');
    this.gradArena = new Arena(backend);
  }

  numParameters(): number {
    return this.K * this.C + this.K;
  }

  /** For AdamW and the gradient clip (the head is decayed like the model: W_y yes, b_y no). */
  parameterBuffers(): ParameterBuffers {
    this.alive();
    return { backend: this.backend, params: this.params, grads: this.grads, specs: this.specs };
  }

  zeroGrad(): void {
    this.alive();
    this.backend.zero(this.grads);
  }

  /** [name, data, shape] of W_y (K, C) and b_y (K). */
  namedParameters(): Array<[string, Float32Array, number[]]> {
    this.alive();
    return [
      [HEAD_WEIGHT, this.backend.read(this.w) as Float32Array, [this.K, this.C]],
      [HEAD_BIAS, this.backend.read(this.b) as Float32Array, [this.K]],
    ];
  }

  /** [name, gradient] (copies), for tests. */
  namedGradients(): Array<[string, Float32Array]> {
    this.alive();
    return [
      [HEAD_WEIGHT, this.backend.read(this.dw) as Float32Array],
      [HEAD_BIAS, this.backend.read(this.db) as Float32Array],
    ];
  }

  /** Overwrites W_y (K·C values) and b_y (K values). */
  loadParameters(weight: Float32Array, bias: Float32Array): void {
    this.alive();
    if (!(weight instanceof Float32Array) || weight.length !== this.K * this.C) {
      throw new Error(`TaskHead: ${HEAD_WEIGHT} must be a Float32Array of ${this.K}·${this.C} values, got ${weight?.length}`);
    }
    if (!(bias instanceof Float32Array) || bias.length !== this.K) {
      throw new Error(`TaskHead: ${HEAD_BIAS} must be a Float32Array of ${this.K} values, got ${bias?.length}`);
    }
    this.backend.write(this.w, weight);
    this.backend.write(this.b, bias);
  }

  /**
   * Training forward: gathers the pooled rows of `hidden` (B·T, C) (a backend tensor, e.g.
   * a TrainPass's hidden), applies dropout and the linear layer. Returns the logits
   * (F, K), a backend tensor valid until the next call.
   */
  forward(hidden: Tensor, pool: Pool, drop: DropoutSpec = NO_DROPOUT): HeadPass {
    this.alive();
    const { C } = this;
    const rows = hidden.length / C;
    checkPool(pool, rows);
    const be = this.backend;
    const a = this.plan(pool.F);
    // The one check of the pooled rows: each in 0..rows-1 of the hidden state.
    be.writeTokens(a.rowA, pool.rowA, rows, 'TaskHead.forward', 'pool.rowA');
    be.gatherRows(a.feat, hidden, a.rowA, pool.F, C); // feat[f] = h[rowA[f]]
    if (pool.rowB !== null) {
      be.writeTokens(a.rowB, pool.rowB, rows, 'TaskHead.forward', 'pool.rowB');
      be.gatherRows(a.feat, hidden, a.rowB, pool.F, C, true); // feat[f] += h[rowB[f]]
    }
    this.linear(a, pool.F, drop);
    const g = this.gacts!;
    be.zero(g.logits);
    return new Pass(this, ++this.passes, pool, drop, a, a.logits, g.logits);
  }

  /**
   * Evaluation forward from features already pooled on the host (F, C): no dropout.
   * Returns the logits (F, K), read back.
   */
  forwardFeatures(feat: Float32Array, F: number): Float32Array {
    this.alive();
    if (feat.length !== F * this.C) throw new Error(`TaskHead.forwardFeatures: feat has ${feat.length} values, expected F·C = ${F * this.C}`);
    const a = this.plan(F);
    this.backend.write(a.feat, feat);
    this.linear(a, F, NO_DROPOUT);
    this.passes++; // the activations are this call's now: a training pass in progress is over
    return this.backend.read(a.logits) as Float32Array;
  }

  /**
   * Backward of a training pass, given its dlogits (filled by the loss): accumulates into
   * dW_y, db_y and — through the gather — into `dhidden` (B·T, C) at the pooled rows.
   * Ends the pass.
   */
  backward(headPass: HeadPass, dhidden: Tensor): void {
    const pass = this.checkPass(headPass);
    pass.used = true;
    const { C, K } = this;
    const { pool, drop, acts: a } = pass;
    const F = pool.F;
    const be = this.backend;
    const g = this.gacts!;
    if (dhidden.length % C !== 0) throw new Error(`TaskHead.backward: dhidden must be (B·T, C) with C = ${C}, got ${dhidden.length} values`);
    checkPool(pool, dhidden.length / C);
    const dropping = drop.p > 0;
    be.zero(g.feat);
    if (dropping) be.zero(g.featDrop);
    // logits = featDrop · Wᵀ + b
    be.matmulBackward(dropping ? g.featDrop : g.feat, this.dw, this.db, g.logits, dropping ? a.featDrop : a.feat, this.w, F, C, K);
    if (dropping) be.dropoutBackward(g.feat, g.featDrop, F * C, drop);
    // feat[f] = h[a] (+ h[b]): both rows get dfeat[f]
    be.scatterAddRows(dhidden, g.feat, a.rowA, F, C);
    if (pool.rowB !== null) be.scatterAddRows(dhidden, g.feat, a.rowB, F, C);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const be = this.backend;
    this.arena.dispose();
    this.rowAArena.dispose();
    this.rowBArena.dispose();
    this.gradArena.dispose();
    for (const t of [this.w, this.b, this.dw, this.db]) be.free(t);
    for (const t of [this.params, this.grads]) be.free(t);
  }

  // ---- internals ----

  private linear(a: HeadActs, F: number, drop: DropoutSpec): void {
    const { C, K } = this;
    const be = this.backend;
    if (drop.p > 0) be.dropoutForward(a.featDrop, a.feat, F * C, drop);
    be.matmulForward(a.logits, drop.p > 0 ? a.featDrop : a.feat, this.w, this.b, F, C, K); // (F, K)
  }

  /** Views of exactly F rows (kernels check exact lengths); bases grow only when F does. */
  private plan(F: number): HeadActs {
    if (this.acts === null || this.actsF !== F) {
      const { C, K } = this;
      const [rowA] = this.rowAArena.cut((take) => [take(F)]);
      const [rowB] = this.rowBArena.cut((take) => [take(F)]);
      this.acts = this.arena.cut((take) => {
        const feat = take(F * C);
        return { rowA, rowB, feat, featDrop: take(F * C), logits: take(F * K) };
      });
      this.gacts = this.gradArena.cut((take) => ({ feat: take(F * C), featDrop: take(F * C), logits: take(F * K) }));
      this.actsF = F;
    }
    return this.acts;
  }

  private checkPass(p: HeadPass): Pass {
    this.alive();
    if (!(p instanceof Pass) || p.head !== this) throw new Error('TaskHead.backward: pass is not a training pass of this head (from its forward)');
    if (p.used) throw new Error('TaskHead.backward: this pass has already been backpropagated');
    if (p.generation !== this.passes) throw new Error('TaskHead.backward: this pass is stale (the head ran another forward since)');
    return p;
  }

  private alive(): void {
    if (this.disposed) throw new Error('TaskHead: the head has been disposed');
  }
}

// The head's init draws from its own stream of the seed (apart from the model's streams).
const HEAD_INIT_STREAM = 0x4ead0000;

function checkPool(pool: Pool, rows: number): void {
  const { F, rowA, rowB } = pool;
  if (!Number.isSafeInteger(F) || F < 1) throw new Error(`TaskHead: pool.F must be a positive integer, got ${String(F)}`);
  if (!(rowA instanceof Int32Array) || rowA.length !== F) throw new Error(`TaskHead: pool.rowA must be an Int32Array of F = ${F} rows`);
  if (rowB !== null && (!(rowB instanceof Int32Array) || rowB.length !== F)) throw new Error(`TaskHead: pool.rowB must be null or an Int32Array of F = ${F} rows`);
  if (!Number.isSafeInteger(rows) || rows < 1) throw new Error(`TaskHead: the hidden state must hold whole rows of C, got ${rows} rows`);
}
