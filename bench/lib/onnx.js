// A tiny ONNX writer: just enough protobuf (varints, length-delimited fields) to emit a
// ModelProto with one node and its weights as an initializer. No python, no protobuf
// library: field numbers are from onnx/onnx.proto (IR version 8, opset 13).
//
// Lives in bench/ because only the benchmark builds ONNX models (the peer for matmul).

const WT_VARINT = 0;
const WT_LEN = 2;

/** Appends protobuf fields to a growing list of byte chunks. */
class Writer {
  constructor() {
    /** @type {Uint8Array[]} */
    this.chunks = [];
    this.length = 0;
  }
  push(bytes) {
    this.chunks.push(bytes);
    this.length += bytes.length;
    return this;
  }
  /** Unsigned varint of a non-negative integer up to 2^53 (plenty for dims and lengths). */
  varint(n) {
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`onnx: varint out of range: ${n}`);
    const out = [];
    while (n >= 0x80) {
      out.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    out.push(n);
    return this.push(Uint8Array.from(out));
  }
  tag(field, wireType) {
    return this.varint(field * 8 + wireType);
  }
  int(field, n) {
    return this.tag(field, WT_VARINT).varint(n);
  }
  bytes(field, bytes) {
    return this.tag(field, WT_LEN).varint(bytes.length).push(bytes);
  }
  string(field, s) {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  /** An embedded message built by `build(writer)`. */
  message(field, build) {
    const w = new Writer();
    build(w);
    return this.bytes(field, w.finish());
  }
  finish() {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

const FLOAT = 1; // TensorProto.DataType.FLOAT

/** ValueInfoProto { name = 1; type = 2 { tensor_type = 1 { elem_type = 1; shape = 2 { dim = 1 { dim_value = 1 } } } } } */
function valueInfo(w, field, name, dims) {
  w.message(field, (vi) => {
    vi.string(1, name);
    vi.message(2, (tp) =>
      tp.message(1, (tt) => {
        tt.int(1, FLOAT);
        tt.message(2, (shape) => {
          for (const d of dims) shape.message(1, (dim) => dim.int(1, d));
        });
      }),
    );
  });
}

/** TensorProto { dims = 1 (repeated int64); data_type = 2; name = 8; raw_data = 9 } */
function tensor(w, field, name, dims, data) {
  w.message(field, (t) => {
    for (const d of dims) t.int(1, d);
    t.int(2, FLOAT);
    t.string(8, name);
    // raw_data is little-endian; so is every machine this runs on (checked below).
    t.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  });
}

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) throw new Error('onnx: big-endian host not supported');

/**
 * ONNX model computing Y (M,N) = X (M,K) · B (K,N) with one MatMul node; B is a constant
 * initializer (so onnxruntime may pre-pack it, as it would for a real linear layer).
 * `bKN` is B in row-major (K,N) layout, i.e. Wᵀ for a PyTorch-style weight W (N,K).
 * Returns the serialized ModelProto bytes.
 */
export function matmulModel(M, K, N, bKN) {
  if (bKN.length !== K * N) throw new Error(`onnx: B has ${bKN.length} elements, expected K*N = ${K * N}`);
  const w = new Writer();
  w.int(1, 8); // ir_version
  w.string(2, 'ferrogpt-bench'); // producer_name
  w.message(7, (g) => {
    // GraphProto { node = 1; name = 2; initializer = 5; input = 11; output = 12 }
    g.message(1, (n) => {
      // NodeProto { input = 1; output = 2; name = 3; op_type = 4 }
      n.string(1, 'X');
      n.string(1, 'B');
      n.string(2, 'Y');
      n.string(3, 'matmul');
      n.string(4, 'MatMul');
    });
    g.string(2, 'matmul');
    tensor(g, 5, 'B', [K, N], bKN);
    valueInfo(g, 11, 'X', [M, K]);
    valueInfo(g, 12, 'Y', [M, N]);
  });
  w.message(8, (op) => {
    // OperatorSetIdProto { domain = 1; version = 2 }
    op.string(1, '');
    op.int(2, 13);
  });
  return w.finish();
}

/** Row-major transpose of a (rows, cols) matrix. */
export function transpose(a, rows, cols) {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = a[base + c];
  }
  return out;
}
