// Loader for the WebAssembly kernels (crates/wasm, built by `npm run build:wasm` into four
// variants, scripts/build-wasm.mjs):
//   relaxed-simd-threads  bindings/wasm/ferrogpt-relaxed-threads.wasm  FMA (relaxed SIMD), workers
//   simd128-threads       bindings/wasm/ferrogpt-simd-threads.wasm     simd128, workers
//   simd128               bindings/wasm/ferrogpt-simd.wasm             simd128, the calling thread
//   scalar                bindings/wasm/ferrogpt.wasm                  no SIMD, the calling thread
//
// The first this engine can run is picked, unless told otherwise: relaxed SIMD and simd128
// are probed with WebAssembly.validate on tiny modules; threads need a shared
// WebAssembly.Memory and workers (Node's worker_threads; in browsers module-less Workers and
// a cross-origin isolated page, or SharedArrayBuffer does not exist). A page that is not
// cross-origin isolated gets one console notice naming the two headers and runs on one
// thread: never silent, never an error. The threaded variants' workers start here
// (bindings/wasm-pool.ts). Works in Node (reads the file) and in browsers (fetches it);
// nothing Node-specific is imported at the top level, so this file bundles for browsers.
// The `new URL('…', import.meta.url)` literals are the pattern bundlers (vite, webpack,
// esbuild) recognise to ship the .wasm files as assets.

import { KERNEL_NAMES, wasmName, type WasmKernels } from '../src/backend/kernels.js';
import { startPool, type WasmPool } from './wasm-pool.js';

/** ABI of crates/wasm this loader speaks; bumped with it. */
export const WASM_ABI_VERSION = 5;

/** The builds, fastest first: the order the loader tries them in. */
export const WASM_VARIANTS = Object.freeze(['relaxed-simd-threads', 'simd128-threads', 'simd128', 'scalar'] as const);
export type WasmVariant = (typeof WASM_VARIANTS)[number];
/** The SIMD instructions a variant's kernels use (backendInfo().simd). */
export type WasmSimd = 'relaxed-simd' | 'simd128' | 'scalar';

/** Pages (64 KiB) the threaded builds' shared memory starts with: scripts/build-wasm.mjs links them with exactly this. */
export const SHARED_INITIAL_PAGES = 64;
/** The most a wasm32 memory can hold: 4 GiB. */
const MAX_PAGES = 65536;

/** What each build is: the SIMD its kernels use, and whether it runs on workers over shared memory. */
const VARIANT: Readonly<Record<WasmVariant, { simd: WasmSimd; threaded: boolean }>> = Object.freeze({
  'relaxed-simd-threads': { simd: 'relaxed-simd', threaded: true },
  'simd128-threads': { simd: 'simd128', threaded: true },
  simd128: { simd: 'simd128', threaded: false },
  scalar: { simd: 'scalar', threaded: false },
});

/**
 * Raw exports of crates/wasm/src/lib.rs: pointers are byte offsets into `memory`. The
 * kernels are the registry's (src/backend/kernels.ts) under their snake_case names
 * (encoderForward → encoder_forward), taking pointers (0 for a null buffer), flags as 0/1
 * and a dropout spec as p, seed, stream; those that use scratch memory return 0, or 1 when
 * it could not be allocated.
 */
export interface WasmExports extends WasmKernels {
  /** The module's memory: exported by the one-thread builds, the shared one imported by the threaded builds. */
  memory: WebAssembly.Memory;
  alloc(nbytes: number): number;
  dealloc(ptr: number, nbytes: number): void;
  /** 2 = relaxed SIMD, 1 = simd128, 0 = scalar. */
  simd_name(): number;
  abi_version(): number;
  /** 1 in the threaded builds. */
  threaded(): number;
  /** Threads a kernel may use, the caller included, capped at the workers started + 1; returns the count set. */
  set_threads(n: number): number;
  threads(): number;
  workers_started(): number;

  // Benchmark probes (peakGflops); not required, as they may be built only with the
  // `bench` feature.
  /** Untimed peak-FMA loop (std has no clock on wasm32); returns a sink value. */
  fma_work?(iters: number): number;
  fma_lanes?(): number;
  fma_work_count?(iters: number): number;
}

export interface LoadedWasm {
  exports: WasmExports;
  variant: WasmVariant;
  simd: WasmSimd;
  /** Where the bytes came from (a path or URL), or 'bytes' when passed in. */
  source: string;
  /** The workers of a threaded variant (null for the one-thread ones). */
  pool: WasmPool | null;
  /** Why each faster variant was not used, e.g. 'relaxed-simd-threads: relaxed SIMD does not validate'. */
  skipped: string[];
}

export interface LoadWasmOptions {
  /** This variant, or an Error naming why it cannot run here. Default: the fastest that can. */
  variant?: WasmVariant;
  /** true: one of the SIMD variants (throws if there is none); false: the scalar build. Ignored when `variant` is given. */
  simd?: boolean;
  /** Threads of a threaded variant, the caller included (default: the cores the runtime reports). */
  threads?: number;
  /** The module's bytes, skipping file lookup (e.g. when a bundler inlines them); say which `variant` they are. */
  bytes?: BufferSource;
  /** Where to fetch/read the module from instead of the packaged files; say which `variant` it is. */
  url?: string | URL;
}

/** A module whose one function has `body` (no locals) and returns `result` (0x7b = v128). */
function probe(body: number[]): Uint8Array<ArrayBuffer> {
  const code = [0, ...body, 0x0b];
  return new Uint8Array([
    0, 97, 115, 109, 1, 0, 0, 0, // magic, version
    1, 5, 1, 0x60, 0, 1, 0x7b, // types: () -> v128
    3, 2, 1, 0, // functions: one of type 0
    10, code.length + 2, 1, code.length, ...code, // code
  ]);
}
const V128_ZERO = [0xfd, 0x0c, ...new Array<number>(16).fill(0)]; // v128.const 0
// i32.const 0, i8x16.splat, i8x16.popcnt — as wasm-feature-detect.
const SIMD_PROBE = probe([0x41, 0, 0xfd, 0x0f, 0xfd, 0x62]);
// f32x4.relaxed_madd(0, 0, 0) (opcode 0xfd 0x105).
const RELAXED_PROBE = probe([...V128_ZERO, ...V128_ZERO, ...V128_ZERO, 0xfd, 0x85, 0x02]);

function validates(bytes: Uint8Array<ArrayBuffer>): boolean {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(bytes);
  } catch {
    return false;
  }
}

/** Whether this engine supports WebAssembly fixed-width SIMD (simd128). */
export function simdSupported(): boolean {
  return validates(SIMD_PROBE);
}

/** Whether this engine supports relaxed SIMD (Chromium ≥ 114, Node ≥ 22; Node 20 with --experimental-wasm-relaxed-simd). */
export function relaxedSimdSupported(): boolean {
  return validates(RELAXED_PROBE);
}

/** Why this runtime cannot run the threaded builds, or null if it can. */
export function threadsUnavailableReason(): string | null {
  if (!isNode()) {
    if ((globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== true) return 'the page is not cross-origin isolated';
    if (typeof (globalThis as { Worker?: unknown }).Worker !== 'function') return 'this context cannot start Workers';
  }
  try {
    const m = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    if (typeof SharedArrayBuffer !== 'function' || !(m.buffer instanceof SharedArrayBuffer)) return 'shared WebAssembly memory is not available';
  } catch (e) {
    return `shared WebAssembly memory is not available (${(e as Error).message})`;
  }
  return null;
}

/** Why `variant` cannot run on this engine, or null if it can. */
export function variantUnavailableReason(variant: WasmVariant): string | null {
  const { simd, threaded } = VARIANT[variant];
  if (simd === 'relaxed-simd' && !relaxedSimdSupported()) return 'relaxed SIMD does not validate' + (isNode() ? ' (Node < 22: run node with --experimental-wasm-relaxed-simd)' : '');
  if (simd !== 'scalar' && !simdSupported()) return 'simd128 does not validate';
  if (threaded) return threadsUnavailableReason();
  return null;
}

let isolationNoticePrinted = false;

/** The one console notice of a page that cannot have threads because it is not cross-origin isolated. */
function isolationNotice(): void {
  if (isolationNoticePrinted || isNode()) return;
  isolationNoticePrinted = true;
  console.info(
    'ferrogpt: this page is not cross-origin isolated, so the WebAssembly kernels run on one thread. ' +
      'Serve it with the headers `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp` to use every core.',
  );
}

function isNode(): boolean {
  return typeof process !== 'undefined' && typeof process.versions === 'object' && typeof process.versions.node === 'string';
}

/**
 * Where a variant's file is: wasm/ next to this module, i.e. bindings/wasm/ for the sources
 * and dist/bindings/wasm/ for the build (npm run build:ts copies the files there, and the
 * package ships them there), so a bundler resolves exactly one existing file per variant and
 * a browser never fetches a missing one.
 */
function fileOf(variant: WasmVariant): URL {
  // Literal URLs so bundlers can see them.
  switch (variant) {
    case 'relaxed-simd-threads':
      return new URL('./wasm/ferrogpt-relaxed-threads.wasm', import.meta.url);
    case 'simd128-threads':
      return new URL('./wasm/ferrogpt-simd-threads.wasm', import.meta.url);
    case 'simd128':
      return new URL('./wasm/ferrogpt-simd.wasm', import.meta.url);
    case 'scalar':
      return new URL('./wasm/ferrogpt.wasm', import.meta.url);
  }
}

async function readBytes(urls: URL[]): Promise<{ bytes: BufferSource; source: string }> {
  const tried: string[] = [];
  for (const url of urls) {
    try {
      if (isNode() && url.protocol === 'file:') {
        const [fs, nodeUrl] = await Promise.all([import('node:fs/promises'), import('node:url')]);
        const path = nodeUrl.fileURLToPath(url);
        const buf = await fs.readFile(path);
        return { bytes: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), source: path };
      }
      const res = await fetch(url);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return { bytes: await res.arrayBuffer(), source: url.href };
    } catch (e) {
      tried.push(`${url.href}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`ferrogpt: WebAssembly kernels not found (build them with \`npm run build:wasm\`). Tried:\n  ${tried.join('\n  ')}`);
}

/** A URL for opts.url: absolute URLs as they are; in Node a plain path is a file path, in browsers relative to the page. */
async function toUrl(u: string | URL): Promise<URL> {
  if (u instanceof URL) return u;
  try {
    return new URL(u);
  } catch {
    if (isNode()) return (await import('node:url')).pathToFileURL(u);
    return new URL(u, (globalThis as { location?: { href: string } }).location?.href);
  }
}

/** Functions every module must export (every kernel of the registry, and the rest). */
export const WASM_REQUIRED: ReadonlyArray<keyof WasmExports> = Object.freeze([
  'alloc', 'dealloc', 'simd_name', 'abi_version', 'threaded', 'set_threads', 'threads', 'workers_started',
  ...KERNEL_NAMES.map(wasmName),
]);

/** The variants to try, in order, and why the faster ones cannot run. */
function plan(opts: LoadWasmOptions): { variants: Array<WasmVariant | null>; skipped: string[] } {
  if (opts.variant !== undefined) {
    if (!(WASM_VARIANTS as readonly string[]).includes(opts.variant)) {
      throw new Error(`ferrogpt: unknown WebAssembly variant ${JSON.stringify(opts.variant)}; expected one of ${WASM_VARIANTS.join(', ')}`);
    }
    const why = variantUnavailableReason(opts.variant);
    if (why) throw new Error(`ferrogpt: the ${opts.variant} WebAssembly build cannot run here: ${why}`);
    return { variants: [opts.variant], skipped: [] as string[] };
  }
  if (opts.bytes || opts.url !== undefined) return { variants: [null], skipped: [] }; // the module says which it is
  const wanted = opts.simd === false ? (['scalar'] as WasmVariant[]) : WASM_VARIANTS.filter((v) => opts.simd !== true || v !== 'scalar');
  const variants: WasmVariant[] = [];
  const skipped: string[] = [];
  for (const v of wanted) {
    const why = variantUnavailableReason(v);
    if (why === null) variants.push(v);
    else skipped.push(`${v}: ${why}`);
  }
  if (variants.length === 0) {
    throw new Error(opts.simd === true ? 'ferrogpt: SIMD was requested but this engine does not support WebAssembly SIMD (simd128)' : `ferrogpt: no WebAssembly build can run here (${skipped.join('; ')})`);
  }
  if (skipped.some((s) => s.includes('not cross-origin isolated'))) isolationNotice();
  return { variants, skipped };
}

/**
 * Fetches (browser) or reads (Node) and instantiates the kernels, the fastest variant this
 * engine runs unless `opts` says otherwise, and starts a threaded variant's workers; each
 * call is a fresh instance (with its own memory and workers).
 */
export async function loadWasm(opts: LoadWasmOptions = {}): Promise<LoadedWasm> {
  if (typeof WebAssembly !== 'object') throw new Error('ferrogpt: this JavaScript engine has no WebAssembly');
  const { variants, skipped } = plan(opts);
  const failures: string[] = [];
  for (const variant of variants) {
    try {
      return await instantiate(variant, opts, skipped.concat(failures));
    } catch (e) {
      // An explicit choice, or the last resort, fails loudly; otherwise try the next build.
      if (variant === variants[variants.length - 1]) {
        if (failures.length) (e as Error).message += ` (also tried: ${failures.join('; ')})`;
        throw e;
      }
      failures.push(`${variant}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error('unreachable');
}

/** Instantiates `variant` (null: whichever the given bytes or url are). */
async function instantiate(variant: WasmVariant | null, opts: LoadWasmOptions, skipped: string[]): Promise<LoadedWasm> {
  let bytes: BufferSource;
  let source: string;
  if (opts.bytes) {
    bytes = opts.bytes;
    source = 'bytes';
  } else {
    ({ bytes, source } = await readBytes([opts.url !== undefined ? await toUrl(opts.url) : fileOf(variant!)]));
  }
  const module = await WebAssembly.compile(bytes);
  // The threaded builds import their (shared) memory; the others export theirs.
  const threaded = variant ? VARIANT[variant].threaded : WebAssembly.Module.imports(module).some((i) => i.kind === 'memory');
  if (threaded && variant === null) {
    const why = threadsUnavailableReason();
    if (why) throw new Error(`ferrogpt: ${source} is a threaded build, which cannot run here: ${why}`);
  }
  const memory = threaded ? new WebAssembly.Memory({ initial: SHARED_INITIAL_PAGES, maximum: MAX_PAGES, shared: true }) : null;
  const instance = await WebAssembly.instantiate(module, memory ? { env: { memory } } : {});
  // (Not named `exports`: in the CommonJS twin (scripts/build-dist.mjs) that name would
  // shadow the module's, which its references to its exported constants go through.)
  const raw = (memory ? Object.assign(Object.create(null), instance.exports, { memory }) : instance.exports) as unknown as WasmExports;
  const missing = WASM_REQUIRED.filter((k) => typeof raw[k] !== 'function');
  if (!(raw.memory instanceof WebAssembly.Memory) || missing.length > 0) {
    throw new Error(`ferrogpt: ${source} is not a ferrogpt kernel module (missing ${missing.join(', ') || 'memory'}); rebuild with npm run build:wasm`);
  }
  if (raw.abi_version() !== WASM_ABI_VERSION) {
    throw new Error(`ferrogpt: ${source} has ABI ${raw.abi_version()}, this loader needs ${WASM_ABI_VERSION}; rebuild with npm run build:wasm`);
  }
  const simd = (['scalar', 'simd128', 'relaxed-simd'] as const)[raw.simd_name()] ?? 'scalar';
  const built = WASM_VARIANTS.find((v) => VARIANT[v].simd === simd && VARIANT[v].threaded === (raw.threaded() === 1));
  if (!built || (variant !== null && built !== variant) || VARIANT[built].threaded !== threaded) {
    throw new Error(`ferrogpt: ${source} was built ${simd}${raw.threaded() === 1 ? ' + threads' : ''}, expected ${variant ?? 'a ferrogpt build'}; rebuild with npm run build:wasm`);
  }
  const pool = memory ? await startPool(module, memory, raw, opts.threads) : null;
  return { exports: raw, variant: built, simd, source, pool, skipped };
}
