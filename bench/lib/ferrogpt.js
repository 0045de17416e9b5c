// Loads the pieces of ferrogpt the benchmarks use, from the compiled library in dist/
// (`npm run build:ts`) and the prebuilt addon/wasm in bindings/. Every piece is optional:
// what is missing is reported (with the reason) and its rows say "n/a", so the harness and
// the peers can run before the kernels land.

import { createRequire } from 'node:module';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { errText } from './util.js';


async function importDist(root, rel) {
  const file = join(root, 'dist', rel);
  if (!existsSync(file)) throw new Error(`${join('dist', rel)} not found (run npm run build:ts)`);
  return import(pathToFileURL(file).href);
}

// matmulForward, not peakGflops: the shipped addon has no benchmark probes (bench-addon.js).
const isAddon = (x) => x != null && (typeof x === 'object' || typeof x === 'function') && typeof x.matmulForward === 'function';

/**
 * The raw napi addon. Preferred through the library's own loader (dist/bindings/native.js),
 * so that setThreads acts on the same module instance the NativeBackend uses; else the
 * bindings/native/*.node for this platform, required directly.
 * Returns { addon, how } where `how` lets a worker thread load the same file.
 */
export async function loadAddon(root) {
  const errors = [];
  try {
    const mod = await importDist(root, 'bindings/native.js');
    for (const [name, value] of Object.entries(mod)) {
      if (isAddon(value)) return { addon: value, how: { kind: 'module-export', file: join(root, 'dist/bindings/native.js'), name } };
    }
    for (const [name, value] of Object.entries(mod)) {
      if (typeof value !== 'function' || !/load|native|addon|binding/i.test(name)) continue;
      try {
        const got = await value();
        const addon = isAddon(got) ? got : isAddon(got?.addon) ? got.addon : null; // loadNative() → { addon, source }
        if (addon) return { addon, how: { kind: 'module-call', file: join(root, 'dist/bindings/native.js'), name }, source: got?.source };
      } catch (e) {
        errors.push(`${name}(): ${errText(e)}`);
      }
    }
    errors.push('dist/bindings/native.js exports no addon object with matmulForward');
  } catch (e) {
    errors.push(errText(e));
  }
  const require = createRequire(import.meta.url);
  const override = process.env.FERROGPT_NATIVE_PATH; // e.g. the bench build (bench-addon.js)
  if (override) {
    const addon = require(override);
    if (!isAddon(addon)) throw new Error(`${override} has no matmulForward export`);
    return { addon, how: { kind: 'require', file: override } };
  }
  const dir = join(root, 'bindings/native');
  const plat = `${process.platform}-${process.arch}`;
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.node')) : [];
  const file = files.find((f) => f.includes(plat)) ?? files[0];
  if (!file) throw new Error(`no addon: ${errors.join('; ')}; no bindings/native/*.node`);
  const addon = require(join(dir, file));
  if (!isAddon(addon)) throw new Error(`bindings/native/${file} has no matmulForward export`);
  return { addon, how: { kind: 'require', file: join(dir, file) } };
}

/** Loads the addon again in a worker thread, the way loadAddon found it. */
export async function loadAddonLike(how) {
  if (how.kind === 'require') return createRequire(import.meta.url)(how.file);
  const mod = await import(pathToFileURL(how.file).href);
  if (how.kind === 'module-export') return mod[how.name];
  const got = await mod[how.name]();
  return isAddon(got) ? got : got.addon;
}

async function make(mod, factoryNames, className) {
  for (const f of factoryNames) if (typeof mod[f] === 'function') return await mod[f]();
  if (typeof mod[className] === 'function') return new mod[className]();
  throw new Error(`exports none of ${[...factoryNames, className].join(', ')}`);
}

/** { native, wasm, reference, addon, addonHow, errors } — each backend or null. opts.only: load just that backend. */
export async function loadFerrogpt(root, opts = {}) {
  const out = { native: null, wasm: null, reference: null, addon: null, addonHow: null, errors: {} };
  if (!opts.only || opts.only === 'native') try {
    const { addon, how } = await loadAddon(root);
    out.addon = addon;
    out.addonHow = how;
  } catch (e) {
    out.errors.addon = errText(e);
  }
  const tries = [
    ['native', 'src/backend/native.js', ['createNativeBackend'], 'NativeBackend'],
    ['wasm', 'src/backend/wasm.js', ['createWasmBackend'], 'WasmBackend'],
    ['reference', 'src/backend/reference.js', ['createReferenceBackend'], 'ReferenceBackend'],
  ];
  for (const [key, rel, factories, cls] of tries) {
    if (opts.only && key !== opts.only) continue;
    try {
      out[key] = await make(await importDist(root, rel), factories, cls);
    } catch (e) {
      out.errors[key] = errText(e);
    }
  }
  return out;
}

/** Sets the native thread count (backend method if it has one, else the addon's). Returns threads in use. */
export function setNativeThreads(fg, n) {
  if (fg.native && typeof fg.native.setThreads === 'function') fg.native.setThreads(n);
  else if (fg.addon && typeof fg.addon.setThreads === 'function') fg.addon.setThreads(n);
  else throw new Error('neither NativeBackend nor the addon has setThreads');
  return nativeThreads(fg);
}

export function nativeThreads(fg) {
  if (fg.native) {
    try {
      const t = fg.native.info().threads;
      if (typeof t === 'number') return t;
    } catch {
      /* fall through */
    }
  }
  return fg.addon && typeof fg.addon.threads === 'function' ? fg.addon.threads() : null;
}

/** Calls the first of `names` the addon exports, or returns undefined. */
export function addonCall(addon, names, ...args) {
  if (!addon) return undefined;
  for (const n of names) if (typeof addon[n] === 'function') return { name: n, value: addon[n](...args) };
  return undefined;
}
