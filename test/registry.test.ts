// The backend registry (src/backend/index.ts): explicit choice, the default order, the
// FERROGPT_BACKEND / FERROGPT_DEBUG variables, and that falling back is never silent.
// Each test imports a fresh copy of the registry (vi.resetModules) so no state leaks.

import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { allowMissing, backendOrNull } from './helpers/backends.js';

const pkgVersion = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

type Registry = typeof import('../src/backend/index.js');

async function freshRegistry(): Promise<Registry> {
  vi.resetModules();
  return import('../src/backend/index.js');
}

let stderr: string[];
const savedEnv = { ...process.env };

beforeEach(() => {
  stderr = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr.push(String(chunk));
    return true;
  });
  delete process.env.FERROGPT_BACKEND;
  delete process.env.FERROGPT_DEBUG;
});

afterEach(() => {
  vi.restoreAllMocks();
  vi.doUnmock('../src/backend/native.js');
  vi.doUnmock('../src/backend/wasm.js');
  process.env = { ...savedEnv };
});

describe('backend registry', () => {
  it('getBackend() before initialisation throws, saying what to call', async () => {
    const r = await freshRegistry();
    expect(() => r.getBackend()).toThrow(/no backend initialised: call `await initBackend\(\)`.*`await useBackend\(/);
    expect(() => r.backendInfo()).toThrow(/no backend initialised/);
  });

  it('useBackend(reference) makes it current; backendInfo() describes it', async () => {
    const r = await freshRegistry();
    const b = await r.useBackend('reference');
    expect(r.getBackend()).toBe(b);
    expect(r.backendInfo()).toEqual({ name: 'reference', simd: 'none', extensions: [], threads: 1, version: pkgVersion });
    expect(await r.useBackend('reference')).toBe(b); // one instance per process
    expect(r.setThreads(4)).toBe(1); // single-threaded: no effect
    expect(() => r.setThreads(0)).toThrow(/setThreads: n must be an integer >= 1/);
    expect(stderr).toEqual([]); // an explicit choice prints nothing
  });

  it('an unknown name is an Error listing the valid ones', async () => {
    const r = await freshRegistry();
    await expect(r.useBackend('cuda' as 'native')).rejects.toThrow(/useBackend: unknown backend "cuda"; expected one of 'native', 'wasm', 'reference'/);
  });

  it('FERROGPT_BACKEND picks the default, strictly', async () => {
    process.env.FERROGPT_BACKEND = 'reference';
    let r = await freshRegistry();
    expect((await r.initBackend()).name).toBe('reference');
    expect(stderr).toEqual([]);

    process.env.FERROGPT_BACKEND = 'bogus';
    r = await freshRegistry();
    await expect(r.initBackend()).rejects.toThrow(/FERROGPT_BACKEND: unknown backend "bogus"/);
  });

  it('FERROGPT_DEBUG=1 prints one line naming the chosen backend', async () => {
    process.env.FERROGPT_DEBUG = '1';
    const r = await freshRegistry();
    const b = await r.initBackend();
    expect(stderr).toHaveLength(1);
    expect(stderr[0]).toMatch(new RegExp(`^ferrogpt: backend ${b.name} \\(`));
  });

  it.skipIf(backendOrNull('native') === null && allowMissing)('the default is native when it loads, silently', async () => {
    const r = await freshRegistry();
    const b = await r.initBackend();
    expect(b.name).toBe('native');
    expect(stderr).toEqual([]);
    expect(await r.initBackend()).toBe(b); // idempotent
    const t = r.setThreads(2);
    expect(t).toBe(2);
    expect(r.backendInfo().threads).toBe(2);
  });

  it('falls back to wasm when native cannot load, with one notice on stderr', async () => {
    // As when bindings/native.ts finds no addon for this platform.
    vi.doMock('../src/backend/native.js', () => ({
      createNativeBackendAsync: async () => {
        throw new Error('simulated: no prebuilt addon');
      },
    }));
    const r = await freshRegistry();
    const b = await r.initBackend();
    expect(['wasm', 'reference']).toContain(b.name);
    expect(stderr).toHaveLength(1);
    expect(stderr[0]).toMatch(new RegExp(`^ferrogpt: using the ${b.name} backend \\(slower\\): native: .*simulated: no prebuilt addon`));
    expect(stderr[0].trimEnd().split('\n')).toHaveLength(1);
    await r.initBackend();
    expect(stderr).toHaveLength(1); // once
    // An explicit request for the missing backend is an Error that says why.
    await expect(r.useBackend('native')).rejects.toThrow(/the native backend is unavailable: .*simulated: no prebuilt addon/);
  });

  it('falls back to reference when neither Rust backend loads; FERROGPT_DEBUG lists both reasons', async () => {
    vi.doMock('../src/backend/native.js', () => ({
      createNativeBackendAsync: async () => {
        throw new Error('simulated native failure');
      },
    }));
    vi.doMock('../src/backend/wasm.js', () => ({
      createWasmBackend: async () => {
        throw new Error('simulated wasm failure');
      },
    }));
    process.env.FERROGPT_DEBUG = '1';
    const r = await freshRegistry();
    const b = await r.initBackend();
    expect(b.name).toBe('reference');
    expect(stderr).toHaveLength(1);
    expect(stderr[0]).toMatch(/^ferrogpt: backend reference \(skipped native: .*simulated native failure; wasm: simulated wasm failure\)/);
    const avail = await r.availableBackends();
    expect(avail.map((a) => [a.name, a.available])).toEqual([
      ['native', false],
      ['wasm', false],
      ['reference', true],
    ]);
    expect(avail[1]).toMatchObject({ reason: 'simulated wasm failure' });
  });

  it('the public entry re-exports the registry', async () => {
    vi.resetModules();
    const pub = await import('../src/index.js');
    const b = await pub.useBackend('reference');
    expect(pub.getBackend()).toBe(b);
    expect(pub.backendInfo().name).toBe('reference');
    expect(typeof pub.initBackend).toBe('function');
    expect(pub.NO_DROPOUT).toEqual({ p: 0, seed: 0, stream: 0 });
  });
});
