// Kernel test cases, shared by the cross-backend comparison (test/kernels.test.ts).
//
// A case names every buffer a kernel call touches with its initial contents (outputs
// start as random garbage, which also proves that forward kernels overwrite and backward
// kernels accumulate), and one `invoke` that is generic over the buffer type, so the same
// call runs on a Backend (Tensor handles) and on the reference kernels in float64.

import type { Backend, DropoutSpec, Kernels, Tensor } from '../../src/backend/backend.js';
import { referenceKernels, type RefArray } from '../../src/backend/reference-kernels.js';
import { mulberry32, randInts, randn, randu, type Rng } from './random.js';

export type Data = Float32Array | Int32Array;

export interface KernelCase {
  kernel: keyof Kernels<unknown>;
  label: string;
  /** Initial contents of every buffer, by argument name. */
  buffers: Record<string, Data>;
  /** The buffers the kernel writes (compared after the call). */
  outputs: string[];
  /** Normwise relative tolerance vs the float64 reference, per output (default: `rtol`). */
  rtol: number;
  rtolFor?: Record<string, number>;
  /** Runs the kernel; returns its scalar result if it has one (sumSquares). */
  invoke<Buf>(k: Kernels<Buf>, a: Record<string, Buf>): number | void;
}

/** Runs `c` on a backend: allocate, write, invoke, read the outputs back, free. */
export function runOnBackend(backend: Backend, c: KernelCase): { outputs: Record<string, Data>; result: number | void } {
  const tensors: Record<string, Tensor> = {};
  try {
    for (const [name, data] of Object.entries(c.buffers)) {
      const t = backend.alloc(data.length, data instanceof Int32Array ? 'i32' : 'f32');
      tensors[name] = t;
      backend.write(t, data);
    }
    const result = c.invoke<Tensor>(backend, tensors);
    const outputs: Record<string, Data> = {};
    for (const name of c.outputs) outputs[name] = backend.read(tensors[name]);
    return { outputs, result };
  } finally {
    for (const t of Object.values(tensors)) backend.free(t);
  }
}

/** Runs `c` on the reference kernels in float64 (inputs are the same f32 values, exactly). */
export function runReference64(c: KernelCase): { outputs: Record<string, Float64Array | Int32Array>; result: number | void } {
  const bufs: Record<string, RefArray> = {};
  for (const [name, data] of Object.entries(c.buffers)) bufs[name] = data instanceof Int32Array ? data.slice() : Float64Array.from(data);
  const result = c.invoke<RefArray>(referenceKernels, bufs);
  const outputs: Record<string, Float64Array | Int32Array> = {};
  for (const name of c.outputs) outputs[name] = bufs[name] as Float64Array;
  return { outputs, result };
}

/** Float64 forward results rounded to f32, for backward inputs such as mean/rstd and lse. */
function ref32(fn: (k: Kernels<RefArray>) => void, ...outs: Float64Array[]): Float32Array[] {
  fn(referenceKernels);
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
      outputs: ['out'],
      rtol: TOL_POINTWISE,
      invoke: (k, a) => k.encoderForward(a.out, a.ids, a.wte, a.wpe, B, T, C),
    });
    cases.push({
      kernel: 'encoderBackward',
      label: `encoderBackward B=${B} T=${T} C=${C} V=${V}`,
      // Few rows in wte so that ids repeat and their gradients sum.
      buffers: { dwte: randn(r, V * C), dwpe: randn(r, maxT * C), dout: randn(r, B * T * C), ids },
      outputs: ['dwte', 'dwpe'],
      rtol: TOL_REDUCE,
      invoke: (k, a) => k.encoderBackward(a.dwte, a.dwpe, a.dout, a.ids, B, T, C),
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
      outputs: ['out', 'mean', 'rstd'],
      rtol: TOL_REDUCE,
      invoke: (k, a) => k.layernormForward(a.out, a.mean, a.rstd, a.inp, a.weight, a.bias, N, C),
    });
    const m64 = new Float64Array(N);
    const s64 = new Float64Array(N);
    const [mean, rstd] = ref32((k) => k.layernormForward(new Float64Array(N * C), m64, s64, toF64(inp), toF64(weight), toF64(bias), N, C), m64, s64);
    cases.push({
      kernel: 'layernormBackward',
      label: `layernormBackward N=${N} C=${C}`,
      buffers: { dinp: randn(r, N * C), dweight: randn(r, C), dbias: randn(r, C), dout: randn(r, N * C), inp, weight, mean, rstd },
      outputs: ['dinp', 'dweight', 'dbias'],
      rtol: TOL_REDUCE,
      invoke: (k, a) => k.layernormBackward(a.dinp, a.dweight, a.dbias, a.dout, a.inp, a.weight, a.mean, a.rstd, N, C),
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
    cases.push({
      kernel: 'matmulForward',
      label: `matmulForward N=${N} C=${C} OC=${OC}${withBias ? '' : ' (no bias)'}`,
      buffers,
      outputs: ['out'],
      rtol: tol,
      invoke: (k, a) => k.matmulForward(a.out, a.inp, a.weight, a.bias ?? null, N, C, OC),
    });
    const bwd: Record<string, Data> = { dinp: randn(r, N * C), dweight: randn(r, OC * C), dout: randn(r, N * OC), inp, weight };
    if (withBias) bwd.dbias = randn(r, OC);
    // overwriteDinp: dinp's starting values must vanish; dweight and dbias still accumulate.
    for (const overwrite of [false, true]) {
      cases.push({
        kernel: 'matmulBackward',
        label: `matmulBackward N=${N} C=${C} OC=${OC}${withBias ? '' : ' (no bias)'}${overwrite ? ' overwriteDinp' : ''}`,
        buffers: bwd,
        outputs: withBias ? ['dinp', 'dweight', 'dbias'] : ['dinp', 'dweight'],
        rtol: tol,
        invoke: (k, a) => k.matmulBackward(a.dinp, a.dweight, a.dbias ?? null, a.dout, a.inp, a.weight, N, C, OC, overwrite),
      });
    }
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
      outputs: ['out', 'lse'],
      rtol: TOL_ATTENTION,
      invoke: (k, a) => k.attentionForward(a.out, a.lse, a.qkv, B, T, C, NH, dropout),
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
        outputs: ['dqkv'],
        rtol: TOL_ATTENTION,
        invoke: (k, a) => k.attentionBackward(a.dqkv, a.dout, a.qkv, a.out, a.lse, B, T, C, NH, dropout, overwrite),
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
      outputs: ['out'],
      rtol: TOL_POINTWISE,
      invoke: (k, a) => k.geluForward(a.out, a.inp, N),
    });
    const gbuffers = { dinp: randn(r, N), inp, dout: randn(r, N) };
    for (const overwrite of [false, true]) {
      cases.push({
        kernel: 'geluBackward',
        label: `geluBackward N=${N}${overwrite ? ' overwrite' : ''}`,
        buffers: gbuffers,
        outputs: ['dinp'],
        rtol: TOL_POINTWISE,
        invoke: (k, a) => k.geluBackward(a.dinp, a.inp, a.dout, N, overwrite),
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
      outputs: ['out'],
      rtol: TOL_POINTWISE,
      invoke: (k, a) => k.residualForward(a.out, a.inp1, a.inp2, N),
    });
    cases.push({
      kernel: 'residualBackward',
      label: `residualBackward N=${N}`,
      buffers: { dinp1: randn(r, N), dinp2: randn(r, N), dout: randn(r, N) },
      outputs: ['dinp1', 'dinp2'],
      rtol: TOL_POINTWISE,
      invoke: (k, a) => k.residualBackward(a.dinp1, a.dinp2, a.dout, N),
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
      outputs: ['losses'],
      rtol: TOL_REDUCE,
      invoke: (k, a) => k.crossentropyForward(a.losses, a.logits, a.targets, N, V, ignoreIndex),
    });
    // overwrite: the starting garbage must vanish, in ignored rows too.
    const cbuffers = { dlogits: randn(r, N * V, 0.01), dlosses: randn(r, N), logits, targets };
    for (const overwrite of [false, true]) {
      cases.push({
        kernel: 'crossentropyBackward',
        label: `crossentropyBackward N=${N} V=${V} ignoreIndex=${ignoreIndex}${overwrite ? ' overwrite' : ''}`,
        buffers: cbuffers,
        outputs: ['dlogits'],
        rtol: TOL_REDUCE,
        invoke: (k, a) => k.crossentropyBackward(a.dlogits, a.dlosses, a.logits, a.targets, N, V, ignoreIndex, overwrite),
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
      outputs: ['out'],
      rtol: TOL_POINTWISE,
      invoke: (k, a) => k.dropoutForward(a.out, a.inp, N, dropout),
    });
    cases.push({
      kernel: 'dropoutBackward',
      label: `dropoutBackward N=${N} p=${p}`,
      buffers: { dinp: randn(r, N), dout: randn(r, N) },
      outputs: ['dinp'],
      rtol: TOL_POINTWISE,
      invoke: (k, a) => k.dropoutBackward(a.dinp, a.dout, N, dropout),
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
      outputs: ['params', 'm', 'v'],
      rtol: TOL_REDUCE,
      invoke: (k, a) => k.adamwUpdate(a.params, a.grads, a.m, a.v, N, 1e-3, 0.9, 0.999, 1e-8, wd, step),
    });
  }
  for (const N of [1, 17, 10000]) {
    const r = next();
    cases.push({
      kernel: 'sumSquares',
      label: `sumSquares N=${N}`,
      buffers: { x: randn(r, N) },
      outputs: [],
      rtol: 1e-12, // accumulated in float64 on every backend
      invoke: (k, a) => k.sumSquares(a.x, N),
    });
    cases.push({
      kernel: 'scale',
      label: `scale N=${N}`,
      buffers: { x: randn(r, N) },
      outputs: ['x'],
      rtol: TOL_POINTWISE,
      invoke: (k, a) => k.scale(a.x, N, 0.37),
    });
  }
  return cases;
}
