// The workers of a threaded WebAssembly build (crates/wasm/src/pool.rs runs the kernels'
// tasks on them).
//
// Each worker is a Node `worker_threads` Worker or a browser Web Worker running
// WORKER_SOURCE (inline: nothing for a bundler to find, no file to serve). It instantiates
// the same compiled module on the same shared memory, gives itself its own stack and TLS
// block (allocated here, by the calling thread, with the module's `alloc`), says 'ready'
// and enters `worker_main(id)`, which never returns: from then on the worker waits on the
// shared memory for tasks, not on messages.
//
// The calling thread (the one that owns the backend) is thread 0 and never blocks: in a
// browser it may be the page's main thread, where Atomics.wait is forbidden, so it spins
// for the last tasks of a kernel instead (pool.rs). Training belongs in a Worker anyway, to
// keep the page drawing; there the same threads are used.

import type { WasmExports } from './wasm.js';

/** Each worker's stack: the size scripts/build-wasm.mjs links the main stack with. */
export const WORKER_STACK_BYTES = 1 << 20;
/** The most workers pool.rs can address (the helper count is a byte). */
export const MAX_WORKERS = 255;
/** How long a worker may take to start before the pool gives up on it. */
const START_TIMEOUT_MS = 30_000;

/** The worker program, as a classic script: Node runs it with { eval: true }, browsers from a Blob URL. */
const WORKER_SOURCE = `
'use strict';
const node = typeof require === 'function' && typeof self === 'undefined';
const port = node ? require('node:worker_threads').parentPort : self;
const send = (m) => port.postMessage(m);
function start(m) {
  let x;
  try {
    x = new WebAssembly.Instance(m.module, { env: { memory: m.memory } }).exports;
    x.__stack_pointer.value = m.stackTop;
    x.__wasm_init_tls(m.tls);
  } catch (e) {
    send({ type: 'error', id: m.id, message: 'could not start: ' + (e && e.message || e) });
    return;
  }
  send({ type: 'ready', id: m.id });
  try {
    x.worker_main(m.id);
  } catch (e) {
    x.worker_failed();
    send({ type: 'error', id: m.id, message: 'trapped: ' + (e && e.message || e) });
  }
}
if (node) port.once('message', start); else self.onmessage = (e) => { self.onmessage = null; start(e.data); };
`;

/** FERROGPT_THREADS in Node (as for the native addon: an integer in 1..256, else ignored), else the cores this runtime reports. */
export async function defaultThreads(): Promise<number> {
  if (isNode()) {
    const fromEnv = Number(process.env.FERROGPT_THREADS?.trim() || NaN);
    if (Number.isInteger(fromEnv) && fromEnv >= 1 && fromEnv <= MAX_WORKERS + 1) return fromEnv;
    const os = await import('node:os');
    return Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
  }
  return Math.max(1, (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1);
}

function isNode(): boolean {
  return typeof process !== 'undefined' && typeof process.versions === 'object' && typeof process.versions.node === 'string';
}

/** What a worker needs from the threaded build beyond the kernels. */
interface ThreadExports {
  __tls_size: WebAssembly.Global;
  __tls_align: WebAssembly.Global;
}

interface Started {
  terminate(): void;
}

export interface WasmPool {
  /** Threads kernels use now, the caller included. */
  threads(): number;
  /**
   * Asks for `n` threads, the caller included. Takes effect at once when enough workers
   * have started; otherwise the missing ones start and `ready()` resolves when they run.
   */
  setThreads(n: number): void;
  /** Resolves with the thread count once the last `setThreads` has taken effect. */
  ready(): Promise<number>;
  /** Why a worker failed, if one did (kernels then throw, naming it). */
  readonly failure: string | null;
  /** Stops every worker; kernels run on the calling thread from then on. */
  terminate(): void;
}

/** Starts `threads - 1` workers (default: the cores the runtime reports) on `memory`. */
export async function startPool(module: WebAssembly.Module, memory: WebAssembly.Memory, x: WasmExports, threads?: number): Promise<WasmPool> {
  await loadNodeWorker();
  const pool = new Pool(module, memory, x);
  pool.setThreads(threads ?? (await defaultThreads()));
  await pool.ready();
  return pool;
}

class Pool implements WasmPool {
  private readonly workers: Started[] = [];
  private pending: Promise<number> = Promise.resolve(1);
  private wanted = 1;
  failure: string | null = null;

  constructor(
    private readonly module: WebAssembly.Module,
    private readonly memory: WebAssembly.Memory,
    private readonly x: WasmExports,
  ) {}

  threads(): number {
    return this.x.threads();
  }

  setThreads(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new Error(`setThreads: n must be an integer >= 1, got ${n}`);
    if (n - 1 > MAX_WORKERS) throw new Error(`setThreads: at most ${MAX_WORKERS + 1} threads, got ${n}`);
    if (this.failure) throw new Error(`setThreads: the WebAssembly thread pool has failed (${this.failure})`);
    this.wanted = n;
    // At once, as far as the workers already running allow.
    this.x.set_threads(n);
    const missing = n - 1 - this.workers.length;
    if (missing <= 0) {
      this.pending = Promise.resolve(this.x.threads());
      return;
    }
    const starts: Promise<void>[] = [];
    for (let i = 0; i < missing; i++) starts.push(this.startWorker(this.workers.length));
    this.pending = Promise.all(starts).then(async () => {
      await this.untilRegistered(n - 1);
      // A later setThreads may have asked for another count meanwhile: keep the latest.
      return this.x.set_threads(this.wanted);
    });
  }

  ready(): Promise<number> {
    return this.pending;
  }

  terminate(): void {
    this.x.set_threads(1);
    for (const w of this.workers.splice(0)) w.terminate();
  }

  /** Starts worker `id` (its slot is taken at once); resolves when it says 'ready'. */
  private startWorker(id: number): Promise<void> {
    const t = this.x as unknown as ThreadExports;
    const tlsSize = Number(t.__tls_size.value);
    const tlsAlign = Number(t.__tls_align.value);
    if (tlsAlign > 16) throw new Error(`ferrogpt: the threaded WebAssembly build needs ${tlsAlign}-byte TLS alignment; alloc gives 16`);
    const stack = this.x.alloc(WORKER_STACK_BYTES) >>> 0;
    const tls = this.x.alloc(Math.max(tlsSize, 16)) >>> 0;
    if (stack === 0 || tls === 0) throw new Error('ferrogpt: out of WebAssembly memory for a worker stack');
    const message = { module: this.module, memory: this.memory, id, stackTop: stack + WORKER_STACK_BYTES, tls };
    let resolveReady!: () => void;
    let rejectReady!: (e: Error) => void;
    const ready = new Promise<void>((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    const timer = setTimeout(() => rejectReady(new Error(`ferrogpt: WebAssembly worker ${id} did not start within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    const onMessage = (m: { type: string; id: number; message?: string }) => {
      if (m.type === 'ready') {
        clearTimeout(timer);
        resolveReady();
      } else if (m.type === 'error') {
        clearTimeout(timer);
        this.fail(`worker ${id} ${m.message}`);
        rejectReady(new Error(`ferrogpt: WebAssembly worker ${id} ${m.message}`));
      }
    };
    const onError = (e: unknown) => {
      clearTimeout(timer);
      const why = `worker ${id} failed: ${(e as Error)?.message ?? e}`;
      this.fail(why);
      rejectReady(new Error(`ferrogpt: WebAssembly ${why}`));
    };
    this.workers.push(spawn(message, onMessage, onError));
    return ready;
  }

  /** Waits, without blocking the thread, until `n` workers have entered worker_main. */
  private async untilRegistered(n: number): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (this.x.workers_started() < n) {
      if (this.failure) throw new Error(`ferrogpt: ${this.failure}`);
      if (Date.now() > deadline) throw new Error(`ferrogpt: only ${this.x.workers_started()} of ${n} WebAssembly workers started`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  private fail(why: string): void {
    this.failure ??= why;
  }
}

type NodeWorker = {
  postMessage(m: unknown): void;
  on(ev: string, f: (v: never) => void): void;
  unref(): void;
  terminate(): Promise<number>;
};

let nodeWorkerCtor: (new (src: string, opts: { eval: boolean }) => NodeWorker) | null = null;
let blobUrl: string | null = null;

/** Node's Worker class, loaded once before the first worker starts (startPool), so spawn can be synchronous. */
async function loadNodeWorker(): Promise<void> {
  if (isNode() && !nodeWorkerCtor) nodeWorkerCtor = (await import('node:worker_threads')).Worker as unknown as typeof nodeWorkerCtor;
}

function spawn(message: unknown, onMessage: (m: { type: string; id: number; message?: string }) => void, onError: (e: unknown) => void): Started {
  if (isNode()) {
    if (!nodeWorkerCtor) throw new Error('ferrogpt: internal: loadNodeWorker() was not awaited');
    const w = new nodeWorkerCtor(WORKER_SOURCE, { eval: true });
    w.on('message', onMessage as (v: never) => void);
    w.on('error', onError as (v: never) => void);
    // A worker blocked in worker_main must not keep the process alive.
    w.unref();
    w.postMessage(message);
    return { terminate: () => void w.terminate() };
  }
  blobUrl ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
  const w = new Worker(blobUrl);
  w.onmessage = (e: MessageEvent) => onMessage(e.data);
  w.onerror = (e: ErrorEvent) => onError(new Error(e.message));
  w.postMessage(message);
  return { terminate: () => w.terminate() };
}
