#!/usr/bin/env node
// Writes src/version.ts from package.json's "version": the one place the TypeScript side
// learns the package version (backendInfo().version of the reference and wasm backends;
// the native addon reports its crate's CARGO_PKG_VERSION, which test/version.test.ts holds
// equal to package.json's). src/version.ts is generated and git-ignored; it is written
//   - by `npm run build:ts`, before tsc, so dist/ (ESM, its CommonJS twin, and every
//     browser bundle made from them) carries the version as a plain string literal;
//   - by vitest's global setup (vitest.config.ts), so the tests, which run the sources,
//     always see the current package.json.
// The file is rewritten only when its text changes.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Writes src/version.ts (if changed); returns the version. */
export function writeVersion() {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  if (typeof version !== 'string' || version === '') throw new Error('ferrogpt: package.json has no version');
  const text =
    '// Generated from package.json by scripts/write-version.mjs (npm run build:ts, vitest setup).\n' +
    '// Do not edit; not committed.\n\n' +
    '/** The package version (package.json), as reported by backendInfo(). */\n' +
    `export const VERSION: string = ${JSON.stringify(version)};\n`;
  const path = join(root, 'src', 'version.ts');
  if (!existsSync(path) || readFileSync(path, 'utf8') !== text) writeFileSync(path, text);
  return version;
}

/** vitest's globalSetup hook (vitest.config.ts). */
export function setup() {
  writeVersion();
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) writeVersion();
