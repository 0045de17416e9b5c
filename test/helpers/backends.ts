// Which backends the suite runs on, and how a missing one is reported.
//
// The per-backend tests run on: native, wasm (the variant the loader picks: simd128 on any
// current engine), wasm-scalar (the scalar build, forced, so both wasm builds are tested)
// and reference.
//
// CI builds every backend, so a backend that fails to load FAILS the suite: each file
// that runs per-backend tests gets a failing test "<name> backend loads" carrying the
// reason. With FERROGPT_ALLOW_MISSING_BACKENDS=1 (local work before `npm run build`), the
// missing backend's tests are reported as skipped instead, with the reason in the name.
// Nothing is ever skipped silently.

import { describe, it } from 'vitest';
import type { Backend, BackendName } from '../../src/backend/backend.js';
import { availableBackends } from '../../src/backend/index.js';

export type TestBackendName = BackendName | 'wasm-scalar';

export interface TestBackend {
  label: TestBackendName;
  backend: Backend | null;
  reason: string; // why it is missing ('' when loaded)
}

async function loadScalarWasm(): Promise<TestBackend> {
  try {
    const { createWasmBackend } = await import('../../src/backend/wasm.js');
    return { label: 'wasm-scalar', backend: await createWasmBackend({ simd: false }), reason: '' };
  } catch (err) {
    return { label: 'wasm-scalar', backend: null, reason: String((err as Error)?.message ?? err).replace(/\s*\n\s*/g, ' ') };
  }
}

export const testBackends: TestBackend[] = [
  ...(await availableBackends()).map((a) => ({ label: a.name, backend: a.available ? a.backend : null, reason: a.available ? '' : a.reason })),
  await loadScalarWasm(),
];
export const allowMissing = process.env.FERROGPT_ALLOW_MISSING_BACKENDS === '1';

export function backendOrNull(label: TestBackendName): Backend | null {
  return testBackends.find((x) => x.label === label)?.backend ?? null;
}

const ALL: readonly TestBackendName[] = ['native', 'wasm', 'wasm-scalar', 'reference'];
/** FERROGPT_TEST_BACKENDS=native,wasm limits the per-backend tests (vitest.config.ts uses it). */
const selected: readonly string[] = process.env.FERROGPT_TEST_BACKENDS?.split(',').map((x) => x.trim()) ?? ALL;

/**
 * `describe(<title> [<backend>])` once per backend, with the backend passed in. Missing
 * backends get a failing test (or, when allowed, a skipped one named with the reason).
 */
export function describeEachBackend(title: string, body: (backend: Backend) => void, labels: readonly TestBackendName[] = ALL): void {
  for (const label of labels.filter((x) => selected.includes(x))) {
    const tb = testBackends.find((x) => x.label === label)!;
    if (tb.backend) {
      // The SIMD level in the title: native runs once per x86 level (vitest.config.ts).
      describe(`${title} [${label}/${tb.backend.info().simd}]`, () => body(tb.backend!));
    } else if (allowMissing) {
      describe.skip(`${title} [${label}] SKIPPED: backend unavailable (${tb.reason})`, () => {
        it('skipped because FERROGPT_ALLOW_MISSING_BACKENDS=1', () => {});
      });
    } else {
      describe(`${title} [${label}]`, () => {
        it(`${label} backend loads`, () => {
          const build = label === 'native' ? 'npm run build:native' : 'npm run build:wasm';
          throw new Error(`the ${label} backend failed to load: ${tb.reason}. Build it (${build}) or set FERROGPT_ALLOW_MISSING_BACKENDS=1 to skip its tests.`);
        });
      });
    }
  }
}
