// The native backend: kernels in the N-API addon (crates/node), storage in plain JS typed
// arrays. A tensor's storage is a Float32Array / Int32Array allocated here; each kernel
// call passes subarray views, which the addon reads zero-copy (and checks again).

import { loadNative, loadNativeAsync, type LoadedNative, type NativeAddon } from '../../bindings/native.js';
import type { BackendInfo, DType, DropoutSpec } from './backend.js';
import { NO_DROPOUT } from './backend.js';
import { KERNELS, KERNEL_NAMES, type TypedKernels } from './kernels.js';
import { TypedArrayBackend, type TypedStorage as Storage } from './typed-array.js';

/** Floats from which a zero fill is worth the addon's threads (below, TypedArray.fill). */
const PARALLEL_ZERO_MIN = 1 << 16;

/** Floats per 64-byte cache line: the slack of an aligned allocation. */
const LINE_FLOATS = 16;

export class NativeBackend extends TypedArrayBackend {
  readonly name = 'native' as const;
  protected readonly kernels: TypedKernels;

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
    return { name: 'native', simd: a.simdName(), extensions: a.simdExtensions?.() ?? [], threads: a.threads(), version: a.version() };
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

  /**
   * Measured read bandwidth of main memory in GB/s on the addon's threads (for the decode
   * roofline in bench/). Only in an addon built with the `bench` feature.
   */
  memoryBandwidth(mib = 256, reps = 5): number {
    return this.probe('memoryBandwidth')(mib, reps);
  }

  /**
   * STREAM's copy or triad bandwidth in GB/s on the addon's threads (arrays of `mib` MiB,
   * STREAM's byte counts), for the decode bounds in bench/. Only with the `bench` feature.
   */
  streamBandwidth(kind: 'copy' | 'triad', mib = 128, reps = 5): number {
    return this.probe('streamBandwidth')(kind, mib, reps);
  }

  /** Measured single-thread peak fp32 FMA rate in GFLOPS (for benchmarks). Only with the `bench` feature. */
  peakGflops(iters = 1e8): number {
    return this.probe('peakGflops')(iters);
  }

  private probe<K extends 'memoryBandwidth' | 'streamBandwidth' | 'peakGflops'>(fn: K): NonNullable<NativeAddon[K]> {
    const a = this.native.addon;
    const f = a[fn];
    if (typeof f !== 'function') {
      throw new Error(`${fn}: the native addon (${this.native.source}) was built without the bench feature: npm run build:native:bench`);
    }
    return f.bind(a) as NonNullable<NativeAddon[K]>;
  }
}

/**
 * The addon's kernels as this backend's implementation, generically from the registry: the
 * addon exports each kernel under its registry name with the same arguments (typed arrays;
 * null for a null buffer; booleans), except that a dropout spec is passed as p, seed,
 * stream. The export is looked up on every call (bench/ wraps the addon's functions).
 */
function nativeKernels(a: NativeAddon): TypedKernels {
  const kernels: Record<string, Fn> = {};
  for (const name of KERNEL_NAMES) {
    const args: ReadonlyArray<{ role: string }> = KERNELS[name].args;
    const d = args.findIndex((x) => x.role === 'dropout');
    kernels[name] = d < 0 ? passThrough(a, name) : withDropout(a, name, d, args.length);
  }
  return kernels as unknown as TypedKernels;
}

type Fn = (...args: unknown[]) => unknown;

/** The addon's kernel, called with this call's arguments as they are. */
function passThrough(a: NativeAddon, name: string): Fn {
  const addon = a as unknown as Record<string, Fn>;
  return function (): unknown {
    return addon[name].apply(a, arguments as unknown as unknown[]);
  };
}

/**
 * The addon's kernel, with the dropout spec at argument `d` passed as p, seed, stream. The
 * arguments are rebuilt in one array per kernel (no allocation per call): the spec's
 * fields are read before it is filled, and the addon does not call back into JavaScript.
 * It is emptied after the call, so that it keeps no buffer alive.
 */
function withDropout(a: NativeAddon, name: string, d: number, arity: number): Fn {
  const addon = a as unknown as Record<string, Fn>;
  const lowered: unknown[] = new Array(arity + 2).fill(undefined);
  return function (): unknown {
    const args = arguments;
    const spec = (args[d] as DropoutSpec | undefined) ?? NO_DROPOUT;
    const p = spec.p;
    const seed = spec.seed;
    const stream = spec.stream;
    for (let i = 0; i < d; i++) lowered[i] = args[i];
    lowered[d] = p;
    lowered[d + 1] = seed;
    lowered[d + 2] = stream;
    for (let i = d + 1; i < arity; i++) lowered[i + 2] = args[i]; // undefined past the last given
    try {
      return addon[name].apply(a, lowered);
    } finally {
      lowered.fill(undefined);
    }
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
