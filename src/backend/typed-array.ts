// Storage in plain JS typed arrays, shared by the reference backend (TS loops) and the
// native backend (the addon reads the same arrays zero-copy).

import { DTYPE_ARRAYS, type DType, type TypedData } from './backend.js';
import { BaseBackend } from './base.js';

export type TypedStorage = TypedData;

export abstract class TypedArrayBackend extends BaseBackend<TypedStorage, Float32Array, Int32Array, Uint16Array, Int8Array> {
  protected allocStorage(length: number, dtype: DType): TypedStorage {
    return new DTYPE_ARRAYS[dtype](length);
  }

  protected freeStorage(_storage: TypedStorage): void {
    // Garbage-collected; BaseBackend already refuses further use of the handle.
  }

  protected resolve(storage: TypedStorage, _dtype: DType, offset: number, length: number): TypedStorage {
    return storage.subarray(offset, offset + length);
  }

  protected writeStorage(storage: TypedStorage, _dtype: DType, offset: number, data: TypedData): void {
    (storage as Float32Array).set(data as Float32Array, offset); // same array types: BaseBackend checked
  }

  protected readStorage(storage: TypedStorage, _dtype: DType, offset: number, length: number): TypedData {
    return storage.slice(offset, offset + length);
  }

  protected zeroStorage(storage: TypedStorage, _dtype: DType, offset: number, length: number): void {
    storage.fill(0, offset, offset + length);
  }

  protected intView(storage: TypedStorage, offset: number, length: number): Int32Array {
    return (storage as Int32Array).subarray(offset, offset + length);
  }
}
