// Loader behaviour (bindings/): which file each loader picks, wasm variant selection, that
// the raw native addon checks its own arguments (it can be called without the BaseBackend
// layer), and that the exports required are the kernel registry's (benchmark probes are
// optional). Kernel numerics live in kernels.test.ts.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNative, NATIVE_REQUIRED, nativePlatform } from '../bindings/native.js';
import { loadWasm, relaxedSimdSupported, simdSupported, threadsUnavailableReason, WASM_ABI_VERSION, WASM_REQUIRED, WASM_VARIANTS } from '../bindings/wasm.js';
import { KERNEL_NAMES, wasmName } from '../src/backend/kernels.js';

const wasmDir = fileURLToPath(new URL('../bindings/wasm/', import.meta.url));
const WASM_FILES = ['ferrogpt-relaxed-threads.wasm', 'ferrogpt-simd-threads.wasm', 'ferrogpt-simd.wasm', 'ferrogpt.wasm'];
const haveWasm = WASM_FILES.every((f) => existsSync(`${wasmDir}${f}`));
const nativeFile = fileURLToPath(new URL(`../bindings/native/ferrogpt.${nativePlatform()}.node`, import.meta.url));
const haveNative = existsSync(nativeFile);

/** WebAssembly.validate refusing the probes whose bodies contain `opcode` (0xfd then its LEB128 bytes). */
function refuseProbesWith(opcode: number[]) {
  const validate = WebAssembly.validate;
  vi.spyOn(WebAssembly, 'validate').mockImplementation((bytes) => {
    const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes as ArrayBuffer);
    const has = b.length < 128 && b.some((_, i) => opcode.every((x, j) => b[i + j] === x));
    return has ? false : validate(bytes);
  });
}
const RELAXED_MADD = [0xfd, 0x85, 0x02];
const I8X16_POPCNT = [0xfd, 0x62];

describe('wasm loader', () => {
  afterEach(() => vi.restoreAllMocks());

  it('the variants are the four builds, fastest first, with the SIMD each reports', () => {
    expect(WASM_VARIANTS).toEqual(['relaxed-simd-threads', 'simd128-threads', 'simd128', 'scalar']);
  });

  it.skipIf(!haveWasm)('picks relaxed SIMD + threads where relaxed SIMD validates and memory can be shared (vitest runs Node 20 with the flag)', async () => {
    expect(simdSupported()).toBe(true);
    expect(relaxedSimdSupported()).toBe(true);
    expect(threadsUnavailableReason()).toBeNull();
    const w = await loadWasm({ threads: 2 });
    try {
      expect(w.variant).toBe('relaxed-simd-threads');
      expect(w.simd).toBe('relaxed-simd');
      expect(w.skipped).toEqual([]);
      expect(w.source).toMatch(/ferrogpt-relaxed-threads\.wasm$/);
      expect(w.exports.simd_name()).toBe(2);
      expect(w.exports.threaded()).toBe(1);
      expect(w.exports.memory.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(w.exports.threads()).toBe(2);
      expect(w.exports.abi_version()).toBe(WASM_ABI_VERSION);
    } finally {
      w.pool?.terminate();
    }
  });

  it.skipIf(!haveWasm)('falls back to simd128 + threads when relaxed SIMD does not validate, saying why', async () => {
    refuseProbesWith(RELAXED_MADD);
    expect(relaxedSimdSupported()).toBe(false);
    const w = await loadWasm({ threads: 2 });
    try {
      expect(w.variant).toBe('simd128-threads');
      expect(w.simd).toBe('simd128');
      expect(w.skipped).toEqual([expect.stringMatching(/^relaxed-simd-threads: relaxed SIMD does not validate/)]);
      expect(w.exports.simd_name()).toBe(1);
      expect(w.exports.threads()).toBe(2);
    } finally {
      w.pool?.terminate();
    }
    await expect(loadWasm({ variant: 'relaxed-simd-threads' })).rejects.toThrow(/relaxed-simd-threads WebAssembly build cannot run here: relaxed SIMD does not validate/);
  });

  it.skipIf(!haveWasm)('picks the scalar build when simd128 does not validate', async () => {
    refuseProbesWith(I8X16_POPCNT);
    expect(simdSupported()).toBe(false);
    const w = await loadWasm();
    expect(w.variant).toBe('scalar');
    expect(w.source).toMatch(/ferrogpt\.wasm$/);
    expect(w.exports.simd_name()).toBe(0);
    expect(w.pool).toBeNull();
    await expect(loadWasm({ simd: true })).rejects.toThrow(/SIMD was requested/);
  });

  it.skipIf(!haveWasm)('loads each variant on request; the one-thread builds export their memory and stay at 1 thread', async () => {
    for (const variant of WASM_VARIANTS) {
      const w = await loadWasm({ variant, threads: 3 });
      try {
        expect(w.variant).toBe(variant);
        const threaded = variant.endsWith('-threads');
        expect(w.exports.threaded()).toBe(threaded ? 1 : 0);
        expect(w.exports.threads()).toBe(threaded ? 3 : 1);
        expect(w.exports.set_threads(5)).toBe(threaded ? 3 : 1); // capped at the workers started + 1
        expect(w.exports.memory.buffer instanceof SharedArrayBuffer).toBe(threaded);
      } finally {
        w.pool?.terminate();
      }
    }
    await expect(loadWasm({ variant: 'avx' as never })).rejects.toThrow(/unknown WebAssembly variant "avx"; expected one of relaxed-simd-threads, simd128-threads, simd128, scalar/);
  });

  it.skipIf(!haveWasm)('a module given as bytes says which variant it is', async () => {
    const { readFile } = await import('node:fs/promises');
    const w = await loadWasm({ bytes: await readFile(`${wasmDir}ferrogpt-simd-threads.wasm`), threads: 2 });
    try {
      expect(w.variant).toBe('simd128-threads');
      expect(w.source).toBe('bytes');
      expect(w.exports.threads()).toBe(2);
    } finally {
      w.pool?.terminate();
    }
  });

  it.skipIf(!haveWasm)('honours simd: false, and alloc is zero-filled and 16-byte aligned', async () => {
    const w = await loadWasm({ simd: false });
    expect(w.variant).toBe('scalar');
    const x = w.exports;
    const p = x.alloc(1000) >>> 0;
    expect(p).not.toBe(0);
    expect(p % 16).toBe(0);
    expect(new Uint8Array(x.memory.buffer, p, 1000).every((v) => v === 0)).toBe(true);
    new Uint8Array(x.memory.buffer, p, 1000).fill(7);
    x.dealloc(p, 1000);
    const q = x.alloc(1000) >>> 0;
    expect(new Uint8Array(x.memory.buffer, q, 1000).every((v) => v === 0)).toBe(true);
    x.dealloc(q, 1000);
  });

  it('says what it tried when the file is missing', async () => {
    await expect(loadWasm({ url: new URL('file:///nonexistent/ferrogpt.wasm') })).rejects.toThrow(/not found[\s\S]*nonexistent/);
  });
});

describe('native loader', () => {
  it('names the platform like napi --platform', () => {
    expect(nativePlatform()).toMatch(/^(linux-(x64|arm64|arm)-(gnu|musl|gnueabihf|musleabihf)|darwin-(x64|arm64)|win32-(x64|ia32|arm64)-msvc|[a-z]+-[a-z0-9]+)$/);
  });

  it.skipIf(!haveNative)('loads bindings/native/ferrogpt.<platform>.node', () => {
    const n = loadNative();
    expect(n.source).toBe(nativeFile);
    expect(typeof n.addon.simdName()).toBe('string');
    expect(n.addon.threads()).toBeGreaterThanOrEqual(1);
  });

  it.skipIf(!haveNative)('reports the CPU extensions its kernels use, as /proc/cpuinfo lists them', () => {
    const a = loadNative().addon;
    const ext = a.simdExtensions!();
    if (a.simdName() !== 'avx512' || process.platform !== 'linux' || process.env.FERROGPT_SIMD) {
      // Below AVX-512 none is used; FERROGPT_SIMD=avx512 keeps only avx512bw.
      expect(ext.filter((e) => e !== 'avx512bw')).toEqual([]);
      return;
    }
    const flags = new Set(readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)![1].trim().split(/\s+/));
    const want = [['avx512bw', 'avx512bw'], ['avx512bf16', 'avx512_bf16'], ['avx512vnni', 'avx512_vnni']].filter(([, flag]) => flags.has(flag)).map(([name]) => name);
    expect(ext).toEqual(want);
  });

  it.skipIf(!haveNative)('the raw addon rejects bad arguments, naming them', () => {
    const a = loadNative().addon;
    const F = (n: number) => new Float32Array(n);
    expect(() => a.geluForward(F(9), F(10), 10)).toThrow(/geluForward: out has length 9, expected 10/);
    expect(() => a.geluForward(F(10), new Int32Array(10) as unknown as Float32Array, 10)).toThrow(/inp must be a Float32Array/);
    expect(() => a.geluForward(F(10), F(10), 1.5)).toThrow(/N must be an integer/);
    const buf = F(20);
    expect(() => a.geluForward(buf.subarray(0, 10), buf.subarray(9, 19), 10)).toThrow(/output out overlaps inp/);
    expect(() => a.encoderForward(F(6), Int32Array.from([0, 2, 1]), F(4), F(6), 1, 3, 2)).toThrow(/ids\[1\] = 2 is out of range/);
    expect(() => a.matmulForward(F(4), F(4), F(4), null, 2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1)).toThrow(/overflows/);
    expect(() => a.attentionForward(F(6), F(3), F(18), 1, 3, 2, 1, 0.99999999, 0, 0)).toThrow(/dropout p/);
    expect(() => a.crossentropyForward(F(2), F(6), Int32Array.from([1, 3]), 2, 3, -100)).toThrow(/targets\[1\] = 3/);
  });

  it.skipIf(!haveNative)('lineOffset gives the byte offset within a 64-byte line, and native tensors start on a line', async () => {
    const a = loadNative().addon;
    const buf = new ArrayBuffer(256);
    const base = a.lineOffset(new Float32Array(buf, 0, 4));
    for (let k = 0; k < 16; k++) expect(a.lineOffset(new Float32Array(buf, 4 * k, 4))).toBe((base + 4 * k) % 64);
    expect(() => a.lineOffset(new Int32Array(4) as unknown as Float32Array)).toThrow(/lineOffset: x must be a Float32Array/);
    // Every f32 storage the backend allocates, whatever its size (its protected allocStorage).
    const { createNativeBackend } = await import('../src/backend/native.js');
    const be = createNativeBackend() as unknown as { allocStorage(n: number, dtype: 'f32'): Float32Array };
    for (const n of [1, 5, 16, 1000, 100_003]) {
      const storage = be.allocStorage(n, 'f32');
      expect(storage.length).toBe(n);
      expect(a.lineOffset(storage)).toBe(0);
    }
  });
});

describe('exports derived from the kernel registry', () => {
  it('the native loader requires every registry kernel and the runtime functions, not the benchmark probes', () => {
    expect(new Set(NATIVE_REQUIRED)).toEqual(new Set(['simdName', 'threads', 'setThreads', 'version', 'zero', 'lineOffset', ...KERNEL_NAMES]));
    for (const probe of ['peakGflops', 'memoryBandwidth', 'attentionScratchBytes']) expect(NATIVE_REQUIRED).not.toContain(probe);
  });

  it('the wasm loader requires every registry kernel under its snake_case name, not the FMA probes', () => {
    expect(new Set(WASM_REQUIRED)).toEqual(new Set(['alloc', 'dealloc', 'simd_name', 'abi_version', 'threaded', 'set_threads', 'threads', 'workers_started', ...KERNEL_NAMES.map(wasmName)]));
    expect(WASM_REQUIRED).toContain('encoder_forward');
    for (const probe of ['fma_work', 'fma_lanes', 'fma_work_count']) expect(WASM_REQUIRED).not.toContain(probe);
  });

  it.skipIf(!haveNative)('an addon built without the bench feature loads; its probes throw, saying how to build them', async () => {
    // A stand-in for such an addon: the real one without the three probes.
    const dir = mkdtempSync(join(tmpdir(), 'ferrogpt-nobench-'));
    const stub = join(dir, 'nobench.cjs');
    writeFileSync(
      stub,
      `const a = require(${JSON.stringify(nativeFile)});\n` +
        `const probes = ['peakGflops', 'memoryBandwidth', 'attentionScratchBytes'];\n` +
        `for (const k of Object.getOwnPropertyNames(a)) if (!probes.includes(k)) exports[k] = a[k];\n`,
    );
    const saved = process.env.FERROGPT_NATIVE_PATH;
    process.env.FERROGPT_NATIVE_PATH = stub;
    try {
      vi.resetModules(); // a fresh loader (it caches what it loaded)
      const { createNativeBackend } = await import('../src/backend/native.js');
      const be = createNativeBackend();
      expect(be.source).toBe(stub);
      expect(() => be.peakGflops(1000)).toThrow(`peakGflops: the native addon (${stub}) was built without the bench feature: npm run build:native:bench`);
      expect(() => be.memoryBandwidth(1, 1)).toThrow(/^memoryBandwidth: the native addon .* was built without the bench feature: npm run build:native:bench$/);
      const x = be.alloc(2);
      const y = be.alloc(2);
      be.write(x, Float32Array.from([0, 1]));
      be.geluForward(y, x, 2); // the kernels work
      expect(be.read(y)[1]).toBeCloseTo(0.8412, 3);
    } finally {
      if (saved === undefined) delete process.env.FERROGPT_NATIVE_PATH;
      else process.env.FERROGPT_NATIVE_PATH = saved;
      vi.resetModules();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
