import { defineConfig } from 'vitest/config';

// Environment variables the suite reads (see test/helpers/):
//   FERROGPT_ALLOW_MISSING_BACKENDS=1  report a backend that fails to load as skipped (with the
//                                      reason) instead of failing; CI leaves it unset.
//   FERROGPT_TEST_BACKENDS=a,b         run the per-backend tests only on these (native, wasm,
//                                      wasm-scalar, reference); default: all.
//   FERROGPT_DIFF_LOG=<file>           append every measured max difference as a JSON line.
//
// The native addon picks its SIMD level once per process (best the CPU has; FERROGPT_SIMD
// can only lower it), so the lower x86 levels get their own projects, i.e. their own
// processes: the kernel comparisons run again on native with AVX2 and with scalar code.
const nativeAt = (simd: 'avx2' | 'scalar') => ({
  extends: true as const,
  test: {
    name: `native-${simd}`,
    include: ['test/kernels.test.ts', 'test/dropout-masks.test.ts', 'test/decode.test.ts'],
    env: { FERROGPT_SIMD: simd, FERROGPT_TEST_BACKENDS: 'native' },
  },
});

export default defineConfig({
  test: {
    // (include is per project: `extends: true` would concatenate a root include with theirs)
    testTimeout: 120_000,
    // Writes src/version.ts from package.json (generated, git-ignored; see the script).
    globalSetup: ['./scripts/write-version.mjs'],
    // Native kernels use every core; running test files one at a time keeps the 2-core
    // machines from thrashing.
    fileParallelism: false,
    projects: [{ extends: true, test: { name: 'all', include: ['test/**/*.test.ts'] } }, nativeAt('avx2'), nativeAt('scalar')],
  },
});
