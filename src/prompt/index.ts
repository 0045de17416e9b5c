// Public surface of the prompting module (re-exported by the package entry point):
// KV-cached generation and sampling, scoring, zero-shot and few-shot prompting.
export { generate } from './generate.js';
export type { GenerateOptions, Generation, GenerationChunk, GenerationResult, FinishReason, PromptTokenizer } from './generate.js';
export { samplingDistribution, drawToken, applyRepetitionPenalty, resolveSampling } from './sampling.js';
export type { SamplingOptions, Distribution } from './sampling.js';
export { score, scoreSync, logSoftmax } from './score.js';
export type { ScoreOptions, ScoreResult, CandidateScore, ScoreNormalization } from './score.js';
export { zeroShot } from './zero-shot.js';
export type { ZeroShotOptions } from './zero-shot.js';
export { fewShot, compileTemplate, DEFAULT_TEMPLATE } from './few-shot.js';
export type { FewShotOptions, PromptResult, PromptTemplate, Example } from './few-shot.js';
