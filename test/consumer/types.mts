// Type-checked by run.mjs (tsc --module nodenext): the ESM types resolve.
import { GPT, generate, type GPTConfigInput } from 'ferrogpt';

const config: GPTConfigInput = { vocabSize: 10, blockSize: 4, nLayer: 1, nHead: 1, nEmbd: 4 };
export const make = (): GPT => GPT.create(config);
export const gen: typeof generate = generate;
