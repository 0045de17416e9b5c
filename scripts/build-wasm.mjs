#!/usr/bin/env node
// Builds the WebAssembly kernels (npm run build:wasm), four variants of crates/wasm that
// bindings/wasm.ts chooses between at run time:
//   bindings/wasm/ferrogpt-relaxed-threads.wasm  relaxed SIMD (fused multiply-add) + threads
//   bindings/wasm/ferrogpt-simd-threads.wasm     simd128 + threads
//   bindings/wasm/ferrogpt-simd.wasm             simd128, one thread
//   bindings/wasm/ferrogpt.wasm                  scalar, one thread
// The threaded ones import one shared memory (+atomics, --shared-memory) and export what a
// worker needs to start on it: its stack pointer and TLS block (bindings/wasm-pool.ts).
//
// Every variant builds the standard library from source (cargo -Zbuild-std): std must be
// compiled with +atomics for threads, and one way for all four keeps them alike. That takes
// a nightly feature, enabled with RUSTC_BOOTSTRAP=1, and the standard library's source.
//
// Toolchain, in order of preference (the build says which it used):
//   1. rustup's (`rustc` and `cargo` on PATH) if it has the wasm32-unknown-unknown target
//      and the rust-src component;
//   2. Debian's rustc-web (/usr/bin/rustc and /usr/bin/cargo, Rust 1.96, LLVM 22) with
//      rust-web-src, linked with wasm-ld-22 (package lld-22);
//   3. as root on Debian: apt-get install rustc-web cargo-web rust-web-src lld-22, then 2.;
//   otherwise fail, saying what to install.
// FERROGPT_RUSTC=/path/to/rustc (and FERROGPT_CARGO) override the choice. wasm-opt -O3 runs
// if it is on PATH (or in node_modules/.bin from the `binaryen` package).
//
//   node scripts/build-wasm.mjs [--only relaxed-simd-threads,simd128,...]

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { aptCommand, aptInstall, canAptInstall } from './apt.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TARGET = 'wasm32-unknown-unknown';
const APT_PACKAGES = ['rustc-web', 'cargo-web', 'rust-web-src', 'lld-22'];
const APT_COMMAND = aptCommand(APT_PACKAGES);
const DEBIAN_RUSTC = '/usr/bin/rustc';
const DEBIAN_CARGO = '/usr/bin/cargo';
const DEBIAN_WASM_LD = '/usr/bin/wasm-ld-22';

/** Bytes of the shared memory the threaded builds start with (bindings/wasm.ts: SHARED_INITIAL_PAGES). */
const SHARED_INITIAL_BYTES = 64 * 65536;
/** Each thread's stack (the workers' too: bindings/wasm.ts: WORKER_STACK_BYTES). */
const STACK_BYTES = 1 << 20;

const THREADS = ['+atomics', '+bulk-memory', '+mutable-globals'];
const THREAD_LINK_ARGS = [
  '--shared-memory',
  '--import-memory',
  `--initial-memory=${SHARED_INITIAL_BYTES}`,
  '--max-memory=4294967296',
  // What bindings/wasm-pool.ts needs to give a worker its own stack and TLS block.
  '--export=__stack_pointer',
  '--export=__wasm_init_tls',
  '--export=__tls_size',
  '--export=__tls_align',
  '--export=__tls_base',
];

const VARIANTS = [
  { name: 'relaxed-simd-threads', file: 'ferrogpt-relaxed-threads.wasm', features: ['+simd128', '+relaxed-simd', ...THREADS], linkArgs: THREAD_LINK_ARGS, opt: ['--enable-simd', '--enable-relaxed-simd', '--enable-threads', '--enable-bulk-memory', '--enable-mutable-globals'] },
  { name: 'simd128-threads', file: 'ferrogpt-simd-threads.wasm', features: ['+simd128', ...THREADS], linkArgs: THREAD_LINK_ARGS, opt: ['--enable-simd', '--enable-threads', '--enable-bulk-memory', '--enable-mutable-globals'] },
  { name: 'simd128', file: 'ferrogpt-simd.wasm', features: ['+simd128'], linkArgs: [], opt: ['--enable-simd'] },
  { name: 'scalar', file: 'ferrogpt.wasm', features: [], linkArgs: [], opt: [] },
];

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

function onPath(cmd) {
  return tryRun('sh', ['-c', `command -v ${cmd}`]);
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

/** Whether `rustc`'s sysroot holds the standard library's source (what -Zbuild-std compiles). */
function hasStdSource(rustc) {
  const sysroot = tryRun(rustc, ['--print', 'sysroot']);
  return sysroot !== null && existsSync(join(sysroot, 'lib', 'rustlib', 'src', 'rust', 'library', 'Cargo.lock'));
}

/** { rustc, cargo, version, linkerArgs } for the wasm32 build. */
function chooseToolchain() {
  const override = process.env.FERROGPT_RUSTC;
  if (override) {
    if (!hasStdSource(override)) fail(`FERROGPT_RUSTC=${override} has no standard-library source (rust-src / rust-web-src) to build std for ${TARGET}`);
    return toolchain(override, process.env.FERROGPT_CARGO ?? (override.startsWith('/usr/bin/') ? DEBIAN_CARGO : 'cargo'));
  }
  const rustup = onPath('rustc');
  if (rustup && !rustup.startsWith('/usr/bin/') && hasWasmStd('rustc') && hasStdSource('rustc')) return toolchain(rustup, 'cargo');
  if (debianReady()) return toolchain(DEBIAN_RUSTC, DEBIAN_CARGO);

  if (canAptInstall()) {
    log(`installing Debian packages ${APT_PACKAGES.join(' ')} for the wasm32 build`);
    if (!aptInstall(APT_PACKAGES)) fail(`\`${APT_COMMAND}\` failed; install those packages and rerun npm run build:wasm`);
    if (debianReady()) return toolchain(DEBIAN_RUSTC, DEBIAN_CARGO);
    fail(`${DEBIAN_RUSTC} still cannot build for ${TARGET} after installing ${APT_PACKAGES.join(' ')}`);
  }
  fail(
    `no Rust toolchain that can build the wasm32 kernels was found. Either ` +
      `\`rustup target add ${TARGET} && rustup component add rust-src\`, or on Debian run (as root): ${APT_COMMAND}`,
  );
}

/** Debian's rustc-web, its std source, cargo and wasm-ld-22 are all there. */
function debianReady() {
  return existsSync(DEBIAN_RUSTC) && existsSync(DEBIAN_CARGO) && existsSync(DEBIAN_WASM_LD) && hasStdSource(DEBIAN_RUSTC);
}

function toolchain(rustc, cargo) {
  const version = tryRun(rustc, ['--version']) ?? 'rustc (unknown version)';
  // rustup's toolchains link with their own rust-lld; Debian's rustc-web needs wasm-ld-22.
  const linkerArgs = rustc.startsWith('/usr/bin/') ? ['-C', `linker=${DEBIAN_WASM_LD}`] : [];
  return { rustc, cargo, version, linkerArgs };
}

function findWasmOpt() {
  const local = join(root, 'node_modules', '.bin', 'wasm-opt');
  if (existsSync(local)) return local;
  return onPath('wasm-opt');
}

function build(tc, variant, outFile) {
  const rustflags = [
    ...tc.linkerArgs,
    '-C', `target-feature=${variant.features.length ? variant.features.join(',') : '-simd128'}`,
    '-C', `link-arg=-zstack-size=${STACK_BYTES}`,
    ...variant.linkArgs.flatMap((a) => ['-C', `link-arg=${a}`]),
  ];
  const targetDir = join(root, 'target', 'wasm', variant.name);
  const env = { ...process.env, RUSTC: tc.rustc, RUSTC_BOOTSTRAP: '1', RUSTFLAGS: rustflags.join(' '), CARGO_TARGET_DIR: targetDir };
  delete env.CARGO_ENCODED_RUSTFLAGS;
  delete env.CARGO_BUILD_RUSTFLAGS;
  const args = [
    'build', '--release', '--quiet',
    '-p', 'ferrogpt-wasm',
    '--lib',
    '--target', TARGET,
    '-Zbuild-std=std,panic_abort',
    // A kernel panic is a trap (the addon keeps the workspace's unwind).
    '--config', 'profile.release.panic="abort"',
  ];
  const r = spawnSync(tc.cargo, args, { stdio: ['ignore', 'inherit', 'inherit'], cwd: root, env });
  if (r.error) fail(`could not run ${tc.cargo}: ${r.error.message}`);
  if (r.status !== 0) fail(`${tc.cargo} failed (exit ${r.status}) building the ${variant.name} variant: RUSTFLAGS="${env.RUSTFLAGS}" ${tc.cargo} ${args.join(' ')}`);
  const built = join(targetDir, TARGET, 'release', 'ferrogpt_wasm.wasm');
  const wasmOpt = findWasmOpt();
  let optimized = false;
  if (wasmOpt) {
    const o = spawnSync(wasmOpt, [built, ...variant.opt, '-O3', '-o', outFile], { stdio: 'inherit' });
    optimized = o.status === 0;
    if (!optimized) log(`wasm-opt failed; keeping the unoptimized ${outFile}`);
  }
  if (!optimized) execFileSync('cp', [built, outFile]);
  return optimized;
}

function parseOnly(argv) {
  const i = argv.indexOf('--only');
  if (i < 0) return VARIANTS;
  const names = (argv[i + 1] ?? '').split(',');
  const unknown = names.filter((n) => !VARIANTS.some((v) => v.name === n));
  if (unknown.length) fail(`--only: unknown variant ${unknown.join(', ')} (variants: ${VARIANTS.map((v) => v.name).join(', ')})`);
  return VARIANTS.filter((v) => names.includes(v.name));
}

const variants = parseOnly(process.argv.slice(2));
const tc = chooseToolchain();
const outDir = join(root, 'bindings', 'wasm');
mkdirSync(outDir, { recursive: true });
log(`building ${TARGET} kernels with ${tc.version} (${tc.rustc}, ${tc.cargo}), std from source`);
for (const variant of variants) {
  const out = join(outDir, variant.file);
  const t0 = Date.now();
  const optimized = build(tc, variant, out);
  const kb = (statSync(out).size / 1024).toFixed(1);
  log(`built bindings/wasm/${variant.file} (${variant.name}, ${kb} KiB, ${optimized ? 'wasm-opt -O3' : 'no wasm-opt'}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
// The compiled loader (dist/bindings/wasm.js) reads its files from dist/bindings/wasm/
// (scripts/build-dist.mjs copies them there); keep an existing build's copies current.
const distDir = join(root, 'dist', 'bindings');
if (existsSync(distDir)) {
  mkdirSync(join(distDir, 'wasm'), { recursive: true });
  for (const v of variants) execFileSync('cp', [join(outDir, v.file), join(distDir, 'wasm', v.file)]);
  log(`copied ${variants.length === 1 ? 'it' : 'them'} to dist/bindings/wasm/`);
}
