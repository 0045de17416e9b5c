// Public surface of the tokenizer module (re-exported by the package entry point).
export { Tokenizer } from './tokenizer.js';
export type { TokenizerType, TrainOptions, EncodeOptions, DecodeOptions } from './tokenizer.js';
export { END_OF_TEXT } from './tokenizer-json.js';
export type { TokenizerJson } from './tokenizer-json.js';
