// One version: package.json's. The TypeScript backends (reference, wasm) report it through
// src/version.ts, which scripts/write-version.mjs generates from package.json (at build
// time, and in vitest's global setup); the native addon reports its crate's
// CARGO_PKG_VERSION, so every crate's Cargo.toml must carry package.json's version too.

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { VERSION } from '../src/version.js';
import { describeEachBackend } from './helpers/backends.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

describe('package version', () => {
  it('src/version.ts is package.json\'s', () => {
    expect(VERSION).toBe(pkg.version);
  });

  it('every crate has package.json\'s version (the native addon reports its crate\'s)', () => {
    const crates = readdirSync(join(ROOT, 'crates')).filter((c) => existsSync(join(ROOT, 'crates', c, 'Cargo.toml')));
    expect(crates.length).toBeGreaterThan(0);
    for (const c of crates) {
      const toml = readFileSync(join(ROOT, 'crates', c, 'Cargo.toml'), 'utf8');
      // The version line of the [package] table (not a dependency's).
      const start = toml.indexOf('[package]');
      const next = toml.indexOf('\n[', start + 1);
      const m = /^version\s*=\s*"([^"]+)"/m.exec(toml.slice(start, next < 0 ? undefined : next));
      expect(m?.[1], `crates/${c}/Cargo.toml`).toBe(pkg.version);
    }
  });
});

describeEachBackend('backendInfo().version', (backend) => {
  it('is package.json\'s version', () => {
    expect(backend.info().version).toBe(pkg.version);
  });
});
