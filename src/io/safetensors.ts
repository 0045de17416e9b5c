// Read and write the safetensors format (https://github.com/huggingface/safetensors), the
// checkpoint format of Hugging Face models and of ferrogpt's own checkpoints.
//
// Layout of a file:
//   bytes 0..8        N, the header length, an unsigned 64-bit little-endian integer
//   bytes 8..8+N      the header: UTF-8 JSON,
//                       { "__metadata__"?: { string: string },
//                         "<tensor name>": { "dtype": "F32", "shape": [2, 3],
//                                            "data_offsets": [begin, end] }, ... }
//   bytes 8+N..       the data section; a tensor's bytes are data[begin..end], row-major,
//                     little-endian
//
// A checkpoint may come from anywhere, so the reader trusts nothing: every field is checked
// before it is used, and a bad file throws an Error that names the problem (and the tensor)
// instead of returning garbage or crashing later inside a kernel.
//
// A tensor's `data` is a Float32Array: F32 is copied, F16 and BF16 are widened (exactly:
// every half and bfloat16 value is representable in f32), F64 is rounded, I8 (an int8
// weight's values, without its scales) is converted. It is made on first use: `raw` holds
// the stored elements as they are (BF16 and F16 as their 16 bits, I8 as Int8Array), so a
// bf16 or int8 model loads without an f32 copy of its weights. Writing takes F32, BF16
// (Uint16Array bits) and I8 (Int8Array) tensors.

import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from './atomic.js';

/** A tensor as ferrogpt passes it around outside the backends: shape + row-major data. */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}

/** A tensor read from a file; `dtype` is what the file stored before widening to f32. */
export interface LoadedTensor extends Tensor {
  dtype: SafetensorsDtype;
  /** The stored elements, unconverted: F32 Float32Array, F16 / BF16 Uint16Array (bits), I8 Int8Array, F64 Float64Array. */
  raw: Float32Array | Uint16Array | Int8Array | Float64Array;
}

/** A tensor to write: F32 (Float32Array), BF16 (Uint16Array of bf16 bits) or I8 (Int8Array); the array type says which. */
export interface TensorToWrite {
  shape: number[];
  data: Float32Array | Uint16Array | Int8Array;
}

export interface SafetensorsContents {
  /** Tensors by name, in the order of their data in the file. */
  tensors: Map<string, LoadedTensor>;
  /** The optional "__metadata__" string map (empty when absent). */
  metadata: Record<string, string>;
}

/** Tensors to write: a Map, an object, or [name, tensor] pairs; written in that order. */
export type TensorsToWrite =
  | Map<string, TensorToWrite>
  | Record<string, TensorToWrite>
  | Iterable<readonly [string, TensorToWrite]>;

/** The dtypes this module reads. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I8';

/** Bytes per element of every dtype the format defines, so that sizes can be checked even
 * for dtypes we do not convert (their error then names the dtype, not a size mismatch). */
const DTYPE_SIZES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

const READABLE: ReadonlySet<string> = new Set(['F32', 'F16', 'BF16', 'F64', 'I8']);

/** Same limit as the reference Rust implementation: a header over 100 MB is not a header. */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';

function fail(message: string): never {
  throw new Error(`safetensors: ${message}`);
}

export interface ReadOptions {
  /**
   * Accept unused bytes between or after tensors. The reference implementation rejects
   * them (a gap usually means a truncated or hand-edited header), and so do we by default.
   */
  allowGaps?: boolean;
  /**
   * Give each tensor's `raw` as a view into `bytes` where its data is aligned for its
   * element type, instead of a copy: no second copy of a large model while it loads, but
   * every tensor then keeps the whole buffer alive (GPT.load drops them all at once).
   */
  views?: boolean;
}

/** Parse a safetensors file held in memory (a Uint8Array or Node Buffer). */
export function readSafetensors(bytes: Uint8Array, options: ReadOptions = {}): SafetensorsContents {
  if (!(bytes instanceof Uint8Array)) fail('expected the file contents as a Uint8Array');
  if (bytes.length < 8) {
    fail(`file is ${bytes.length} bytes, too short to hold the 8-byte header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    fail(`header length ${headerLength} is absurd (the limit is ${MAX_HEADER_BYTES} bytes)`);
  }
  const n = Number(headerLength);
  if (8 + n > bytes.length) {
    fail(`header length ${n} runs past the end of the file (${bytes.length} bytes, so at most ${bytes.length - 8})`);
  }

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    fail('header is not a JSON object');
  }

  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  const metadata = parseMetadata((header as Record<string, unknown>)[METADATA_KEY]);

  // First check every entry on its own, then how the entries sit together.
  interface Entry { name: string; dtype: string; shape: number[]; begin: number; end: number }
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) continue;
    const where = `tensor '${name}'`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      fail(`${where}: entry is not an object`);
    }
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_SIZES)) {
      fail(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`${where}: shape ${JSON.stringify(shape)} is not an array of non-negative integers`);
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]
    ) {
      fail(`${where}: data_offsets ${JSON.stringify(offsets)} is not [begin, end] with integers 0 <= begin <= end`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataLength) {
      fail(`${where}: data_offsets [${begin}, ${end}] lie outside the data section (${dataLength} bytes)`);
    }
    const elements = (shape as number[]).reduce((a, d) => a * d, 1);
    const expectedBytes = elements * DTYPE_SIZES[dtype]!;
    if (expectedBytes !== end - begin) {
      fail(
        `${where}: shape [${shape.join(', ')}] of ${dtype} needs ${expectedBytes} bytes, ` +
          `but data_offsets [${begin}, ${end}] hold ${end - begin}`,
      );
    }
    entries.push({ name, dtype, shape: [...(shape as number[])], begin, end });
  }

  // Sorted by position, each tensor must start at or after the end of the previous one.
  // Empty tensors occupy no bytes and cannot overlap anything.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0; // the data section is used up to here
  let previous: Entry | undefined;
  for (const e of entries) {
    if (e.begin === e.end) continue;
    if (previous !== undefined && e.begin < previous.end) {
      fail(
        `tensors '${previous.name}' [${previous.begin}, ${previous.end}] and ` +
          `'${e.name}' [${e.begin}, ${e.end}] overlap`,
      );
    }
    if (e.begin !== covered && !options.allowGaps) {
      fail(`unused bytes [${covered}, ${e.begin}) in the data section before tensor '${e.name}'`);
    }
    covered = e.end;
    previous = e;
  }
  if (covered !== dataLength && !options.allowGaps) {
    fail(`unused bytes [${covered}, ${dataLength}) at the end of the data section`);
  }

  // Only now, with the layout known to be sound, convert the data.
  const tensors = new Map<string, LoadedTensor>();
  for (const e of entries) {
    if (!READABLE.has(e.dtype)) {
      fail(`tensor '${e.name}': dtype ${e.dtype} is not supported (ferrogpt reads F32, F16, BF16, F64 and I8)`);
    }
    const raw = storedElements(bytes.subarray(dataStart + e.begin, dataStart + e.end), e.dtype as SafetensorsDtype, options.views === true);
    tensors.set(e.name, new Loaded(e.dtype as SafetensorsDtype, e.shape, raw));
  }
  return { tensors, metadata };
}

function parseMetadata(raw: unknown): Record<string, string> {
  if (raw === undefined) return {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    fail('"__metadata__" is not an object');
  }
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') fail(`"__metadata__" value of '${k}' is not a string`);
  }
  return { ...(raw as Record<string, string>) };
}

/** A loaded tensor, widened to f32 on first use of `data`. */
class Loaded implements LoadedTensor {
  private widened: Float32Array | null = null;

  constructor(readonly dtype: SafetensorsDtype, readonly shape: number[], readonly raw: LoadedTensor['raw']) {}

  get data(): Float32Array {
    this.widened ??= toFloat32(this.raw, this.dtype);
    return this.widened;
  }
}

/** The little-endian bytes of a tensor as a typed array of its stored elements: a fresh one, or (`view`, where aligned) a view of `bytes`. */
function storedElements(bytes: Uint8Array, dtype: SafetensorsDtype, view: boolean): LoadedTensor['raw'] {
  // (Typed arrays use the platform's byte order; every platform Node and browsers run on
  // is little-endian, like the format.)
  const size = DTYPE_SIZES[dtype]!;
  if (view && bytes.byteOffset % size === 0) return elementsOf(dtype, bytes.buffer, bytes.byteOffset, bytes.length / size);
  // Copy: the data section need not be aligned inside the file's buffer, and a typed-array
  // view requires alignment. Not bytes.slice(): on a Node Buffer, slice() is a view.
  const aligned = new Uint8Array(bytes.length);
  aligned.set(bytes);
  return elementsOf(dtype, aligned.buffer, 0, aligned.length / size);
}

function elementsOf(dtype: SafetensorsDtype, buffer: ArrayBufferLike, offset: number, n: number): LoadedTensor['raw'] {
  switch (dtype) {
    case 'F32':
      return new Float32Array(buffer, offset, n);
    case 'F64':
      return new Float64Array(buffer, offset, n);
    case 'BF16':
    case 'F16':
      return new Uint16Array(buffer, offset, n);
    case 'I8':
      return new Int8Array(buffer, offset, n);
  }
}

/** The stored elements of `dtype` as f32 values (F32 itself, not a copy). */
function toFloat32(raw: LoadedTensor['raw'], dtype: SafetensorsDtype): Float32Array {
  switch (dtype) {
    case 'F32':
      return raw as Float32Array;
    case 'BF16': {
      // bfloat16 is the top half of an f32: shift the 16 bits into place.
      const bits = new Uint32Array(raw.length);
      for (let i = 0; i < raw.length; i++) bits[i] = raw[i]! << 16;
      return new Float32Array(bits.buffer);
    }
    case 'F16': {
      const out = new Float32Array(raw.length);
      for (let i = 0; i < raw.length; i++) out[i] = halfToFloat(raw[i]!);
      return out;
    }
    case 'F64':
    case 'I8':
      return Float32Array.from(raw as Float64Array | Int8Array);
  }
}

/** IEEE 754 binary16 → number (exact). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

function entriesOf(tensors: TensorsToWrite): [string, TensorToWrite][] {
  if (tensors instanceof Map) return [...tensors.entries()];
  if (Symbol.iterator in (tensors as object)) {
    return [...(tensors as Iterable<readonly [string, TensorToWrite]>)].map(([k, v]) => [k, v]);
  }
  return Object.entries(tensors as Record<string, TensorToWrite>);
}

/** The dtype a tensor to write is stored as, from its array type. */
function writtenDtype(data: unknown): 'F32' | 'BF16' | 'I8' | null {
  return data instanceof Float32Array ? 'F32' : data instanceof Uint16Array ? 'BF16' : data instanceof Int8Array ? 'I8' : null;
}

/**
 * Build the 8-byte length + JSON header for the tensors, padded with spaces so that the
 * data section starts at a multiple of 8 (what the reference implementation does, so
 * readers can map tensors in place). Also checks the tensors themselves.
 */
function encodeHeader(list: [string, TensorToWrite][], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`safetensors: metadata value of '${k}' must be a string`);
    }
    header[METADATA_KEY] = metadata;
  }
  let offset = 0;
  for (const [name, t] of list) {
    if (name === METADATA_KEY) throw new Error(`safetensors: '${METADATA_KEY}' cannot be a tensor name`);
    if (name in header) throw new Error(`safetensors: tensor '${name}' appears twice`);
    const dtype = writtenDtype(t.data);
    if (dtype === null) throw new Error(`safetensors: tensor '${name}': data must be a Float32Array (F32), Uint16Array (BF16 bits) or Int8Array (I8)`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`safetensors: tensor '${name}': shape ${JSON.stringify(t.shape)} is not an array of non-negative integers`);
    }
    const elements = t.shape.reduce((a, d) => a * d, 1);
    if (elements !== t.data.length) {
      throw new Error(
        `safetensors: tensor '${name}': shape [${t.shape.join(', ')}] has ${elements} elements but data has ${t.data.length}`,
      );
    }
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20); // 0x20: space, which JSON ignores
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/** A typed array's little-endian bytes (a view, no copy). */
function bytesOf(data: TensorToWrite['data']): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Serialize tensors (+ optional string metadata) into one safetensors buffer. */
export function writeSafetensors(tensors: TensorsToWrite, metadata?: Record<string, string>): Uint8Array {
  const list = entriesOf(tensors);
  const header = encodeHeader(list, metadata);
  const total = list.reduce((a, [, t]) => a + t.data.byteLength, header.length);
  const out = new Uint8Array(total);
  out.set(header, 0);
  let at = header.length;
  for (const [, t] of list) {
    out.set(bytesOf(t.data), at);
    at += t.data.byteLength;
  }
  return out;
}

/** Read and validate a .safetensors file. */
export async function readSafetensorsFile(path: string, options?: ReadOptions): Promise<SafetensorsContents> {
  const bytes = await readFile(path);
  try {
    return readSafetensors(bytes, options);
  } catch (err) {
    throw new Error(`${(err as Error).message} (in ${path})`);
  }
}

/**
 * Write tensors to `path` atomically (temp file + fsync + rename + directory fsync),
 * tensor by tensor, so a large model is never copied into one big buffer first.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: TensorsToWrite,
  metadata?: Record<string, string>,
): Promise<void> {
  const list = entriesOf(tensors);
  const header = encodeHeader(list, metadata); // validates before any file is created
  await writeFileAtomic(path, async (file) => {
    await file.write(header);
    for (const [, t] of list) {
      if (t.data.byteLength > 0) await file.write(bytesOf(t.data));
    }
  });
}

/** What is wrong with a set of tensors compared with what a model expects. */
export interface TensorMismatch {
  missing: string[];
  unexpected: string[];
  wrongShape: { name: string; expected: number[]; actual: number[] }[];
}

type ShapedTensors = Map<string, { shape: readonly number[] }> | Record<string, { shape: readonly number[] }>;

export interface ExpectOptions {
  /** Names (besides the expected ones) that may be present and are ignored, e.g. Hugging
   * Face GPT-2's non-parameter buffers `h.0.attn.bias`. */
  allowUnexpected?: (name: string) => boolean;
}

/** Compare names and shapes; returns every difference (empty lists when all is well). */
export function compareTensors(
  tensors: ShapedTensors,
  expected: Record<string, number[]>,
  options: ExpectOptions = {},
): TensorMismatch {
  const actual = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  const result: TensorMismatch = { missing: [], unexpected: [], wrongShape: [] };
  for (const [name, shape] of Object.entries(expected)) {
    const t = actual.get(name);
    if (t === undefined) result.missing.push(name);
    else if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      result.wrongShape.push({ name, expected: [...shape], actual: [...t.shape] });
    }
  }
  for (const name of actual.keys()) {
    if (!(name in expected) && !options.allowUnexpected?.(name)) result.unexpected.push(name);
  }
  return result;
}

/**
 * Throw unless `tensors` has exactly the `expected` names with the expected shapes. The
 * message lists every problem at once, so a checkpoint/config mismatch is fixed in one go.
 */
export function expectTensors(
  tensors: ShapedTensors,
  expected: Record<string, number[]>,
  options: ExpectOptions = {},
): void {
  const { missing, unexpected, wrongShape } = compareTensors(tensors, expected, options);
  const problems: string[] = [];
  if (missing.length > 0) problems.push(`missing tensors: ${missing.join(', ')}`);
  if (unexpected.length > 0) problems.push(`unexpected tensors: ${unexpected.join(', ')}`);
  for (const w of wrongShape) {
    problems.push(`tensor '${w.name}' has shape [${w.actual.join(', ')}], expected [${w.expected.join(', ')}]`);
  }
  if (problems.length > 0) throw new Error(`tensors do not match the model:\n  ${problems.join('\n  ')}`);
}
