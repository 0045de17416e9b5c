// The reference backend: tensors are plain typed arrays and the kernels are the TypeScript
// loops of reference-kernels.ts. It is the executable specification the native and wasm
// backends are tested against, and the last-resort fallback where neither loads. Slow.

import type { BackendInfo, DType, Kernels } from './backend.js';
import { BaseBackend } from './base.js';
import { referenceKernels, type RefArray } from './reference-kernels.js';

/** The package version reported by backendInfo() (kept in step with package.json). */
export const VERSION = '0.1.0';

type Storage = Float32Array | Int32Array;

export class ReferenceBackend extends BaseBackend<Storage, Storage> {
  readonly name = 'reference' as const;
  // The reference kernels take any RefArray; this backend resolves tensors to Storage.
  protected readonly kernels: Kernels<Storage> = referenceKernels;

  info(): BackendInfo {
    return { name: 'reference', simd: 'none', threads: 1, version: VERSION };
  }

  protected allocStorage(length: number, dtype: DType): Storage {
    return dtype === 'f32' ? new Float32Array(length) : new Int32Array(length);
  }

  protected freeStorage(_storage: Storage): void {
    // Garbage collected; BaseBackend already forgets the handle and rejects later use.
  }

  protected resolve(storage: Storage, _dtype: DType, offset: number, length: number): Storage {
    return storage.subarray(offset, offset + length);
  }

  protected writeStorage(storage: Storage, _dtype: DType, offset: number, data: Float32Array | Int32Array): void {
    storage.set(data, offset);
  }

  protected readStorage(storage: Storage, _dtype: DType, offset: number, length: number): Float32Array | Int32Array {
    return storage.slice(offset, offset + length);
  }

  protected intView(storage: Storage, offset: number, length: number): Int32Array {
    return (storage as Int32Array).subarray(offset, offset + length);
  }
}

/** A new reference backend. */
export function createReferenceBackend(): ReferenceBackend {
  return new ReferenceBackend();
}

export type { RefArray };
