// Argument parsing for the CLI: node:util parseArgs plus what it lacks — typed values with
// clear errors, help text generated from the same table, and one error type (UsageError)
// that the dispatcher turns into exit code 2.

import { parseArgs } from 'node:util';

/** A mistake in how the command was called: printed with a hint, exit code 2. */
export class UsageError extends Error {
  constructor(message: string, readonly command?: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** The value's placeholder in the help text, e.g. 'N'. */
  value?: string;
  help: string;
  /** Left out of the help text (testing and tuning knobs). */
  hidden?: boolean;
}

export type OptionTable = Record<string, OptionSpec>;

export interface CommandSpec {
  name: string;
  usage: string;
  summary: string;
  options: OptionTable;
  /** Extra paragraphs after the options (examples, notes). */
  epilog?: string;
}

export const HELP_OPTION: OptionSpec = { type: 'boolean', short: 'h', help: 'show this help' };

/** Parses argv against a command's table; unknown flags and stray positionals are UsageErrors. */
function parseCommand(spec: CommandSpec, argv: string[]): Record<string, string | boolean | undefined> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [name, o] of Object.entries(spec.options)) options[name] = o.short ? { type: o.type, short: o.short } : { type: o.type };
  try {
    const { values, positionals } = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`, spec.name);
    return values as Record<string, string | boolean | undefined>;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    // parseArgs' messages are good but long ("... To specify a positional argument starting
    // with a '-' place it at the end of the command after '--' ..."): keep the first sentence.
    const full = (err as Error).message;
    let msg = full.split(/\.(\s|$)/)[0];
    if (/argument is ambiguous/.test(msg)) msg += ' (is its value missing? a value starting with "-" is written --flag=-value)';
    throw new UsageError(msg.charAt(0).toLowerCase() + msg.slice(1), spec.name);
  }
}

/**
 * parseCommand, and --help handled: prints the command's help and returns null (the
 * command then exits 0).
 */
export function parseCommandOrHelp(spec: CommandSpec, argv: string[]): Record<string, string | boolean | undefined> | null {
  const values = parseCommand(spec, argv);
  if (!values.help) return values;
  process.stdout.write(helpText(spec));
  return null;
}

export function helpText(spec: CommandSpec): string {
  const rows = Object.entries(spec.options)
    .filter(([, o]) => !o.hidden)
    .map(([name, o]) => [`${o.short ? `-${o.short}, ` : '    '}--${name}${o.value ? ` ${o.value}` : ''}`, o.help] as const);
  const width = Math.max(...rows.map(([flag]) => flag.length));
  const lines = [`Usage: ${spec.usage}`, '', spec.summary, '', 'Options:', ...rows.map(([flag, help]) => `  ${flag.padEnd(width)}  ${help}`)];
  if (spec.epilog) lines.push('', spec.epilog);
  return lines.join('\n') + '\n';
}

// ---- typed values: each throws a UsageError naming the flag ----

export function intValue(values: Record<string, unknown>, name: string, fallback: number, min = 0): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const s = String(raw).trim().replace(/_/g, '');
  const v = /^[+]?\d+(e\d+)?$/i.test(s) ? Number(s) : NaN; // 2000, 2_000, 2e3
  if (!Number.isSafeInteger(v) || v < min) throw new UsageError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return v;
}

export function numValue(values: Record<string, unknown>, name: string, fallback: number, min = 0, max = Infinity): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const s = String(raw).trim();
  const v = s === '' ? NaN : Number(s);
  if (!Number.isFinite(v) || v < min || v > max) {
    const range = max === Infinity ? `>= ${min}` : `in [${min}, ${max}]`;
    throw new UsageError(`--${name} must be a number ${range}, got ${JSON.stringify(raw)}`);
  }
  return v;
}

export function choiceValue<T extends string>(values: Record<string, unknown>, name: string, choices: readonly T[]): T | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  if (!(choices as readonly string[]).includes(String(raw))) {
    throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got ${JSON.stringify(raw)}`);
  }
  return raw as T;
}

export function stringValue(values: Record<string, unknown>, name: string): string | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  if (String(raw) === '') throw new UsageError(`--${name} needs a value`);
  return String(raw);
}
