import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    // Native kernels use every core; running test files one at a time keeps the 2-core
    // machines from thrashing.
    fileParallelism: false,
  },
});
