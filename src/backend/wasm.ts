// The WebAssembly backend: kernels in crates/wasm, storage in the module's linear memory.
// A tensor's storage is a pointer from the module's `alloc` (zero-filled, 16-byte
// aligned); kernels get pointers. Views of memory.buffer are re-derived on every access,
// because alloc and the kernels that use scratch memory can grow the memory (which
// detaches every earlier view); no view is kept across calls.
//
// BaseBackend checks every argument before a kernel runs. The few checks here are the
// ones specific to this boundary: sizes that must fit a u32 byte count, and scalars that
// become f32 (a p that rounds up to 1.0 in f32).

import { loadWasm, type LoadedWasm, type LoadWasmOptions, type WasmExports, type WasmVariant } from '../../bindings/wasm.js';
import type { BackendInfo, DType, DropoutSpec, Kernels } from './backend.js';
import { NO_DROPOUT } from './backend.js';
import { BaseBackend } from './base.js';

/** Package version reported by info(): package.json's, written at build time (src/version.ts). */
import { VERSION } from '../version.js';
/** Largest allocation wasm32 can address (4 GiB minus alignment slack). */
const MAX_BYTES = 0xffff_fff0;

export class WasmBackend extends BaseBackend<number, number> {
  readonly name = 'wasm' as const;
  protected readonly kernels: Kernels<number>;
  private readonly x: WasmExports;
  /** Byte size of every live allocation, for dealloc. Zero-length tensors are not listed. */
  private readonly sizes = new Map<number, number>();

  constructor(private readonly loaded: LoadedWasm) {
    super();
    this.x = loaded.exports;
    this.kernels = wasmKernels(this.x);
  }

  get variant(): WasmVariant {
    return this.loaded.variant;
  }

  /** Where the module's bytes came from. */
  get source(): string {
    return this.loaded.source;
  }

  info(): BackendInfo {
    return { name: 'wasm', simd: this.loaded.variant, threads: 1, version: VERSION };
  }

  /**
   * Measured peak fp32 FMA rate in GFLOPS (for benchmarks), timed here since wasm has no
   * clock. Short calls first: V8 runs a long first call in its baseline tier.
   */
  peakGflops(iters = 1e8): number {
    return guard('peakGflops', () => {
      for (let i = 0; i < 10; i++) this.x.fma_work(1e5);
      let best = 0;
      for (let rep = 0; rep < 3; rep++) {
        const t0 = performance.now();
        this.x.fma_work(iters);
        const seconds = (performance.now() - t0) / 1e3;
        best = Math.max(best, (2 * this.x.fma_lanes() * this.x.fma_work_count(iters)) / seconds / 1e9);
      }
      return best;
    });
  }

  /** Bytes of linear memory in use by the module (grows, never shrinks). */
  memoryBytes(): number {
    return this.x.memory.buffer.byteLength;
  }

  protected allocStorage(length: number, _dtype: DType): number {
    const nbytes = length * 4;
    if (nbytes > MAX_BYTES) throw new Error(`alloc: ${length} elements do not fit in 32-bit WebAssembly memory`);
    const ptr = this.x.alloc(nbytes) >>> 0;
    if (ptr === 0) throw new Error(`alloc: out of WebAssembly memory allocating ${length} elements (${nbytes} bytes)`);
    if (nbytes > 0) this.sizes.set(ptr, nbytes);
    return ptr;
  }

  protected freeStorage(ptr: number): void {
    const nbytes = this.sizes.get(ptr);
    if (nbytes === undefined) return; // zero-length: nothing was allocated
    this.sizes.delete(ptr);
    this.x.dealloc(ptr, nbytes);
  }

  protected resolve(ptr: number, _dtype: DType, offset: number, _length: number): number {
    return ptr + offset * 4;
  }

  protected writeStorage(ptr: number, dtype: DType, offset: number, data: Float32Array | Int32Array): void {
    const Ctor = dtype === 'f32' ? Float32Array : Int32Array;
    new Ctor(this.x.memory.buffer, ptr + offset * 4, data.length).set(data);
  }

  protected readStorage(ptr: number, dtype: DType, offset: number, length: number): Float32Array | Int32Array {
    const Ctor = dtype === 'f32' ? Float32Array : Int32Array;
    return new Ctor(this.x.memory.buffer, ptr + offset * 4, length).slice();
  }

  protected zeroStorage(ptr: number, dtype: DType, offset: number, length: number): void {
    const Ctor = dtype === 'f32' ? Float32Array : Int32Array;
    new Ctor(this.x.memory.buffer, ptr + offset * 4, length).fill(0);
  }

  protected intView(ptr: number, offset: number, length: number): Int32Array {
    return new Int32Array(this.x.memory.buffer, ptr + offset * 4, length);
  }
}

/** Runs a wasm call, turning a trap (a kernel panic: panic=abort) into an Error naming the kernel. */
function guard<R>(fn: string, f: () => R): R {
  try {
    return f();
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) {
      throw new Error(`${fn}: WebAssembly kernel trapped (${e.message})`, { cause: e });
    }
    throw e;
  }
}

function scratchOk(fn: string, status: number): void {
  if (status !== 0) throw new Error(`${fn}: out of WebAssembly memory for scratch space`);
}

/** p as the f32 the kernel sees: BaseBackend checked p < 1 in f64, but 0.99999999 rounds to 1. */
function f32Unit(fn: string, name: string, x: number): number {
  if (!(Math.fround(x) < 1)) throw new Error(`${fn}: ${name} must be in [0, 1) as a 32-bit float, got ${x}`);
  return x;
}

function wasmKernels(x: WasmExports): Kernels<number> {
  const d = (fn: string, spec: DropoutSpec | undefined): DropoutSpec => {
    const s = spec ?? NO_DROPOUT;
    f32Unit(fn, 'dropout.p', s.p);
    return s;
  };
  return {
    encoderForward: (out, ids, wte, wpe, B, T, C) => guard('encoderForward', () => x.encoder_forward(out, ids, wte, wpe, B, T, C)),
    encoderBackward: (dwte, dwpe, dout, ids, B, T, C) => guard('encoderBackward', () => x.encoder_backward(dwte, dwpe, dout, ids, B, T, C)),
    layernormForward: (out, mean, rstd, inp, weight, bias, N, C) =>
      guard('layernormForward', () => x.layernorm_forward(out, mean, rstd, inp, weight, bias, N, C)),
    layernormBackward: (dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C) =>
      guard('layernormBackward', () => x.layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C)),
    matmulForward: (out, inp, weight, bias, N, C, OC) =>
      scratchOk('matmulForward', guard('matmulForward', () => x.matmul_forward(out, inp, weight, bias ?? 0, N, C, OC))),
    matmulBackward: (dinp, dweight, dbias, dout, inp, weight, N, C, OC, overwriteDinp) =>
      scratchOk('matmulBackward', guard('matmulBackward', () => x.matmul_backward(dinp, dweight, dbias ?? 0, dout, inp, weight, N, C, OC, overwriteDinp ? 1 : 0))),
    attentionForward: (out, lse, qkv, B, T, C, NH, dropout) => {
      const { p, seed, stream } = d('attentionForward', dropout);
      scratchOk('attentionForward', guard('attentionForward', () => x.attention_forward(out, lse, qkv, B, T, C, NH, p, seed, stream)));
    },
    attentionBackward: (dqkv, dout, qkv, out, lse, B, T, C, NH, dropout, overwrite) => {
      const { p, seed, stream } = d('attentionBackward', dropout);
      scratchOk('attentionBackward', guard('attentionBackward', () => x.attention_backward(dqkv, dout, qkv, out, lse, B, T, C, NH, p, seed, stream, overwrite ? 1 : 0)));
    },
    attentionDecode: (out, kcache, vcache, qkv, pos, B, Tq, C, NH, maxT) =>
      scratchOk('attentionDecode', guard('attentionDecode', () => x.attention_decode(out, kcache, vcache, qkv, pos, B, Tq, C, NH, maxT))),
    geluForward: (out, inp, N) => guard('geluForward', () => x.gelu_forward(out, inp, N)),
    geluBackward: (dinp, inp, dout, N, overwrite) => guard('geluBackward', () => x.gelu_backward(dinp, inp, dout, N, overwrite ? 1 : 0)),
    residualForward: (out, inp1, inp2, N) => guard('residualForward', () => x.residual_forward(out, inp1, inp2, N)),
    residualBackward: (dinp1, dinp2, dout, N) => guard('residualBackward', () => x.residual_backward(dinp1, dinp2, dout, N)),
    crossentropyForward: (losses, logits, targets, N, V, ignoreIndex) =>
      guard('crossentropyForward', () => x.crossentropy_forward(losses, logits, targets, N, V, ignoreIndex)),
    crossentropyBackward: (dlogits, dlosses, logits, targets, N, V, ignoreIndex, overwrite) =>
      guard('crossentropyBackward', () => x.crossentropy_backward(dlogits, dlosses, logits, targets, N, V, ignoreIndex, overwrite ? 1 : 0)),
    dropoutForward: (out, inp, N, dropout) => {
      const { p, seed, stream } = d('dropoutForward', dropout);
      guard('dropoutForward', () => x.dropout_forward(out, inp, N, p, seed, stream));
    },
    dropoutBackward: (dinp, dout, N, dropout) => {
      const { p, seed, stream } = d('dropoutBackward', dropout);
      guard('dropoutBackward', () => x.dropout_backward(dinp, dout, N, p, seed, stream));
    },
    adamwUpdate: (params, grads, m, v, N, lr, beta1, beta2, eps, weightDecay, step) => {
      f32Unit('adamwUpdate', 'beta1', beta1);
      f32Unit('adamwUpdate', 'beta2', beta2);
      guard('adamwUpdate', () => x.adamw_update(params, grads, m, v, N, lr, beta1, beta2, eps, weightDecay, step));
    },
    sumSquares: (xp, N) => guard('sumSquares', () => x.sum_squares(xp, N)),
    scale: (xp, N, s) => guard('scale', () => x.scale(xp, N, s)),
  };
}

/** Loads the kernels (simd128 when the engine supports it, unless opts.simd says otherwise). */
export async function createWasmBackend(opts: { simd?: boolean } & Omit<LoadWasmOptions, 'simd'> = {}): Promise<WasmBackend> {
  return new WasmBackend(await loadWasm(opts));
}
