// Public surface of the io module (re-exported by the package entry point).
export {
  readSafetensors,
  writeSafetensors,
  readSafetensorsFile,
  writeSafetensorsFile,
  expectTensors,
  compareTensors,
  halfToFloat,
  MAX_HEADER_BYTES,
} from './safetensors.js';
export type {
  Tensor,
  LoadedTensor,
  SafetensorsContents,
  SafetensorsDtype,
  TensorsToWrite,
  TensorMismatch,
  ReadOptions,
  ExpectOptions,
} from './safetensors.js';
export { writeFileAtomic } from './atomic.js';
