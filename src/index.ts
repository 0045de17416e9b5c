// ferrogpt: the public entry point. Everything a user imports from 'ferrogpt' is
// re-exported here; the implementation lives in the folders named in docs/ARCHITECTURE.md#layout.

// ---- backends (src/backend) ----
export { useBackend, initBackend, getBackend, backendInfo, setThreads, availableBackends, createWasmBackend, BACKEND_NAMES } from './backend/index.js';
export type { BackendAvailability } from './backend/index.js';
export type { LoadWasmOptions, WasmVariant } from '../bindings/wasm.js';
export { NO_DROPOUT } from './backend/backend.js';
export { KERNELS, KERNEL_NAMES } from './backend/kernels.js';
export type { KernelName, KernelDef, ArgDef } from './backend/kernels.js';
export type { Backend, BackendInfo, BackendName, DType, DropoutSpec, Kernels, Tensor } from './backend/backend.js';

// ---- model (src/model) and objectives (src/objectives) ----
export { GPT } from './model/gpt.js';
export type { LoadOptions, NamedParameter, ParameterBuffers, TrainPass } from './model/gpt.js';
export { WEIGHT_DTYPES, type WeightDType } from './model/weights.js';
export type { GPTConfig, GPTConfigInput } from './model/config.js';
export { IGNORE_INDEX, shiftTargets } from './objectives/lm.js';
export { classificationLoss, regressionLoss } from './objectives/task.js';
export { TaskHead } from './model/head.js';
export type { Pool, HeadPass } from './model/head.js';
export { rebuildGPT, resizeTokenEmbeddings } from './model/resize.js';
export type { RebuildOptions } from './model/resize.js';
export { LoraAdapter, LORA_DEFAULTS, LORA_SITES, ALL_LINEAR } from './model/lora.js';
export type { LoraOptions, LoraConfig, LoraSite } from './model/lora.js';

// ---- training (src/train) ----
export {
  AdamW,
  clipGradNorm,
  learningRate,
  makeSchedule,
  constantSchedule,
  linearSchedule,
  cosineSchedule,
  train,
  evaluate,
  prepareData,
  TokenDataset,
  WindowSampler,
  saveCheckpoint,
  loadCheckpoint,
  findCheckpoint,
  finetune,
  LORA_LR_RATIO,
} from './train/index.js';
export type {
  AdamWOptions,
  AdamWState,
  ScheduleKind,
  ScheduleOptions,
  TrainOptions,
  TrainResult,
  StepInfo,
  PrepareDataOptions,
  PreparedData,
  DatasetOptions,
  FineTuneOptions,
  FineTuneResult,
  FineTuneStepInfo,
  FineTuneTask,
} from './train/index.js';

// ---- fine-tuning tasks (src/tasks) ----
export * from './tasks/index.js';

// ---- tokenizer (src/tokenizer) ----
export { Tokenizer, END_OF_TEXT } from './tokenizer/index.js';
export type { TokenizerType, TrainOptions as TokenizerTrainOptions } from './tokenizer/index.js';

// ---- prompting (src/prompt) ----
export { generate, score, zeroShot, fewShot, samplingDistribution, DEFAULT_TEMPLATE } from './prompt/index.js';
export type {
  GenerateOptions,
  Generation,
  GenerationChunk,
  GenerationResult,
  FinishReason,
  PromptTokenizer,
  SamplingOptions,
  ScoreOptions,
  ScoreResult,
  CandidateScore,
  ZeroShotOptions,
  FewShotOptions,
  PromptResult,
  PromptTemplate,
  Example,
} from './prompt/index.js';
export { KVCache, type KVDType, type KVCacheOptions } from './model/kv-cache.js';
