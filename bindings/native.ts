// Loader for the native addon (crates/node, built by `npm run build:native`).
//
// Looks, in order, for:
//   1. $FERROGPT_NATIVE_PATH, if set (a path to a .node file);
//   2. bindings/native/ferrogpt.<platform>.node in this package (napi --platform naming,
//      e.g. ferrogpt.linux-x64-gnu.node), found from both the TypeScript sources
//      (bindings/native.ts) and the compiled output (dist/bindings/native.js);
//   3. the prebuilt platform package `ferrogpt-<platform>` (e.g. ferrogpt-linux-x64-gnu);
// and throws an Error listing everything it tried, never silently falling back.
//
// Node-only, but nothing Node-specific is imported at the top level, so browser bundles
// that include this file (and never call it) still build: Node modules are reached through
// process.getBuiltinModule (sync, Node >= 20.16) or dynamic import() (loadNativeAsync).

import { KERNEL_NAMES, type NativeKernels } from '../src/backend/kernels.js';

/**
 * The functions the addon exports (see crates/node/src/lib.rs). Buffers are views. The
 * kernels are the registry's (src/backend/kernels.ts), under the same names and arguments
 * (a dropout spec as p, seed, stream); the rest are listed here.
 */
export interface NativeAddon extends NativeKernels {
  simdName(): string;
  /** CPU extensions beyond simdName() the kernels use (optional: addons built before it lack it). */
  simdExtensions?(): string[];
  threads(): number;
  setThreads(n: number): void;
  version(): string;
  zero(x: Float32Array, N: number): void;
  /** Bytes from the start of the 64-byte cache line holding x[0] to x[0]. */
  lineOffset(x: Float32Array): number;

  // Benchmark probes: only in an addon built with the `bench` cargo feature
  // (npm run build:native:bench), so not required.
  /** Single-thread peak fp32 FMA rate in GFLOPS. */
  peakGflops?(iters: number): number;
  /** Read bandwidth of main memory in GB/s on the addon's threads (best of reps passes over mib MiB). */
  memoryBandwidth?(mib: number, reps: number): number;
  /** STREAM copy or triad bandwidth in GB/s on the addon's threads (best of reps passes over arrays of mib MiB). */
  streamBandwidth?(kind: 'copy' | 'triad', mib: number, reps: number): number;
  /** Bytes of scratch attention needs at these dims on the current thread count (for bench/). */
  attentionScratchBytes?(B: number, T: number, C: number, NH: number): number;
}

export interface LoadedNative {
  addon: NativeAddon;
  /** Where it was loaded from: a file path or a package name. */
  source: string;
  /** napi's platform name, e.g. 'linux-x64-gnu'. */
  platform: string;
}

/** Functions every addon must export (every kernel of the registry, and the rest); a mismatch (a stale build) is an error. */
export const NATIVE_REQUIRED: ReadonlyArray<keyof NativeAddon> = Object.freeze(['simdName', 'threads', 'setThreads', 'version', 'zero', 'lineOffset', ...KERNEL_NAMES]);

interface NodeModules {
  createRequire(url: string | URL): (id: string) => unknown;
  existsSync(path: string): boolean;
  readFileSync(path: string, enc: 'utf8'): string;
  fileURLToPath(url: URL): string;
}

function isNode(): boolean {
  return typeof process !== 'undefined' && typeof process.versions === 'object' && typeof process.versions.node === 'string';
}

function syncNodeModules(): NodeModules {
  const get = (process as { getBuiltinModule?: (id: string) => any }).getBuiltinModule;
  if (typeof get !== 'function') {
    throw new Error(`ferrogpt: loading the native addon synchronously needs Node >= 20.16 (process.getBuiltinModule); this is Node ${process.versions.node}. Use loadNativeAsync().`);
  }
  const mod = get('node:module');
  const fs = get('node:fs');
  const url = get('node:url');
  return { createRequire: mod.createRequire, existsSync: fs.existsSync, readFileSync: fs.readFileSync, fileURLToPath: url.fileURLToPath };
}

async function asyncNodeModules(): Promise<NodeModules> {
  const [mod, fs, url] = await Promise.all([import('node:module'), import('node:fs'), import('node:url')]);
  return {
    createRequire: mod.createRequire,
    existsSync: fs.existsSync,
    readFileSync: (p, enc) => fs.readFileSync(p, enc),
    fileURLToPath: url.fileURLToPath,
  };
}

function isMusl(m: NodeModules): boolean {
  try {
    const report = process.report?.getReport?.() as { header?: { glibcVersionRuntime?: string } } | undefined;
    if (report?.header?.glibcVersionRuntime) return false;
  } catch {
    // fall through
  }
  try {
    return m.readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
  } catch {
    return true; // no glibc found
  }
}

/** napi-rs's platform name for this machine, e.g. 'linux-x64-gnu', 'darwin-arm64', 'win32-x64-msvc'. */
export function nativePlatform(m?: NodeModules): string {
  const { platform, arch } = process;
  switch (platform) {
    case 'linux': {
      const libc = m && isMusl(m) ? 'musl' : 'gnu';
      if (arch === 'arm') return `linux-arm-${libc === 'gnu' ? 'gnueabihf' : 'musleabihf'}`;
      return `linux-${arch}-${libc}`;
    }
    case 'win32':
      return `win32-${arch}-msvc`;
    case 'android':
      return arch === 'arm' ? 'android-arm-eabi' : `android-${arch}`;
    default: // darwin, freebsd, ...
      return `${platform}-${arch}`;
  }
}

function load(m: NodeModules): LoadedNative {
  const platform = nativePlatform(m);
  const file = `ferrogpt.${platform}.node`;
  const require = m.createRequire(import.meta.url);
  const tried: string[] = [];

  const attempt = (source: string, id: string): LoadedNative | null => {
    try {
      const addon = require(id) as NativeAddon;
      const missing = NATIVE_REQUIRED.filter((k) => typeof addon[k] !== 'function');
      if (missing.length > 0) {
        tried.push(`${source}: loaded, but it lacks ${missing.join(', ')} (stale build? run npm run build:native)`);
        return null;
      }
      return { addon, source, platform };
    } catch (e) {
      tried.push(`${source}: ${(e as Error).message.split('\n')[0]}`);
      return null;
    }
  };

  const override = process.env.FERROGPT_NATIVE_PATH;
  if (override) {
    const hit = attempt(override, override);
    if (hit) return hit;
  }
  // bindings/native.ts (sources, vitest) and dist/bindings/native.js (compiled) both
  // resolve to <package>/bindings/native/.
  // (/* @vite-ignore */: these are folders to look in at run time, not assets for a bundler to emit.)
  const dirs = [new URL(/* @vite-ignore */ './native/', import.meta.url), new URL(/* @vite-ignore */ '../../bindings/native/', import.meta.url)];
  const seen = new Set<string>();
  for (const dir of dirs) {
    const path = m.fileURLToPath(new URL(file, dir));
    if (seen.has(path)) continue;
    seen.add(path);
    if (!m.existsSync(path)) {
      tried.push(`${path}: not found`);
      continue;
    }
    const hit = attempt(path, path);
    if (hit) return hit;
  }
  const pkg = `ferrogpt-${platform}`;
  const hit = attempt(`package ${pkg}`, pkg);
  if (hit) return hit;

  throw new Error(
    `ferrogpt: no native addon for ${platform} (the prebuilt one is the optional package ${pkg}; from a clone, build it with \`npm run build:native\`; or use the wasm backend). Tried:\n  ` +
      tried.join('\n  '),
  );
}

let cached: LoadedNative | undefined;

/** Loads the addon (once; later calls return the same). Throws an Error saying what was tried. */
export function loadNative(): LoadedNative {
  if (cached) return cached;
  if (!isNode()) throw new Error('ferrogpt: the native backend needs Node.js; use the wasm backend in browsers');
  cached = load(syncNodeModules());
  return cached;
}

/** As loadNative, for Node versions without process.getBuiltinModule (< 20.16). */
export async function loadNativeAsync(): Promise<LoadedNative> {
  if (cached) return cached;
  if (!isNode()) throw new Error('ferrogpt: the native backend needs Node.js; use the wasm backend in browsers');
  cached = load(await asyncNodeModules());
  return cached;
}
