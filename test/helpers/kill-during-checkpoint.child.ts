// The training run of the kill tests (started by kill-during-checkpoint.mjs). Arguments, one
// JSON object in argv[2], either
//   { backend, config (GPT.create), data (token file path), train (TrainOptions fields) }
// for `train`, or
//   { verb: 'finetune', backend, config (the base GPT), tokenizerText (a char tokenizer is
//     trained on it), finetune (FineTuneOptions fields, task included) }
// for `finetune`. It resumes from the options' checkpointDir when a checkpoint is there
// ('auto') and prints one JSON line per update on stdout: { "step": n, "loss": x } (JSON
// keeps doubles exactly). The test sets FERROGPT_TEST_CHECKPOINT_PAUSE_MS so that saving
// pauses (see checkpoint.ts) and kills the process while it does.

import type { BackendName } from '../../src/backend/backend.js';
import { useBackend } from '../../src/backend/index.js';
import type { GPTConfigInput } from '../../src/model/config.js';
import { GPT } from '../../src/model/gpt.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { finetune, type FineTuneOptions } from '../../src/train/finetune.js';
import { train, type TrainOptions } from '../../src/train/train.js';

interface TrainArgs {
  verb?: 'train';
  backend: BackendName;
  config: GPTConfigInput;
  data: string;
  train: Omit<TrainOptions, 'model' | 'data' | 'onStep'>;
}

interface FineTuneArgs {
  verb: 'finetune';
  backend: BackendName;
  config: GPTConfigInput;
  tokenizerText: string;
  finetune: Omit<FineTuneOptions, 'model' | 'tokenizer' | 'onStep'>;
}

const args = JSON.parse(process.argv[2] ?? '') as TrainArgs | FineTuneArgs;
const backend = await useBackend(args.backend);
const model = GPT.create(args.config, backend);
const onStep = ({ step, loss }: { step: number; loss: number }): void => void process.stdout.write(JSON.stringify({ step, loss }) + '\n');
if (args.verb === 'finetune') {
  const tokenizer = Tokenizer.trainFromTexts([args.tokenizerText], { type: 'char' });
  await finetune({ ...args.finetune, model, tokenizer, resume: 'auto', onStep });
} else {
  await train({ ...args.train, model, data: args.data, resume: 'auto', onStep });
}
