// Runs `ferrogpt` command lines in this process, capturing what each writes: for tests that
// check a command's output and files together (test/cli.test.ts runs them in a child instead).

import { main } from '../../src/cli/main.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** main(argv) with stdout and stderr captured; onStderr sees each write as it happens. */
export async function cli(argv: string[], onStderr?: (text: string) => void): Promise<CliRun> {
  const r: CliRun = { code: -1, stdout: '', stderr: '' };
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((r.stdout += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((r.stderr += s), onStderr?.(s), true)) as typeof process.stderr.write;
  try {
    r.code = await main(argv);
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
  return r;
}
