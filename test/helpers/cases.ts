// Kernel test cases, shared by the cross-backend comparison (test/kernels.test.ts).
//
// A case names every buffer a kernel call touches with its initial contents (outputs
// start as random garbage, which also proves that forward kernels overwrite and backward
// kernels accumulate), and its other arguments (dims, scalars, flags) by name. The call is
// made from the kernel registry (kernels.ts): its arguments in the registry's order, the
// outputs compared being the registry's outputs, so the same case runs on a Backend (Tensor
// handles) and on the reference kernels in float64.

import type { Backend, DropoutSpec, Tensor } from '../../src/backend/backend.js';
import { KERNELS, type KernelName, type Kernels } from '../../src/backend/kernels.js';
import { interleaveQ8, quantizeQ8, toBf16 } from '../../src/backend/compact.js';
import { referenceKernels, type RefArray } from '../../src/backend/reference-kernels.js';
import { mulberry32, randInts, randn, randu, type Rng } from './random.js';

export type Data = Float32Array | Int32Array | Uint16Array | Int8Array;

/** The tensor dtype that holds a case buffer. */
const dtypeOf = (data: Data) => (data instanceof Int32Array ? 'i32' : data instanceof Uint16Array ? 'bf16' : data instanceof Int8Array ? 'i8' : 'f32');

export interface KernelCase {
  kernel: KernelName;
  label: string;
  /** Initial contents of every buffer, by argument name (a nullable one left out is null). */
  buffers: Record<string, Data>;
  /** Every other argument by name: dims, scalars, flags, dropout (left out: the default). */
  args: Record<string, number | boolean | DropoutSpec>;
  /** Normwise relative tolerance vs the float64 reference, per output (default: `rtol`). */
  rtol: number;
  rtolFor?: Record<string, number>;
}

/** The buffers the case's kernel writes (the registry's outputs), compared after the call. */
export function outputsOf(c: KernelCase): string[] {
  return KERNELS[c.kernel].args.filter((a) => (a.role === 'out' || (a.role === 'table' && 'output' in a && a.output)) && a.name in c.buffers).map((a) => a.name);
}

/** Runs the case's kernel on `k`, the arguments in the registry's order; returns its result (sumSquares). */
function invoke<Buf>(k: Kernels<Buf>, c: KernelCase, bufs: Record<string, Buf>): number | void {
  const args = KERNELS[c.kernel].args.map((a) => (a.name in c.buffers ? bufs[a.name] : 'nullable' in a ? null : c.args[a.name]));
  return (k[c.kernel] as (...a: unknown[]) => number | void)(...args);
}

/** Runs `c` on a backend: allocate, write, invoke, read the outputs back, free. */
export function runOnBackend(backend: Backend, c: KernelCase): { outputs: Record<string, Data>; result: number | void } {
  const tensors: Record<string, Tensor> = {};
  try {
    for (const [name, data] of Object.entries(c.buffers)) {
      const t = backend.alloc(data.length, dtypeOf(data));
      tensors[name] = t;
      backend.write(t, data);
    }
    const result = invoke<Tensor>(backend, c, tensors);
    const outputs: Record<string, Data> = {};
    for (const name of outputsOf(c)) outputs[name] = backend.read(tensors[name]);
    return { outputs, result };
  } finally {
    for (const t of Object.values(tensors)) backend.free(t);
  }
}

/** The reference kernels over any buffer (float64 floats and Int32Array ids, by argument name). */
const reference = referenceKernels as unknown as Kernels<RefArray>;

/** Runs `c` on the reference kernels in float64 (inputs are the same f32 values, exactly). */
export function runReference64(c: KernelCase): { outputs: Record<string, Float64Array | Int32Array>; result: number | void } {
  const bufs: Record<string, RefArray> = {};
  // Ids and compact weights keep their integer arrays; floats become float64.
  for (const [name, data] of Object.entries(c.buffers)) bufs[name] = data instanceof Float32Array ? Float64Array.from(data) : (data.slice() as RefArray);
  const result = invoke<RefArray>(reference, c, bufs);
  const outputs: Record<string, Float64Array | Int32Array> = {};
  for (const name of outputsOf(c)) outputs[name] = bufs[name] as Float64Array;
  return { outputs, result };
}

/** Float64 forward results rounded to f32, for backward inputs such as mean/rstd and lse. */
function ref32(fn: (k: Kernels<RefArray>) => void, ...outs: Float64Array[]): Float32Array[] {
  fn(reference);
  return outs.map((o) => Float32Array.from(o));
}

const toF64 = (x: Float32Array) => Float64Array.from(x);

// Tolerances (normwise relative to the largest expected value). f32 kernels vs an f64
// reference: pointwise kernels are within a few ulps; reductions over C grow with sqrt(C).
const TOL_POINTWISE = 1e-6;
const TOL_REDUCE = 1e-5;
const TOL_MATMUL = 1e-4; // docs/ARCHITECTURE.md#tests: <= 1e-4 relative for matmul-heavy results at K = 3072
const TOL_ATTENTION = 1e-5;

// ---------------------------------------------------------------------------------------

export function buildCases(): KernelCase[] {
  const cases: KernelCase[] = [];
  let seed = 1;
  const next = (): Rng => mulberry32(seed++);
  /** matmulForward overwriting and accumulating (out's random start kept, the product added). */
  const matmulForwardCases = (N: number, C: number, OC: number, buffers: Record<string, Data>, rtol: number): void => {
    for (const accumulate of [false, true]) {
      cases.push({
        kernel: 'matmulForward',
        label: `matmulForward N=${N} C=${C} OC=${OC}${buffers.bias ? '' : ' (no bias)'}${accumulate ? ' accumulate' : ''}`,
        buffers,
        rtol,
        args: { N, C, OC, accumulate },
      });
    }
  };

  // ---- encoder ----
  for (const [B, T, C, V, maxT] of [
    [1, 1, 1, 1, 1],
    [2, 3, 17, 11, 5],
    [3, 7, 33, 50, 7],
    [1, 130, 3, 7, 200],
  ]) {
    const r = next();
    const ids = randInts(r, B * T, V);
    if (V > 1) ids[0] = V - 1; // the last row of wte is reachable
    const wte = randn(r, V * C);
    const wpe = randn(r, maxT * C);
    cases.push({
      kernel: 'encoderForward',
      label: `encoderForward B=${B} T=${T} C=${C} V=${V}`,
      buffers: { out: randn(r, B * T * C), ids, wte, wpe },
      rtol: TOL_POINTWISE,
      args: { B, T, C },
    });
    cases.push({
      kernel: 'encoderBackward',
      label: `encoderBackward B=${B} T=${T} C=${C} V=${V}`,
      // Few rows in wte so that ids repeat and their gradients sum.
      buffers: { dwte: randn(r, V * C), dwpe: randn(r, maxT * C), dout: randn(r, B * T * C), ids },
      rtol: TOL_REDUCE,
      args: { B, T, C },
    });
  }

  // ---- layernorm ----
  for (const [N, C] of [
    [1, 1],
    [5, 17],
    [7, 33],
    [4, 3],
    [6, 768],
  ]) {
    const r = next();
    const inp = randn(r, N * C, 2);
    for (let i = 0; i < inp.length; i++) inp[i] += 0.5; // a nonzero mean
    const weight = randn(r, C);
    const bias = randn(r, C);
    cases.push({
      kernel: 'layernormForward',
      label: `layernormForward N=${N} C=${C}`,
      buffers: { out: randn(r, N * C), mean: randn(r, N), rstd: randn(r, N), inp, weight, bias },
      rtol: TOL_REDUCE,
      args: { N, C },
    });
    const m64 = new Float64Array(N);
    const s64 = new Float64Array(N);
    const [mean, rstd] = ref32((k) => k.layernormForward(new Float64Array(N * C), m64, s64, toF64(inp), toF64(weight), toF64(bias), N, C), m64, s64);
    cases.push({
      kernel: 'layernormBackward',
      label: `layernormBackward N=${N} C=${C}`,
      buffers: { dinp: randn(r, N * C), dweight: randn(r, C), dbias: randn(r, C), dout: randn(r, N * C), inp, weight, mean, rstd },
      rtol: TOL_REDUCE,
      args: { N, C },
    });
  }

  // ---- matmul ----
  for (const [N, C, OC, withBias] of [
    [1, 1, 1, 1],
    [5, 17, 33, 1],
    [7, 33, 3, 0],
    [3, 3, 17, 1],
    [130, 64, 48, 1], // more rows and columns than one register/cache tile
    [70, 40, 389, 1], // dweight: OC over two packed A blocks, a partial panel; dbias past 8 vectors
    [20, 520, 30, 1], // dinp 520 columns wide: split by columns on 2 threads
    [64, 3072, 96, 1], // K = 3072 (GPT-2's MLP projection), the accuracy bound in docs/ARCHITECTURE.md#tests
  ] as const) {
    const r = next();
    const inp = randn(r, N * C);
    const weight = randn(r, OC * C, 0.02 * 10);
    const buffers: Record<string, Data> = { out: randn(r, N * OC), inp, weight };
    if (withBias) buffers.bias = randn(r, OC);
    const tol = C >= 1024 ? TOL_MATMUL : TOL_REDUCE;
    matmulForwardCases(N, C, OC, buffers, tol);
    const bwd: Record<string, Data> = { dinp: randn(r, N * C), dweight: randn(r, OC * C), dout: randn(r, N * OC), inp, weight };
    if (withBias) bwd.dbias = randn(r, OC);
    // overwriteDinp: dinp's starting values must vanish; dweight and dbias still accumulate.
    for (const overwrite of [false, true]) {
      cases.push({
        kernel: 'matmulBackward',
        label: `matmulBackward N=${N} C=${C} OC=${OC}${withBias ? '' : ' (no bias)'}${overwrite ? ' overwriteDinp' : ''}`,
        buffers: bwd,
        rtol: tol,
        args: { N, C, OC, overwriteDinp: overwrite },
      });
    }
    // A frozen weight (LoRA's base): no dweight, dinp (and dbias) as before.
    const { dweight: _frozen, ...frozen } = bwd;
    cases.push({
      kernel: 'matmulBackward',
      label: `matmulBackward N=${N} C=${C} OC=${OC}${withBias ? '' : ' (no bias)'} (no dweight)`,
      buffers: frozen,
      rtol: tol,
      args: { N, C, OC, overwriteDinp: N % 2 === 1 },
    });
  }

  // ---- attention ----
  const attentionShapes: Array<[number, number, number, number, number]> = [
    // B, T, C, NH, dropout p
    [1, 1, 1, 1, 0],
    [1, 1, 3, 1, 0],
    [2, 5, 17, 1, 0],
    [2, 7, 33, 3, 0],
    [2, 9, 64, 4, 0],
    [1, 130, 32, 2, 0], // T beyond one tile
    [1, 130, 128, 2, 0], // HS = 64 (GPT-2's head size)
    [2, 7, 33, 3, 0.1],
    [1, 130, 32, 2, 0.2],
    [3, 1, 8, 2, 0.5],
  ];
  for (const [B, T, C, NH, p] of attentionShapes) {
    const r = next();
    const qkv = randn(r, B * T * 3 * C);
    const dropout: DropoutSpec = { p, seed: 1234 + seed, stream: 7 };
    const d = p > 0 ? ` dropout ${p}` : '';
    cases.push({
      kernel: 'attentionForward',
      label: `attentionForward B=${B} T=${T} C=${C} NH=${NH}${d}`,
      buffers: { out: randn(r, B * T * C), lse: randn(r, B * NH * T), qkv },
      rtol: TOL_ATTENTION,
      args: { B, T, C, NH, dropout },
    });
    const out64 = new Float64Array(B * T * C);
    const lse64 = new Float64Array(B * NH * T);
    const [out, lse] = ref32((k) => k.attentionForward(out64, lse64, toF64(qkv), B, T, C, NH, dropout), out64, lse64);
    const dbuffers = { dqkv: randn(r, B * T * 3 * C), dout: randn(r, B * T * C), qkv, out, lse };
    for (const overwrite of [false, true]) {
      cases.push({
        kernel: 'attentionBackward',
        label: `attentionBackward B=${B} T=${T} C=${C} NH=${NH}${d}${overwrite ? ' overwrite' : ''}`,
        buffers: dbuffers,
        rtol: TOL_ATTENTION,
        args: { B, T, C, NH, dropout, overwrite },
      });
    }
  }

  // ---- gelu ----
  for (const N of [1, 17, 1000]) {
    const r = next();
    const inp = randu(r, N, -6, 6);
    if (N >= 17) {
      // the saturated tails, where tanh must not overflow
      inp[0] = -20;
      inp[1] = 20;
      inp[2] = 0;
    }
    cases.push({
      kernel: 'geluForward',
      label: `geluForward N=${N}`,
      buffers: { out: randn(r, N), inp },
      rtol: TOL_POINTWISE,
      args: { N },
    });
    const gbuffers = { dinp: randn(r, N), inp, dout: randn(r, N) };
    for (const overwrite of [false, true]) {
      cases.push({
        kernel: 'geluBackward',
        label: `geluBackward N=${N}${overwrite ? ' overwrite' : ''}`,
        buffers: gbuffers,
        rtol: TOL_POINTWISE,
        args: { N, overwrite },
      });
    }
  }

  // ---- residual ----
  for (const N of [1, 33, 1000]) {
    const r = next();
    cases.push({
      kernel: 'residualForward',
      label: `residualForward N=${N}`,
      buffers: { out: randn(r, N), inp1: randn(r, N), inp2: randn(r, N) },
      rtol: TOL_POINTWISE,
      args: { N },
    });
    cases.push({
      kernel: 'residualBackward',
      label: `residualBackward N=${N}`,
      buffers: { dinp1: randn(r, N), dinp2: randn(r, N), dout: randn(r, N) },
      rtol: TOL_POINTWISE,
      args: { N },
    });
  }

  // ---- crossentropy ----
  for (const [N, V, ignoreIndex] of [
    [1, 1, -100],
    [3, 17, -100],
    [8, 33, -1],
    [4, 50257, -100], // GPT-2's vocabulary: a long reduction per row
    [6, 5, 2], // an ignore index that is also a valid class id
  ]) {
    const r = next();
    const logits = randn(r, N * V, 3);
    const targets = randInts(r, N, V);
    if (N > 1) targets[1] = ignoreIndex; // at least one ignored row
    cases.push({
      kernel: 'crossentropyForward',
      label: `crossentropyForward N=${N} V=${V} ignoreIndex=${ignoreIndex}`,
      buffers: { losses: randn(r, N), logits, targets },
      rtol: TOL_REDUCE,
      args: { N, V, ignoreIndex },
    });
    // overwrite: the starting garbage must vanish, in ignored rows too.
    const cbuffers = { dlogits: randn(r, N * V, 0.01), dlosses: randn(r, N), logits, targets };
    for (const overwrite of [false, true]) {
      cases.push({
        kernel: 'crossentropyBackward',
        label: `crossentropyBackward N=${N} V=${V} ignoreIndex=${ignoreIndex}${overwrite ? ' overwrite' : ''}`,
        buffers: cbuffers,
        rtol: TOL_REDUCE,
        args: { N, V, ignoreIndex, overwrite },
      });
    }
  }

  // ---- dropout ----
  for (const [N, p, dseed, stream] of [
    [1, 0.5, 1, 0],
    [1000, 0, 3, 0],
    [1000, 0.1, 42, 7],
    [4099, 0.5, 0xffffffff, 0xffffffff],
  ]) {
    const r = next();
    const dropout: DropoutSpec = { p, seed: dseed, stream };
    cases.push({
      kernel: 'dropoutForward',
      label: `dropoutForward N=${N} p=${p}`,
      buffers: { out: randn(r, N), inp: randn(r, N) },
      rtol: TOL_POINTWISE,
      args: { N, dropout },
    });
    cases.push({
      kernel: 'dropoutBackward',
      label: `dropoutBackward N=${N} p=${p}`,
      buffers: { dinp: randn(r, N), dout: randn(r, N) },
      rtol: TOL_POINTWISE,
      args: { N, dropout },
    });
  }

  // ---- adamw, sumSquares, scale ----
  for (const [N, step, wd] of [
    [1, 1, 0],
    [33, 1, 0.01],
    [1000, 7, 0.1],
  ]) {
    const r = next();
    cases.push({
      kernel: 'adamwUpdate',
      label: `adamwUpdate N=${N} step=${step} weightDecay=${wd}`,
      buffers: { params: randn(r, N), grads: randn(r, N), m: randn(r, N, 0.1), v: randu(r, N, 0, 0.1) },
      rtol: TOL_REDUCE,
      args: { N, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: wd, step },
    });
  }
  for (const N of [1, 17, 10000]) {
    const r = next();
    cases.push({
      kernel: 'sumSquares',
      label: `sumSquares N=${N}`,
      buffers: { x: randn(r, N) },
      rtol: 1e-12, // accumulated in float64 on every backend
      args: { N },
    });
    cases.push({
      kernel: 'scale',
      label: `scale N=${N}`,
      buffers: { x: randn(r, N) },
      rtol: TOL_POINTWISE,
      args: { N, s: 0.37 },
    });
  }
  // ---- rows: copy, gather (two gathers add a pair of rows), scatter-add ----
  for (const [F, N, C] of [
    [1, 1, 1],
    [5, 3, 17], // more rows gathered than there are: rows repeat, and their gradients sum
    [4, 9, 768],
  ]) {
    const r = next();
    const rows = randInts(r, F, N);
    rows[0] = N - 1; // the last row is reachable
    cases.push({ kernel: 'copyRows', label: `copyRows R=${F} C=${C}`, buffers: { out: randn(r, F * C), inp: randn(r, F * C) }, rtol: TOL_POINTWISE, args: { R: F, C } });
    for (const accumulate of [false, true]) {
      cases.push({
        kernel: 'gatherRows',
        label: `gatherRows F=${F} N=${N} C=${C} accumulate=${accumulate}`,
        buffers: { out: randn(r, F * C), inp: randn(r, N * C), rows },
        rtol: TOL_POINTWISE,
        args: { F, C, accumulate },
      });
    }
    cases.push({
      kernel: 'scatterAddRows',
      label: `scatterAddRows F=${F} N=${N} C=${C}`,
      buffers: { dinp: randn(r, N * C), dout: randn(r, F * C), rows },
      rtol: TOL_REDUCE,
      args: { F, C },
    });
  }

  // Last, so that the cases above keep their seeds.
  // ---- compact weights: bf16 and int8 (crates/kernels/src/compact.rs) ----
  /** matmulForwardBf16 and (when C % 32 == 0) matmulForwardQ8 cases for each shape, overwriting and accumulating. */
  const compactForward = (shapes: ReadonlyArray<readonly [number, number, number, number]>): void => {
    for (const [N, C, OC, withBias] of shapes) {
      const r = next();
      const inp = randn(r, N * C);
      const weightF32 = randn(r, OC * C, 0.2);
      const out = randn(r, N * OC);
      const bias: Record<string, Data> = withBias ? { bias: randn(r, OC) } : {};
      const tol = C >= 1024 ? TOL_MATMUL : TOL_REDUCE;
      const q8 = C % 32 === 0 ? interleaveQ8(quantizeQ8(weightF32), OC, C) : null; // the kernels' layout
      for (const accumulate of [false, true]) {
        const what = `N=${N} C=${C} OC=${OC}${withBias ? '' : ' (no bias)'}${accumulate ? ' accumulate' : ''}`;
        cases.push({ kernel: 'matmulForwardBf16', label: `matmulForwardBf16 ${what}`, buffers: { out, inp, weight: toBf16(weightF32), ...bias }, rtol: tol, args: { N, C, OC, accumulate } });
        if (q8 !== null) cases.push({ kernel: 'matmulForwardQ8', label: `matmulForwardQ8 ${what}`, buffers: { out, inp, weight: q8.q, scales: q8.scales, ...bias }, rtol: tol, args: { N, C, OC, accumulate } });
      }
    }
  };
  // Dot products up to COMPACT_GEMV_ROWS (16) rows, in groups of 4 on the x86 int8 path
  // (N = 5, 7, 9); several column tasks (OC = 1500 at C = 768, 300 at C = 4096); K = 3072.
  // int8 needs C % 32 == 0.
  compactForward([
    [1, 1, 1, 1],
    [1, 17, 33, 1],
    [4, 33, 7, 0],
    [5, 64, 48, 1],
    [3, 768, 2304, 1], // GPT-2's c_attn at decode
    [9, 768, 1500, 1],
    [2, 3072, 96, 0], // K = 3072 (GPT-2's MLP projection)
    [7, 4096, 300, 1],
  ]);
  // bf16 mixed precision: the backward over bf16(dout), bf16(inp) and the bf16 weight. The
  // two large shapes run once each (their outputs are big, and the Chromium test moves every
  // output through JSON): two chunks of the weight's rows at C = 768 (682 rows a chunk),
  // and K = 3072.
  for (const [N, C, OC, withBias, variants] of [
    [1, 1, 1, 1, 'all'],
    [5, 17, 33, 1, 'all'],
    [70, 40, 389, 0, 'all'],
    [9, 768, 800, 1, 'one'],
    [64, 3072, 96, 1, 'one'],
  ] as const) {
    const r = next();
    const inp = randn(r, N * C);
    const weight = toBf16(randn(r, OC * C, 0.2));
    const bwd: Record<string, Data> = { dinp: randn(r, N * C), dweight: randn(r, OC * C), dout: randn(r, N * OC), inp, weight };
    if (withBias) bwd.dbias = randn(r, OC);
    const tol = C >= 1024 ? TOL_MATMUL : TOL_REDUCE;
    for (const overwrite of variants === 'all' ? [false, true] : [false]) {
      cases.push({
        kernel: 'matmulBackwardBf16',
        label: `matmulBackwardBf16 N=${N} C=${C} OC=${OC}${withBias ? '' : ' (no bias)'}${overwrite ? ' overwriteDinp' : ''}`,
        buffers: bwd,
        rtol: tol,
        args: { N, C, OC, overwriteDinp: overwrite },
      });
    }
    if (variants === 'one') continue;
    const { dweight: _frozen, ...frozen } = bwd;
    cases.push({ kernel: 'matmulBackwardBf16', label: `matmulBackwardBf16 N=${N} C=${C} OC=${OC} (no dweight)`, buffers: frozen, rtol: tol, args: { N, C, OC, overwriteDinp: true } });
  }
  for (const [B, T, C, V, maxT] of [
    [1, 1, 32, 1, 1],
    [2, 3, 64, 11, 5],
    [3, 7, 96, 50, 7],
  ]) {
    const r = next();
    const ids = randInts(r, B * T, V);
    ids[0] = V - 1;
    const wteF32 = randn(r, V * C);
    const wpe = randn(r, maxT * C);
    const out = randn(r, B * T * C);
    const { q, scales } = interleaveQ8(quantizeQ8(wteF32), V, C); // the kernels' layout
    cases.push({
      kernel: 'encoderForwardBf16',
      label: `encoderForwardBf16 B=${B} T=${T} C=${C} V=${V}`,
      buffers: { out, ids, wte: toBf16(wteF32), wpe },
      rtol: TOL_POINTWISE,
      args: { B, T, C },
    });
    cases.push({
      kernel: 'encoderForwardQ8',
      label: `encoderForwardQ8 B=${B} T=${T} C=${C} V=${V}`,
      buffers: { out, ids, wte: q, scales, wpe },
      rtol: TOL_POINTWISE,
      args: { B, T, C, V },
    });
  }
  // The decode GEMVs' x86 paths (crates/kernels/src/compact/x86.rs) at shapes that split
  // into several column tasks (threads.test.ts compares them across thread counts) and
  // end in half a 64-byte int8 step (C % 64 == 32) or a partial bf16 vector (C % 32 != 0).
  compactForward([
    [1, 160, 900, 1],
    [4, 96, 1400, 0],
    [2, 800, 260, 1],
    [3, 1056, 130, 1],
  ]);

  // ---- bf16 rows (a slot of a bf16 KV cache) ----
  for (const [R, C] of [
    [1, 1],
    [5, 17],
    [4, 768],
  ]) {
    const r = next();
    cases.push({ kernel: 'copyRowsBf16', label: `copyRowsBf16 R=${R} C=${C}`, buffers: { out: toBf16(randn(r, R * C)), inp: toBf16(randn(r, R * C)) }, rtol: 0, args: { R, C } });
  }

  // The bf16 copy of the master weights (mixed precision): ties, tiny and huge values, NaN.
  for (const N of [1, 7, 20_000]) {
    const r = next();
    const x = randn(r, N, 3);
    if (N > 4) x.set([1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38, Number.NaN, -0]);
    cases.push({ kernel: 'roundBf16', label: `roundBf16 N=${N}`, buffers: { out: new Uint16Array(N).fill(0x1234), x }, rtol: 0, args: { N } });
  }
  // Compact products past COMPACT_GEMV_ROWS (16) rows: the f32 GEMM over widened chunks of
  // the weight (several chunks at C = 768, OC = 1500); at it, the dot products (N = 16).
  compactForward([
    [17, 64, 48, 1],
    [20, 768, 1500, 1],
    [16, 96, 70, 0],
  ]);
  // Where the CPU has AVX512_BF16, the bf16 products past 16 rows run on the vdpbf16ps GEMM
  // (compact/bf16_gemm.rs): edge tiles in both directions (43 rows = 7·6 + 1, 300 columns =
  // 4·64 + 44), odd K (C = 41), more than one slice of K (C = 3072); and the backward with
  // an odd N, and with OC past 4096, where dout is laid out 1536 columns at a time.
  compactForward([
    [43, 41, 300, 1],
    [23, 3072, 70, 0],
  ]);
  {
    const [N, C, OC] = [19, 32, 4200];
    const r = next();
    const bwd: Record<string, Data> = { dinp: randn(r, N * C), dweight: randn(r, OC * C), dbias: randn(r, OC), dout: randn(r, N * OC), inp: randn(r, N * C), weight: toBf16(randn(r, OC * C, 0.2)) };
    cases.push({ kernel: 'matmulBackwardBf16', label: `matmulBackwardBf16 N=${N} C=${C} OC=${OC}`, buffers: bwd, rtol: TOL_REDUCE, args: { N, C, OC, overwriteDinp: true } });
  }
  // The f32 GEMV up to 16 rows (a decoding batch), 4 or 2 input rows at a time and the rest,
  // over several column tasks (threads.test.ts compares thread counts).
  for (const [N, C, OC, withBias] of [
    [16, 40, 37, 1],
    [6, 96, 1300, 0],
    [13, 768, 130, 1],
  ] as const) {
    const r = next();
    const buffers: Record<string, Data> = { out: randn(r, N * OC), inp: randn(r, N * C), weight: randn(r, OC * C, 0.2) };
    if (withBias) buffers.bias = randn(r, OC);
    matmulForwardCases(N, C, OC, buffers, TOL_REDUCE);
  }
  return cases;
}
