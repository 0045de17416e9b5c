// Chromium for the browser test (scripts/chromium.mjs, run by `npm install`'s prepare).
//
// The decision is a pure function of the facts (a dev checkout? already installed? root?
// Debian?), so every case is checked here without installing anything; this machine has
// Chromium, so the real script is run only on the paths that install nothing. Then: the
// prepare script calls it, and without Chromium the browser test FAILS (never skips)
// with the exact install command.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { chromiumFacts, chromiumInstallCommand, chromiumPlan, DEFAULT_CHROMIUM, missingChromiumMessage, type ChromiumFacts } from '../scripts/chromium.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const SCRIPT = join(root, 'scripts/chromium.mjs');

const facts = (over: Partial<ChromiumFacts>): ChromiumFacts => ({
  inCheckout: true,
  installed: false,
  path: DEFAULT_CHROMIUM,
  fromEnv: false,
  isRoot: true,
  isDebian: true,
  ...over,
});

/** The environment of a child that is not a vitest worker, with these changes. */
function childEnv(over: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('VITEST') && k !== 'NODE_ENV' && k !== 'TEST') env[k] = v;
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

function runScript(args: string[], env: Record<string, string | undefined>) {
  return spawnSync(process.execPath, [SCRIPT, ...args], { cwd: root, encoding: 'utf8', env: childEnv(env), timeout: 30_000 });
}

describe('chromiumPlan: what npm install does about Chromium', () => {
  it('installs it as root on Debian in a dev checkout, saying so and why', () => {
    const plan = chromiumPlan(facts({}));
    expect(plan.action).toBe('install');
    expect(plan.message).toContain('apt-get install -y chromium');
    expect(plan.message).toContain('browser test');
  });

  it('does nothing, quietly, when it is already installed', () => {
    for (const isRoot of [true, false]) {
      for (const isDebian of [true, false]) {
        const plan = chromiumPlan(facts({ installed: true, isRoot, isDebian }));
        expect(plan).toEqual({ action: 'none', message: `Chromium is already installed (${DEFAULT_CHROMIUM}) for the browser test` });
      }
    }
  });

  it('does nothing outside a dev checkout (npm install ferrogpt, a git dependency)', () => {
    for (const installed of [true, false]) {
      for (const isRoot of [true, false]) {
        expect(chromiumPlan(facts({ inCheckout: false, installed, isRoot })).action).toBe('none');
      }
    }
  });

  it('gives the exact command when it may not install: sudo on Debian, FERROGPT_CHROMIUM elsewhere', () => {
    const notRoot = chromiumPlan(facts({ isRoot: false }));
    expect(notRoot.action).toBe('advise');
    expect(notRoot.message).toContain('`sudo apt-get install -y chromium`');
    expect(notRoot.message).toContain('npm test');

    const notDebian = chromiumPlan(facts({ isDebian: false }));
    expect(notDebian.action).toBe('advise');
    expect(notDebian.message).toContain('FERROGPT_CHROMIUM=/path/to/chromium');
    expect(notDebian.message).toContain('sudo apt-get install -y chromium');
    expect(chromiumPlan(facts({ isDebian: false, isRoot: false })).action).toBe('advise');
  });

  it('never installs when FERROGPT_CHROMIUM names a missing file (Debian would not put it there)', () => {
    const plan = chromiumPlan(facts({ fromEnv: true, path: '/opt/nowhere/chromium' }));
    expect(plan.action).toBe('advise');
    expect(plan.message).toContain('FERROGPT_CHROMIUM=/opt/nowhere/chromium does not exist');
    expect(plan.message).toContain('apt-get install -y chromium');
  });

  it('names the command with sudo only when not root', () => {
    expect(chromiumInstallCommand(true)).toBe('apt-get install -y chromium');
    expect(chromiumInstallCommand(false)).toBe('sudo apt-get install -y chromium');
    expect(missingChromiumMessage({ path: DEFAULT_CHROMIUM, fromEnv: false, isRoot: true, isDebian: true })).toContain('`apt-get install -y chromium`');
  });
});

describe('chromiumFacts', () => {
  it('sees a dev checkout when npm runs in it, and not when it runs in another project', () => {
    expect(chromiumFacts(root, { INIT_CWD: root }).inCheckout).toBe(true);
    expect(chromiumFacts(root, { INIT_CWD: join(root, 'src') }).inCheckout).toBe(true);
    expect(chromiumFacts(root, {}).inCheckout).toBe(true); // run by hand
    expect(chromiumFacts(root, { INIT_CWD: '/tmp' }).inCheckout).toBe(false);
    expect(chromiumFacts(join(root, 'src'), {}).inCheckout).toBe(false); // no test/ there
  });

  it('takes FERROGPT_CHROMIUM over /usr/bin/chromium', () => {
    expect(chromiumFacts(root, { FERROGPT_CHROMIUM: '/opt/nowhere/chromium' })).toMatchObject({ path: '/opt/nowhere/chromium', fromEnv: true, installed: false });
    expect(chromiumFacts(root, {})).toMatchObject({ path: DEFAULT_CHROMIUM, fromEnv: false });
  });
});

describe('scripts/chromium.mjs, run for real (on the paths that install nothing)', () => {
  const installed = chromiumFacts(root, {}).installed;

  it.runIf(installed)('is silent when Chromium is there, and says so with --verbose', () => {
    const quiet = runScript([], { INIT_CWD: root, FERROGPT_CHROMIUM: undefined });
    expect(quiet.status).toBe(0);
    expect(quiet.stdout + quiet.stderr).toBe('');
    const verbose = runScript(['--verbose'], { INIT_CWD: root, FERROGPT_CHROMIUM: undefined });
    expect(verbose.stdout).toContain('already installed');
  });

  it('is silent outside a dev checkout', () => {
    const r = runScript([], { INIT_CWD: '/tmp', FERROGPT_CHROMIUM: '/opt/nowhere/chromium' });
    expect(r.status).toBe(0);
    expect(r.stdout + r.stderr).toBe('');
  });

  it('prints one line with the command, and does not fail the install, when it cannot install', () => {
    const r = runScript([], { INIT_CWD: root, FERROGPT_CHROMIUM: '/opt/nowhere/chromium' });
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(r.stdout).toContain('apt-get install -y chromium');
  });

  it('is what npm install runs (the prepare script, after the build)', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.prepare).toContain('node scripts/chromium.mjs');
  });
});

describe('without Chromium, npm test fails', () => {
  it('test/browser.test.ts fails (not skips) with the exact install command', () => {
    const r = spawnSync(process.execPath, [join(root, 'node_modules/vitest/vitest.mjs'), 'run', '--project', 'all', 'test/browser.test.ts'], {
      cwd: root,
      encoding: 'utf8',
      env: childEnv({ FERROGPT_CHROMIUM: '/opt/nowhere/chromium', FERROGPT_ALLOW_MISSING_BROWSER: undefined, CI: '1' }),
      timeout: 120_000,
    });
    const out = r.stdout + r.stderr;
    expect(r.status, out).not.toBe(0);
    expect(out).toContain('FERROGPT_CHROMIUM=/opt/nowhere/chromium does not exist');
    expect(out).toContain('apt-get install -y chromium');
    // The summary: one test failed, none skipped.
    const summary = out.split('\n').find((l) => /^\s*Tests\s/.test(l.replace(/\x1b\[[0-9;]*m/g, ''))) ?? '';
    expect(summary.replace(/\x1b\[[0-9;]*m/g, '')).toMatch(/^\s*Tests\s+1 failed \(1\)\s*$/);
  });
});
