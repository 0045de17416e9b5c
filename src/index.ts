// ferrogpt: the public entry point. Everything a user imports from 'ferrogpt' is
// re-exported here; the implementation lives in the folders named in DESIGN.md.

// ---- backends (src/backend) ----
export { useBackend, initBackend, getBackend, backendInfo, setThreads, availableBackends, BACKEND_NAMES } from './backend/index.js';
export type { BackendAvailability } from './backend/index.js';
export { NO_DROPOUT } from './backend/backend.js';
export type { Backend, BackendInfo, BackendName, DType, DropoutSpec, Kernels, Tensor } from './backend/backend.js';

// ---- model (src/model), objectives, tasks, training, tokenizer, prompting, io ----
// Added by later issues: GPT, AdamW, train, finetune, generate, score, zeroShot, fewShot, Tokenizer.
