// What the library's `node:` imports become in a browser bundle.
//
// A few modules (io/, including io/hf-gpt2.ts, train/, tasks/finetuned.ts) import Node's fs, path,
// crypto and os at the top level, for the functions that read and write files. Browsers have
// none of them, and bundlers replace them with stubs that throw as soon as a named import is
// touched (Vite's dev server does), which would break the whole library, not just file I/O.
// So package.json's "browser" field maps each of those modules to this one (Vite, webpack,
// esbuild and Rollup's node-resolve honour it; examples/browser/vite.config.ts aliases them
// here too). In it:
//   - file system, path and randomBytes functions throw an Error naming what to use instead
//     (GPT.fromSafetensors, Tokenizer.fromJSON, TokenDataset.fromTokens) — only a call fails;
//   - createHash('sha256') is a real SHA-256 (TokenDataset.fromTokens names its data by it,
//     so `train` runs in browsers on in-memory tokens, with the same ids as in Node);
//   - endianness() is 'LE' (every browser engine is little-endian on the platforms we serve).
// This file lives in io/ because it stands in for the Node I/O modules the rest of io/ uses.

function unavailable(name: string): never {
  throw new Error(
    `ferrogpt: ${name} needs Node.js; in a browser there is no file system: load models with ` +
      'GPT.fromSafetensors(config, bytes), tokenizers with Tokenizer.fromJSON(json), data with TokenDataset.fromTokens(ids)',
  );
}

const stub = (module: string, name: string) =>
  function (): never {
    return unavailable(`${module}.${name}()`);
  };

// node:fs/promises and node:fs
export const readFile = stub('fs', 'readFile');
export const writeFile = stub('fs', 'writeFile');
export const mkdir = stub('fs', 'mkdir');
export const open = stub('fs', 'open');
export const rename = stub('fs', 'rename');
export const rm = stub('fs', 'rm');
export const stat = stub('fs', 'stat');
export const readdir = stub('fs', 'readdir');
export const createReadStream = stub('fs', 'createReadStream');
export const openSync = stub('fs', 'openSync');
export const closeSync = stub('fs', 'closeSync');
export const fstatSync = stub('fs', 'fstatSync');
export const readSync = stub('fs', 'readSync');
export const existsSync = (): boolean => false;
export const readFileSync = stub('fs', 'readFileSync');
// node:path
export const join = stub('path', 'join');
export const resolve = stub('path', 'resolve');
export const dirname = stub('path', 'dirname');
export const basename = stub('path', 'basename');
export const relative = stub('path', 'relative');
// node:url, node:module
export const fileURLToPath = stub('url', 'fileURLToPath');
export const pathToFileURL = stub('url', 'pathToFileURL');
export const createRequire = stub('module', 'createRequire');
// node:os
export const endianness = (): 'LE' | 'BE' => 'LE';
// node:worker_threads: bindings/wasm-pool.ts starts browser Workers instead.
export const Worker = stub('worker_threads', 'Worker');
// node:crypto
export const randomBytes = stub('crypto', 'randomBytes');

/** node:crypto's createHash, for 'sha256' only: update(bytes | string) …, digest('hex'). */
export function createHash(algorithm: string): Sha256 {
  if (algorithm.toLowerCase() !== 'sha256') unavailable(`crypto.createHash('${algorithm}')`);
  return new Sha256();
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** Streaming SHA-256 (FIPS 180-4). */
class Sha256 {
  private readonly h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  private readonly block = new Uint8Array(64);
  private readonly w = new Uint32Array(64);
  private fill = 0; // bytes in `block`
  private length = 0; // bytes hashed in total
  private done = false;

  update(data: ArrayBufferView | ArrayBuffer | string): this {
    if (this.done) throw new Error('Sha256: digest() was already called');
    const bytes =
      typeof data === 'string'
        ? new TextEncoder().encode(data)
        : data instanceof ArrayBuffer
          ? new Uint8Array(data)
          : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.length += bytes.length;
    let i = 0;
    while (i < bytes.length) {
      const n = Math.min(64 - this.fill, bytes.length - i);
      this.block.set(bytes.subarray(i, i + n), this.fill);
      this.fill += n;
      i += n;
      if (this.fill === 64) {
        this.compress();
        this.fill = 0;
      }
    }
    return this;
  }

  digest(encoding: 'hex'): string;
  digest(): Uint8Array;
  digest(encoding?: 'hex'): string | Uint8Array {
    if (this.done) throw new Error('Sha256: digest() was already called');
    const bits = this.length * 8;
    this.update(new Uint8Array([0x80]));
    while (this.fill !== 56) this.update(new Uint8Array(1));
    const tail = new DataView(new ArrayBuffer(8));
    tail.setUint32(0, Math.floor(bits / 2 ** 32));
    tail.setUint32(4, bits >>> 0);
    this.update(new Uint8Array(tail.buffer));
    this.done = true;
    const out = new Uint8Array(32);
    const view = new DataView(out.buffer);
    for (let j = 0; j < 8; j++) view.setUint32(4 * j, this.h[j]);
    if (encoding === 'hex') return Array.from(out, (b) => b.toString(16).padStart(2, '0')).join('');
    return out;
  }

  private compress(): void {
    const { w, h, block } = this;
    for (let t = 0; t < 16; t++) w[t] = (block[4 * t] << 24) | (block[4 * t + 1] << 16) | (block[4 * t + 2] << 8) | block[4 * t + 3];
    for (let t = 16; t < 64; t++) {
      const a = w[t - 15], b = w[t - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K[t] + w[t]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
}

export default { readFile, writeFile, mkdir, open, rename, rm, stat, readdir, createReadStream, openSync, closeSync, fstatSync, readSync, existsSync, readFileSync, join, resolve, dirname, basename, relative, fileURLToPath, pathToFileURL, createRequire, endianness, randomBytes, createHash };
