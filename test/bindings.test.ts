// Loader behaviour (bindings/): which file each loader picks, wasm variant selection, that
// the raw native addon checks its own arguments (it can be called without the BaseBackend
// layer), and that the exports required are the kernel registry's (benchmark probes are
// optional). Kernel numerics live in kernels.test.ts.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNative, NATIVE_REQUIRED, nativePlatform } from '../bindings/native.js';
import { loadWasm, simdSupported, WASM_ABI_VERSION, WASM_REQUIRED } from '../bindings/wasm.js';
import { KERNEL_NAMES, wasmName } from '../src/backend/kernels.js';

const wasmDir = fileURLToPath(new URL('../bindings/wasm/', import.meta.url));
const haveWasm = existsSync(`${wasmDir}ferrogpt-simd.wasm`) && existsSync(`${wasmDir}ferrogpt.wasm`);
const nativeFile = fileURLToPath(new URL(`../bindings/native/ferrogpt.${nativePlatform()}.node`, import.meta.url));
const haveNative = existsSync(nativeFile);

describe('wasm loader', () => {
  afterEach(() => vi.restoreAllMocks());

  it.skipIf(!haveWasm)('picks simd128 when the engine validates a v128 module', async () => {
    expect(simdSupported()).toBe(true); // Node 20 (V8) supports simd128
    const w = await loadWasm();
    expect(w.variant).toBe('simd128');
    expect(w.source).toMatch(/ferrogpt-simd\.wasm$/);
    expect(w.exports.simd_name()).toBe(1);
    expect(w.exports.abi_version()).toBe(WASM_ABI_VERSION);
  });

  it.skipIf(!haveWasm)('picks the scalar build when simd128 does not validate', async () => {
    const validate = WebAssembly.validate;
    vi.spyOn(WebAssembly, 'validate').mockImplementation((bytes) => {
      const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes as ArrayBuffer);
      return b.length < 64 ? false : validate(bytes); // the probe is tiny
    });
    expect(simdSupported()).toBe(false);
    const w = await loadWasm();
    expect(w.variant).toBe('scalar');
    expect(w.source).toMatch(/ferrogpt\.wasm$/);
    expect(w.exports.simd_name()).toBe(0);
    await expect(loadWasm({ simd: true })).rejects.toThrow(/simd128 was requested/);
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
    expect(new Set(WASM_REQUIRED)).toEqual(new Set(['alloc', 'dealloc', 'simd_name', 'abi_version', ...KERNEL_NAMES.map(wasmName)]));
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
