// Public surface of the training module (re-exported by the package entry point).
export { AdamW, clipGradNorm } from './optimizer.js';
export type { AdamWOptions, AdamWState, Optimizable } from './optimizer.js';
export { learningRate, makeSchedule, constantSchedule, linearSchedule, cosineSchedule } from './schedule.js';
export type { ScheduleKind, ScheduleOptions } from './schedule.js';
export { train, evaluate } from './train.js';
export type { TrainOptions, TrainResult, StepInfo } from './train.js';
export {
  prepareData,
  TokenDataset,
  WindowSampler,
  evalWindowStarts,
  encodeFileChunks,
  lastSafeSplit,
  listTextFiles,
  dtypeForVocab,
  bytesPerToken,
} from './data.js';
export type { TokenFileMeta, TokenDType, PrepareDataOptions, PreparedData, DatasetOptions, Batch, SamplerState } from './data.js';
export { saveCheckpoint, loadCheckpoint, loadTaskCheckpoint, findCheckpoint, configDiff, CHECKPOINT_FORMAT } from './checkpoint.js';
export type { TrainerState, FineTuneTrainerState, CheckpointContents, LoadedCheckpoint, LoadedTaskCheckpoint } from './checkpoint.js';
export { finetune, permutation, batchSchedule, inferLabels, LORA_LR_RATIO } from './finetune.js';
export type { BatchSchedule, FineTuneOptions, FineTuneResult, FineTuneStepInfo, FineTuneTask } from './finetune.js';
