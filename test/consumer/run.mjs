#!/usr/bin/env node
// The consumer test (npm run test:consumer; .ci/run runs it after npm test): is the package
// that `npm pack` makes usable by someone who only has Node?
//
//   1. npm pack (--ignore-scripts: it packs what `npm run build` left; it checks first that
//      all of it is there) into a temporary folder, and checks the file list;
//   2. an empty project installs the tarball with a PATH that holds node, npm and sh only,
//      so cargo and rustc cannot be found (dependencies come from the npm cache that the
//      root `npm ci` filled: --prefer-offline);
//   3. flow.cjs trains a tiny model 8 steps, saves, loads and generates: as ESM on the
//      native addon, as ESM with FERROGPT_BACKEND=wasm, and as CommonJS (require) on the
//      native addon and on wasm; the losses must be close across backends, the tokens of a
//      seeded generation equal, and ESM and CommonJS identical;
//   3b. a small browser app (web/) bundles it with vite: the four .wasm files become assets and
//      Node's modules are mapped by the package's "browser" field, not stubbed;
//   4. the ESM and CommonJS type declarations type-check (tsc --module nodenext);
//   5. the loader order: the platform package (npm/<platform>, packed with the addon) is
//      used when the package's own bindings/native/*.node is gone; with neither, the wasm
//      backend is used with exactly one notice on stderr; FERROGPT_BACKEND always wins.
//
// Exits non-zero with a message on the first failure. Takes ~20 s.

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const t0 = Date.now();

function log(msg) {
  console.log(`consumer: ${msg}`);
}
function fail(msg) {
  console.error(`consumer: FAIL: ${msg}`);
  process.exit(1);
}
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.error) fail(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} exited ${r.status}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r;
}
function lastJson(stdout, what) {
  const line = stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line);
  } catch {
    fail(`${what} printed no JSON line:\n${stdout}`);
  }
}

// ---- 0. what the build must have left ----
const nodeFiles = existsSync(join(root, 'bindings/native')) ? readdirSync(join(root, 'bindings/native')).filter((f) => f.endsWith('.node')) : [];
const required = ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/cjs/src/index.js', 'dist/cjs/src/index.d.ts', 'dist/cjs/package.json', 'dist/bindings/wasm/ferrogpt-relaxed-threads.wasm', 'dist/bindings/wasm/ferrogpt-simd-threads.wasm', 'dist/bindings/wasm/ferrogpt-simd.wasm', 'dist/bindings/wasm/ferrogpt.wasm'];
const missing = required.filter((f) => !existsSync(join(root, f)));
if (nodeFiles.length === 0) missing.push('bindings/native/ferrogpt.<platform>.node');
if (missing.length > 0) fail(`missing build outputs (run npm run build): ${missing.join(', ')}`);
const platform = nodeFiles[0].replace(/^ferrogpt\./, '').replace(/\.node$/, ''); // e.g. linux-x64-gnu

const work = mkdtempSync(join(tmpdir(), 'ferrogpt-consumer-'));
const keep = process.env.FERROGPT_KEEP_CONSUMER === '1';
process.on('exit', () => {
  if (!keep) rmSync(work, { recursive: true, force: true });
  else console.log(`consumer: kept ${work}`);
});

// ---- 1. pack ----
const packed = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: root });
const info = JSON.parse(packed.stdout)[0];
const tarball = join(work, info.filename);
const files = info.files.map((f) => f.path);
const allowed = [
  /^package\.json$/,
  /^README(\.md)?$/i,
  /^LICENSE(\.md|\.txt)?$/i,
  /^data\/(corpus\.txt|README\.md)$/,
  /^bindings\/native\/ferrogpt\.[a-z0-9-]+\.node$/,
  /^dist\/bindings\/wasm\/ferrogpt(-simd|-simd-threads|-relaxed-threads)?\.wasm$/,
  /^dist\/(cjs\/)?(src|bindings)\/.+\.(js|d\.ts)$/,
  /^dist\/cjs\/package\.json$/,
];
const stray = files.filter((f) => !allowed.some((re) => re.test(f)));
if (stray.length > 0) fail(`the tarball holds files it should not: ${stray.join(', ')}`);
for (const need of ['package.json', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/cjs/src/index.js', 'dist/cjs/src/index.d.ts', 'dist/src/cli/index.js', 'dist/bindings/wasm.js', 'dist/bindings/wasm-pool.js', 'dist/bindings/wasm/ferrogpt-relaxed-threads.wasm', 'dist/bindings/wasm/ferrogpt-simd-threads.wasm', 'dist/bindings/wasm/ferrogpt-simd.wasm', 'dist/bindings/wasm/ferrogpt.wasm', 'data/corpus.txt', `bindings/native/${nodeFiles[0]}`]) {
  if (!files.includes(need)) fail(`the tarball lacks ${need}`);
}
log(`packed ${info.filename}: ${files.length} files, ${(info.size / 1e6).toFixed(2)} MB`);

// ---- 2. an empty project, no Rust on PATH ----
const bin = join(work, 'bin');
mkdirSync(bin);
const which = (cmd) => run('sh', ['-c', `command -v ${cmd}`]).stdout.trim();
symlinkSync(process.execPath, join(bin, 'node'));
symlinkSync(which('npm'), join(bin, 'npm'));
symlinkSync(which('sh'), join(bin, 'sh'));
const env = { ...process.env, PATH: bin };
for (const k of Object.keys(env)) if (/^(FERROGPT_|CARGO|RUSTC|RUSTUP)/.test(k)) delete env[k];
for (const tool of ['cargo', 'rustc']) {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { env, encoding: 'utf8' });
  if (r.status === 0) fail(`${tool} is still on the test PATH (${r.stdout.trim()})`);
}
const app = join(work, 'app');
mkdirSync(app);
writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'ferrogpt-consumer', version: '1.0.0', private: true }, null, 2));
for (const f of ['flow.cjs', 'consumer.mjs', 'consumer.cjs', 'backend.mjs', 'types.mts', 'types.cts']) copyFileSync(join(here, f), join(app, f));
const npmFlags = ['--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'];
run('npm', ['install', ...npmFlags, tarball], { cwd: app, env });
log(`installed into an empty project with PATH=${bin} (node, npm, sh; no cargo, no rustc)`);

// ---- 3. train, save, load, generate: ESM native, ESM wasm, CommonJS native and wasm ----
const node = (script, extra = {}) => run(join(bin, 'node'), [script], { cwd: app, env: { ...env, ...extra } });
const esmNative = lastJson(node('consumer.mjs').stdout, 'consumer.mjs');
const esmWasm = lastJson(node('consumer.mjs', { FERROGPT_BACKEND: 'wasm' }).stdout, 'consumer.mjs (wasm)');
const cjsNative = lastJson(node('consumer.cjs').stdout, 'consumer.cjs');
const cjsWasm = lastJson(node('consumer.cjs', { FERROGPT_BACKEND: 'wasm' }).stdout, 'consumer.cjs (wasm)');
for (const r of [esmNative, esmWasm, cjsNative, cjsWasm]) log(`${r.moduleSystem} on ${r.backend} (${r.simd}): losses ${r.losses[0].toFixed(4)} → ${r.losses.at(-1).toFixed(4)}, generated ${JSON.stringify(r.text)}`);

if (esmNative.backend !== 'native') fail(`the default backend is ${esmNative.backend}, expected native (the tarball ships the addon for ${platform})`);
// Node 20 without --experimental-wasm-relaxed-simd: simd128 with threads (Node >= 22: relaxed SIMD).
const wantSimd = Number(process.versions.node.split('.')[0]) >= 22 ? 'relaxed-simd' : 'simd128';
if (esmWasm.backend !== 'wasm' || esmWasm.simd !== wantSimd) fail(`FERROGPT_BACKEND=wasm gave ${esmWasm.backend} (${esmWasm.simd}), expected wasm (${wantSimd})`);
if (cjsNative.moduleSystem !== 'cjs' || cjsNative.backend !== 'native') fail(`the CommonJS run reported ${cjsNative.moduleSystem} on ${cjsNative.backend}`);
// (The CommonJS twin of the wasm loader once read its own constants through a local named
// `exports`: wasm did not load from require('ferrogpt').)
if (cjsWasm.moduleSystem !== 'cjs' || cjsWasm.backend !== 'wasm') fail(`the CommonJS wasm run reported ${cjsWasm.moduleSystem} on ${cjsWasm.backend}`);
for (const r of [esmNative, esmWasm, cjsNative, cjsWasm]) {
  if (r.loadMaxDiff !== 0) fail(`${r.moduleSystem}/${r.backend}: the loaded model's logits differ from the saved one's by ${r.loadMaxDiff}`);
  if (!r.streamedMatches) fail(`${r.moduleSystem}/${r.backend}: the streamed text differs from result.text`);
  if (!(r.losses.at(-1) < r.losses[0])) fail(`${r.moduleSystem}/${r.backend}: the loss did not go down: ${r.losses.join(', ')}`);
  if (r.tokens.length === 0) fail(`${r.moduleSystem}/${r.backend}: generated no tokens`);
}
// native vs wasm: the same kernels in another summation order, so close, not equal.
const lossDiff = Math.max(...esmNative.losses.map((l, i) => Math.abs(l - esmWasm.losses[i])));
if (!(lossDiff < 1e-3)) fail(`native and wasm losses differ by ${lossDiff}: ${esmNative.losses} vs ${esmWasm.losses}`);
if (JSON.stringify(esmNative.tokens) !== JSON.stringify(esmWasm.tokens)) fail(`native and wasm generated different tokens: ${esmNative.tokens} vs ${esmWasm.tokens}`);
// ESM and CommonJS run the same code on the same backend: identical.
if (JSON.stringify(esmNative.losses) !== JSON.stringify(cjsNative.losses) || JSON.stringify(esmNative.tokens) !== JSON.stringify(cjsNative.tokens)) {
  fail(`ESM and CommonJS differ: ${JSON.stringify(esmNative)} vs ${JSON.stringify(cjsNative)}`);
}
if (JSON.stringify(esmWasm.losses) !== JSON.stringify(cjsWasm.losses) || JSON.stringify(esmWasm.tokens) !== JSON.stringify(cjsWasm.tokens)) {
  fail(`ESM and CommonJS differ on wasm: ${JSON.stringify(esmWasm)} vs ${JSON.stringify(cjsWasm)}`);
}
log(`native and wasm agree (max loss difference ${lossDiff.toExponential(2)}, same ${esmNative.tokens.length} tokens); ESM and CommonJS identical`);

// The CLI bin is installed and runs.
const version = run(join(app, 'node_modules', '.bin', 'ferrogpt'), ['--version'], { cwd: app, env }).stdout.trim();
log(`node_modules/.bin/ferrogpt --version: ${version}`);

// ---- 3b. a browser app bundles it (the root's vite, from the installed package) ----
mkdirSync(join(app, 'web'));
for (const f of ['index.html', 'main.js']) copyFileSync(join(here, 'web', f), join(app, 'web', f));
const vite = join(root, 'node_modules', 'vite', 'bin', 'vite.js');
const bundled = run(join(bin, 'node'), [vite, 'build', 'web', '--outDir', '../web-dist', '--emptyOutDir', '--logLevel', 'warn'], { cwd: app, env });
if (/externalized for browser compatibility|doesn't exist at build time/.test(bundled.stdout + bundled.stderr)) fail(`vite warned while bundling the package:\n${bundled.stdout}${bundled.stderr}`);
const assets = readdirSync(join(app, 'web-dist', 'assets'));
for (const re of [/^ferrogpt-relaxed-threads-.*\.wasm$/, /^ferrogpt-simd-threads-.*\.wasm$/, /^ferrogpt-simd-[^t].*\.wasm$/, /^ferrogpt-[^rs].*\.wasm$/]) if (!assets.some((a) => re.test(a))) fail(`the vite bundle lacks a wasm asset matching ${re}: ${assets.join(', ')}`);
const js = assets.filter((a) => a.endsWith('.js')).map((a) => readFileSync(join(app, 'web-dist', 'assets', a), 'utf8')).join('\n');
if (js.includes('__vite-browser-external')) fail('the vite bundle holds __vite-browser-external stubs');
log(`a vite app bundles it for browsers: ${assets.length} assets, the four wasm files, Node modules mapped to dist/src/io/browser-node.js`);

// ---- 4. types, for both module systems (the root's TypeScript) ----
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
run(join(bin, 'node'), [tsc, '--noEmit', '--strict', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext', 'types.mts', 'types.cts'], { cwd: app, env });
log('types.mts (import) and types.cts (require) type-check against the installed declarations');

// ---- 5. the loader order ----
const installed = join(app, 'node_modules', 'ferrogpt');
// The platform package, as `napi create-npm-dirs` laid it out under npm/, with the addon in it.
const pkgDir = join(work, `platform-${platform}`);
mkdirSync(pkgDir);
const npmDir = join(root, 'npm', platform);
if (!existsSync(join(npmDir, 'package.json'))) fail(`npm/${platform}/package.json is missing (napi create-npm-dirs; is ${platform} in napi.targets?)`);
copyFileSync(join(npmDir, 'package.json'), join(pkgDir, 'package.json'));
copyFileSync(join(root, 'bindings', 'native', nodeFiles[0]), join(pkgDir, nodeFiles[0]));
const platformPacked = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], { cwd: pkgDir, env }).stdout)[0];
run('npm', ['install', ...npmFlags, '--no-save', join(work, platformPacked.filename)], { cwd: app, env });
rmSync(join(installed, 'bindings', 'native'), { recursive: true, force: true });
const fromPkg = lastJson(node('backend.mjs').stdout, 'backend.mjs');
if (fromPkg.backend !== 'native' || fromPkg.source !== `package ferrogpt-${platform}`) fail(`without the local addon, expected native from package ferrogpt-${platform}, got ${JSON.stringify(fromPkg)}`);
log(`without bindings/native/: native from ${fromPkg.source}`);

rmSync(join(app, 'node_modules', `ferrogpt-${platform}`), { recursive: true, force: true });
const noNative = node('backend.mjs');
const fallback = lastJson(noNative.stdout, 'backend.mjs');
const notices = noNative.stderr.trim().split('\n').filter((l) => l.trim() !== '');
if (fallback.backend !== 'wasm') fail(`with no addon at all, expected the wasm backend, got ${JSON.stringify(fallback)}`);
if (notices.length !== 1 || !/^ferrogpt: using the wasm backend/.test(notices[0])) fail(`expected exactly one fallback notice on stderr, got:\n${noNative.stderr}`);
log(`with no addon: wasm, with one notice: ${notices[0].slice(0, 140)}…`);
const forced = lastJson(node('backend.mjs', { FERROGPT_BACKEND: 'reference' }).stdout, 'backend.mjs (reference)');
if (forced.backend !== 'reference') fail(`FERROGPT_BACKEND=reference gave ${forced.backend}`);
log('FERROGPT_BACKEND=reference is honoured');

log(`passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
