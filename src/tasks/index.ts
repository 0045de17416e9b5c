// Public surface of the tasks module (re-exported by the package entry point): GPT-1's task
// input transformations, task datasets, metrics and the fine-tuned model.
export { TASK_TYPES, transformTokens, truncateSegments, encodeExample, exampleSegments, collate, poolFor, MIN_MAX_LENGTH } from './transform.js';
export type {
  TaskType,
  TaskExample,
  ClassificationExample,
  EntailmentExample,
  SimilarityExample,
  ChoiceExample,
  Label,
  SpecialIds,
  EncodedExample,
  TaskBatch,
} from './transform.js';
export { TASK_TOKENS, addTaskTokens, prepareForTask } from './special.js';
export type { PreparedModel } from './special.js';
export { loadTaskData, parseTaskData, validateExample, parseCsv, formatOf } from './data.js';
export type { DataFormat, ParseOptions } from './data.js';
export { accuracy, f1Score, pearson, spearman, ranks, meanSquaredError } from './metrics.js';
export type { TaskMetrics } from './metrics.js';
export { FineTunedGPT, TASK_FORMAT, resolveTaskSpec } from './finetuned.js';
export type { TaskSpec, TaskDefinition, Prediction, Gold, EncodedTaskData, LossParts } from './finetuned.js';
