// AdamW (decoupled weight decay, Loshchilov & Hutter) over the model's contiguous
// parameter buffer, and global gradient-norm clipping.
//
// The first and second moments m and v are each ONE backend tensor with the parameter
// layout. Parameters that are decayed and those that are not (by default: decay tensors of
// rank >= 2 — matmul weights and embeddings — and not biases or LayerNorm gains, as GPT-1
// and nanoGPT do) are grouped into contiguous runs, and each run is one adamwUpdate call.

import type { Backend, Tensor } from '../backend/backend.js';
import type { ParameterBuffers } from '../model/gpt.js';

/** What the optimizer needs from a model (GPT implements it). */
export interface Optimizable {
  parameterBuffers(): ParameterBuffers;
}

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** Which parameters are decayed; default: rank >= 2. */
  decay?: (name: string, shape: readonly number[]) => boolean;
}

export interface AdamWState {
  /** Updates done so far (the next step() is step + 1). */
  step: number;
  m: Float32Array;
  v: Float32Array;
}

interface Run {
  offset: number;
  length: number;
  decay: boolean;
  params: Tensor;
  grads: Tensor;
  m: Tensor;
  v: Tensor;
}

export class AdamW {
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  private _lr: number;
  private t = 0;
  private readonly backend: Backend;
  private readonly m: Tensor; // (P)
  private readonly v: Tensor; // (P)
  private readonly runs: Run[] = [];
  private readonly size: number;
  private disposed = false;

  constructor(model: Optimizable, options: AdamWOptions) {
    if (options === null || typeof options !== 'object') throw new Error('AdamW: options must be an object with at least lr');
    const { lr, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 0.01 } = options;
    const decay = options.decay ?? ((_name: string, shape: readonly number[]) => shape.length >= 2);
    checkLr(lr);
    if (!Array.isArray(betas) || betas.length !== 2 || !betas.every((b) => typeof b === 'number' && b >= 0 && b < 1)) {
      throw new Error(`AdamW: betas must be two numbers in [0, 1), got ${JSON.stringify(betas)}`);
    }
    if (typeof eps !== 'number' || !(eps >= 0) || !Number.isFinite(eps)) throw new Error(`AdamW: eps must be a finite number >= 0, got ${eps}`);
    if (typeof weightDecay !== 'number' || !(weightDecay >= 0) || !Number.isFinite(weightDecay)) {
      throw new Error(`AdamW: weightDecay must be a finite number >= 0, got ${weightDecay}`);
    }
    this._lr = lr;
    this.betas = [betas[0], betas[1]];
    this.eps = eps;
    this.weightDecay = weightDecay;

    const { backend, params, grads, specs } = model.parameterBuffers();
    this.backend = backend;
    this.size = params.length;
    this.m = backend.alloc(this.size);
    this.v = backend.alloc(this.size);
    // Merge neighbouring parameters with the same decay flag into one run (one kernel call).
    const spans: Array<{ offset: number; length: number; decay: boolean }> = [];
    for (const s of specs) {
      const d = Boolean(decay(s.name, s.shape));
      const last = spans[spans.length - 1];
      if (last !== undefined && last.decay === d && last.offset + last.length === s.offset) last.length += s.length;
      else spans.push({ offset: s.offset, length: s.length, decay: d });
    }
    for (const sp of spans) {
      if (sp.length === 0) continue;
      this.runs.push({
        ...sp,
        params: backend.view(params, sp.offset, sp.length),
        grads: backend.view(grads, sp.offset, sp.length),
        m: backend.view(this.m, sp.offset, sp.length),
        v: backend.view(this.v, sp.offset, sp.length),
      });
    }
  }

  get lr(): number {
    return this._lr;
  }

  /** Sets the learning rate for the next steps (e.g. from a schedule). */
  setLr(lr: number): void {
    checkLr(lr);
    this._lr = lr;
  }

  /** Updates done so far. */
  get stepCount(): number {
    return this.t;
  }

  /** One AdamW update of every parameter from the accumulated gradients. */
  step(): void {
    this.alive();
    this.t++;
    const [b1, b2] = this.betas;
    for (const r of this.runs) {
      this.backend.adamwUpdate(r.params, r.grads, r.m, r.v, r.length, this._lr, b1, b2, this.eps, r.decay ? this.weightDecay : 0, this.t);
    }
  }

  /** The optimizer state, for checkpoints. */
  state(): AdamWState {
    this.alive();
    return {
      step: this.t,
      m: this.backend.read(this.m) as Float32Array,
      v: this.backend.read(this.v) as Float32Array,
    };
  }

  /** Restores a state from state(); m and v must match the model's parameter count. */
  loadState(state: AdamWState): void {
    this.alive();
    if (state === null || typeof state !== 'object') throw new Error('AdamW.loadState: state must be { step, m, v }');
    if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`AdamW.loadState: step must be an integer >= 0, got ${state.step}`);
    for (const k of ['m', 'v'] as const) {
      const x = state[k];
      if (!(x instanceof Float32Array)) throw new Error(`AdamW.loadState: ${k} must be a Float32Array`);
      if (x.length !== this.size) throw new Error(`AdamW.loadState: ${k} has ${x.length} values, the model has ${this.size} parameters`);
    }
    this.backend.write(this.m, state.m);
    this.backend.write(this.v, state.v);
    this.t = state.step;
  }

  /** Frees m and v. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // The model may have been disposed first (its buffers, and so our views of them, are
    // gone then); freeing what is left must not throw.
    for (const r of this.runs) for (const t of [r.params, r.grads, r.m, r.v]) tryFree(this.backend, t);
    tryFree(this.backend, this.m);
    tryFree(this.backend, this.v);
  }

  private alive(): void {
    if (this.disposed) throw new Error('AdamW: the optimizer has been disposed');
  }
}

/**
 * Global gradient-norm clipping (torch.nn.utils.clip_grad_norm_): if the L2 norm of all
 * gradients together exceeds maxNorm, scales them by maxNorm / (norm + 1e-6). Returns the
 * norm before clipping. `sets` is one model, or several taken together (fine-tuning's model
 * and task head: one norm over all their gradients). maxNorm = Infinity measures the norm
 * without clipping. This is the one gradient-norm helper: the training loop (loop.ts) uses it.
 */
export function clipGradNorm(sets: Optimizable | ReadonlyArray<Optimizable>, maxNorm: number): number {
  if (typeof maxNorm !== 'number' || !(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be a positive number, got ${maxNorm}`);
  const bufs = (Array.isArray(sets) ? (sets as ReadonlyArray<Optimizable>) : [sets as Optimizable]).map((s) => s.parameterBuffers());
  let sq = 0;
  for (const { backend, grads } of bufs) sq += backend.sumSquares(grads, grads.length);
  const norm = Math.sqrt(sq);
  if (!Number.isFinite(norm)) return norm; // leave NaN/inf gradients for the caller to see
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) for (const { backend, grads } of bufs) backend.scale(grads, grads.length, coef);
  return norm;
}

function tryFree(backend: Backend, t: Tensor): void {
  try {
    backend.free(t);
  } catch {
    // already gone with its base tensor
  }
}

function checkLr(lr: number): void {
  if (typeof lr !== 'number' || !Number.isFinite(lr) || lr < 0) throw new Error(`AdamW: lr must be a finite number >= 0, got ${lr}`);
}
