// src/io/browser-node.ts: what `node:` imports become in browser bundles. Its createHash
// must be a real SHA-256 (TokenDataset.fromTokens names data by it, and checkpoints compare
// those names across Node and browsers); everything file-related must throw a clear Error.

import { createHash as nodeHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import * as shim from '../src/io/browser-node.js';

describe('browser-node shim', () => {
  it('createHash("sha256") matches node:crypto for every length around the block size', () => {
    for (const n of [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 4099]) {
      const bytes = new Uint8Array(n);
      for (let i = 0; i < n; i++) bytes[i] = (i * 131 + 7) & 255;
      expect(shim.createHash('sha256').update(bytes).digest('hex'), `length ${n}`).toBe(nodeHash('sha256').update(bytes).digest('hex'));
    }
  });

  it('createHash streams: several updates (bytes, views, strings) equal one', () => {
    const text = 'It is a truth universally acknowledged, ' + 'x'.repeat(200);
    const ints = Int32Array.from({ length: 77 }, (_, i) => i * 1000 - 5);
    const h = shim.createHash('sha256');
    h.update(text.slice(0, 10)).update(text.slice(10)).update(new Uint8Array(ints.buffer, 8, 100)).update(ints.buffer);
    const want = nodeHash('sha256').update(text).update(new Uint8Array(ints.buffer, 8, 100)).update(new Uint8Array(ints.buffer)).digest('hex');
    expect(h.digest('hex')).toBe(want);
  });

  it('file functions throw an Error that says what to use in a browser', () => {
    expect(() => shim.readFile()).toThrow(/needs Node\.js.*GPT\.fromSafetensors/);
    expect(() => shim.join()).toThrow(/path\.join\(\) needs Node\.js/);
    expect(() => shim.createHash('md5')).toThrow(/createHash\('md5'\)/);
    expect(shim.endianness()).toBe('LE');
  });
});
