// Loader for the WebAssembly kernels (crates/wasm, built by `npm run build:wasm` into
// bindings/wasm/ferrogpt-simd.wasm and bindings/wasm/ferrogpt.wasm).
//
// Picks the simd128 build iff this engine validates a tiny module that uses a v128
// instruction, unless told otherwise. Works in Node (reads the file) and in browsers
// (fetches it); nothing Node-specific is imported at the top level, so this file bundles
// for browsers. The `new URL('…', import.meta.url)` literals are the pattern bundlers
// (vite, webpack, esbuild) recognise to ship the .wasm files as assets.

import { KERNEL_NAMES, wasmName, type WasmKernels } from '../src/backend/kernels.js';

/** ABI of crates/wasm this loader speaks; bumped with it. */
export const WASM_ABI_VERSION = 4;

export type WasmVariant = 'simd128' | 'scalar';

/**
 * Raw exports of crates/wasm/src/lib.rs: pointers are byte offsets into `memory`. The
 * kernels are the registry's (src/backend/kernels.ts) under their snake_case names
 * (encoderForward → encoder_forward), taking pointers (0 for a null buffer), flags as 0/1
 * and a dropout spec as p, seed, stream; those that use scratch memory return 0, or 1 when
 * it could not be allocated.
 */
export interface WasmExports extends WasmKernels {
  memory: WebAssembly.Memory;
  alloc(nbytes: number): number;
  dealloc(ptr: number, nbytes: number): void;
  /** 1 = simd128, 0 = scalar. */
  simd_name(): number;
  abi_version(): number;

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
  /** Where the bytes came from (a path or URL), or 'bytes' when passed in. */
  source: string;
}

export interface LoadWasmOptions {
  /** true: require simd128 (throws if unsupported); false: scalar; default: detect. */
  simd?: boolean;
  /** The module's bytes, skipping file lookup (e.g. when a bundler inlines them). */
  bytes?: BufferSource;
  /** Where to fetch/read the module from instead of the packaged files. */
  url?: string | URL;
}

// (module (func (result v128) i32.const 0 i8x16.splat i8x16.popcnt)) — as wasm-feature-detect.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

/** Whether this engine supports WebAssembly fixed-width SIMD (simd128). */
export function simdSupported(): boolean {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
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
function candidates(variant: WasmVariant): URL[] {
  // Literal URLs so bundlers can see them.
  return variant === 'simd128' ? [new URL('./wasm/ferrogpt-simd.wasm', import.meta.url)] : [new URL('./wasm/ferrogpt.wasm', import.meta.url)];
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
export const WASM_REQUIRED: ReadonlyArray<keyof WasmExports> = Object.freeze(['alloc', 'dealloc', 'simd_name', 'abi_version', ...KERNEL_NAMES.map(wasmName)]);

/** Fetches (browser) or reads (Node) and instantiates the kernels; each call is a fresh instance. */
export async function loadWasm(opts: LoadWasmOptions = {}): Promise<LoadedWasm> {
  if (typeof WebAssembly !== 'object') throw new Error('ferrogpt: this JavaScript engine has no WebAssembly');
  const supported = simdSupported();
  if (opts.simd === true && !supported) {
    throw new Error('ferrogpt: simd128 was requested but this engine does not support WebAssembly SIMD');
  }
  const variant: WasmVariant = (opts.simd ?? supported) ? 'simd128' : 'scalar';

  let bytes: BufferSource;
  let source: string;
  if (opts.bytes) {
    bytes = opts.bytes;
    source = 'bytes';
  } else if (opts.url !== undefined) {
    ({ bytes, source } = await readBytes([await toUrl(opts.url)]));
  } else {
    ({ bytes, source } = await readBytes(candidates(variant)));
  }

  const { instance } = await WebAssembly.instantiate(bytes, {});
  // (Not named `exports`: in the CommonJS twin (scripts/build-dist.mjs) that name would
  // shadow the module's, which its references to its exported constants go through.)
  const raw = instance.exports as unknown as WasmExports;
  const missing = WASM_REQUIRED.filter((k) => typeof raw[k] !== 'function');
  if (!(raw.memory instanceof WebAssembly.Memory) || missing.length > 0) {
    throw new Error(`ferrogpt: ${source} is not a ferrogpt kernel module (missing ${missing.join(', ') || 'memory'}); rebuild with npm run build:wasm`);
  }
  if (raw.abi_version() !== WASM_ABI_VERSION) {
    throw new Error(`ferrogpt: ${source} has ABI ${raw.abi_version()}, this loader needs ${WASM_ABI_VERSION}; rebuild with npm run build:wasm`);
  }
  const built: WasmVariant = raw.simd_name() === 1 ? 'simd128' : 'scalar';
  if (built !== variant && !opts.bytes && opts.url === undefined) {
    throw new Error(`ferrogpt: ${source} was built ${built}, expected ${variant}; rebuild with npm run build:wasm`);
  }
  return { exports: raw, variant: built, source };
}
