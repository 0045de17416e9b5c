// Storage in plain JS typed arrays, shared by the reference backend (TS loops) and the
// native backend (the addon reads the same arrays zero-copy).

import type { DType } from './backend.js';
import { BaseBackend } from './base.js';

export type TypedStorage = Float32Array | Int32Array;

export abstract class TypedArrayBackend extends BaseBackend<TypedStorage, Float32Array, Int32Array> {
  protected allocStorage(length: number, dtype: DType): TypedStorage {
    return dtype === 'f32' ? new Float32Array(length) : new Int32Array(length);
  }

  protected freeStorage(_storage: TypedStorage): void {
    // Garbage-collected; BaseBackend already refuses further use of the handle.
  }

  protected resolve(storage: TypedStorage, _dtype: DType, offset: number, length: number): TypedStorage {
    return storage.subarray(offset, offset + length);
  }

  protected writeStorage(storage: TypedStorage, _dtype: DType, offset: number, data: Float32Array | Int32Array): void {
    storage.set(data, offset);
  }

  protected readStorage(storage: TypedStorage, _dtype: DType, offset: number, length: number): Float32Array | Int32Array {
    return storage.slice(offset, offset + length);
  }

  protected zeroStorage(storage: TypedStorage, _dtype: DType, offset: number, length: number): void {
    storage.fill(0, offset, offset + length);
  }

  protected intView(storage: TypedStorage, offset: number, length: number): Int32Array {
    return (storage as Int32Array).subarray(offset, offset + length);
  }
}
