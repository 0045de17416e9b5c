#!/usr/bin/env node
// Builds the WebAssembly kernels (npm run build:wasm):
//   bindings/wasm/ferrogpt-simd.wasm  (-C target-feature=+simd128)
//   bindings/wasm/ferrogpt.wasm       (scalar, for engines without simd128)
//
// It calls rustc directly, not cargo: crates/kernels is compiled as an rlib, then
// crates/wasm as a cdylib linked against it. Debian's cargo is too old to read our
// Cargo.lock, and neither crate has dependencies, so cargo adds nothing here.
//
// Toolchain, in order of preference:
//   1. `rustc` on PATH (rustup) if its wasm32-unknown-unknown libdir holds libstd;
//   2. /usr/bin/rustc (Debian, Rust 1.63) if its wasm32 libdir exists (links with wasm-ld);
//   3. as root on Debian: apt-get install rustc libstd-rust-dev-wasm32 lld, then 2.;
//   otherwise fail, saying what to install.
// FERROGPT_RUSTC=/path/to/rustc overrides the choice. wasm-opt -O3 runs if it is on PATH
// (or in node_modules/.bin from the `binaryen` package).

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, renameSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { aptCommand, aptInstall, canAptInstall } from './apt.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TARGET = 'wasm32-unknown-unknown';
const APT_PACKAGES = ['rustc', 'libstd-rust-dev-wasm32', 'lld'];
const APT_COMMAND = aptCommand(APT_PACKAGES);

function log(msg) {
  console.log(`ferrogpt: ${msg}`);
}

function fail(msg) {
  console.error(`ferrogpt: ${msg}`);
  process.exit(1);
}

/** stdout of a command, or null if it cannot run or fails. */
function tryRun(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return r.stdout.trim();
}

function hasWasmStd(rustc) {
  const libdir = tryRun(rustc, ['--print', 'target-libdir', '--target', TARGET]);
  if (!libdir || !existsSync(libdir)) return false;
  try {
    return readdirSync(libdir).some((f) => f.startsWith('libstd-') && f.endsWith('.rlib'));
  } catch {
    return false;
  }
}

function onPath(cmd) {
  return tryRun('sh', ['-c', `command -v ${cmd}`]);
}

/** { rustc, linkerArgs } for the wasm32 build. */
function chooseToolchain() {
  const override = process.env.FERROGPT_RUSTC;
  if (override) {
    if (!hasWasmStd(override)) fail(`FERROGPT_RUSTC=${override} has no ${TARGET} standard library`);
    return toolchain(override);
  }
  if (onPath('rustc') && hasWasmStd('rustc')) return toolchain('rustc');
  const debian = '/usr/bin/rustc';
  if (existsSync(debian) && hasWasmStd(debian)) return toolchain(debian);

  if (canAptInstall()) {
    log(`installing Debian packages ${APT_PACKAGES.join(' ')} for the wasm32 build`);
    if (!aptInstall(APT_PACKAGES)) fail(`\`${APT_COMMAND}\` failed; install those packages and rerun npm run build:wasm`);
    if (existsSync(debian) && hasWasmStd(debian)) return toolchain(debian);
    fail(`${debian} still has no ${TARGET} standard library after installing ${APT_PACKAGES.join(' ')}`);
  }
  fail(
    `no Rust toolchain with the ${TARGET} target found. Either \`rustup target add ${TARGET}\`, ` +
      `or on Debian/Ubuntu run (as root): ${APT_COMMAND}`,
  );
}

function toolchain(rustc) {
  const version = tryRun(rustc, ['--version']) ?? 'rustc (unknown version)';
  const path = rustc.includes('/') ? rustc : onPath(rustc) ?? rustc;
  // rustup's toolchains ship rust-lld and use it by default; Debian's rustc needs the
  // system wasm-ld (package lld).
  const linkerArgs = [];
  if (path.startsWith('/usr/bin/')) {
    const wasmLd = onPath('wasm-ld');
    if (!wasmLd) fail(`wasm-ld not found (Debian package lld): ${APT_COMMAND}`);
    linkerArgs.push('-C', `linker=${wasmLd}`);
  }
  return { rustc: path, version, linkerArgs };
}

function rustc(tc, args) {
  const r = spawnSync(tc.rustc, args, { stdio: ['ignore', 'inherit', 'inherit'], cwd: root });
  if (r.error) fail(`could not run ${tc.rustc}: ${r.error.message}`);
  if (r.status !== 0) fail(`${tc.rustc} failed (exit ${r.status}): ${tc.rustc} ${args.join(' ')}`);
}

function findWasmOpt() {
  const local = join(root, 'node_modules', '.bin', 'wasm-opt');
  if (existsSync(local)) return local;
  return onPath('wasm-opt');
}

function build(tc, simd, outFile) {
  const work = join(tmpdir(), `ferrogpt-wasm-${process.pid}-${simd ? 'simd' : 'scalar'}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const common = [
    '--edition', '2021',
    '--target', TARGET,
    '-C', 'opt-level=3',
    '-C', 'panic=abort',
    '-C', 'codegen-units=1',
    '-C', 'strip=debuginfo',
  ];
  if (simd) common.push('-C', 'target-feature=+simd128');
  rustc(tc, [
    ...common,
    // Feature "bench" (crates/wasm/Cargo.toml): the wasm ABI exports the peak-FMA loop.
    '--cfg', 'feature="bench"',
    '--crate-type', 'rlib',
    '--crate-name', 'ferrogpt_kernels',
    '--out-dir', work,
    'crates/kernels/src/lib.rs',
  ]);
  rustc(tc, [
    ...common,
    ...tc.linkerArgs,
    '--crate-type', 'cdylib',
    '--crate-name', 'ferrogpt_wasm',
    '--extern', `ferrogpt_kernels=${join(work, 'libferrogpt_kernels.rlib')}`,
    '-L', work,
    '--out-dir', work,
    'crates/wasm/src/lib.rs',
  ]);
  const built = join(work, 'ferrogpt_wasm.wasm');
  const wasmOpt = findWasmOpt();
  let optimized = false;
  if (wasmOpt) {
    const args = [built, '-O3', '-o', built];
    if (simd) args.splice(1, 0, '--enable-simd');
    const r = spawnSync(wasmOpt, args, { stdio: 'inherit' });
    optimized = r.status === 0;
    if (!optimized) log(`wasm-opt failed; keeping the unoptimized ${outFile}`);
  }
  renameOrCopy(built, outFile);
  rmSync(work, { recursive: true, force: true });
  return optimized;
}

function renameOrCopy(from, to) {
  try {
    renameSync(from, to);
  } catch {
    execFileSync('cp', [from, to]);
  }
}

const tc = chooseToolchain();
const outDir = join(root, 'bindings', 'wasm');
mkdirSync(outDir, { recursive: true });
log(`building ${TARGET} kernels with ${tc.version} (${tc.rustc})`);
for (const [simd, name] of [[true, 'ferrogpt-simd.wasm'], [false, 'ferrogpt.wasm']]) {
  const out = join(outDir, name);
  const t0 = Date.now();
  const optimized = build(tc, simd, out);
  const kb = (statSync(out).size / 1024).toFixed(1);
  log(
    `built bindings/wasm/${name} (${simd ? 'simd128' : 'scalar'}, ${kb} KiB, ` +
      `${optimized ? 'wasm-opt -O3' : 'no wasm-opt'}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
}
// The compiled loader (dist/bindings/wasm.js) reads its files from dist/bindings/wasm/
// (scripts/build-dist.mjs copies them there); keep an existing build's copies current.
const distDir = join(root, 'dist', 'bindings');
if (existsSync(distDir)) {
  mkdirSync(join(distDir, 'wasm'), { recursive: true });
  for (const name of ['ferrogpt-simd.wasm', 'ferrogpt.wasm']) execFileSync('cp', [join(outDir, name), join(distDir, 'wasm', name)]);
  log('copied both to dist/bindings/wasm/');
}
