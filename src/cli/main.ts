// The `ferrogpt` command line: dispatches to one module per command. Separate from the
// executable (index.ts) so tests can call main(argv) in-process or through a module runner.
//
// Exit codes: 0 success, 1 an error while running, 2 a usage error (unknown command or
// flag, a bad value), 130 stopped by Ctrl-C (after saving).

import { UsageError } from './args.js';
import { CONVERT_SPEC, convertCommand } from './convert.js';
import { DEMO_SPEC, demoCommand } from './demo.js';
import { packageVersion } from './env.js';
import { EVAL_SPEC, evalCommand } from './eval.js';
import { FINETUNE_SPEC, finetuneCommand } from './finetune.js';
import { GENERATE_SPEC, generateCommand } from './generate.js';
import { PREDICT_SPEC, predictCommand } from './predict.js';
import { SAMPLE_SPEC, sampleCommand } from './sample.js';
import { SCORE_SPEC, scoreCommand } from './score.js';
import { TRAIN_SPEC, trainCommand } from './train.js';

const COMMANDS: Record<string, { summary: string; run: (argv: string[]) => Promise<number> }> = {
  demo: { summary: DEMO_SPEC.summary, run: demoCommand },
  train: { summary: TRAIN_SPEC.summary, run: trainCommand },
  sample: { summary: SAMPLE_SPEC.summary, run: sampleCommand },
  generate: { summary: GENERATE_SPEC.summary, run: generateCommand },
  score: { summary: SCORE_SPEC.summary, run: scoreCommand },
  finetune: { summary: FINETUNE_SPEC.summary, run: finetuneCommand },
  eval: { summary: EVAL_SPEC.summary, run: evalCommand },
  predict: { summary: PREDICT_SPEC.summary, run: predictCommand },
  convert: { summary: CONVERT_SPEC.summary, run: convertCommand },
};

export function topLevelHelp(): string {
  const names = Object.keys(COMMANDS);
  const width = Math.max(...names.map((n) => n.length));
  return [
    'Usage: ferrogpt <command> [options]',
    '',
    'Train and prompt GPT models on Rust kernels (native addon, WebAssembly or plain TypeScript).',
    '',
    'Commands:',
    ...names.map((n) => `  ${n.padEnd(width)}  ${COMMANDS[n].summary}`),
    '',
    'Options:',
    '  -h, --help     show help (also: ferrogpt <command> --help)',
    '  -v, --version  print the version',
    '',
    'Start with: npx ferrogpt demo',
    '',
  ].join('\n');
}

/** Runs the CLI on `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  try {
    if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
      // `ferrogpt help train` reads naturally too
      if (first === 'help' && rest[0] !== undefined && rest[0] in COMMANDS) return await COMMANDS[rest[0]].run(['--help']);
      process.stdout.write(topLevelHelp());
      return first === undefined ? 2 : 0; // no command at all is a usage error (scripts notice)
    }
    if (first === '-v' || first === '--version') {
      process.stdout.write(`${packageVersion()}\n`);
      return 0;
    }
    const command = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
    if (command === undefined) {
      throw new UsageError(first.startsWith('-') ? `unknown option ${JSON.stringify(first)} (options go after the command)` : `unknown command ${JSON.stringify(first)}; commands: ${Object.keys(COMMANDS).join(', ')}`);
    }
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      const cmd = err.command ?? (first !== undefined && Object.hasOwn(COMMANDS, first) ? first : undefined);
      process.stderr.write(`ferrogpt: ${err.message}\nRun 'ferrogpt ${cmd ? `${cmd} ` : ''}--help' for usage.\n`);
      return 2;
    }
    const e = err as Error;
    process.stderr.write(`ferrogpt: error: ${e?.message ?? String(err)}\n`);
    if (process.env.FERROGPT_DEBUG && e?.stack) process.stderr.write(e.stack + '\n');
    return 1;
  }
}
