// The native backend: kernels in the N-API addon (crates/node), storage in plain JS typed
// arrays. A tensor's storage is a Float32Array / Int32Array allocated here; each kernel
// call passes subarray views, which the addon reads zero-copy (and checks again).

import { loadNative, loadNativeAsync, type LoadedNative, type NativeAddon } from '../../bindings/native.js';
import type { BackendInfo, DType, DropoutSpec, Kernels } from './backend.js';
import { NO_DROPOUT } from './backend.js';
import { TypedArrayBackend, type TypedStorage as Storage } from './typed-array.js';

type F = Float32Array;
type I = Int32Array;

/** Floats from which a zero fill is worth the addon's threads (below, TypedArray.fill). */
const PARALLEL_ZERO_MIN = 1 << 16;

/** Floats per 64-byte cache line: the slack of an aligned allocation. */
const LINE_FLOATS = 16;

export class NativeBackend extends TypedArrayBackend {
  readonly name = 'native' as const;
  protected readonly kernels: Kernels<Storage>;

  constructor(private readonly native: LoadedNative) {
    super();
    this.kernels = nativeKernels(native.addon);
  }

  /** Where the addon was loaded from (a path or a package name). */
  get source(): string {
    return this.native.source;
  }

  info(): BackendInfo {
    const a = this.native.addon;
    return { name: 'native', simd: a.simdName(), threads: a.threads(), version: a.version() };
  }

  /** Rebuilds the addon's thread pool with `n` threads (an integer in 1..1024). Process-wide. */
  setThreads(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new Error(`setThreads: n must be an integer >= 1, got ${n}`);
    this.native.addon.setThreads(n);
  }

  /**
   * f32 storage starts on a 64-byte cache line (JS allocators give 16-byte alignment):
   * rows then load as whole lines, and attention reads q, k, v in place instead of
   * copying them to aligned scratch (5-12% faster, attention_bench ATTN_OFFSET=0 vs 4).
   */
  protected override allocStorage(length: number, dtype: DType): Storage {
    if (dtype !== 'f32') return super.allocStorage(length, dtype);
    const buffer = new ArrayBuffer((length + LINE_FLOATS) * 4);
    const skew = this.native.addon.lineOffset(new Float32Array(buffer, 0, 1));
    return new Float32Array(buffer, (64 - skew) % 64, length);
  }

  /** Large f32 tensors are zeroed by the addon on all its threads; small ones here. */
  protected override zeroStorage(storage: Storage, dtype: DType, offset: number, length: number): void {
    if (storage instanceof Float32Array && length >= PARALLEL_ZERO_MIN) this.native.addon.zero(storage.subarray(offset, offset + length), length);
    else super.zeroStorage(storage, dtype, offset, length);
  }

  /** Measured read bandwidth of main memory in GB/s on the addon's threads (for the decode roofline in bench/). */
  memoryBandwidth(mib = 256, reps = 5): number {
    return probe(this.native.addon.memoryBandwidth, 'memoryBandwidth')(mib, reps);
  }

  /** Measured single-thread peak fp32 FMA rate in GFLOPS (for benchmarks). */
  peakGflops(iters = 1e8): number {
    return probe(this.native.addon.peakGflops, 'peakGflops')(iters);
  }
}

/** A benchmark probe of the addon: only its bench build has them (npm run build:native:bench). */
function probe<F>(f: F | undefined, name: string): F {
  if (!f) throw new Error(`${name}: this addon was built without the benchmark probes (npm run build:native:bench builds one with them)`);
  return f;
}

function nativeKernels(a: NativeAddon): Kernels<Storage> {
  const d = (x: DropoutSpec | undefined): DropoutSpec => x ?? NO_DROPOUT;
  return {
    encoderForward: (out, ids, wte, wpe, B, T, C) => a.encoderForward(out as F, ids as I, wte as F, wpe as F, B, T, C),
    encoderBackward: (dwte, dwpe, dout, ids, B, T, C) => a.encoderBackward(dwte as F, dwpe as F, dout as F, ids as I, B, T, C),
    layernormForward: (out, mean, rstd, inp, weight, bias, N, C) =>
      a.layernormForward(out as F, mean as F, rstd as F, inp as F, weight as F, bias as F, N, C),
    layernormBackward: (dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C) =>
      a.layernormBackward(dinp as F, dweight as F, dbias as F, dout as F, inp as F, weight as F, mean as F, rstd as F, N, C),
    matmulForward: (out, inp, weight, bias, N, C, OC) => a.matmulForward(out as F, inp as F, weight as F, bias as F | null, N, C, OC),
    matmulBackward: (dinp, dweight, dbias, dout, inp, weight, N, C, OC, overwriteDinp) =>
      a.matmulBackward(dinp as F, dweight as F, dbias as F | null, dout as F, inp as F, weight as F, N, C, OC, overwriteDinp),
    attentionForward: (out, lse, qkv, B, T, C, NH, dropout) => {
      const { p, seed, stream } = d(dropout);
      a.attentionForward(out as F, lse as F, qkv as F, B, T, C, NH, p, seed, stream);
    },
    attentionBackward: (dqkv, dout, qkv, out, lse, B, T, C, NH, dropout, overwrite) => {
      const { p, seed, stream } = d(dropout);
      a.attentionBackward(dqkv as F, dout as F, qkv as F, out as F, lse as F, B, T, C, NH, p, seed, stream, overwrite);
    },
    attentionDecode: (out, kcache, vcache, qkv, pos, B, Tq, C, NH, maxT) =>
      a.attentionDecode(out as F, kcache as F, vcache as F, qkv as F, pos as I, B, Tq, C, NH, maxT),
    geluForward: (out, inp, N) => a.geluForward(out as F, inp as F, N),
    geluBackward: (dinp, inp, dout, N, overwrite) => a.geluBackward(dinp as F, inp as F, dout as F, N, overwrite),
    residualForward: (out, inp1, inp2, N) => a.residualForward(out as F, inp1 as F, inp2 as F, N),
    residualBackward: (dinp1, dinp2, dout, N) => a.residualBackward(dinp1 as F, dinp2 as F, dout as F, N),
    crossentropyForward: (losses, logits, targets, N, V, ignoreIndex) =>
      a.crossentropyForward(losses as F, logits as F, targets as I, N, V, ignoreIndex),
    crossentropyBackward: (dlogits, dlosses, logits, targets, N, V, ignoreIndex, overwrite) =>
      a.crossentropyBackward(dlogits as F, dlosses as F, logits as F, targets as I, N, V, ignoreIndex, overwrite),
    dropoutForward: (out, inp, N, dropout) => a.dropoutForward(out as F, inp as F, N, dropout.p, dropout.seed, dropout.stream),
    dropoutBackward: (dinp, dout, N, dropout) => a.dropoutBackward(dinp as F, dout as F, N, dropout.p, dropout.seed, dropout.stream),
    adamwUpdate: (params, grads, m, v, N, lr, beta1, beta2, eps, weightDecay, step) =>
      a.adamwUpdate(params as F, grads as F, m as F, v as F, N, lr, beta1, beta2, eps, weightDecay, step),
    sumSquares: (x, N) => a.sumSquares(x as F, N),
    scale: (x, N, s) => a.scale(x as F, N, s),
  };
}

/** The native backend, or an Error saying why the addon could not be loaded. Sync (Node >= 20.16). */
export function createNativeBackend(): NativeBackend {
  return new NativeBackend(loadNative());
}

/** As createNativeBackend, also on Node versions before 20.16. */
export async function createNativeBackendAsync(): Promise<NativeBackend> {
  return new NativeBackend(await loadNativeAsync());
}
