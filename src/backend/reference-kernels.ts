// The reference kernels: plain TypeScript loops, the executable specification that the
// Rust kernels (native and wasm) are tested against. Written llm.c-style for reading, not
// for speed: every kernel is the textbook formula, intermediate values are JS doubles,
// and attention materialises the full T×T score matrix of each head.
//
// Each kernel is generic over the array type (Float32Array for the reference backend,
// Float64Array for the finite-difference gradient checks in test/), so one implementation
// serves both. Token ids and targets are Int32Array.
//
// Conventions (shared with crates/kernels, see src/backend/backend.ts):
// - outputs first, then inputs, then dimensions; B batch, T time, C channels, NH heads,
//   HS = C / NH head size, V vocab, OC output channels, N rows.
// - Backward kernels ACCUMULATE (+=) into every gradient buffer; callers zero them, except
//   where a trailing overwrite flag asks a kernel to write its activation gradient instead.
// - No argument checks here: BaseBackend checks every call before it reaches a kernel.

import type { DropoutSpec } from './backend.js';
import { Q8_BLOCK, bf16Round, bf16Widen, q8At, q8ScaleAt, quantizeQ8 } from './compact.js';
import type { Kernels } from './kernels.js';
import { randomU32 } from './rng.js';

export type FloatArray = Float32Array | Float64Array;
/** Any buffer a reference kernel takes: floats, or Int32Array for ids and targets. */
export type RefArray = FloatArray | Int32Array;

// ---------------------------------------------------------------------------------------
// Dropout draws, on the counter-based RNG of ./rng.ts (crates/kernels/src/rng.rs).

/** uniform in [0, 1): the top 24 bits of random_u32 times 2^-24 (exact in f32 and f64). */
export function uniform(seed: number, stream: number, index: number): number {
  return (randomU32(seed, stream, index) >>> 8) * (1 / 16777216);
}

/**
 * keep(p, seed, stream, index) = uniform(..) >= p, with p rounded to f32 first because the
 * Rust kernels receive p as an f32 (uniform is exactly representable in f32, so comparing
 * in double then gives the f32 comparison's answer).
 */
export function keep(p: number, seed: number, stream: number, index: number): boolean {
  return uniform(seed, stream, index) >= Math.fround(p);
}

/**
 * The scale applied to kept elements, 1/(1-p), computed as the Rust kernels do in f32:
 * fround of a double operation on f32 operands is the correctly rounded f32 result, so an
 * f32 output `x * scale` here is bit for bit what `x * (1.0 / (1.0 - p))` gives in Rust.
 */
export function dropoutScale(p: number): number {
  return Math.fround(1 / Math.fround(1 - Math.fround(p)));
}

/** The dropout counter of attention weight (b, h, t, s): ((b*NH + h)*T + t)*T + s, wrapping u32. */
export function attentionDropoutIndex(b: number, h: number, t: number, s: number, NH: number, T: number): number {
  const row = Math.imul(Math.imul(b, NH) + h, T) + t;
  return (Math.imul(row, T) + s) >>> 0;
}

// ---------------------------------------------------------------------------------------
// Encoder: token + position embedding.

/** out (B,T,C) = wte (V,C)[ids (B,T)] + wpe (maxT,C)[t]. */
export function encoderForward(out: FloatArray, ids: Int32Array, wte: FloatArray, wpe: FloatArray, B: number, T: number, C: number): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const o = (b * T + t) * C;
      const ix = ids[b * T + t];
      for (let i = 0; i < C; i++) out[o + i] = wte[ix * C + i] + wpe[t * C + i];
    }
  }
}

/** out (B,T,C) = wte (V,C, bf16 bits)[ids (B,T)] + wpe (maxT,C)[t]. */
export function encoderForwardBf16(out: FloatArray, ids: Int32Array, wte: Uint16Array, wpe: FloatArray, B: number, T: number, C: number): void {
  for (let bt = 0; bt < B * T; bt++) {
    const t = bt % T;
    for (let i = 0; i < C; i++) out[bt * C + i] = bf16Widen(wte[ids[bt] * C + i]) + wpe[t * C + i];
  }
}

/** out (B,T,C) = wte (V,C, int8 with scales (V,C/32), interleaved: q8At)[ids (B,T)] dequantized + wpe (maxT,C)[t]. */
export function encoderForwardQ8(out: FloatArray, ids: Int32Array, wte: Int8Array, scales: FloatArray, wpe: FloatArray, B: number, T: number, C: number, V: number): void {
  for (let bt = 0; bt < B * T; bt++) {
    const t = bt % T;
    const id = ids[bt];
    for (let i = 0; i < C; i++) out[bt * C + i] = wte[q8At(id, i, V, C)] * scales[q8ScaleAt(id, (i / Q8_BLOCK) | 0, V, C / Q8_BLOCK)] + wpe[t * C + i];
  }
}

/** dwte (V,C)[ids] += dout (B,T,C); dwpe (maxT,C)[t] += dout. Accumulates. */
export function encoderBackward(dwte: FloatArray, dwpe: FloatArray, dout: FloatArray, ids: Int32Array, B: number, T: number, C: number): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const o = (b * T + t) * C;
      const ix = ids[b * T + t];
      for (let i = 0; i < C; i++) {
        dwte[ix * C + i] += dout[o + i];
        dwpe[t * C + i] += dout[o + i];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// LayerNorm over the last dimension.

export const LAYERNORM_EPS = 1e-5;

/** out (N,C) = (inp - mean) * rstd * weight (C) + bias (C); saves mean (N) and rstd (N). */
export function layernormForward(out: FloatArray, mean: FloatArray, rstd: FloatArray, inp: FloatArray, weight: FloatArray, bias: FloatArray, N: number, C: number): void {
  for (let n = 0; n < N; n++) {
    const x = n * C;
    let m = 0;
    for (let i = 0; i < C; i++) m += inp[x + i];
    m /= C;
    let v = 0; // biased variance, as in PyTorch / GPT-2
    for (let i = 0; i < C; i++) {
      const d = inp[x + i] - m;
      v += d * d;
    }
    v /= C;
    const s = 1 / Math.sqrt(v + LAYERNORM_EPS);
    for (let i = 0; i < C; i++) out[x + i] = (inp[x + i] - m) * s * weight[i] + bias[i];
    mean[n] = m;
    rstd[n] = s;
  }
}

/**
 * Accumulates dinp (N,C), dweight (C), dbias (C) from dout (N,C), using the saved mean
 * (N) and rstd (N). With norm = (x - mean) * rstd and g = weight * dout:
 *   dinp = rstd * (g - mean(g) - norm * mean(g * norm)).
 */
export function layernormBackward(dinp: FloatArray, dweight: FloatArray, dbias: FloatArray, dout: FloatArray, inp: FloatArray, weight: FloatArray, mean: FloatArray, rstd: FloatArray, N: number, C: number): void {
  for (let n = 0; n < N; n++) {
    const x = n * C;
    const m = mean[n];
    const s = rstd[n];
    let gMean = 0;
    let gNormMean = 0;
    for (let i = 0; i < C; i++) {
      const norm = (inp[x + i] - m) * s;
      const g = weight[i] * dout[x + i];
      gMean += g;
      gNormMean += g * norm;
    }
    gMean /= C;
    gNormMean /= C;
    for (let i = 0; i < C; i++) {
      const norm = (inp[x + i] - m) * s;
      const g = weight[i] * dout[x + i];
      dbias[i] += dout[x + i];
      dweight[i] += norm * dout[x + i];
      dinp[x + i] += (g - gMean - norm * gNormMean) * s;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Linear layer.

/** out (N,OC) = inp (N,C) · weight (OC,C)ᵀ + bias (OC); bias may be null. accumulate: out += it. */
export function matmulForward(out: FloatArray, inp: FloatArray, weight: FloatArray, bias: FloatArray | null, N: number, C: number, OC: number, accumulate = false): void {
  for (let n = 0; n < N; n++) {
    const x = n * C;
    for (let o = 0; o < OC; o++) {
      const w = o * C;
      let acc = bias === null ? 0 : bias[o];
      for (let i = 0; i < C; i++) acc += inp[x + i] * weight[w + i];
      out[n * OC + o] = accumulate ? out[n * OC + o] + acc : acc;
    }
  }
}

/** packed (P,C) = weight (OC,C), then zero rows up to P: the reference's packed layout is the weight itself. */
export function packWeight(packed: FloatArray, weight: FloatArray, C: number, OC: number, P: number): void {
  for (let i = 0; i < OC * C; i++) packed[i] = weight[i];
  for (let i = OC * C; i < P * C; i++) packed[i] = 0;
}

/** matmulForward over the packed copy of the weight (packWeight's): the same outputs. */
export function matmulForwardPacked(out: FloatArray, inp: FloatArray, _weight: FloatArray, packed: FloatArray, bias: FloatArray | null, N: number, C: number, OC: number, _P: number, accumulate = false): void {
  matmulForward(out, inp, packed, bias, N, C, OC, accumulate);
}

/** out (N,OC) = bf16(inp (N,C)) · weight (OC,C, bf16 bits)ᵀ + bias (OC): the activations are rounded to bf16 too. */
export function matmulForwardBf16(out: FloatArray, inp: FloatArray, weight: Uint16Array, bias: FloatArray | null, N: number, C: number, OC: number, accumulate = false): void {
  const x = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < C; i++) x[i] = bf16Widen(bf16Round(inp[n * C + i]));
    for (let o = 0; o < OC; o++) {
      const w = o * C;
      let acc = bias === null ? 0 : bias[o];
      for (let i = 0; i < C; i++) acc += x[i] * bf16Widen(weight[w + i]);
      out[n * OC + o] = accumulate ? out[n * OC + o] + acc : acc;
    }
  }
}

/**
 * out (N,OC) = q8(inp (N,C)) · weight (OC,C, int8 with scales (OC,C/32), both interleaved: q8At,
 * q8ScaleAt)ᵀ + bias (OC): each row
 * of inp quantized in blocks of 32 as the weights are (compact.ts), then
 * Σ over blocks of d_w · d_x · Σ q_w q_x. C is a multiple of 32.
 */
export function matmulForwardQ8(out: FloatArray, inp: FloatArray, weight: Int8Array, scales: FloatArray, bias: FloatArray | null, N: number, C: number, OC: number, accumulate = false): void {
  const nb = C / Q8_BLOCK;
  for (let n = 0; n < N; n++) {
    const x = quantizeQ8(Float32Array.from(inp.subarray(n * C, (n + 1) * C)));
    for (let o = 0; o < OC; o++) {
      let acc = bias === null ? 0 : bias[o];
      for (let b = 0; b < nb; b++) {
        let dot = 0;
        for (let i = b * Q8_BLOCK; i < (b + 1) * Q8_BLOCK; i++) dot += x.q[i] * weight[q8At(o, i, OC, C)];
        acc += scales[q8ScaleAt(o, b, OC, nb)] * x.scales[b] * dot;
      }
      out[n * OC + o] = accumulate ? out[n * OC + o] + acc : acc;
    }
  }
}

/**
 * dinp (N,C) += dout (N,OC) · weight (OC,C); dweight (OC,C) += doutᵀ · inp (N,C);
 * dbias (OC) += column sums of dout. Accumulates (dinp is overwritten when overwriteDinp).
 * dweight and dbias may be null (a frozen layer). Each sum is formed in a double and added
 * once, so in f32 each gradient element is rounded once.
 */
export function matmulBackward(dinp: FloatArray, dweight: FloatArray | null, dbias: FloatArray | null, dout: FloatArray, inp: FloatArray, weight: FloatArray, N: number, C: number, OC: number, overwriteDinp = false): void {
  if (overwriteDinp) dinp.fill(0, 0, N * C);
  const row = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    row.fill(0);
    for (let o = 0; o < OC; o++) {
      const d = dout[n * OC + o];
      const w = o * C;
      for (let i = 0; i < C; i++) row[i] += d * weight[w + i];
    }
    for (let i = 0; i < C; i++) dinp[n * C + i] += row[i];
  }
  for (let o = 0; o < OC; o++) {
    row.fill(0);
    let db = 0;
    for (let n = 0; n < N; n++) {
      const d = dout[n * OC + o];
      const x = n * C;
      db += d;
      if (dweight !== null) for (let i = 0; i < C; i++) row[i] += d * inp[x + i];
    }
    if (dweight !== null) for (let i = 0; i < C; i++) dweight[o * C + i] += row[i];
    if (dbias !== null) dbias[o] += db;
  }
}

/** out (N) = bf16(x (N)), as bits. */
export function roundBf16(out: Uint16Array, x: FloatArray, N: number): void {
  for (let i = 0; i < N; i++) out[i] = bf16Round(x[i]);
}

/**
 * The backward of matmulForwardBf16 (bf16 mixed precision): matmulBackward over bf16(dout),
 * bf16(inp) and the bf16 weight; dbias from dout unrounded. Accumulates as matmulBackward.
 */
export function matmulBackwardBf16(dinp: FloatArray, dweight: FloatArray | null, dbias: FloatArray | null, dout: FloatArray, inp: FloatArray, weight: Uint16Array, N: number, C: number, OC: number, overwriteDinp = false): void {
  const round = (x: FloatArray) => Float64Array.from(x, (v) => bf16Widen(bf16Round(v)));
  matmulBackward(dinp, dweight, null, round(dout), round(inp), Float64Array.from(weight, bf16Widen), N, C, OC, overwriteDinp);
  if (dbias === null) return;
  for (let o = 0; o < OC; o++) {
    let sum = 0;
    for (let n = 0; n < N; n++) sum += dout[n * OC + o];
    dbias[o] += sum;
  }
}

// ---------------------------------------------------------------------------------------
// Causal multi-head self-attention.
//
// qkv (B,T,3C) holds q, k and v side by side; each is (B,T,NH,HS). For head h of batch b:
//   S[t][s] = q_t · k_s / sqrt(HS)                   for s <= t (causal)
//   lse[t]  = log Σ_{s<=t} exp(S[t][s])              saved, (B,NH,T)
//   P[t][s] = exp(S[t][s] - lse[t])                  the normalised attention weights
//   D[t][s] = keep(t,s) ? P[t][s] / (1-p) : 0        dropout on the weights (p = 0: D = P)
//   out_t   = Σ_s D[t][s] v_s                        (B,T,C), head h in channels h*HS..
// where keep(t,s) = keep(p, seed, stream, ((b*NH + h)*T + t)*T + s).

/** out (B,T,C), lse (B,NH,T) from qkv (B,T,3C). Overwrites out and lse. */
export function attentionForward(out: FloatArray, lse: FloatArray, qkv: FloatArray, B: number, T: number, C: number, NH: number, dropout?: DropoutSpec): void {
  const HS = C / NH;
  const scale = 1 / Math.sqrt(HS);
  const p = dropout?.p ?? 0;
  const dscale = p > 0 ? dropoutScale(p) : 1;
  const S = new Float64Array(T); // one score row
  const o = new Float64Array(HS); // one output row of one head
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let t = 0; t < T; t++) {
        const q = (b * T + t) * 3 * C + h * HS;
        let max = -Infinity;
        for (let s = 0; s <= t; s++) {
          const k = (b * T + s) * 3 * C + C + h * HS;
          let dot = 0;
          for (let i = 0; i < HS; i++) dot += qkv[q + i] * qkv[k + i];
          S[s] = dot * scale;
          if (S[s] > max) max = S[s];
        }
        let sum = 0;
        for (let s = 0; s <= t; s++) sum += Math.exp(S[s] - max);
        const rowLse = max + Math.log(sum);
        lse[(b * NH + h) * T + t] = rowLse;

        o.fill(0);
        for (let s = 0; s <= t; s++) {
          let d = Math.exp(S[s] - rowLse);
          if (p > 0) d = keep(p, dropout!.seed, dropout!.stream, attentionDropoutIndex(b, h, t, s, NH, T)) ? d * dscale : 0;
          const v = (b * T + s) * 3 * C + 2 * C + h * HS;
          for (let i = 0; i < HS; i++) o[i] += d * qkv[v + i];
        }
        const y = (b * T + t) * C + h * HS;
        for (let i = 0; i < HS; i++) out[y + i] = o[i];
      }
    }
  }
}

/**
 * dqkv (B,T,3C) += the gradient of attentionForward, from dout (B,T,C) and the saved lse;
 * the weights P are recomputed from qkv. Accumulates. With dD = dout_t · v_s and
 * dP = keep ? dD / (1-p) : 0, the softmax backward is dS = P (dP - Σ_s P dP); note
 * Σ_s P dP = dout_t · out_t, which is why the fused kernels take `out` (the reference
 * forms the sum directly and does not read `out`).
 */
export function attentionBackward(dqkv: FloatArray, dout: FloatArray, qkv: FloatArray, _out: FloatArray, lse: FloatArray, B: number, T: number, C: number, NH: number, dropout?: DropoutSpec, overwrite = false): void {
  if (overwrite) dqkv.fill(0, 0, B * T * 3 * C);
  const HS = C / NH;
  const scale = 1 / Math.sqrt(HS);
  const p = dropout?.p ?? 0;
  const dscale = p > 0 ? dropoutScale(p) : 1;
  const P = new Float64Array(T); // one row of weights
  const dP = new Float64Array(T); // its gradient
  const dq = new Float64Array(HS);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let t = 0; t < T; t++) {
        const q = (b * T + t) * 3 * C + h * HS;
        const y = (b * T + t) * C + h * HS;
        const rowLse = lse[(b * NH + h) * T + t];
        let delta = 0;
        for (let s = 0; s <= t; s++) {
          const k = (b * T + s) * 3 * C + C + h * HS;
          const v = k + C;
          let dot = 0;
          for (let i = 0; i < HS; i++) dot += qkv[q + i] * qkv[k + i];
          P[s] = Math.exp(dot * scale - rowLse);
          const kept = p === 0 || keep(p, dropout!.seed, dropout!.stream, attentionDropoutIndex(b, h, t, s, NH, T));
          const d = kept ? P[s] * dscale : 0; // D[t][s]
          let dD = 0;
          for (let i = 0; i < HS; i++) {
            dD += dout[y + i] * qkv[v + i];
            dqkv[v + i] += d * dout[y + i]; // dv_s += D[t][s] dout_t
          }
          dP[s] = kept ? dD * dscale : 0;
          delta += P[s] * dP[s];
        }
        dq.fill(0);
        for (let s = 0; s <= t; s++) {
          const dS = P[s] * (dP[s] - delta) * scale; // through S = q·k * scale
          const k = (b * T + s) * 3 * C + C + h * HS;
          for (let i = 0; i < HS; i++) {
            dq[i] += dS * qkv[k + i];
            dqkv[k + i] += dS * qkv[q + i];
          }
        }
        for (let i = 0; i < HS; i++) dqkv[q + i] += dq[i];
      }
    }
  }
}

/** How a KV cache holds its rows: f32 (as is) or bf16 bits (rounded on the way in, widened on the way out). */
interface CacheRows<A> {
  readonly rows: A;
  store(i: number, x: number): void;
  load(i: number): number;
}
const f32Rows = (rows: FloatArray): CacheRows<FloatArray> => ({ rows, store: (i, x) => { rows[i] = x; }, load: (i) => rows[i] });
const bf16Rows = (rows: Uint16Array): CacheRows<Uint16Array> => ({ rows, store: (i, x) => { rows[i] = bf16Round(x); }, load: (i) => bf16Widen(rows[i]) });

/**
 * KV-cached attention: appends k, v of qkv (B,Tq,3C) to kcache, vcache (B,NH,maxT,HS) at
 * rows pos[b]..pos[b]+Tq, then out (B,Tq,C) row t of sequence b = softmax over cache rows
 * s <= pos[b]+t of q_t · k_s / sqrt(HS), times v. Rows with pos[b]+t >= maxT are padding:
 * not appended, output 0. See crates/kernels/src/decode.rs.
 */
export function attentionDecode(out: FloatArray, kcache: FloatArray, vcache: FloatArray, qkv: FloatArray, pos: Int32Array, B: number, Tq: number, C: number, NH: number, maxT: number): void {
  decodeOver(out, f32Rows(kcache), f32Rows(vcache), qkv, pos, B, Tq, C, NH, maxT);
}

/**
 * attentionDecode over a bf16 cache (Uint16Array bits): the appended rows are bf16(k),
 * bf16(v) (round to nearest even), and every cache row is read widened, the query's own
 * k, v included (so a prompt fed whole or token by token agrees).
 */
export function attentionDecodeBf16(out: FloatArray, kcache: Uint16Array, vcache: Uint16Array, qkv: FloatArray, pos: Int32Array, B: number, Tq: number, C: number, NH: number, maxT: number): void {
  decodeOver(out, bf16Rows(kcache), bf16Rows(vcache), qkv, pos, B, Tq, C, NH, maxT);
}

function decodeOver<A>(out: FloatArray, kc: CacheRows<A>, vc: CacheRows<A>, qkv: FloatArray, pos: Int32Array, B: number, Tq: number, C: number, NH: number, maxT: number): void {
  const HS = C / NH;
  const scale = 1 / Math.sqrt(HS);
  const S = new Float64Array(maxT);
  const o = new Float64Array(HS);
  for (let b = 0; b < B; b++) {
    const p0 = pos[b];
    for (let h = 0; h < NH; h++) {
      const cache = (b * NH + h) * maxT * HS; // row 0 of (b, h)
      const tv = Math.min(Tq, maxT - p0); // rows past the cache are padding: skipped, output 0
      for (let t = tv; t < Tq; t++) out.fill(0, (b * Tq + t) * C + h * HS, (b * Tq + t) * C + (h + 1) * HS);
      for (let t = 0; t < tv; t++) {
        const src = (b * Tq + t) * 3 * C + h * HS;
        const dst = cache + (p0 + t) * HS;
        for (let i = 0; i < HS; i++) {
          kc.store(dst + i, qkv[src + C + i]);
          vc.store(dst + i, qkv[src + 2 * C + i]);
        }
      }
      for (let t = 0; t < tv; t++) {
        const q = (b * Tq + t) * 3 * C + h * HS;
        const n = p0 + t + 1;
        let max = -Infinity;
        for (let s = 0; s < n; s++) {
          let dot = 0;
          for (let i = 0; i < HS; i++) dot += qkv[q + i] * kc.load(cache + s * HS + i);
          S[s] = dot * scale;
          if (S[s] > max) max = S[s];
        }
        let sum = 0;
        for (let s = 0; s < n; s++) {
          S[s] = Math.exp(S[s] - max);
          sum += S[s];
        }
        o.fill(0);
        for (let s = 0; s < n; s++) {
          const w = S[s] / sum;
          for (let i = 0; i < HS; i++) o[i] += w * vc.load(cache + s * HS + i);
        }
        const y = (b * Tq + t) * C + h * HS;
        for (let i = 0; i < HS; i++) out[y + i] = o[i];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// GELU, tanh approximation (GPT-2's "gelu_new").

const GELU_SCALE = Math.sqrt(2 / Math.PI);

/** out (N) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function geluForward(out: FloatArray, inp: FloatArray, N: number): void {
  for (let i = 0; i < N; i++) {
    const x = inp[i];
    out[i] = 0.5 * x * (1 + Math.tanh(GELU_SCALE * (x + 0.044715 * x * x * x)));
  }
}

/** dinp (N) += gelu'(inp) * dout. Accumulates (overwrites when `overwrite`). */
export function geluBackward(dinp: FloatArray, inp: FloatArray, dout: FloatArray, N: number, overwrite = false): void {
  if (overwrite) dinp.fill(0, 0, N);
  for (let i = 0; i < N; i++) {
    const x = inp[i];
    const th = Math.tanh(GELU_SCALE * (x + 0.044715 * x * x * x));
    const sech2 = 1 - th * th;
    const grad = 0.5 * (1 + th) + 0.5 * x * sech2 * GELU_SCALE * (1 + 3 * 0.044715 * x * x);
    dinp[i] += grad * dout[i];
  }
}

// ---------------------------------------------------------------------------------------
// Residual connection.

/** out (N) = inp1 (N) + inp2 (N). */
export function residualForward(out: FloatArray, inp1: FloatArray, inp2: FloatArray, N: number): void {
  for (let i = 0; i < N; i++) out[i] = inp1[i] + inp2[i];
}

/** dinp1 (N) += dout; dinp2 (N) += dout. Accumulates. */
export function residualBackward(dinp1: FloatArray, dinp2: FloatArray, dout: FloatArray, N: number): void {
  for (let i = 0; i < N; i++) {
    dinp1[i] += dout[i];
    dinp2[i] += dout[i];
  }
}

// ---------------------------------------------------------------------------------------
// Whole rows of C: copy, gather, and the gather's backward (a scatter-add).

export function copyRows(out: FloatArray, inp: FloatArray, R: number, C: number): void {
  for (let i = 0; i < R * C; i++) out[i] = inp[i];
}

/** copyRows for bf16 rows (bits). */
export function copyRowsBf16(out: Uint16Array, inp: Uint16Array, R: number, C: number): void {
  out.set(inp.subarray(0, R * C));
}

export function gatherRows(out: FloatArray, inp: FloatArray, rows: Int32Array, F: number, C: number, accumulate = false): void {
  for (let f = 0; f < F; f++) {
    const src = rows[f] * C;
    for (let c = 0; c < C; c++) out[f * C + c] = accumulate ? out[f * C + c] + inp[src + c] : inp[src + c];
  }
}

export function scatterAddRows(dinp: FloatArray, dout: FloatArray, rows: Int32Array, F: number, C: number): void {
  for (let f = 0; f < F; f++) {
    const dst = rows[f] * C;
    for (let c = 0; c < C; c++) dinp[dst + c] += dout[f * C + c];
  }
}

// ---------------------------------------------------------------------------------------
// Softmax + cross-entropy over the vocabulary.

function rowLogSumExp(logits: FloatArray, off: number, V: number): number {
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[off + i] > max) max = logits[off + i];
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(logits[off + i] - max);
  return max + Math.log(sum);
}

/** losses (N) = -log softmax(logits (N,V))[targets (N)]; 0 where the target is ignoreIndex. */
export function crossentropyForward(losses: FloatArray, logits: FloatArray, targets: Int32Array, N: number, V: number, ignoreIndex: number): void {
  for (let n = 0; n < N; n++) {
    const target = targets[n];
    losses[n] = target === ignoreIndex ? 0 : rowLogSumExp(logits, n * V, V) - logits[n * V + target];
  }
}

/** dlogits (N,V) += (softmax(logits) - onehot(target)) * dlosses[n]; ignored rows get nothing. Accumulates, or overwrites. */
export function crossentropyBackward(dlogits: FloatArray, dlosses: FloatArray, logits: FloatArray, targets: Int32Array, N: number, V: number, ignoreIndex: number, overwrite = false): void {
  if (overwrite) dlogits.fill(0, 0, N * V);
  for (let n = 0; n < N; n++) {
    const target = targets[n];
    if (target === ignoreIndex) continue;
    const off = n * V;
    const lse = rowLogSumExp(logits, off, V);
    const dl = dlosses[n];
    for (let i = 0; i < V; i++) {
      const prob = Math.exp(logits[off + i] - lse);
      dlogits[off + i] += (prob - (i === target ? 1 : 0)) * dl;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Inverted dropout; the mask is recomputed from (seed, stream, index), never stored.

/** out (N) = keep_i ? inp_i * 1/(1-p) : 0. p == 0 copies. */
export function dropoutForward(out: FloatArray, inp: FloatArray, N: number, dropout: DropoutSpec): void {
  const { p, seed, stream } = dropout;
  if (p === 0) {
    for (let i = 0; i < N; i++) out[i] = inp[i];
    return;
  }
  const s = dropoutScale(p);
  for (let i = 0; i < N; i++) out[i] = keep(p, seed, stream, i) ? inp[i] * s : 0;
}

/** dinp (N) += keep_i ? dout_i * 1/(1-p) : 0. Accumulates. */
export function dropoutBackward(dinp: FloatArray, dout: FloatArray, N: number, dropout: DropoutSpec): void {
  const { p, seed, stream } = dropout;
  const s = p === 0 ? 1 : dropoutScale(p);
  for (let i = 0; i < N; i++) if (p === 0 || keep(p, seed, stream, i)) dinp[i] += dout[i] * s;
}

// ---------------------------------------------------------------------------------------
// Optimizer and gradient-norm helpers.

/**
 * One AdamW step (decoupled weight decay, bias correction), step counting from 1:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²;  mhat = m / (1-b1^step);  vhat = v / (1-b2^step)
 *   param -= lr * (mhat / (sqrt(vhat) + eps) + weightDecay * param)
 */
export function adamwUpdate(params: FloatArray, grads: FloatArray, m: FloatArray, v: FloatArray, N: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void {
  // PyTorch's form (torch.optim.AdamW): p (1 - lr wd) - (lr / c1) m / (sqrt(v) / sqrt(c2) + eps).
  const stepSize = lr / (1 - Math.pow(beta1, step));
  const sqrtC2 = Math.sqrt(1 - Math.pow(beta2, step));
  const decay = 1 - lr * weightDecay;
  for (let i = 0; i < N; i++) {
    const g = grads[i];
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = params[i] * decay - stepSize * (mi / (Math.sqrt(vi) / sqrtC2 + eps));
  }
}

/** Σ x (N)², accumulated in double. */
export function sumSquares(x: FloatArray, N: number): number {
  let acc = 0;
  for (let i = 0; i < N; i++) acc += x[i] * x[i];
  return acc;
}

/** x (N) *= s. */
export function scale(x: FloatArray, N: number, s: number): void {
  for (let i = 0; i < N; i++) x[i] *= s;
}

// ---------------------------------------------------------------------------------------

/**
 * The kernels above, registered against the registry's names (kernels.ts): the reference
 * backend's implementation (Float32Array and Int32Array buffers), also run in float64 by
 * the tests. Typed against the registry, so a kernel missing here is a compile error.
 */
export const referenceKernels: Kernels<FloatArray, Int32Array, Uint16Array, Int8Array> = {
  encoderForward,
  encoderForwardBf16,
  encoderForwardQ8,
  encoderBackward,
  layernormForward,
  layernormBackward,
  matmulForward,
  packWeight,
  matmulForwardPacked,
  matmulForwardBf16,
  matmulForwardQ8,
  matmulBackward,
  matmulBackwardBf16,
  roundBf16,
  attentionForward,
  attentionBackward,
  attentionDecode,
  attentionDecodeBf16,
  geluForward,
  geluBackward,
  residualForward,
  residualBackward,
  copyRows,
  copyRowsBf16,
  gatherRows,
  scatterAddRows,
  crossentropyForward,
  crossentropyBackward,
  dropoutForward,
  dropoutBackward,
  adamwUpdate,
  sumSquares,
  scale,
};
