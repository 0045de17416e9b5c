// The WebAssembly backend: kernels in crates/wasm, storage in the module's linear memory
// (shared with the workers of a threaded variant: bindings/wasm-pool.ts).
// A tensor's storage is a pointer from the module's `alloc` (zero-filled, 16-byte
// aligned); kernels get pointers. Views of memory.buffer are re-derived on every access,
// because alloc and the kernels that use scratch memory can grow the memory (which
// detaches every earlier view); no view is kept across calls.
//
// BaseBackend checks every argument before a kernel runs (f32 scalars included: a p that
// rounds up to 1.0 in f32 is refused there). The one check here is specific to this
// boundary: sizes must fit a u32 byte count.

import { loadWasm, type LoadedWasm, type LoadWasmOptions, type WasmExports, type WasmVariant } from '../../bindings/wasm.js';
import type { WasmPool } from '../../bindings/wasm-pool.js';
import type { BackendInfo, DType, DropoutSpec, TypedData } from './backend.js';
import { DTYPE_ARRAYS, NO_DROPOUT } from './backend.js';
import { BaseBackend } from './base.js';
import { KERNELS, KERNEL_NAMES, wasmName, type ArgDef, type KernelDef, type Kernels } from './kernels.js';

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
    this.kernels = wasmKernels(this.x, () => loaded.pool?.failure ?? null);
  }

  get variant(): WasmVariant {
    return this.loaded.variant;
  }

  /** Where the module's bytes came from. */
  get source(): string {
    return this.loaded.source;
  }

  info(): BackendInfo {
    return { name: 'wasm', simd: this.loaded.simd, extensions: [], threads: this.x.threads(), version: VERSION };
  }

  /** Why the faster variants were not loaded (empty when this is the fastest). */
  get skipped(): readonly string[] {
    return this.loaded.skipped;
  }

  /**
   * Uses `n` threads (an integer >= 1, the caller included) in the threaded variants; the
   * one-thread variants stay at 1. Immediate where enough workers run; otherwise the
   * missing ones start and `await ready()` says when they are in use.
   */
  setThreads(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new Error(`setThreads: n must be an integer >= 1, got ${n}`);
    this.loaded.pool?.setThreads(n);
  }

  /** Resolves with the thread count once the last setThreads has taken effect. */
  async ready(): Promise<number> {
    return this.loaded.pool ? this.loaded.pool.ready() : 1;
  }

  /** The worker pool of a threaded variant (null for the one-thread variants). */
  get pool(): WasmPool | null {
    return this.loaded.pool;
  }

  /**
   * Measured peak fp32 FMA rate in GFLOPS (for benchmarks), timed here since wasm has no
   * clock. Short calls first: V8 runs a long first call in its baseline tier.
   */
  peakGflops(iters = 1e8): number {
    const { fma_work: work, fma_lanes: lanes, fma_work_count: count } = this.x;
    if (typeof work !== 'function' || typeof lanes !== 'function' || typeof count !== 'function') {
      throw new Error(`peakGflops: the WebAssembly module (${this.loaded.source}) was built without the bench feature (no fma_work, fma_lanes, fma_work_count)`);
    }
    return guard('peakGflops', () => {
      for (let i = 0; i < 10; i++) work(1e5);
      let best = 0;
      for (let rep = 0; rep < 3; rep++) {
        const t0 = performance.now();
        work(iters);
        const seconds = (performance.now() - t0) / 1e3;
        best = Math.max(best, (2 * lanes() * count(iters)) / seconds / 1e9);
      }
      return best;
    });
  }

  /** Bytes of linear memory in use by the module (grows, never shrinks). */
  memoryBytes(): number {
    return this.x.memory.buffer.byteLength;
  }

  protected allocStorage(length: number, dtype: DType): number {
    const nbytes = length * DTYPE_ARRAYS[dtype].BYTES_PER_ELEMENT;
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

  protected resolve(ptr: number, dtype: DType, offset: number, _length: number): number {
    return ptr + offset * DTYPE_ARRAYS[dtype].BYTES_PER_ELEMENT;
  }

  /** A view of elements [offset, offset + length) of the storage at ptr (short-lived: see the top of the file). */
  private elements(ptr: number, dtype: DType, offset: number, length: number): TypedData {
    const Ctor = DTYPE_ARRAYS[dtype];
    return new Ctor(this.x.memory.buffer, ptr + offset * Ctor.BYTES_PER_ELEMENT, length);
  }

  protected writeStorage(ptr: number, dtype: DType, offset: number, data: TypedData): void {
    (this.elements(ptr, dtype, offset, data.length) as Float32Array).set(data as Float32Array); // same array types: BaseBackend checked
  }

  protected readStorage(ptr: number, dtype: DType, offset: number, length: number): TypedData {
    return this.elements(ptr, dtype, offset, length).slice();
  }

  protected zeroStorage(ptr: number, dtype: DType, offset: number, length: number): void {
    this.elements(ptr, dtype, offset, length).fill(0);
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
    throw trapped(fn, e, null);
  }
}

/** A trap as an Error naming the kernel (and the worker that failed, if one did); anything else as it is. */
function trapped(fn: string, e: unknown, workerFailure: string | null): unknown {
  if (!(e instanceof WebAssembly.RuntimeError)) return e;
  const why = workerFailure ? `; a thread-pool worker failed: ${workerFailure}` : '';
  return new Error(`${fn}: WebAssembly kernel trapped (${e.message}${why})`, { cause: e });
}

function scratchOk(fn: string, status: number): void {
  if (status !== 0) throw new Error(`${fn}: out of WebAssembly memory for scratch space`);
}

// How one argument crosses into wasm (see wasmKernel).
const PASS = 0; // a pointer, dim or scalar, as it is
const NULLABLE = 1; // a pointer or null: null is 0
const FLAG = 2; // a boolean: 0 or 1
const DROPOUT = 3; // a DropoutSpec: p, seed, stream

function lowering(a: ArgDef): number {
  if (a.nullable) return NULLABLE;
  if (a.role === 'flag') return FLAG;
  if (a.role === 'dropout') return DROPOUT;
  return PASS;
}

/**
 * The module's kernels as this backend's implementation, generically from the registry:
 * each kernel's export is its snake_case name (kernels.ts: wasmName), taking pointers (0
 * for a null buffer), flags as 0/1 and a dropout spec as p, seed, stream. A kernel that
 * uses scratch memory returns a status (0, or 1 when memory could not grow), turned into
 * an Error; a trap (a kernel panic) becomes an Error naming the kernel.
 */
function wasmKernels(x: WasmExports, workerFailure: () => string | null): Kernels<number> {
  const kernels: Record<string, (...args: unknown[]) => unknown> = {};
  for (const name of KERNEL_NAMES) kernels[name] = wasmKernel(name, KERNELS[name], x, workerFailure);
  return kernels as unknown as Kernels<number>;
}

function wasmKernel(fn: string, def: KernelDef, x: WasmExports, workerFailure: () => string | null): (...args: unknown[]) => unknown {
  const f = (x as unknown as Record<string, (...a: unknown[]) => unknown>)[wasmName(fn)];
  const ops = def.args.map(lowering);
  const d = ops.indexOf(DROPOUT);
  const scratch = def.scratch === true;
  // The export's arguments, rebuilt in place on every call (no allocation). Safe to share:
  // everything that could run other code (a spec's getters) is read before it is filled,
  // and a wasm kernel cannot call back into JavaScript (the module has no imports).
  const lowered: unknown[] = new Array(ops.length + (d >= 0 ? 2 : 0)).fill(0);
  return function (): unknown {
    const args = arguments;
    let p = 0;
    let seed = 0;
    let stream = 0;
    if (d >= 0) {
      const spec = (args[d] as DropoutSpec | undefined) ?? NO_DROPOUT;
      p = spec.p;
      seed = spec.seed;
      stream = spec.stream;
    }
    let j = 0;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i];
      const v = args[i];
      if (op === PASS) lowered[j++] = v;
      else if (op === NULLABLE) lowered[j++] = v ?? 0;
      else if (op === FLAG) lowered[j++] = v ? 1 : 0;
      else {
        // p, seed, stream in place of the spec
        lowered[j++] = p;
        lowered[j++] = seed;
        lowered[j++] = stream;
      }
    }
    let r: unknown;
    try {
      r = f.apply(x, lowered);
    } catch (e) {
      throw trapped(fn, e, workerFailure());
    }
    if (scratch) scratchOk(fn, r as number);
    return r; // BaseBackend keeps it only for a kernel that returns a number
  };
}

/**
 * Loads the kernels: the fastest variant this engine runs (relaxed SIMD + threads, simd128 +
 * threads, simd128, scalar) unless `opts.variant` (or `simd`) says otherwise, with
 * `opts.threads` threads (default: the cores the runtime reports).
 */
export async function createWasmBackend(opts: LoadWasmOptions = {}): Promise<WasmBackend> {
  return new WasmBackend(await loadWasm(opts));
}
