// The kernel registry (src/backend/kernels.ts) and what is derived from it: every backend
// has every kernel; the generic checker's messages, byte for byte, one per kind of check,
// and the order in which checks run (the first failing one is reported).

import { describe, expect, it } from 'vitest';
import type { Backend, Tensor } from '../src/backend/backend.js';
import { KERNELS, KERNEL_NAMES, wasmName } from '../src/backend/kernels.js';
import { referenceKernels } from '../src/backend/reference-kernels.js';
import { describeEachBackend } from './helpers/backends.js';

describe('kernel registry', () => {
  it('names every kernel once; the reference implementation registers exactly these', () => {
    expect(new Set(KERNEL_NAMES).size).toBe(KERNEL_NAMES.length);
    expect(Object.keys(referenceKernels).sort()).toEqual([...KERNEL_NAMES].sort());
  });

  it('wasm export names are the snake_case kernel names', () => {
    expect(wasmName('encoderForward')).toBe('encoder_forward');
    expect(wasmName('sumSquares')).toBe('sum_squares');
    expect(wasmName('adamwUpdate')).toBe('adamw_update');
    expect(wasmName('scale')).toBe('scale');
  });

  it('optional arguments are trailing and only flags and dropout are optional', () => {
    for (const name of KERNEL_NAMES) {
      const args: ReadonlyArray<{ role: string; optional?: boolean }> = KERNELS[name].args;
      const first = args.findIndex((a) => a.optional === true);
      if (first >= 0) expect(args.slice(first).every((a) => a.optional === true), name).toBe(true);
      for (const a of args) if (a.optional) expect(['flag', 'dropout']).toContain(a.role);
    }
  });
});

describeEachBackend('kernel checks, derived from the registry', (b: Backend) => {
  const ints = (xs: number[]): Tensor => {
    const t = b.alloc(xs.length, 'i32');
    b.write(t, Int32Array.from(xs));
    return t;
  };
  const msg = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return (e as Error).message;
    }
    return 'no error';
  };

  it('every kernel is a method; only sumSquares returns a value', () => {
    for (const name of KERNEL_NAMES) expect(typeof b[name], name).toBe('function');
    expect(b.geluForward(b.alloc(2), b.alloc(2), 2)).toBeUndefined();
    const x = b.alloc(2);
    b.write(x, Float32Array.from([1, 2]));
    expect(b.sumSquares(x, 2)).toBe(5);
    expect(b.matmulForward(b.alloc(4), b.alloc(4), b.alloc(4), null, 2, 2, 2)).toBeUndefined(); // wasm: its status is not returned
  });

  it('each kind of check, message for message', () => {
    const n = b.name;
    const cases: Array<[() => unknown, string]> = [
      [() => b.geluForward(b.alloc(2), b.alloc(2), 0), 'geluForward: N must be an integer >= 1, got 0'],
      [() => b.geluForward(b.alloc(2), b.alloc(2), '2' as unknown as number), 'geluForward: N must be an integer >= 1, got string'],
      [() => b.geluForward(b.alloc(2), b.alloc(2), 2 ** 32), 'geluForward: N must be an integer >= 1, got 4294967296'],
      [() => b.attentionForward(b.alloc(20), b.alloc(6), b.alloc(60), 1, 2, 10, 3), 'attentionForward: C (10) must be divisible by NH (3)'],
      [() => b.attentionDecode(b.alloc(6), b.alloc(4), b.alloc(4), b.alloc(18), ints([0]), 1, 3, 2, 1, 2), 'attentionDecode: Tq (3) exceeds maxT (2)'],
      [() => b.geluBackward(b.alloc(2), b.alloc(2), b.alloc(2), 2, 1 as unknown as boolean), 'geluBackward: overwrite must be a boolean, got 1'],
      [() => b.dropoutForward(b.alloc(2), b.alloc(2), 2, undefined as never), 'dropoutForward: dropout must be { p, seed, stream }'],
      [() => b.attentionForward(b.alloc(2), b.alloc(1), b.alloc(6), 1, 1, 2, 1, null as never), 'attentionForward: dropout must be { p, seed, stream }'],
      [() => b.dropoutForward(b.alloc(2), b.alloc(2), 2, { p: 1, seed: 0, stream: 0 }), 'dropoutForward: dropout.p must be in [0, 1), got 1'],
      [() => b.dropoutForward(b.alloc(2), b.alloc(2), 2, { p: 0.1, seed: -1, stream: 0 }), 'dropoutForward: dropout.seed must be an integer in [0, 2^32), got -1'],
      [() => b.dropoutForward(b.alloc(2), b.alloc(2), 2, { p: 0.1, seed: 0, stream: 2 ** 32 }), 'dropoutForward: dropout.stream must be an integer in [0, 2^32), got 4294967296'],
      [() => b.scale(b.alloc(2), 2, Infinity), 'scale: s must be a finite number, got Infinity'],
      [() => b.adamwUpdate(b.alloc(2), b.alloc(2), b.alloc(2), b.alloc(2), 2, 1e-3, 1, 0.999, 1e-8, 0, 1), 'adamwUpdate: beta1 must be in [0, 1), got 1'],
      [() => b.adamwUpdate(b.alloc(2), b.alloc(2), b.alloc(2), b.alloc(2), 2, 1e-3, 0.9, 0.999, 1e-8, 0, 0), 'adamwUpdate: step must be an integer >= 1, got 0'],
      [() => b.crossentropyForward(b.alloc(1), b.alloc(3), ints([0]), 1, 3, 1.5), 'crossentropyForward: ignoreIndex must be a 32-bit integer, got 1.5'],
      [() => b.encoderForward(b.alloc(6), ints([0, 0]), b.alloc(10), b.alloc(6), 1, 2, 3), 'encoderForward: wte must hold at least 1 rows of C = 3 (length a multiple of 3), got length 10'],
      [() => b.encoderForward(b.alloc(6), ints([0, 0]), b.alloc(9), b.alloc(3), 1, 2, 3), 'encoderForward: wpe must hold at least 2 rows of C = 3 (length a multiple of 3), got length 3'],
      [() => b.encoderBackward(b.alloc(9), b.alloc(3), b.alloc(6), ints([0, 0]), 1, 2, 3), 'encoderBackward: dwpe must hold at least 2 rows of C = 3 (length a multiple of 3), got length 3'],
      [() => b.geluForward(b.alloc(5), b.alloc(6), 6), 'geluForward: out has length 5, expected 6'],
      [() => b.matmulForward(b.alloc(8), b.alloc(6), b.alloc(12), b.alloc(3), 2, 3, 4), 'matmulForward: bias has length 3, expected 4'],
      [() => b.geluForward(b.alloc(2), b.alloc(2, 'i32'), 2), 'geluForward: inp must be a f32 tensor, got i32'],
      [() => b.encoderForward(b.alloc(2), b.alloc(1), b.alloc(2), b.alloc(2), 1, 1, 2), 'encoderForward: ids must be a i32 tensor, got f32'],
      [() => b.attentionDecode(b.alloc(2), b.alloc(4), b.alloc(4), b.alloc(6), ints([3]), 1, 1, 2, 1, 2), 'attentionDecode: pos[0] = 3 is out of range (must be in 0..2)'],
      [() => b.crossentropyBackward(b.alloc(3), b.alloc(1), b.alloc(3), ints([3]), 1, 3, -100), 'crossentropyBackward: targets[0] = 3 is out of range (must be in 0..2 or -100)'],
      [() => b.matmulForwardBf16(b.alloc(2), b.alloc(2), b.alloc(4), null, 1, 2, 2), 'matmulForwardBf16: weight must be a bf16 tensor, got f32'],
      [() => b.matmulForwardQ8(b.alloc(2), b.alloc(48), b.alloc(96, 'i8'), b.alloc(2), null, 1, 48, 2), 'matmulForwardQ8: C (48) must be divisible by 32'],
      [() => b.matmulForwardQ8(b.alloc(2), b.alloc(32), b.alloc(64, 'i8'), b.alloc(1), null, 1, 32, 2), 'matmulForwardQ8: scales has length 1, expected 2'],
      [() => b.encoderForwardQ8(b.alloc(32), ints([0]), b.alloc(64, 'i8'), b.alloc(1), b.alloc(32), 1, 1, 32, 2), 'encoderForwardQ8: scales has length 1, expected 2'],
      [() => b.encoderForwardBf16(b.alloc(32), ints([0]), b.alloc(48, 'bf16'), b.alloc(32), 1, 1, 32), 'encoderForwardBf16: wte must hold at least 1 rows of C = 32 (length a multiple of 32), got length 48'],
      [() => b.geluForward(b.alloc(2), null as unknown as Tensor, 2), `geluForward: inp is not a live tensor of the ${n} backend (freed, or from another backend)`],
      [() => b.matmulForward(b.alloc(4), b.alloc(4), b.alloc(4), undefined as unknown as null, 2, 2, 2), `matmulForward: bias is not a live tensor of the ${n} backend (freed, or from another backend)`],
    ];
    const buf = b.alloc(4);
    cases.push([() => b.geluForward(b.view(buf, 0, 2), b.view(buf, 1, 2), 2), 'geluForward: output out overlaps inp; outputs must not share memory with other arguments']);
    cases.push([() => b.matmulBackward(b.view(buf, 0, 1), b.alloc(1), b.view(buf, 0, 1), b.alloc(1), b.alloc(1), b.alloc(1), 1, 1, 1), 'matmulBackward: output dinp overlaps dbias; outputs must not share memory with other arguments']);
    const freed = b.alloc(2);
    const view = b.view(freed, 0, 2);
    b.free(freed);
    cases.push([() => b.geluForward(b.alloc(2), view, 2), 'geluForward: inp is a view of a freed tensor']);
    for (const [f, want] of cases) expect(msg(f)).toBe(want);
  });

  it('the order of the checks decides which message wins', () => {
    // dims before everything; constraints before scalars; scalars before tensors
    expect(msg(() => b.attentionForward(b.alloc(1), b.alloc(1), b.alloc(1), 1, 1, 3, 0, { p: 2, seed: 0, stream: 0 }))).toBe('attentionForward: NH must be an integer >= 1, got 0');
    expect(msg(() => b.attentionForward(b.alloc(1), b.alloc(1), b.alloc(1), 1, 1, 3, 2, { p: 2, seed: 0, stream: 0 }))).toBe('attentionForward: C (3) must be divisible by NH (2)');
    expect(msg(() => b.attentionBackward(b.alloc(1), b.alloc(1), b.alloc(1), b.alloc(1), b.alloc(1), 1, 1, 2, 1, { p: 2, seed: 0, stream: 0 }, 3 as never))).toBe('attentionBackward: dropout.p must be in [0, 1), got 2');
    expect(msg(() => b.crossentropyBackward(b.alloc(1), b.alloc(1), b.alloc(1), b.alloc(1), 1, 3, 0.5, 3 as never))).toBe('crossentropyBackward: ignoreIndex must be a 32-bit integer, got 0.5');
    // tables before outputs, outputs before inputs (adamw: m, an output, before grads)
    expect(msg(() => b.encoderForward(b.alloc(1), ints([0]), b.alloc(5), b.alloc(1), 1, 2, 3))).toBe('encoderForward: wte must hold at least 1 rows of C = 3 (length a multiple of 3), got length 5');
    expect(msg(() => b.adamwUpdate(b.alloc(2), b.alloc(1), b.alloc(1), b.alloc(2), 2, 1e-3, 0.9, 0.999, 1e-8, 0, 1))).toBe('adamwUpdate: m has length 1, expected 2');
    // lengths are all checked before overlaps
    const buf = b.alloc(4);
    expect(msg(() => b.residualForward(buf, buf, b.alloc(3), 4))).toBe('residualForward: inp2 has length 3, expected 4');
    // an id out of range is found before an overlap is
    expect(msg(() => b.crossentropyForward(b.view(buf, 0, 1), b.view(buf, 0, 3), ints([3]), 1, 3, -100))).toBe('crossentropyForward: targets[0] = 3 is out of range (must be in 0..2 or -100)');
  });
});
