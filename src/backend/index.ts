// The backend registry: which backend the library computes with.
//
// Three backends implement the same `Backend` interface: 'native' (the napi addon, fastest),
// 'wasm' (the same Rust kernels compiled to WebAssembly) and 'reference' (plain TypeScript,
// slow, the specification). The default is the best one that loads, in that order; choosing
// it is never silent: a fallback prints one notice on stderr, and FERROGPT_DEBUG=1 prints
// one line saying which backend was chosen and why the others were skipped.
//
// Initialisation is asynchronous because the wasm module is compiled asynchronously
// (browsers require it for modules over 4 KB). So:
//   await initBackend();          // the default (env FERROGPT_BACKEND, else native → wasm → reference)
//   await useBackend('wasm');     // an explicit choice; throws, naming why, if it cannot load
//   getBackend();                 // sync: the current backend; throws if neither ran yet
//   backendInfo();                // sync: getBackend().info()
// Each backend is created at most once per process and reused: a backend owns the storage
// of its tensors, so switching back and forth keeps earlier tensors valid on their backend.

import type { Backend, BackendInfo, BackendName } from './backend.js';
import { createReferenceBackend } from './reference.js';
import type { LoadWasmOptions, WasmVariant } from '../../bindings/wasm.js';

export const BACKEND_NAMES: readonly BackendName[] = Object.freeze(['native', 'wasm', 'reference'] as const);

/** One backend's availability, as reported by availableBackends(). */
export type BackendAvailability =
  | { name: BackendName; available: true; backend: Backend }
  | { name: BackendName; available: false; reason: string };

/** A backend that can change its thread count (native, wasm). */
interface Threaded {
  setThreads(n: number): void;
}

// Loaders are dynamic imports so that a backend whose module fails to load (no prebuilt
// addon for this platform, no wasm file) costs nothing and cannot break the others, and so
// that a browser bundle never pulls in the Node-only native loader unless it is asked for.
const loaders: Record<BackendName, () => Promise<Backend>> = {
  // The async variant works on every Node >= 20 (the sync one needs process.getBuiltinModule).
  native: async () => (await import('./native.js')).createNativeBackendAsync(),
  // FERROGPT_WASM_VARIANT=simd128 (etc.) picks one build, as FERROGPT_SIMD lowers native's
  // level: for tests and comparisons; loadWasm refuses an unknown or unsupported one.
  wasm: async () => (await import('./wasm.js')).createWasmBackend({ variant: env('FERROGPT_WASM_VARIANT') as WasmVariant | undefined }),
  reference: async () => createReferenceBackend(),
};

const loaded = new Map<BackendName, Backend>();
const loading = new Map<BackendName, Promise<Backend>>();
let current: Backend | null = null;
let noticePrinted = false;

/** The backend `name`, created once and cached; rejects with an Error naming why it cannot load. */
async function load(name: BackendName): Promise<Backend> {
  const ready = loaded.get(name);
  if (ready) return ready;
  let pending = loading.get(name);
  if (!pending) {
    pending = loaders[name]().then(
      (backend) => {
        loaded.set(name, backend);
        loading.delete(name);
        return backend;
      },
      (err: unknown) => {
        loading.delete(name); // a later call may try again (e.g. after a build)
        throw new Error(`ferrogpt: the ${name} backend is unavailable: ${reasonOf(err)}`, { cause: err });
      },
    );
    loading.set(name, pending);
  }
  return pending;
}

function checkName(name: unknown, source: string): BackendName {
  if (typeof name !== 'string' || !(BACKEND_NAMES as readonly string[]).includes(name)) {
    throw new Error(`${source}: unknown backend ${JSON.stringify(name)}; expected one of ${BACKEND_NAMES.map((n) => `'${n}'`).join(', ')}`);
  }
  return name as BackendName;
}

/**
 * Makes `name` the current backend and returns it. Throws an Error saying why if it cannot
 * load (an explicit choice never falls back). Tensors stay valid on the backend that
 * allocated them.
 */
export async function useBackend(name: BackendName): Promise<Backend> {
  const backend = await load(checkName(name, 'useBackend'));
  current = backend;
  return backend;
}

/**
 * Initialises the default backend if none is current, and returns the current one.
 * FERROGPT_BACKEND=<name> picks it (strictly: no fallback); otherwise the first of
 * native → wasm → reference that loads. Falling back prints one notice on stderr (once
 * per process); FERROGPT_DEBUG=1 prints one line with the choice and the reasons instead.
 */
export async function initBackend(): Promise<Backend> {
  if (current) return current;
  const fromEnv = env('FERROGPT_BACKEND');
  if (fromEnv) {
    const backend = await useBackend(checkName(fromEnv, 'FERROGPT_BACKEND'));
    if (debug()) stderrLine(`ferrogpt: backend ${backend.name} (chosen by FERROGPT_BACKEND)`);
    return backend;
  }
  const skipped: string[] = [];
  for (const name of BACKEND_NAMES) {
    try {
      const backend = await load(name);
      current = backend;
      if (debug()) {
        const why = skipped.length === 0 ? 'the first in the default order native → wasm → reference' : `skipped ${skipped.join('; ')}`;
        stderrLine(`ferrogpt: backend ${name} (${why})`);
      } else if (skipped.length > 0 && !noticePrinted) {
        noticePrinted = true;
        stderrLine(`ferrogpt: using the ${name} backend (slower): ${skipped.join('; ')}. Set FERROGPT_BACKEND=${name} to silence this notice.`);
      }
      return backend;
    } catch (err) {
      skipped.push(`${name}: ${reasonOf(err)}`);
    }
  }
  // Unreachable in practice: the reference backend has no dependencies.
  throw new Error(`ferrogpt: no backend could be loaded (${skipped.join('; ')})`);
}

/** The current backend. Synchronous: call `await initBackend()` or `await useBackend(name)` first. */
export function getBackend(): Backend {
  if (!current) {
    throw new Error("ferrogpt: no backend initialised: call `await initBackend()` (the default) or `await useBackend('native' | 'wasm' | 'reference')` first");
  }
  return current;
}

/**
 * A wasm backend of its own, outside the registry: a chosen build (`variant`:
 * 'relaxed-simd-threads' | 'simd128-threads' | 'simd128' | 'scalar'; default: the fastest
 * this engine runs) and thread count (default: the cores the runtime reports). Pass it to
 * GPT.create / GPT.load, or call `useBackend('wasm')` for the shared default one.
 */
export async function createWasmBackend(opts: LoadWasmOptions = {}): Promise<Backend & { setThreads(n: number): void; ready(): Promise<number> }> {
  return (await import('./wasm.js')).createWasmBackend(opts);
}

/** { name, simd, threads, version } of the current backend (see getBackend). */
export function backendInfo(): BackendInfo {
  return getBackend().info();
}

/**
 * Sets the number of threads the current backend uses (an integer >= 1, default: the cores
 * the runtime reports) and returns the thread count now in effect. Native: its thread
 * pool, process-wide. Wasm: the workers of a threaded variant; where fewer have started,
 * the rest start in the background and `await getBackend().ready()` says when they run
 * (one-thread variants stay at 1). Reference: always 1.
 */
export function setThreads(n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new Error(`setThreads: n must be an integer >= 1, got ${n}`);
  const backend = getBackend();
  const threaded = backend as Partial<Threaded>;
  if (typeof threaded.setThreads === 'function') threaded.setThreads(n);
  return backend.info().threads;
}

/**
 * Tries every backend (without changing the current one) and reports which load, with the
 * reason for each that does not. Used by the tests, which must fail loudly when a backend
 * that CI builds is missing.
 */
export async function availableBackends(): Promise<BackendAvailability[]> {
  const out: BackendAvailability[] = [];
  for (const name of BACKEND_NAMES) {
    try {
      out.push({ name, available: true, backend: await load(name) });
    } catch (err) {
      out.push({ name, available: false, reason: reasonOf(err) });
    }
  }
  return out;
}

// ---- small helpers (this module also runs in browsers, where `process` may not exist) ----

function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const value = proc?.env?.[name];
  return value === undefined || value === '' ? undefined : value;
}

function debug(): boolean {
  const v = env('FERROGPT_DEBUG');
  return v !== undefined && v !== '0' && v !== 'false';
}

function stderrLine(line: string): void {
  const proc = (globalThis as { process?: { stderr?: { write(s: string): unknown } } }).process;
  if (proc?.stderr?.write) proc.stderr.write(line + '\n');
  else console.warn(line);
}

function reasonOf(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  // Keep the notice on one line (loaders list what they tried on several lines) and drop
  // our own prefix when re-wrapping.
  return msg
    .replace(/^ferrogpt: the \w+ backend is unavailable: /, '')
    .replace(/^ferrogpt: /, '')
    .replace(/\s*\n\s*/g, ' ')
    .trim();
}
