// Type-checked by run.mjs (tsc --module nodenext): the CommonJS types resolve.
import ferrogpt = require('ferrogpt');

const config: ferrogpt.GPTConfigInput = { vocabSize: 10, blockSize: 4, nLayer: 1, nHead: 1, nEmbd: 4 };
export const make = (): ferrogpt.GPT => ferrogpt.GPT.create(config);
