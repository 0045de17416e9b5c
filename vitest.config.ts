import { defineConfig } from 'vitest/config';

// Environment variables the suite reads (see test/helpers/):
//   FERROGPT_ALLOW_MISSING_BACKENDS=1  report a backend that fails to load as skipped (with the
//                                      reason) instead of failing; CI leaves it unset.
//   FERROGPT_TEST_BACKENDS=a,b         run the per-backend tests only on these (native, wasm,
//                                      wasm-scalar, reference); default: all.
//   FERROGPT_WASM_VARIANT=v            the wasm backend's build (src/backend/index.ts); default:
//                                      the fastest this Node runs.
//   FERROGPT_DIFF_LOG=<file>           append every measured max difference as a JSON line.
//
// The kernel comparisons again, in a process of their own, on a backend set by environment:
// the native addon picks its SIMD level once per process (best the CPU has; FERROGPT_SIMD
// can only lower it), so the lower x86 levels get projects of their own (native-avx512:
// AVX-512 without the BF16/VNNI extensions, simd/x86.rs's ext()); so do the wasm
// builds below the one the loader picks (relaxed SIMD + threads): simd128 with threads and
// simd128 on one thread (scalar runs in every process as wasm-scalar,
// test/helpers/backends.ts), which run the thread checks too.
const KERNEL_FILES = ['test/kernels.test.ts', 'test/dropout-masks.test.ts', 'test/decode.test.ts'];
const kernelsOn = (name: string, env: Record<string, string>, extra: string[] = []) => ({
  extends: true as const,
  test: { name, include: [...KERNEL_FILES, ...extra], env },
});
const nativeAt = (simd: 'avx512' | 'avx2' | 'scalar') => kernelsOn(`native-${simd}`, { FERROGPT_SIMD: simd, FERROGPT_TEST_BACKENDS: 'native' });
const wasmAt = (variant: 'simd128-threads' | 'simd128') =>
  kernelsOn(`wasm-${variant}`, { FERROGPT_WASM_VARIANT: variant, FERROGPT_TEST_BACKENDS: 'wasm' }, ['test/threads.test.ts']);

// Node 20's V8 validates relaxed SIMD only behind a flag (Node >= 22 has it on), so the
// relaxed-SIMD build is tested there with it.
const nodeMajor = Number(process.versions.node.split('.')[0]);
const execArgv = nodeMajor < 22 ? ['--experimental-wasm-relaxed-simd'] : [];

export default defineConfig({
  test: {
    execArgv,
    // (include is per project: `extends: true` would concatenate a root include with theirs)
    testTimeout: 120_000,
    // Writes src/version.ts from package.json (generated, git-ignored; see the script).
    globalSetup: ['./scripts/write-version.mjs'],
    // Native kernels use every core; running test files one at a time keeps the 2-core
    // machines from thrashing.
    fileParallelism: false,
    projects: [{ extends: true, test: { name: 'all', include: ['test/**/*.test.ts'] } }, nativeAt('avx512'), nativeAt('avx2'), nativeAt('scalar'), wasmAt('simd128-threads'), wasmAt('simd128')],
  },
});
