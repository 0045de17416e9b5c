// "Today's" WebAssembly build, for the benchmarks that measure how much faster the current
// one is: the library at commit BASELINE_REF (the last commit before the threaded and
// relaxed-SIMD builds), with its simd128 module built exactly as it shipped, by Debian's
// rustc 1.63 (LLVM 14) and wasm-ld 14.
//
// Debian's rustc 1.63 conflicts with the rustc-web package the current build needs, so it
// is not installed: `apt-get download` fetches its .deb files and `dpkg -x` unpacks them
// under bench/.baseline/toolchain/ (git-ignored), run with LD_LIBRARY_PATH. The commit is
// checked out with `git worktree add` under bench/.baseline/<ref>/, its TypeScript compiled
// with this checkout's node_modules, and its wasm built as its own scripts/build-wasm.mjs
// did (an rlib of crates/kernels, then the cdylib; wasm-ld 14, which skips the rlibs'
// metadata members that wasm-ld 22 refuses). About 30 s the first time, then cached.
//
//   import { ensureBaseline } from './lib/baseline.js';
//   const root = ensureBaseline(log);   // a checkout with dist/ and bindings/wasm/ferrogpt-simd.wasm

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
export const BASELINE_REF = '3ece470';
const DIR = join(repo, 'bench', '.baseline');
const TOOLCHAIN = join(DIR, 'toolchain');
const DEBS = ['rustc', 'libstd-rust-1.63', 'libstd-rust-dev', 'libstd-rust-dev-wasm32', 'lld-14', 'liblld-14'];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.error || r.status !== 0) {
    throw new Error(`baseline: \`${cmd} ${args.join(' ')}\` failed: ${(r.error?.message ?? r.stderr ?? '').trim().split('\n').slice(-3).join(' / ')}`);
  }
  return r.stdout;
}

function ensureToolchain(log) {
  const rustc = join(TOOLCHAIN, 'usr', 'bin', 'rustc');
  const wasmLd = join(TOOLCHAIN, 'usr', 'lib', 'llvm-14', 'bin', 'wasm-ld');
  const env = { ...process.env, LD_LIBRARY_PATH: [join(TOOLCHAIN, 'usr', 'lib', 'x86_64-linux-gnu'), join(TOOLCHAIN, 'usr', 'lib', 'llvm-14', 'lib')].join(':') };
  if (!existsSync(rustc) || !existsSync(wasmLd)) {
    log(`baseline: fetching Debian's rustc 1.63 and lld 14 (apt-get download ${DEBS.join(' ')}) into ${TOOLCHAIN}`);
    const debs = join(DIR, 'debs');
    mkdirSync(debs, { recursive: true });
    run('apt-get', ['download', ...DEBS], { cwd: debs });
    for (const f of readdirSync(debs).filter((x) => x.endsWith('.deb'))) run('dpkg', ['-x', join(debs, f), TOOLCHAIN]);
  }
  const version = run(rustc, ['--version'], { env }).trim();
  if (!version.startsWith('rustc 1.63')) throw new Error(`baseline: ${rustc} is ${version}, expected rustc 1.63`);
  return { rustc, wasmLd, env };
}

/** The baseline checkout (built), building what is missing; its root path. */
export function ensureBaseline(log = console.log, ref = BASELINE_REF) {
  const root = join(DIR, ref);
  const wasm = join(root, 'dist', 'bindings', 'wasm', 'ferrogpt-simd.wasm');
  if (existsSync(wasm) && existsSync(join(root, 'dist', 'src', 'index.js'))) return root;
  if (!existsSync(join(root, 'package.json'))) {
    rmSync(root, { recursive: true, force: true });
    run('git', ['-C', repo, 'worktree', 'prune']);
    run('git', ['-C', repo, 'worktree', 'add', '--detach', '-f', root, ref]);
  }
  const tc = ensureToolchain(log);
  log(`baseline: building ${ref}'s simd128 wasm with ${run(tc.rustc, ['--version'], { env: tc.env }).trim()}`);
  const work = join(DIR, `build-${ref}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const common = ['--edition', '2021', '--target', 'wasm32-unknown-unknown', '-C', 'opt-level=3', '-C', 'panic=abort', '-C', 'codegen-units=1', '-C', 'strip=debuginfo', '-C', 'target-feature=+simd128'];
  run(tc.rustc, [...common, '--cfg', 'feature="bench"', '--crate-type', 'rlib', '--crate-name', 'ferrogpt_kernels', '--out-dir', work, 'crates/kernels/src/lib.rs'], { cwd: root, env: tc.env });
  run(tc.rustc, [...common, '-C', `linker=${tc.wasmLd}`, '--crate-type', 'cdylib', '--crate-name', 'ferrogpt_wasm', '--extern', `ferrogpt_kernels=${join(work, 'libferrogpt_kernels.rlib')}`, '-L', work, '--out-dir', work, 'crates/wasm/src/lib.rs'], { cwd: root, env: tc.env });
  mkdirSync(join(root, 'bindings', 'wasm'), { recursive: true });
  // Its loader insists on both files; the scalar one is never used by the benchmarks.
  for (const f of ['ferrogpt-simd.wasm', 'ferrogpt.wasm']) copyFileSync(join(work, 'ferrogpt_wasm.wasm'), join(root, 'bindings', 'wasm', f));
  if (!existsSync(join(root, 'node_modules'))) symlinkSync(join(repo, 'node_modules'), join(root, 'node_modules'));
  log(`baseline: compiling ${ref}'s TypeScript`);
  run('npm', ['run', 'build:ts'], { cwd: root });
  if (!existsSync(wasm)) throw new Error(`baseline: ${wasm} is missing after the build`);
  return root;
}
