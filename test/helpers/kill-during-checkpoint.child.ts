// The training run of the kill test (started by kill-during-checkpoint.mjs). Arguments, one
// JSON object in argv[2]:
//   { backend, config (GPT.create), data (token file path), train (TrainOptions fields) }
// It resumes from train.checkpointDir when a checkpoint is there ('auto') and prints one
// JSON line per update on stdout: { "step": n, "loss": x } (JSON keeps doubles exactly).
// The test sets FERROGPT_TEST_CHECKPOINT_PAUSE_MS so that saving pauses (see checkpoint.ts)
// and kills the process while it does.

import type { BackendName } from '../../src/backend/backend.js';
import { useBackend } from '../../src/backend/index.js';
import type { GPTConfigInput } from '../../src/model/config.js';
import { GPT } from '../../src/model/gpt.js';
import { train, type TrainOptions } from '../../src/train/train.js';

interface Args {
  backend: BackendName;
  config: GPTConfigInput;
  data: string;
  train: Omit<TrainOptions, 'model' | 'data' | 'onStep'>;
}

const args = JSON.parse(process.argv[2] ?? '') as Args;
const backend = await useBackend(args.backend);
const model = GPT.create(args.config, backend);
await train({
  ...args.train,
  model,
  data: args.data,
  resume: 'auto',
  onStep: ({ step, loss }) => void process.stdout.write(JSON.stringify({ step, loss }) + '\n'),
});
