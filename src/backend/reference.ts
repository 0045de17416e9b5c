// The reference backend: tensors are plain typed arrays and the kernels are the TypeScript
// loops of reference-kernels.ts. It is the executable specification the native and wasm
// backends are tested against, and the last-resort fallback where neither loads. Slow.

import type { BackendInfo } from './backend.js';
import type { TypedKernels } from './kernels.js';
import { TypedArrayBackend } from './typed-array.js';
import { referenceKernels } from './reference-kernels.js';

// The package version reported by backendInfo(): package.json's, written at build time (src/version.ts).
import { VERSION } from '../version.js';

export class ReferenceBackend extends TypedArrayBackend {
  readonly name = 'reference' as const;
  // The reference kernels take any float array; this backend resolves tensors to typed arrays.
  protected readonly kernels: TypedKernels = referenceKernels;

  info(): BackendInfo {
    return { name: 'reference', simd: 'none', extensions: [], threads: 1, version: VERSION };
  }
}

/** A new reference backend. */
export function createReferenceBackend(): ReferenceBackend {
  return new ReferenceBackend();
}
