#!/usr/bin/env node
// Chromium for the browser test (test/browser.test.ts), set up by `npm install` in a
// development checkout (package.json's `prepare` runs this after the build):
//   - not a development checkout: nothing. A checkout has test/, and npm was run inside it;
//     `npm install ferrogpt` never runs `prepare`, and a git dependency being prepared for
//     another project is run from that project's folder;
//   - Chromium already there (/usr/bin/chromium, or $FERROGPT_CHROMIUM): nothing;
//   - root on Debian: apt-get install -y chromium, saying so in one line (as the wasm build
//     does for its toolchain, scripts/build-wasm.mjs);
//   - otherwise: one line with the exact command to run.
// It never fails the install: the library does not need Chromium, one test does, and
// without it `npm test` fails with the same command (missingChromiumMessage below).
//
//   node scripts/chromium.mjs [--verbose] [--dry-run]
// --verbose also says why nothing was done; --dry-run says what would be done and does
// nothing.

import { existsSync, realpathSync } from 'node:fs';
import { dirname, join, relative, resolve, isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { aptCommand, aptInstall } from './apt.mjs';

export const CHROMIUM_PACKAGE = 'chromium';
/** Where Debian's package puts it, and where the browser test looks unless FERROGPT_CHROMIUM says otherwise. */
export const DEFAULT_CHROMIUM = '/usr/bin/chromium';

/** The command that installs Debian's Chromium: `apt-get install -y chromium`, with sudo when not root. */
export function chromiumInstallCommand(isRoot) {
  const command = aptCommand([CHROMIUM_PACKAGE]);
  return isRoot ? command : `sudo ${command}`;
}

/**
 * What to tell someone who has no Chromium at `path`: the exact command (Debian), or what
 * to install and point FERROGPT_CHROMIUM at (elsewhere). Shared by this script and by
 * test/browser.test.ts, which fails with it.
 */
export function missingChromiumMessage({ path, fromEnv, isRoot, isDebian }) {
  if (fromEnv) {
    return `FERROGPT_CHROMIUM=${path} does not exist: point it at a Chromium executable, or unset it and install Debian's (${DEFAULT_CHROMIUM}) with \`${chromiumInstallCommand(isRoot)}\``;
  }
  const debian = chromiumInstallCommand(isRoot);
  const how = isDebian
    ? `install it with \`${debian}\`${isRoot ? '' : ' (as root, npm install does this itself)'}`
    : `install Chromium and set FERROGPT_CHROMIUM=/path/to/chromium (on Debian or Ubuntu: \`${chromiumInstallCommand(false)}\`)`;
  return `no Chromium at ${path}, which the browser test (test/browser.test.ts) needs: ${how}`;
}

/**
 * The decision, from the facts: { action: 'none' | 'install' | 'advise', message }.
 * 'none' messages are printed only with --verbose; the others always.
 *   facts: { inCheckout, installed, path, fromEnv, isRoot, isDebian }
 */
export function chromiumPlan(facts) {
  const { inCheckout, installed, path, fromEnv, isRoot, isDebian } = facts;
  if (!inCheckout) return { action: 'none', message: 'not a development checkout: the browser test does not run here, so Chromium is not installed' };
  if (installed) return { action: 'none', message: `Chromium is already installed (${path}) for the browser test` };
  if (!fromEnv && isRoot && isDebian) {
    return {
      action: 'install',
      message: `installing Debian's ${CHROMIUM_PACKAGE} for the browser test (test/browser.test.ts), as root on Debian: ${chromiumInstallCommand(true)}`,
    };
  }
  return { action: 'advise', message: `${missingChromiumMessage({ path, fromEnv, isRoot, isDebian })}; \`npm test\` fails until then` };
}

function isInside(dir, root) {
  const real = (p) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  const rel = relative(real(root), real(dir));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** The facts on this machine, for the package at `root`. */
export function chromiumFacts(root, env = process.env) {
  const fromEnv = Boolean(env.FERROGPT_CHROMIUM);
  const path = env.FERROGPT_CHROMIUM || DEFAULT_CHROMIUM;
  return {
    // npm sets INIT_CWD to the folder it was run in; run by hand, it is unset.
    inCheckout: existsSync(join(root, 'test', 'browser.test.ts')) && (!env.INIT_CWD || isInside(env.INIT_CWD, root)),
    installed: existsSync(path),
    path,
    fromEnv,
    isRoot: typeof process.getuid === 'function' && process.getuid() === 0,
    isDebian: existsSync('/etc/debian_version'),
  };
}

function main(argv) {
  const verbose = argv.includes('--verbose');
  const dryRun = argv.includes('--dry-run');
  const log = (msg) => console.log(`ferrogpt: ${msg}`);
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const facts = chromiumFacts(root);
  const plan = chromiumPlan(facts);
  if (plan.action === 'none') {
    if (verbose || dryRun) log(plan.message);
    return;
  }
  if (plan.action === 'advise' || dryRun) {
    log(dryRun ? `(dry run) ${plan.message}` : plan.message);
    return;
  }
  log(plan.message);
  if (!aptInstall([CHROMIUM_PACKAGE]) || !existsSync(facts.path)) {
    log(`\`${chromiumInstallCommand(true)}\` failed; the browser test fails until Chromium is at ${facts.path}`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
