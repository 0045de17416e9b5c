// Every kernel, forward and backward, on every backend, against the reference kernels run
// in float64 on the same inputs. The maximum difference is asserted (see helpers/compare.ts
// for the measure and helpers/cases.ts for the shapes and tolerances).

import { expect, it } from 'vitest';
import { KERNEL_NAMES } from '../src/backend/kernels.js';
import { describeEachBackend } from './helpers/backends.js';
import { buildCases, outputsOf, runOnBackend, runReference64 } from './helpers/cases.js';
import { expectClose } from './helpers/compare.js';

const cases = buildCases();

// The float64 expectations are computed once and shared by the three backends.
const expected = new Map<string, ReturnType<typeof runReference64>>();
function expectation(label: string) {
  let e = expected.get(label);
  if (!e) {
    e = runReference64(cases.find((c) => c.label === label)!);
    expected.set(label, e);
  }
  return e;
}

/**
 * Kernels whose comparison lives in another file: attentionDecode, attentionDecodeBf16 in
 * test/decode.test.ts; packWeight, matmulForwardPacked in test/packed.test.ts (a packed
 * copy's layout is each backend's own, so the packed forward is held to matmulForward's
 * bits on the same backend, and matmulForward to the reference here).
 */
const ELSEWHERE = new Set(['attentionDecode', 'attentionDecodeBf16', 'packWeight', 'matmulForwardPacked']);

it('the cases cover every kernel of the registry', () => {
  expect(new Set(cases.map((c) => c.kernel))).toEqual(new Set(KERNEL_NAMES.filter((k) => !ELSEWHERE.has(k))));
});

describeEachBackend('kernels vs float64 reference', (backend) => {
  for (const c of cases) {
    it(c.label, () => {
      const want = expectation(c.label);
      const got = runOnBackend(backend, c);
      for (const name of outputsOf(c)) {
        expectClose(got.outputs[name], want.outputs[name], c.rtolFor?.[name] ?? c.rtol, `${backend.name}/${backend.info().simd} ${c.label}: ${name}`);
      }
      if (typeof want.result === 'number') {
        expect(typeof got.result).toBe('number');
        expectClose([got.result as number], [want.result], c.rtol, `${backend.name}/${backend.info().simd} ${c.label}: result`);
      }
    });
  }
});

// At other thread counts, and bit for bit across them: threads.test.ts.
