// safetensors reader/writer tests: round trips, dtype widening against known values, and
// one corrupt file per validation rule, each asserting the error names the problem.

import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compareTensors,
  expectTensors,
  readSafetensors,
  readSafetensorsFile,
  writeSafetensors,
  writeSafetensorsFile,
} from '../src/io/safetensors.js';

/** Assemble a file by hand: 8-byte length, the header as given (object or raw text), data. */
function makeFile(header: object | string, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Little-endian bytes of 16-bit words. */
function u16le(words: number[]): Uint8Array {
  const out = new Uint8Array(words.length * 2);
  const view = new DataView(out.buffer);
  words.forEach((w, i) => view.setUint16(2 * i, w, true));
  return out;
}

const f32 = (n: number) => ({ dtype: 'F32', shape: [n], data_offsets: [0, 4 * n] });

describe('safetensors round trip', () => {
  const tensors = new Map([
    ['wte.weight', { shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i * 0.5 - 2) }],
    ['ln_f.bias', { shape: [5], data: new Float32Array([1e-30, -0, Infinity, -Infinity, 3.4e38]) }],
    ['scalar', { shape: [], data: new Float32Array([42]) }],
    ['empty', { shape: [0, 7], data: new Float32Array(0) }],
  ]);

  it('writes and reads back names, shapes, values and metadata', () => {
    const bytes = writeSafetensors(tensors, { format: 'pt', note: 'ünïcode ✓' });
    // The header is padded so that the data section starts at a multiple of 8.
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLength % 8).toBe(0);

    const { tensors: read, metadata } = readSafetensors(bytes);
    expect(metadata).toEqual({ format: 'pt', note: 'ünïcode ✓' });
    expect([...read.keys()].sort()).toEqual([...tensors.keys()].sort());
    for (const [name, t] of tensors) {
      expect(read.get(name)!.dtype).toBe('F32');
      expect(read.get(name)!.shape).toEqual(t.shape);
      expect(Array.from(read.get(name)!.data)).toEqual(Array.from(t.data));
    }
    expect(Object.is(read.get('ln_f.bias')!.data[1], -0)).toBe(true);
  });

  it('reads from a Buffer that is a view at an odd offset of a larger buffer', () => {
    const bytes = writeSafetensors({ x: { shape: [2], data: new Float32Array([1.5, -2.5]) } });
    const big = Buffer.alloc(bytes.length + 3);
    big.set(bytes, 3);
    const { tensors: read } = readSafetensors(big.subarray(3));
    expect(Array.from(read.get('x')!.data)).toEqual([1.5, -2.5]);
  });

  it('refuses tensors whose data does not match their shape', () => {
    expect(() => writeSafetensors({ x: { shape: [2, 2], data: new Float32Array(3) } })).toThrow(
      /tensor 'x': shape \[2, 2\] has 4 elements but data has 3/,
    );
    expect(() => writeSafetensors({ __metadata__: { shape: [1], data: new Float32Array(1) } })).toThrow(/cannot be a tensor name/);
  });
});

describe('safetensors dtypes', () => {
  it('widens F16 exactly', () => {
    const words = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x3555, 0x8000, 0x7c00, 0xfc00, 0x7e00];
    const expected = [1, -2, 65504, 2 ** -24, 1023 * 2 ** -24, 0.333251953125, -0, Infinity, -Infinity, NaN];
    const file = makeFile({ h: { dtype: 'F16', shape: [2, 5], data_offsets: [0, 20] } }, u16le(words));
    const t = readSafetensors(file).tensors.get('h')!;
    expect(t.dtype).toBe('F16');
    expect(t.shape).toEqual([2, 5]);
    expect(Array.from(t.data)).toEqual(expected);
    expect(Object.is(t.data[6], -0)).toBe(true);
  });

  it('widens BF16 exactly', () => {
    const words = [0x3f80, 0xc000, 0x4049, 0x7f80, 0xff80, 0x0001, 0x8000, 0x7fc0];
    const expected = [1, -2, 3.140625, Infinity, -Infinity, 2 ** -133, -0, NaN];
    const file = makeFile({ b: { dtype: 'BF16', shape: [8], data_offsets: [0, 16] } }, u16le(words));
    const t = readSafetensors(file).tensors.get('b')!;
    expect(t.dtype).toBe('BF16');
    expect(Array.from(t.data)).toEqual(expected);
  });

  it('reads F64 rounded to F32', () => {
    const data = new Uint8Array(new Float64Array([0.1, -3]).buffer);
    const t = readSafetensors(makeFile({ d: { dtype: 'F64', shape: [2], data_offsets: [0, 16] } }, data)).tensors.get('d')!;
    expect(Array.from(t.data)).toEqual([Math.fround(0.1), -3]);
  });

  it('names an unsupported but valid dtype', () => {
    const file = makeFile({ i: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8));
    expect(() => readSafetensors(file)).toThrow(/tensor 'i': dtype I64 is not supported/);
  });
});

describe('safetensors corrupt files', () => {
  const four = new Uint8Array(16);

  it('file shorter than 8 bytes', () => {
    expect(() => readSafetensors(new Uint8Array(5))).toThrow(/file is 5 bytes, too short/);
  });

  it('header length past the end of the file', () => {
    const file = makeFile({ a: f32(4) }, four, 1000n);
    expect(() => readSafetensors(file)).toThrow(/header length 1000 runs past the end of the file/);
  });

  it('absurd header length', () => {
    const file = makeFile({}, four, 2n ** 63n);
    expect(() => readSafetensors(file)).toThrow(/header length 9223372036854775808 is absurd/);
  });

  it('header that is not UTF-8, not JSON, or not an object', () => {
    const bad = makeFile('{"ab": 1}');
    bad[10] = 0xff; // inside the key: an invalid UTF-8 byte
    expect(() => readSafetensors(bad)).toThrow(/header is not valid UTF-8/);
    expect(() => readSafetensors(makeFile('{"a": {"dtype": "F32",', four))).toThrow(/header is not valid JSON/);
    expect(() => readSafetensors(makeFile('[1, 2]', four))).toThrow(/header is not a JSON object/);
    expect(() => readSafetensors(makeFile({ a: 'F32' }, four))).toThrow(/tensor 'a': entry is not an object/);
  });

  it('bad metadata', () => {
    expect(() => readSafetensors(makeFile({ __metadata__: { n: 1 } }))).toThrow(/"__metadata__" value of 'n' is not a string/);
  });

  it('unknown dtype', () => {
    const file = makeFile({ w: { dtype: 'F33', shape: [4], data_offsets: [0, 16] } }, four);
    expect(() => readSafetensors(file)).toThrow(/tensor 'w': unknown dtype "F33"/);
  });

  it('bad shape', () => {
    for (const shape of [[-1, 4], [2.5], 'x', [null]]) {
      const file = makeFile({ w: { dtype: 'F32', shape, data_offsets: [0, 16] } }, four);
      expect(() => readSafetensors(file)).toThrow(/tensor 'w': shape .* is not an array of non-negative integers/);
    }
  });

  it('bad data_offsets', () => {
    for (const offsets of [[8, 4], [0], [0, 16, 32], [0, '16'], [-4, 0]]) {
      const file = makeFile({ w: { dtype: 'F32', shape: [4], data_offsets: offsets } }, four);
      expect(() => readSafetensors(file)).toThrow(/tensor 'w': data_offsets .* is not \[begin, end\]/);
    }
  });

  it('offsets outside the data section (truncated data)', () => {
    const file = makeFile({ w: f32(4) }, new Uint8Array(12));
    expect(() => readSafetensors(file)).toThrow(/tensor 'w': data_offsets \[0, 16\] lie outside the data section \(12 bytes\)/);
  });

  it('overlapping tensors', () => {
    const header = {
      a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
      b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
    };
    expect(() => readSafetensors(makeFile(header, four))).toThrow(/tensors 'a' \[0, 12\] and 'b' \[8, 16\] overlap/);
  });

  it('shape and byte size disagree', () => {
    const file = makeFile({ w: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 16] } }, four);
    expect(() => readSafetensors(file)).toThrow(/tensor 'w': shape \[2, 3\] of F32 needs 24 bytes, but data_offsets \[0, 16\] hold 16/);
  });

  it('gaps and trailing bytes (allowed only on request)', () => {
    const gap = makeFile({ w: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, four);
    expect(() => readSafetensors(gap)).toThrow(/unused bytes \[0, 8\) in the data section before tensor 'w'/);
    expect(readSafetensors(gap, { allowGaps: true }).tensors.get('w')!.shape).toEqual([2]);
    const tail = makeFile({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, four);
    expect(() => readSafetensors(tail)).toThrow(/unused bytes \[8, 16\) at the end/);
  });
});

describe('safetensors files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferrogpt-safetensors-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes atomically, replaces the old file, and leaves no temporary file', async () => {
    const path = join(dir, 'model.safetensors');
    await writeFile(path, 'an older checkpoint');
    const tensors = { 'h.0.attn.c_attn.weight': { shape: [2, 6], data: Float32Array.from({ length: 12 }, (_, i) => i) } };
    await writeSafetensorsFile(path, tensors, { step: '100' });
    expect(await readdir(dir)).toEqual(['model.safetensors']);
    const { tensors: read, metadata } = await readSafetensorsFile(path);
    expect(metadata).toEqual({ step: '100' });
    expect(Array.from(read.get('h.0.attn.c_attn.weight')!.data)).toEqual(Array.from(tensors['h.0.attn.c_attn.weight'].data));
  });

  it('a failed write leaves the old file and no temporary file', async () => {
    const path = join(dir, 'model.safetensors');
    await expect(writeSafetensorsFile(path, { x: { shape: [3], data: new Float32Array(2) } })).rejects.toThrow(/3 elements/);
    expect(await readdir(dir)).toEqual(['model.safetensors']);
    expect((await readSafetensorsFile(path)).metadata).toEqual({ step: '100' });
  });

  it('names the file when it is corrupt', async () => {
    const path = join(dir, 'short.safetensors');
    await writeFile(path, 'abc');
    await expect(readSafetensorsFile(path)).rejects.toThrow(/too short.*short\.safetensors/);
  });
});

describe('expectTensors', () => {
  const expected = { 'wte.weight': [10, 4], 'wpe.weight': [8, 4], 'ln_f.weight': [4] };

  it('accepts a matching set', () => {
    const tensors = new Map(Object.entries(expected).map(([k, shape]) => [k, { shape }]));
    expect(() => expectTensors(tensors, expected)).not.toThrow();
  });

  it('lists missing, unexpected and wrong-shape tensors together', () => {
    const tensors = { 'wte.weight': { shape: [10, 5] }, 'ln_f.weight': { shape: [4] }, 'h.0.attn.bias': { shape: [1, 1, 8, 8] } };
    expect(compareTensors(tensors, expected)).toEqual({
      missing: ['wpe.weight'],
      unexpected: ['h.0.attn.bias'],
      wrongShape: [{ name: 'wte.weight', expected: [10, 4], actual: [10, 5] }],
    });
    let message = '';
    try {
      expectTensors(tensors, expected);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/missing tensors: wpe\.weight/);
    expect(message).toMatch(/unexpected tensors: h\.0\.attn\.bias/);
    expect(message).toMatch(/tensor 'wte\.weight' has shape \[10, 5\], expected \[10, 4\]/);
    // Known extra buffers can be allowed.
    expect(() =>
      expectTensors({ ...tensors, 'wte.weight': { shape: [10, 4] }, 'wpe.weight': { shape: [8, 4] } }, expected, {
        allowUnexpected: (name) => name.endsWith('.attn.bias'),
      }),
    ).not.toThrow();
  });
});
