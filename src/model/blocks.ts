// The transformer blocks of a GPT, forward and backward: nanoGPT's Block, CausalSelfAttention
// and MLP, over the Backend's kernels. GPT (gpt.ts) runs the embeddings and the lm head
// around them; the KV-cached decoder (kv-cache.ts) runs the same blocks over a cache.
//
//   GPT-2 block (default, pre-LN):   x = x + drop(attn(ln_1(x)));  x = x + drop(mlp(ln_2(x)))
//   GPT-1 block (postLN: true):       x = ln_1(x + drop(attn(x)));  x = ln_2(x + drop(mlp(x)))
//   pre-LN models end with ln_f.
//
// Backward kernels accumulate into a gradient, so where several branches feed one (the
// residual stream) each simply adds its share into a buffer zeroed first. A gradient with a
// single writer is written instead (the kernels' overwrite flags) and never zeroed: the
// branches' inner gradients. Gradients inside a block live in one set of buffers that all
// blocks share (llm.c style, see layoutGradActivations). Post-LN blocks (GPT-1) zero the
// shared buffers they add into before each block and keep the residual stream between
// blocks in buffers zeroed per pass; pre-LN blocks (GPT-2) keep the stream's gradient in one
// buffer: see preLNBackward.

import { NO_DROPOUT, type Backend, type DropoutSpec, type Tensor } from '../backend/backend.js';
import type { Acts, LayerActs } from './activations.js';
import type { GPTConfig } from './config.js';
import { loraBackward, loraDropoutStream, loraForward, type LoraAdapter, type LoraSite } from './lora.js';
import type { BlockParams, ModelParams } from './params.js';
import { linearBackward, linearForward, type Weight } from './weights.js';

// Dropout streams: 0 for the embeddings, then three per layer.
export const STREAM_EMBED = 0;
const streamAttn = (l: number): number => 1 + 3 * l;
const streamAttnResid = (l: number): number => 2 + 3 * l;
const streamMlpResid = (l: number): number => 3 + 3 * l;

/**
 * The dropout of one pass: the model's (off, or probability p with the pass's seed, one
 * stream per site) and an attached adapter's, on its branches' inputs (probability pLora,
 * the same seed, streams of its own).
 */
export interface Dropout {
  /** Whether the model's dropout is on. */
  readonly on: boolean;
  /** The kernels' spec at dropout site `stream` (NO_DROPOUT when off). */
  at(stream: number): DropoutSpec;
  /** The spec of the LoRA branch at (layer, site) (NO_DROPOUT when the adapter has none). */
  lora(l: number, site: LoraSite): DropoutSpec;
}

export const NO_DROP: Dropout = { on: false, at: () => NO_DROPOUT, lora: () => NO_DROPOUT };

export function dropoutOf(p: number, seed: number, pLora = 0): Dropout {
  return {
    on: p > 0,
    at: p > 0 ? (stream) => ({ p, seed, stream }) : () => NO_DROPOUT,
    lora: pLora > 0 ? (l, site) => ({ p: pLora, seed, stream: loraDropoutStream(l, site) }) : () => NO_DROPOUT,
  };
}

type LayerGrads = LayerActs<Tensor>;

export class Blocks {
  /** The attached LoRA adapter (GPT.attachAdapter), or null. */
  adapter: LoraAdapter | null = null;
  // Stand-in for the LayerNorm biases of bias-free models: zeros in.
  private readonly zeroC: Tensor | null; // (C)
  // Where LayerNorm parameter gradients nobody keeps go (a bias-free model's dbias, a
  // frozen model's dweight and dbias): two of C, as a kernel's outputs must not overlap.
  private sinks: { w: Tensor; b: Tensor } | null = null;

  /** The model's weights (GPT.toDtype replaces them); the matmul weights may be compact (weights.ts). */
  p: ModelParams<Tensor, Weight>;

  constructor(readonly backend: Backend, readonly config: Readonly<GPTConfig>, p: ModelParams<Tensor, Weight>) {
    this.p = p;
    this.zeroC = config.bias ? null : backend.alloc(config.nEmbd);
  }

  // ---- forward ----

  /**
   * The blocks (and ln_f) over the embeddings in `a`: the one place the block's sequence of
   * layernorm / matmul / gelu / residual calls is written. `attend(la, l)` is the attention
   * core of layer l: it reads la.qkv (N, 3C) and writes la.atty (N, C), either by full causal
   * attention (GPT) or over a KV cache (the decoder). Returns the hidden state (hiddenOf).
   */
  forward(a: Acts<Tensor>, N: number, drop: Dropout, attend: (la: LayerActs<Tensor>, l: number) => void): Tensor {
    const be = this.backend;
    const p = this.p;
    const { nEmbd: C, postLN } = this.config;
    for (let l = 0; l < this.config.nLayer; l++) {
      const la = a.layers[l];
      const lp = p.blocks[l];
      const x = this.blockInput(a, l, drop.on); // (B, T, C)
      const att = (inp: Tensor): void => this.attnForward(la, lp, l, inp, N, drop, () => attend(la, l));
      if (!postLN) {
        // x = x + attn(ln_1(x))
        this.layernorm(la.ln1, la.ln1Mean, la.ln1Rstd, x, lp.ln1w, lp.ln1b, N);
        att(la.ln1);
        be.residualForward(la.res2, x, this.dropout(la.attproj, la.attprojDrop, N * C, drop.at(streamAttnResid(l))), N * C);
        // x = x + mlp(ln_2(x))
        this.layernorm(la.ln2, la.ln2Mean, la.ln2Rstd, la.res2, lp.ln2w, lp.ln2b, N);
        this.mlpForward(la, lp, l, la.ln2, N, drop);
        be.residualForward(la.res3, la.res2, this.dropout(la.fcproj, la.fcprojDrop, N * C, drop.at(streamMlpResid(l))), N * C);
      } else {
        // x = ln_1(x + attn(x))
        att(x);
        be.residualForward(la.res2, x, this.dropout(la.attproj, la.attprojDrop, N * C, drop.at(streamAttnResid(l))), N * C);
        this.layernorm(la.ln1, la.ln1Mean, la.ln1Rstd, la.res2, lp.ln1w, lp.ln1b, N);
        // x = ln_2(x + mlp(x))
        this.mlpForward(la, lp, l, la.ln1, N, drop);
        be.residualForward(la.res3, la.ln1, this.dropout(la.fcproj, la.fcprojDrop, N * C, drop.at(streamMlpResid(l))), N * C);
        this.layernorm(la.ln2, la.ln2Mean, la.ln2Rstd, la.res3, lp.ln2w, lp.ln2b, N);
      }
    }
    if (!postLN) {
      const last = a.layers[this.config.nLayer - 1].res3;
      this.layernorm(a.lnf!, a.lnfMean!, a.lnfRstd!, last, p.lnfw!, p.lnfb, N);
    }
    return this.hiddenOf(a);
  }

  /** Full causal attention of layer l over (B, T) (the `attend` of a whole-sequence pass). */
  causalAttention(B: number, T: number, drop: Dropout): (la: LayerActs<Tensor>, l: number) => void {
    const { nEmbd: C, nHead: NH } = this.config;
    return (la, l) => this.backend.attentionForward(la.atty, la.lse, la.qkv, B, T, C, NH, drop.at(streamAttn(l))); // (B, T, C), (B, NH, T)
  }

  // ---- backward ----

  /**
   * From the hidden state's gradient (hiddenOf(ga), filled by the losses) back through the
   * blocks (and ln_f) into the parameter gradients `g` (accumulated; null: the base is frozen,
   * only an attached adapter's gradients are computed) and the gradient of block 0's input,
   * blockInput(ga, 0, drop.on). `ga` was zeroed for this pass.
   */
  backward(g: ModelParams<Tensor> | null, a: Acts<Tensor>, ga: Acts<Tensor>, B: number, T: number, drop: Dropout): void {
    if (this.config.postLN) this.postLNBackward(g, a, ga, B, T, drop);
    else this.preLNBackward(g, a, ga, B, T, drop);
  }

  /**
   * Post-LN (GPT-1) blocks: LayerNorms sit on the stream, so its gradient is copied and
   * accumulated buffer by buffer.
   */
  private postLNBackward(g: ModelParams<Tensor> | null, a: Acts<Tensor>, ga: Acts<Tensor>, B: number, T: number, drop: Dropout): void {
    const be = this.backend;
    const { nEmbd: C, nLayer: L } = this.config;
    const N = B * T;
    const on = drop.on;
    for (let l = L - 1; l >= 0; l--) {
      const la = a.layers[l];
      const lg = ga.layers[l];
      const lp = this.p.blocks[l];
      const lgp = g?.blocks[l] ?? null;
      const x = this.blockInput(a, l, on); // (B, T, C)
      const dx = this.blockInput(ga, l, on);
      // Of the block's own gradient buffers (shared with every block), those that kernels
      // add into start from zero; the branches' inner ones are overwritten. Its stream
      // gradient (lg.ln2) and dx are separate and were zeroed per pass.
      for (const t of [lg.res3, lg.ln1, lg.res2, lg.attproj, lg.fcproj, lg.attprojDrop, lg.fcprojDrop]) if (t) be.zero(t);
      // ln2 = LN(res3), res3 = ln1 + drop(fcproj)
      be.layernormBackward(lg.res3, ...this.lnGrads(lgp?.ln2w, lgp?.ln2b), lg.ln2, la.res3, lp.ln2w, la.ln2Mean, la.ln2Rstd, N, C);
      be.residualBackward(lg.ln1, on ? lg.fcprojDrop! : lg.fcproj, lg.res3, N * C);
      if (on) be.dropoutBackward(lg.fcproj, lg.fcprojDrop!, N * C, drop.at(streamMlpResid(l)));
      this.mlpBackward(la, lg, lp, lgp, l, lg.fcproj, la.ln1, lg.ln1, N, false, drop);
      // ln1 = LN(res2), res2 = x + drop(attproj)
      be.layernormBackward(lg.res2, ...this.lnGrads(lgp?.ln1w, lgp?.ln1b), lg.ln1, la.res2, lp.ln1w, la.ln1Mean, la.ln1Rstd, N, C);
      be.residualBackward(dx, on ? lg.attprojDrop! : lg.attproj, lg.res2, N * C);
      if (on) be.dropoutBackward(lg.attproj, lg.attprojDrop!, N * C, drop.at(streamAttnResid(l)));
      this.attnBackward(la, lg, lp, lgp, l, lg.attproj, x, dx, B, T, drop, false);
    }
  }

  /**
   * Pre-LN (GPT-2) blocks. The residual stream's gradient lives in one buffer, dstream: a
   * block's branches add to the stream (x + drop(attn(ln_1(x))), then + drop(mlp(ln_2(·)))),
   * so each branch's output gradient is the stream gradient as it stands (through the
   * branch's dropout mask, when there is one), and each LayerNorm adds its input's share
   * back into it in place. No residual copies and no zeroing of the block's buffers: every
   * one of them has a single writer, which overwrites it (dropoutBackward accumulates, so
   * only its two targets are zeroed). The same bits as the copy-and-accumulate form the
   * post-LN path keeps.
   */
  private preLNBackward(g: ModelParams<Tensor> | null, a: Acts<Tensor>, ga: Acts<Tensor>, B: number, T: number, drop: Dropout): void {
    const be = this.backend;
    const p = this.p;
    const { nEmbd: C, nLayer: L } = this.config;
    const N = B * T;
    const on = drop.on;
    // (B, T, C), zeroed with the gradient arena this pass: the gradient of the first
    // block's input, drop(encoded) when the embeddings have dropout.
    const dstream = this.blockInput(ga, 0, on);
    // A branch's output gradient: dstream itself, or through its dropout mask into `buf`.
    const branchGrad = (buf: Tensor, stream: number): Tensor => {
      if (!on) return dstream;
      be.zero(buf);
      be.dropoutBackward(buf, dstream, N * C, drop.at(stream));
      return buf;
    };
    be.layernormBackward(dstream, ...this.lnGrads(g?.lnfw ?? undefined, g?.lnfb), ga.lnf!, a.layers[L - 1].res3, p.lnfw!, a.lnfMean!, a.lnfRstd!, N, C);
    for (let l = L - 1; l >= 0; l--) {
      const la = a.layers[l];
      const lg = ga.layers[l];
      const lp = p.blocks[l];
      const lgp = g?.blocks[l] ?? null;
      // dstream = d res3 here
      this.mlpBackward(la, lg, lp, lgp, l, branchGrad(lg.fcproj, streamMlpResid(l)), la.ln2, lg.ln2, N, true, drop);
      be.layernormBackward(dstream, ...this.lnGrads(lgp?.ln2w, lgp?.ln2b), lg.ln2, la.res2, lp.ln2w, la.ln2Mean, la.ln2Rstd, N, C);
      // dstream = d res2 here
      this.attnBackward(la, lg, lp, lgp, l, branchGrad(lg.attproj, streamAttnResid(l)), la.ln1, lg.ln1, B, T, drop, true);
      be.layernormBackward(dstream, ...this.lnGrads(lgp?.ln1w, lgp?.ln1b), lg.ln1, this.blockInput(a, l, on), lp.ln1w, la.ln1Mean, la.ln1Rstd, N, C);
      // dstream = d x, the previous block's d res3
    }
  }

  // ---- the block's pieces ----

  /** qkv = inp · c_attn; atty = attend(qkv); attproj = atty · c_proj. */
  private attnForward(la: LayerActs<Tensor>, lp: BlockParams<Tensor, Weight>, l: number, inp: Tensor, N: number, drop: Dropout, attend: () => void): void {
    const C = this.config.nEmbd;
    this.linear(la, l, 'attn.c_attn', la.qkv, inp, lp.qkvw, lp.qkvb, N, C, 3 * C, drop); // (B, T, 3C)
    attend(); // atty (B, T, C) from qkv
    this.linear(la, l, 'attn.c_proj', la.attproj, la.atty, lp.attprojw, lp.attprojb, N, C, C, drop); // (B, T, C)
  }

  /** fch = inp · c_fc; fchGelu = gelu(fch); fcproj = fchGelu · c_proj. */
  private mlpForward(la: LayerActs<Tensor>, lp: BlockParams<Tensor, Weight>, l: number, inp: Tensor, N: number, drop: Dropout): void {
    const C = this.config.nEmbd;
    this.linear(la, l, 'mlp.c_fc', la.fch, inp, lp.fcw, lp.fcb, N, C, 4 * C, drop); // (B, T, 4C)
    this.backend.geluForward(la.fchGelu, la.fch, N * 4 * C);
    this.linear(la, l, 'mlp.c_proj', la.fcproj, la.fchGelu, lp.fcprojw, lp.fcprojb, N, 4 * C, C, drop); // (B, T, C)
  }

  /**
   * The attention branch backward from dattproj, its output's gradient, into dinp (added,
   * or written when overwriteDinp). Its inner gradients have one writer each: written.
   * `lgp` null: the base is frozen.
   */
  private attnBackward(
    la: LayerActs<Tensor>, lg: LayerGrads, lp: BlockParams<Tensor, Weight>, lgp: BlockParams<Tensor> | null, l: number,
    dattproj: Tensor, inp: Tensor, dinp: Tensor, B: number, T: number, drop: Dropout, overwriteDinp: boolean,
  ): void {
    const { nEmbd: C, nHead: NH } = this.config;
    const N = B * T;
    this.linearBackward(la, lg, l, 'attn.c_proj', lg.atty, lgp?.attprojw, lgp?.attprojb, dattproj, la.atty, lp.attprojw, N, C, C, true, drop);
    this.backend.attentionBackward(lg.qkv, lg.atty, la.qkv, la.atty, la.lse, B, T, C, NH, drop.at(streamAttn(l)), true);
    this.linearBackward(la, lg, l, 'attn.c_attn', dinp, lgp?.qkvw, lgp?.qkvb, lg.qkv, inp, lp.qkvw, N, C, 3 * C, overwriteDinp, drop);
  }

  /** The MLP branch backward from dfcproj into dinp, as attnBackward. */
  private mlpBackward(
    la: LayerActs<Tensor>, lg: LayerGrads, lp: BlockParams<Tensor, Weight>, lgp: BlockParams<Tensor> | null, l: number,
    dfcproj: Tensor, inp: Tensor, dinp: Tensor, N: number, overwriteDinp: boolean, drop: Dropout,
  ): void {
    const C = this.config.nEmbd;
    this.linearBackward(la, lg, l, 'mlp.c_proj', lg.fchGelu, lgp?.fcprojw, lgp?.fcprojb, dfcproj, la.fchGelu, lp.fcprojw, N, 4 * C, C, true, drop);
    this.backend.geluBackward(lg.fch, la.fch, lg.fchGelu, N * 4 * C, true);
    this.linearBackward(la, lg, l, 'mlp.c_fc', dinp, lgp?.fcw, lgp?.fcb, lg.fch, inp, lp.fcw, N, C, 4 * C, overwriteDinp, drop);
  }

  /** out (N, OC) = inp (N, C) · wᵀ + b, plus the LoRA branch of layer l's `site` when the adapter has one. */
  private linear(la: LayerActs<Tensor>, l: number, site: LoraSite, out: Tensor, inp: Tensor, w: Weight, b: Tensor | null, N: number, C: number, OC: number, drop: Dropout): void {
    linearForward(this.backend, out, inp, w, b, N, C, OC);
    const lora = this.adapter?.layers[l][site] ?? null;
    if (lora !== null) loraForward(this.backend, lora, la.lora![site]!, out, inp, N, drop.lora(l, site));
  }

  /**
   * The backward of `linear` from dout: dinp (N, C) += (or, overwriteDinp, =) dout · w, plus
   * the branch's share; dw and db accumulate (undefined: the base is frozen, no dW product).
   */
  private linearBackward(
    la: LayerActs<Tensor>, lg: LayerGrads, l: number, site: LoraSite, dinp: Tensor, dw: Tensor | undefined, db: Tensor | null | undefined,
    dout: Tensor, inp: Tensor, w: Weight, N: number, C: number, OC: number, overwriteDinp: boolean, drop: Dropout,
  ): void {
    linearBackward(this.backend, dinp, dw ?? null, db ?? null, dout, inp, w, N, C, OC, overwriteDinp);
    const lora = this.adapter?.layers[l][site] ?? null;
    if (lora !== null) loraBackward(this.backend, lora, la.lora![site]!, lg.lora![site]!, dout, inp, dinp, N, drop.lora(l, site));
  }

  private layernorm(out: Tensor, mean: Tensor, rstd: Tensor, inp: Tensor, w: Tensor, b: Tensor | null, N: number): void {
    this.backend.layernormForward(out, mean, rstd, inp, w, b ?? this.zeroC!, N, this.config.nEmbd);
  }

  /** A LayerNorm's dweight and dbias: g's, or sinks (a bias-free model's dbias; both when frozen). */
  private lnGrads(dw: Tensor | undefined, db: Tensor | null | undefined): [Tensor, Tensor] {
    if (dw !== undefined && db !== undefined && db !== null) return [dw, db];
    this.sinks ??= { w: this.backend.alloc(this.config.nEmbd), b: this.backend.alloc(this.config.nEmbd) };
    return [dw ?? this.sinks.w, db ?? this.sinks.b];
  }

  /** Applies dropout into `out` when the spec drops, else passes `inp` through. */
  private dropout(inp: Tensor, out: Tensor | null, N: number, spec: DropoutSpec): Tensor {
    if (spec.p === 0) return inp;
    this.backend.dropoutForward(out!, inp, N, spec);
    return out!;
  }

  // ---- where the stream enters and leaves ----

  /** The input of block l: the (dropped-out) embeddings, or the previous block's output. */
  blockInput<T>(a: Acts<T>, l: number, drop: boolean): T {
    if (l === 0) return drop ? a.encodedDrop! : a.encoded;
    const prev = a.layers[l - 1];
    return this.config.postLN ? prev.ln2 : prev.res3;
  }

  /** The hidden state the lm head reads: ln_f's output, or (post-LN) the last block's. */
  hiddenOf<T>(a: Acts<T>): T {
    return this.config.postLN ? a.layers[this.config.nLayer - 1].ln2 : a.lnf!;
  }

  dispose(): void {
    if (this.zeroC !== null) this.backend.free(this.zeroC);
    if (this.sinks !== null) for (const t of [this.sinks.w, this.sinks.b]) this.backend.free(t);
  }
}
