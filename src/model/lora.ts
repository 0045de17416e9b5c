// LoRA (Hu et al. 2021, "Low-Rank Adaptation of Large Language Models"): trainable low-rank
// branches beside a frozen GPT's linear layers, laid out as Hugging Face PEFT lays them out
// for GPT-2, so an adapter moves between ferrogpt and PEFT (the folder format is
// src/io/peft.ts's).
//
//   y = x Wᵀ + b + s · (drop(x) Aᵀ) Bᵀ,    s = alpha / r
//   A (r, C_in)  ~ U(-1/√C_in, 1/√C_in)    PEFT's kaiming_uniform_(a = √5): gain √(2/6), bound gain·√(3/C_in)
//   B (C_out, r) = 0                        so a new adapter leaves the model's outputs unchanged
//
// W is the base layer's weight in our (OC, C) layout; HF's Conv1D stores it (C, OC), which
// is why PEFT's adapter_config says fan_in_fan_out: A and B themselves are nn.Linear's
// (out, in) in both, so they need no transposing anywhere.
//
// Which layers (sites): PEFT's target_modules semantics for GPT-2's module names. A target
// matches the module `transformer.h.<l>.<site>` when it equals the name or is a suffix of it
// after a dot: 'c_attn', 'c_proj' (attn.c_proj AND mlp.c_proj, as in PEFT), 'c_fc',
// 'mlp.c_proj' (one of them), 'h.0.attn.c_attn' (one layer). 'all-linear' is all four.
//
// The adapter is one more parameter set: its A and B matrices live in ONE contiguous
// buffer, their gradients in a second with the same layout (like GPT and TaskHead), so AdamW
// and the gradient clip take it as they take a model (it implements Optimizable), and
// AdamW's state is the adapter's size. GPT.attachAdapter hands it to the blocks
// (blocks.ts: each targeted linear layer runs loraForward beside its base matmul, in
// training, evaluation and KV-cached decoding alike), freezes the base weights (no base
// gradients at all: matmulBackward without dweight) and owns the adapter from then on.
//
// Random numbers (the counter RNG, src/backend/rng.ts): A of layer l, site k draws from
// stream INIT_STREAM + 4·l + k of the adapter's seed; dropout on a branch's input uses the
// training pass's dropout seed at stream DROPOUT_STREAM + 4·l + k (the model's dropout
// sites keep their own streams), so a run is reproducible on every backend.

import type { Backend, DropoutSpec, Tensor } from '../backend/backend.js';
import type { LoraActs } from './activations.js';
import type { GPTConfig } from './config.js';
import type { ParameterBuffers } from './gpt.js';
import { uniformSymmetric } from './init.js';
import type { ParamSpec } from './params.js';

/** The linear layers of a GPT-2 block, by their module names under transformer.h.<l>. */
export const LORA_SITES = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] as const;
export type LoraSite = (typeof LORA_SITES)[number];

/** PEFT's shorthand for every linear layer. */
export const ALL_LINEAR = 'all-linear';

export interface LoraOptions {
  /** r, the rank of each branch. Default 8 (PEFT's). */
  rank?: number;
  /** alpha; the branch is scaled by alpha / r. Default 8 (PEFT's: scale 1 at r = 8). */
  alpha?: number;
  /** Dropout on each branch's input (training only). Default 0 (PEFT's). */
  dropout?: number;
  /**
   * PEFT target_modules: GPT-2 module names ('c_attn', 'c_proj', 'c_fc', or longer suffixes
   * such as 'mlp.c_proj'), or 'all-linear'. Default ['c_attn'] (PEFT's for GPT-2).
   */
  targets?: readonly string[] | typeof ALL_LINEAR;
}

export interface LoraConfig {
  readonly rank: number;
  readonly alpha: number;
  readonly dropout: number;
  readonly targets: readonly string[] | typeof ALL_LINEAR;
}

/**
 * The defaults: PEFT's (r 8, alpha 8, dropout 0, and its target for GPT-2, c_attn). On the
 * synthetic tasks of test/helpers/synthetic-tasks.ts, c_attn alone at its best lr matched or
 * beat both full fine-tuning and every linear layer (c_attn, c_proj, c_fc) at theirs, with
 * a quarter of the latter's parameters; every linear layer learned faster at the same lr.
 * The numbers are in docs/ARCHITECTURE.md#lora.
 */
export const LORA_DEFAULTS: LoraConfig = Object.freeze({ rank: 8, alpha: 8, dropout: 0, targets: Object.freeze(['c_attn']) });

/** (in, out) features of a site's linear layer: c_attn (C, 3C), attn.c_proj (C, C), c_fc (C, 4C), mlp.c_proj (4C, C). */
export function siteFeatures(site: LoraSite, C: number): { inF: number; outF: number } {
  switch (site) {
    case 'attn.c_attn':
      return { inF: C, outF: 3 * C };
    case 'attn.c_proj':
      return { inF: C, outF: C };
    case 'mlp.c_fc':
      return { inF: C, outF: 4 * C };
    case 'mlp.c_proj':
      return { inF: 4 * C, outF: C };
  }
}

/** The module name PEFT matches targets against: transformer.h.<l>.<site>. */
export function siteModule(l: number, site: LoraSite): string {
  return `transformer.h.${l}.${site}`;
}

/** Fills defaults and checks every field; throws an Error starting with `fn` that names the bad one. */
export function resolveLoraConfig(options: LoraOptions, fn = 'lora'): LoraConfig {
  if (options === null || typeof options !== 'object') throw new Error(`${fn} must be an object { rank, alpha, dropout, targets }`);
  const rank = options.rank ?? LORA_DEFAULTS.rank;
  if (!Number.isSafeInteger(rank) || rank < 1) throw new Error(`${fn}.rank must be an integer >= 1, got ${String(rank)}`);
  const alpha = options.alpha ?? LORA_DEFAULTS.alpha;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || !(alpha > 0)) throw new Error(`${fn}.alpha must be a finite number > 0, got ${String(alpha)}`);
  const dropout = options.dropout ?? LORA_DEFAULTS.dropout;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) throw new Error(`${fn}.dropout must be in [0, 1), got ${String(dropout)}`);
  const targets = options.targets ?? LORA_DEFAULTS.targets;
  if (targets !== ALL_LINEAR) {
    if (!Array.isArray(targets) || targets.length === 0 || !targets.every((t) => typeof t === 'string' && t !== '')) {
      throw new Error(`${fn}.targets must be a non-empty list of module names (c_attn, c_proj, c_fc) or '${ALL_LINEAR}', got ${JSON.stringify(targets)}`);
    }
  }
  return Object.freeze({ rank, alpha, dropout, targets: targets === ALL_LINEAR ? ALL_LINEAR : Object.freeze([...targets]) });
}

/**
 * Which sites of which layers the targets adapt: sites[l] lists layer l's, in LORA_SITES
 * order. A target that matches no linear layer of the model is an error (PEFT's rule: a
 * target matches a module whose name it equals or ends after a dot).
 */
export function targetedSites(config: LoraConfig, nLayer: number, fn = 'lora'): LoraSite[][] {
  const matches = (t: string, module: string): boolean => module === t || module.endsWith(`.${t}`);
  const sites: LoraSite[][] = [];
  for (let l = 0; l < nLayer; l++) {
    sites.push(LORA_SITES.filter((s) => config.targets === ALL_LINEAR || config.targets.some((t) => matches(t, siteModule(l, s)))));
  }
  if (config.targets !== ALL_LINEAR) {
    for (const t of config.targets) {
      let hit = false;
      for (let l = 0; l < nLayer && !hit; l++) hit = LORA_SITES.some((s) => matches(t, siteModule(l, s)));
      if (!hit) {
        throw new Error(
          `${fn}.targets: ${JSON.stringify(t)} matches no linear layer of this GPT-2 (${nLayer} layers); ` +
            `its linear layers are c_attn, c_proj (attn.c_proj and mlp.c_proj) and c_fc, named transformer.h.<l>.attn.c_attn and so on`,
        );
      }
    }
  }
  return sites;
}

/** One adapted linear layer: its A and B (and their gradients), as views of the adapter's buffers. */
export interface LoraWeights {
  readonly inF: number;
  readonly outF: number;
  readonly rank: number;
  /** alpha / rank */
  readonly scale: number;
  readonly A: Tensor; // (r, inF)
  readonly B: Tensor; // (outF, r)
  readonly dA: Tensor; // (r, inF)
  readonly dB: Tensor; // (outF, r)
}

/** What the activation plan needs to lay out the branches' buffers (activations.ts). */
export interface LoraShape {
  readonly rank: number;
  /** The sites any layer adapts: every layer gets buffers for these. */
  readonly sites: readonly LoraSite[];
  /** Whether a training pass drops the branches' inputs (then drop(x) is kept). */
  readonly dropout: boolean;
}

// The adapter's draws (src/backend/rng.ts lists every user's streams).
const INIT_STREAM = 0x1a0a0000; // + 4·layer + site: A's init
const DROPOUT_STREAM = 0x8000; // + 4·layer + site: a branch's dropout (in the dropout sites' range 0..0xffff)

/** The dropout stream of the branch at (layer, site). */
export function loraDropoutStream(l: number, site: LoraSite): number {
  return DROPOUT_STREAM + 4 * l + LORA_SITES.indexOf(site);
}

export class LoraAdapter {
  readonly backend: Backend;
  readonly config: LoraConfig;
  /** alpha / rank */
  readonly scale: number;
  /** The shape of the models it fits: layers and channels. */
  readonly nLayer: number;
  readonly nEmbd: number;
  /** Per layer, per site: the branch, or null where the targets leave the layer alone. */
  readonly layers: ReadonlyArray<Readonly<Record<LoraSite, LoraWeights | null>>>;
  readonly shape: LoraShape;

  private readonly specs: ParamSpec[];
  private readonly params: Tensor; // (P) every A and B, back to back
  private readonly grads: Tensor; // (P) same layout
  private readonly views: Tensor[] = [];
  private disposed = false;

  /**
   * A new adapter for models of `model`'s shape: A ~ U(-1/√C_in, 1/√C_in) from the counter
   * RNG of `seed`, B = 0. Throws on bad options (resolveLoraConfig, targetedSites).
   */
  static create(model: Pick<GPTConfig, 'nLayer' | 'nEmbd'>, options: LoraOptions, seed: number, backend: Backend): LoraAdapter {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`LoraAdapter: seed must be an integer in [0, 2^32), got ${String(seed)}`);
    const adapter = new LoraAdapter(backend, model, resolveLoraConfig(options));
    const init = new Float32Array(adapter.params.length);
    adapter.layers.forEach((sites, l) => {
      LORA_SITES.forEach((site, k) => {
        const w = sites[site];
        if (w === null) return;
        const spec = adapter.specs.find((s) => s.name === loraParamName(l, site, 'A'))!;
        const bound = 1 / Math.sqrt(w.inF);
        for (let i = 0; i < spec.length; i++) init[spec.offset + i] = uniformSymmetric(seed >>> 0, INIT_STREAM + 4 * l + k, i, bound);
      });
    });
    backend.write(adapter.params, init);
    return adapter;
  }

  /** An adapter of zeros for `config` (rank, alpha, dropout, targets already resolved), for a caller that loads every parameter. */
  constructor(backend: Backend, model: Pick<GPTConfig, 'nLayer' | 'nEmbd'>, config: LoraConfig) {
    this.backend = backend;
    this.config = resolveLoraConfig(config);
    this.nLayer = model.nLayer;
    this.nEmbd = model.nEmbd;
    const r = this.config.rank;
    this.scale = this.config.alpha / r;
    const sites = targetedSites(this.config, this.nLayer);
    const specs: ParamSpec[] = [];
    let offset = 0;
    const add = (name: string, shape: number[]): ParamSpec => {
      const spec: ParamSpec = { name, shape, offset, length: shape[0] * shape[1], init: 'zeros' };
      specs.push(spec);
      offset += spec.length;
      return spec;
    };
    const placed = sites.map((ls, l) => ls.map((site) => {
      const { inF, outF } = siteFeatures(site, this.nEmbd);
      return { site, inF, outF, a: add(loraParamName(l, site, 'A'), [r, inF]), b: add(loraParamName(l, site, 'B'), [outF, r]) };
    }));
    this.specs = specs;
    this.params = backend.alloc(offset);
    this.grads = backend.alloc(offset);
    const view = (t: Tensor, s: ParamSpec): Tensor => {
      const v = backend.view(t, s.offset, s.length);
      this.views.push(v);
      return v;
    };
    this.layers = placed.map((ls) => {
      const row = { 'attn.c_attn': null, 'attn.c_proj': null, 'mlp.c_fc': null, 'mlp.c_proj': null } as Record<LoraSite, LoraWeights | null>;
      for (const { site, inF, outF, a, b } of ls) {
        row[site] = { inF, outF, rank: r, scale: this.scale, A: view(this.params, a), B: view(this.params, b), dA: view(this.grads, a), dB: view(this.grads, b) };
      }
      return Object.freeze(row);
    });
    this.shape = Object.freeze({ rank: r, sites: LORA_SITES.filter((s) => sites.some((ls) => ls.includes(s))), dropout: this.config.dropout > 0 });
  }

  numParameters(): number {
    return this.params.length;
  }

  /** For AdamW and the gradient clip. */
  parameterBuffers(): ParameterBuffers {
    this.alive();
    return { backend: this.backend, params: this.params, grads: this.grads, specs: this.specs };
  }

  zeroGrad(): void {
    this.alive();
    this.backend.zero(this.grads);
  }

  /** [name, data, shape] of every A and B (copies), named transformer.h.<l>.<site>.lora_A.weight (PEFT's, without its base_model.model. prefix). */
  namedParameters(): Array<[string, Float32Array, number[]]> {
    this.alive();
    return this.specs.map((s) => [s.name, this.backend.read(this.params, s.offset, s.length) as Float32Array, [...s.shape]]);
  }

  /** [name, gradient] (copies), for tests. */
  namedGradients(): Array<[string, Float32Array]> {
    this.alive();
    return this.specs.map((s) => [s.name, this.backend.read(this.grads, s.offset, s.length) as Float32Array]);
  }

  /**
   * Overwrites every A and B by name (namedParameters' names and shapes). All must be given,
   * once; all are checked before any is written. Errors start with `fn`.
   */
  loadParameters(values: Iterable<readonly [string, Float32Array]>, fn = 'LoraAdapter.loadParameters'): void {
    this.alive();
    const byName = new Map(this.specs.map((s) => [s.name, s]));
    const writes: Array<[ParamSpec, Float32Array]> = [];
    const seen = new Set<string>();
    for (const [name, data] of values) {
      const spec = byName.get(name);
      if (spec === undefined) throw new Error(`${fn}: ${name} is not a parameter of this adapter (rank ${this.config.rank}, ${this.nLayer} layers, targets ${JSON.stringify(this.config.targets)})`);
      if (!(data instanceof Float32Array) || data.length !== spec.length) {
        throw new Error(`${fn}: ${name} must be a Float32Array of ${spec.length} values (shape [${spec.shape.join(', ')}]), got ${data instanceof Float32Array ? data.length : typeof data}`);
      }
      if (seen.has(name)) throw new Error(`${fn}: ${name} given twice`);
      seen.add(name);
      writes.push([spec, data]);
    }
    const missing = this.specs.filter((s) => !seen.has(s.name)).map((s) => s.name);
    if (missing.length > 0) throw new Error(`${fn}: missing ${missing.join(', ')}`);
    for (const [spec, data] of writes) this.backend.write(this.params, data, spec.offset);
  }

  /** Whether the adapter fits a model of this shape; otherwise an Error starting with `fn` saying why. */
  checkFits(model: Pick<GPTConfig, 'nLayer' | 'nEmbd'>, backend: Backend, fn: string): void {
    this.alive();
    if (backend !== this.backend) throw new Error(`${fn}: the adapter lives on the ${this.backend.name} backend, the model on ${backend.name}`);
    if (model.nLayer !== this.nLayer || model.nEmbd !== this.nEmbd) {
      throw new Error(`${fn}: the adapter was made for ${this.nLayer} layers of ${this.nEmbd} channels, the model has ${model.nLayer} of ${model.nEmbd}`);
    }
  }

  /**
   * W + s · B A for the branch at (l, site), where W is its base weight (outF, inF) in our
   * layout, computed on the host in float64 and rounded once, so a merge gives the same
   * weights on every backend. null where the layer is not adapted.
   */
  merged(l: number, site: LoraSite, W: Float32Array): Float32Array | null {
    const w = this.layers[l][site];
    if (w === null) return null;
    const { inF, outF, rank: r } = w;
    if (W.length !== inF * outF) throw new Error(`internal: ${siteModule(l, site)} weight has ${W.length} values, expected ${outF}·${inF}`);
    const A = this.backend.read(w.A) as Float32Array; // (r, inF)
    const B = this.backend.read(w.B) as Float32Array; // (outF, r)
    const out = new Float32Array(W.length);
    const row = new Float64Array(inF);
    for (let o = 0; o < outF; o++) {
      row.fill(0);
      for (let k = 0; k < r; k++) {
        const b = B[o * r + k];
        if (b === 0) continue;
        for (let i = 0; i < inF; i++) row[i] += b * A[k * inF + i];
      }
      for (let i = 0; i < inF; i++) out[o * inF + i] = W[o * inF + i] + this.scale * row[i];
    }
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const v of this.views) this.backend.free(v);
    this.backend.free(this.params);
    this.backend.free(this.grads);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  private alive(): void {
    if (this.disposed) throw new Error('LoraAdapter: the adapter has been disposed');
  }
}

/** The name of A or B of the branch at (l, site): PEFT's, without its base_model.model. prefix. */
export function loraParamName(l: number, site: LoraSite, which: 'A' | 'B'): string {
  return `${siteModule(l, site)}.lora_${which}.weight`;
}

// ---- the branch, forward and backward: one adapted linear layer of a pass ----

/**
 * out (N, outF) += s · (drop(x) Aᵀ) Bᵀ, after the base layer wrote out = x Wᵀ + b. Keeps
 * u = s · drop(x) Aᵀ (N, r) and drop(x) (N, inF, when dropping) in `acts` for the backward.
 */
export function loraForward(be: Backend, w: LoraWeights, acts: LoraActs<Tensor>, out: Tensor, x: Tensor, N: number, drop: DropoutSpec): void {
  const { inF, outF, rank: r } = w;
  let xd = x; // (N, inF)
  if (drop.p > 0) {
    be.dropoutForward(acts.xDrop!, x, N * inF, drop);
    xd = acts.xDrop!;
  }
  be.matmulForward(acts.u, xd, w.A, null, N, inF, r); // (N, r)
  be.scale(acts.u, N * r, w.scale); // s · drop(x) Aᵀ: the scale on the narrow side
  be.matmulForward(out, acts.u, w.B, null, N, r, outF, true); // out += u Bᵀ
}

/**
 * The backward of loraForward from dout (N, outF): dB += doutᵀ u, dA += duᵀ drop(x) (the
 * adapter's gradients, accumulated) and dx (N, inF) += the branch's share, added to what the
 * base layer's backward put there. `grads` holds the branch's gradient buffers (du, d drop(x)).
 */
export function loraBackward(be: Backend, w: LoraWeights, acts: LoraActs<Tensor>, grads: LoraActs<Tensor>, dout: Tensor, x: Tensor, dx: Tensor, N: number, drop: DropoutSpec): void {
  const { inF, outF, rank: r } = w;
  be.matmulBackward(grads.u, w.dB, null, dout, acts.u, w.B, N, r, outF, true); // du = dout B (N, r)
  be.scale(grads.u, N * r, w.scale); // through u = s · (drop(x) Aᵀ)
  if (drop.p > 0) {
    be.matmulBackward(grads.xDrop!, w.dA, null, grads.u, acts.xDrop!, w.A, N, inF, r, true); // d drop(x) (N, inF)
    be.dropoutBackward(dx, grads.xDrop!, N * inF, drop); // dx += mask · d drop(x)
  } else {
    be.matmulBackward(dx, w.dA, null, grads.u, x, w.A, N, inF, r); // dx += du A
  }
}
