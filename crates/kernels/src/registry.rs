//! The kernel registry: the ONE list of the kernels the bindings export, as a macro_rules
//! "X-macro". `for_each_kernel!(cb)` expands to `cb! { <every entry below> }`, and each
//! binding crate defines its own `cb` that turns an entry into an export:
//!
//! - crates/node (`napi_kernels!`): a `#[napi]` function that takes every argument as a
//!   raw JS value, checks it (types, dims, lengths, ids, overlaps; see crates/node), then
//!   calls the kernel on the addon's thread pool and scratch buffer;
//! - crates/wasm (`wasm_kernels!`): an `extern "C"` function over pointers into linear
//!   memory, which trusts its caller (BaseBackend checks first).
//!
//! So adding a kernel means: its function in this crate, one entry here, and on the TS
//! side one entry in src/backend/kernels.ts and its reference function (CONTRIBUTING.md,
//! "Adding a kernel"). Nothing per kernel is written by hand in either binding crate.
//!
//! Why a macro in this crate: both binding crates depend on it, the kernels crate has no
//! dependencies (so no proc macros), and a macro_rules list costs this crate nothing (it expands only where it is
//! used). Paths in `call:` and `scratch(..)` are relative to this crate's root (the
//! consumers call them as `k::module::f`, with `use ferrogpt_kernels as k`). Names bound
//! by an entry (`par`, `scratch`, `v`, the arguments) come from the entry's own tokens, so
//! macro hygiene keeps them apart from the consumers' internal locals.
//!
//! # Entry grammar
//!
//! ```text
//! "jsName" rust_name [node wasm] ( arg: role[spec], ... ) {
//!     lens: [ name = "what" (dim, dim, ...), ... ],
//!     checks: [ x("X") % y("Y"), x("X") <= y("Y") ],
//!     run: serial | pool(par) | scratch(par, scratch = module::len_fn(dims...)),
//!     call: module::kernel(args...) [-> f64],
//! }
//! ```
//!
//! - `"jsName"`: the napi export (and the function name in the addon's error messages);
//!   `rust_name`: the wasm export and the Rust name of the napi function.
//!   `[node wasm]`: which bindings export it (`zero` is node only).
//! - The arguments, in the exported argument order (outputs, inputs, dims, scalars, as in
//!   src/backend/backend.ts), each `name: role[spec]`. Buffer names are also their names
//!   in error messages; other roles give the JS name as a string. Roles:
//!   - `out[len]` / `inp[len]`: an f32 output / input of exactly `len` floats. A length
//!     is a dim, a `lens` name, or a plain product that a checked `lens` entry bounds (so
//!     it cannot overflow: encoder's ids, b * t <= B*T*C). `out_opt[len]` /
//!     `inp_opt[len]`: the same, or null/undefined (wasm: a null pointer) for none.
//!   - `inp_bf16[len]` / `inp_i8[len]`: the same for a bf16 (u16: Uint16Array) / int8
//!     (i8: Int8Array) input, a compact weight; `rows_in_bf16` / `rows_in_i8`: a table of them.
//!     `out_bf16[len]`: a bf16 output (a bf16 KV cache; wasm: `*mut u16`).
//!   - `ids[len, lim]`: i32 input of `len` ids, each in 0..lim; `ids[len, lim, allowed]`:
//!     or equal to the scalar argument `allowed` (an ignore index);
//!     `ids[len, rows v]`: each below `v`, the row count of a table (`=> v` below). Wasm
//!     takes v = max(ids) + 1, since it is not given the table's length.
//!   - `rows_in[c, min]` / `rows_out[c, min]`: an f32 table of rows of `c` floats, any
//!     length that is a multiple of c with at least `min` rows (wasm: exactly min rows);
//!     `rows_in[c, min => v]` also binds its row count as `v` (wasm: v from the ids).
//!   - `dim["B"]`: a dimension, an integer in 1..=2^32-1 (wasm: usize).
//!   - Scalars: `int32["ignoreIndex"]` any i32; `count["step"]` an integer >= 1 (u32);
//!     `finite["lr"]` a finite f32; `unit["beta1"]` an f32 in [0, 1);
//!     `flag["overwrite"]` an optional boolean, missing = false (wasm: u32, 0 = false).
//!   - `d: dropout[p, seed, stream]`: three arguments p in [0, 1) (f32), seed and stream
//!     (u32), passed to the kernel as one `Dropout` named `d`.
//! - `lens`: buffer lengths as named products of dims, in the order they are checked
//!   (overflow-checked in the addon, in elements and in bytes); "what" names the product
//!   in the overflow error.
//! - `checks`: relations between dims: `%` (x divisible by y, a dim or an integer such as
//!   32, the int8 block), `<=`.
//! - `run`: `serial` (no pool), `pool(par)` (binds the thread pool as `par`), or
//!   `scratch(par, scratch = f(dims))` (the pool and a scratch buffer of at least
//!   `f(dims, threads)` floats, bound as `par` and `scratch`; the wasm export then returns
//!   0, or 1 if the scratch memory could not be allocated).
//! - `call`: the kernel call, over the names above (buffers become slices, flags bools).
//!   `-> f64`: the kernel returns a value, and so does the export.
//!
//! The addon checks in a fixed order, whatever the order of the arguments: dims, scalars
//! and flags, `checks`, dropout, `lens`, tables, outputs, inputs (ids included), overlaps.

/// Calls `$cb! { entries }` with every kernel entry (see the module docs for the grammar).
#[macro_export]
macro_rules! for_each_kernel {
    ($cb:ident) => {
        $cb! {
            // out (B,T,C) = wte[ids] + wpe[t]; ids (B,T) in 0..V where V = wte rows.
            "encoderForward" encoder_forward [node wasm] (
                out: out[btc], ids: ids[b * t, rows v], wte: rows_in[c, 1 => v], wpe: rows_in[c, t],
                b: dim["B"], t: dim["T"], c: dim["C"],
            ) {
                lens: [btc = "B*T*C" (b, t, c)],
                checks: [],
                run: serial,
                call: encoder::encoder_forward(out, ids, wte, wpe, b, t, c),
            }

            // out (B,T,C) = widen(wte[ids]) + wpe[t] for a bf16 wte (V,C) (compact.rs).
            "encoderForwardBf16" encoder_forward_bf16 [node wasm] (
                out: out[btc], ids: ids[b * t, rows v], wte: rows_in_bf16[c, 1 => v], wpe: rows_in[c, t],
                b: dim["B"], t: dim["T"], c: dim["C"],
            ) {
                lens: [btc = "B*T*C" (b, t, c)],
                checks: [],
                run: serial,
                call: compact::encoder_forward_bf16(out, ids, wte, wpe, b, t, c),
            }

            // out (B,T,C) = dequantized wte[ids] + wpe[t] for an int8 wte (V,C) with scales
            // (V,C/32) (compact.rs). V is an argument, not a table's row count: the int8
            // layout interleaves rows in groups of 16, so where a row lies depends on V.
            "encoderForwardQ8" encoder_forward_q8 [node wasm] (
                out: out[btc], ids: ids[b * t, v], wte: inp_i8[vc], scales: inp[v * (c / 32)], wpe: rows_in[c, t],
                b: dim["B"], t: dim["T"], c: dim["C"], v: dim["V"],
            ) {
                lens: [btc = "B*T*C" (b, t, c), vc = "V*C" (v, c)],
                checks: [c("C") % 32],
                run: serial,
                call: compact::encoder_forward_q8(out, ids, wte, scales, wpe, b, t, c, v),
            }

            // dwte (V,C) += scatter of dout (B,T,C); dwpe (>= T,C) += dout summed over B.
            "encoderBackward" encoder_backward [node wasm] (
                dwte: rows_out[c, 1 => v], dwpe: rows_out[c, t], dout: inp[btc], ids: ids[b * t, rows v],
                b: dim["B"], t: dim["T"], c: dim["C"],
            ) {
                lens: [btc = "B*T*C" (b, t, c)],
                checks: [],
                run: serial,
                call: encoder::encoder_backward(dwte, dwpe, dout, ids, b, t, c),
            }

            // out (N,C), mean (N), rstd (N) = layernorm of inp (N,C), weight (C), bias (C).
            "layernormForward" layernorm_forward [node wasm] (
                out: out[nc], mean: out[n], rstd: out[n], inp: inp[nc], weight: inp[c], bias: inp[c],
                n: dim["N"], c: dim["C"],
            ) {
                lens: [nc = "N*C" (n, c)],
                checks: [],
                run: pool(par),
                call: layernorm::layernorm_forward(par, out, mean, rstd, inp, weight, bias, n, c),
            }

            // dinp (N,C), dweight (C), dbias (C) += gradients of layernorm.
            "layernormBackward" layernorm_backward [node wasm] (
                dinp: out[nc], dweight: out[c], dbias: out[c],
                dout: inp[nc], inp: inp[nc], weight: inp[c], mean: inp[n], rstd: inp[n],
                n: dim["N"], c: dim["C"],
            ) {
                lens: [nc = "N*C" (n, c)],
                checks: [],
                run: serial,
                call: layernorm::layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, n, c),
            }

            // out (N,OC) = inp (N,C) · weight (OC,C)ᵀ + bias (OC, optional); accumulate: out += it.
            "matmulForward" matmul_forward [node wasm] (
                out: out[noc], inp: inp[nc], weight: inp[occ], bias: inp_opt[oc],
                n: dim["N"], c: dim["C"], oc: dim["OC"], accumulate: flag["accumulate"],
            ) {
                lens: [noc = "N*OC" (n, oc), nc = "N*C" (n, c), occ = "OC*C" (oc, c)],
                checks: [],
                run: scratch(par, scratch = matmul::matmul_scratch_len(n, c, oc)),
                call: matmul::matmul_forward(par, scratch, out, inp, weight, bias, n, c, oc, accumulate),
            }

            // packed (P,C) = weight (OC,C) packed as the forward GEMM packs it (matmul.rs's
            // pack_weight; the layout is this build's own); P a multiple of 192, >= OC.
            "packWeight" pack_weight [node wasm] (
                packed: out[pc], weight: inp[occ], c: dim["C"], oc: dim["OC"], p: dim["P"],
            ) {
                lens: [pc = "P*C" (p, c), occ = "OC*C" (oc, c)],
                checks: [p("P") % 192, oc("OC") <= p("P")],
                run: pool(par),
                call: matmul::pack_weight(par, packed, weight, c, oc, p),
            }

            // matmulForward with the weight's packed copy (packWeight) beside it: the same
            // bits; more than 16 rows read the packed copy instead of packing the weight.
            "matmulForwardPacked" matmul_forward_packed [node wasm] (
                out: out[noc], inp: inp[nc], weight: inp[occ], packed: inp[pc], bias: inp_opt[oc],
                n: dim["N"], c: dim["C"], oc: dim["OC"], p: dim["P"], accumulate: flag["accumulate"],
            ) {
                lens: [noc = "N*OC" (n, oc), nc = "N*C" (n, c), occ = "OC*C" (oc, c), pc = "P*C" (p, c)],
                checks: [p("P") % 192, oc("OC") <= p("P")],
                run: scratch(par, scratch = matmul::matmul_scratch_len(n, c, oc)),
                call: matmul::matmul_forward_packed(par, scratch, out, inp, weight, packed, bias, n, c, oc, p, accumulate),
            }

            // out (N,OC) = bf16(inp (N,C)) · weight (OC,C, bf16)ᵀ + bias (OC, optional);
            // accumulate: out += it (compact.rs).
            "matmulForwardBf16" matmul_forward_bf16 [node wasm] (
                out: out[noc], inp: inp[nc], weight: inp_bf16[occ], bias: inp_opt[oc],
                n: dim["N"], c: dim["C"], oc: dim["OC"], accumulate: flag["accumulate"],
            ) {
                lens: [noc = "N*OC" (n, oc), nc = "N*C" (n, c), occ = "OC*C" (oc, c)],
                checks: [],
                run: scratch(par, scratch = compact::matmul_bf16_scratch_len(n, c, oc)),
                call: compact::matmul_forward_bf16(par, scratch, out, inp, weight, bias, n, c, oc, accumulate),
            }

            // out (N,OC) = q8(inp (N,C)) · weight (OC,C, int8; scales (OC,C/32))ᵀ + bias (OC,
            // optional); accumulate: out += it (compact.rs).
            "matmulForwardQ8" matmul_forward_q8 [node wasm] (
                out: out[noc], inp: inp[nc], weight: inp_i8[occ], scales: inp[ocb], bias: inp_opt[oc],
                n: dim["N"], c: dim["C"], oc: dim["OC"], accumulate: flag["accumulate"],
            ) {
                lens: [noc = "N*OC" (n, oc), nc = "N*C" (n, c), occ = "OC*C" (oc, c), ocb = "OC*C/32" (oc, c / 32)],
                checks: [c("C") % 32],
                run: scratch(par, scratch = compact::matmul_q8_scratch_len(n, c, oc)),
                call: compact::matmul_forward_q8(par, scratch, out, inp, weight, scales, bias, n, c, oc, accumulate),
            }

            // dinp (N,C) += dout·weight (overwriteDinp: =); dweight (OC,C, optional: a frozen
            // weight) += doutᵀ·inp; dbias (OC, optional) += Σ dout.
            "matmulBackward" matmul_backward [node wasm] (
                dinp: out[nc], dweight: out_opt[occ], dbias: out_opt[oc], dout: inp[noc], inp: inp[nc], weight: inp[occ],
                n: dim["N"], c: dim["C"], oc: dim["OC"], overwrite_dinp: flag["overwriteDinp"],
            ) {
                lens: [noc = "N*OC" (n, oc), nc = "N*C" (n, c), occ = "OC*C" (oc, c)],
                checks: [],
                run: scratch(par, scratch = matmul::matmul_scratch_len(n, c, oc)),
                call: matmul::matmul_backward(par, scratch, dinp, dweight, dbias, dout, inp, weight, n, c, oc, overwrite_dinp),
            }

            // The backward of matmulForwardBf16 for bf16 mixed-precision training (mixed.rs):
            // dinp (N,C) += bf16(dout)·weight (bf16; overwriteDinp: =); dweight (OC,C, optional)
            // += bf16(dout)ᵀ·bf16(inp); dbias (OC, optional) += Σ dout.
            "matmulBackwardBf16" matmul_backward_bf16 [node wasm] (
                dinp: out[nc], dweight: out_opt[occ], dbias: out_opt[oc], dout: inp[noc], inp: inp[nc], weight: inp_bf16[occ],
                n: dim["N"], c: dim["C"], oc: dim["OC"], overwrite_dinp: flag["overwriteDinp"],
            ) {
                lens: [noc = "N*OC" (n, oc), nc = "N*C" (n, c), occ = "OC*C" (oc, c)],
                checks: [],
                run: scratch(par, scratch = mixed::matmul_backward_bf16_scratch_len(n, c, oc)),
                call: mixed::matmul_backward_bf16(par, scratch, dinp, dweight, dbias, dout, inp, weight, n, c, oc, overwrite_dinp),
            }

            // out (N) = bf16(x (N)): the once-per-update bf16 copy of the master weights (mixed.rs).
            "roundBf16" round_bf16 [node wasm] (out: out_bf16[n], x: inp[n], n: dim["N"]) {
                lens: [],
                checks: [],
                run: pool(par),
                call: mixed::round_bf16(par, out, x, n),
            }

            // Causal self-attention: out (B,T,C), lse (B,NH,T) from qkv (B,T,3C), dropout
            // on the attention weights (p = 0: none).
            "attentionForward" attention_forward [node wasm] (
                out: out[btc], lse: out[bnt], qkv: inp[bt3c],
                b: dim["B"], t: dim["T"], c: dim["C"], nh: dim["NH"], dropout: dropout[p, seed, stream],
            ) {
                lens: [btc = "B*T*C" (b, t, c), bnt = "B*NH*T" (b, nh, t), bt3c = "B*T*3*C" (b, t, 3, c)],
                checks: [c("C") % nh("NH")],
                run: scratch(par, scratch = attention::attention_scratch_len(b, t, c, nh)),
                call: attention::attention_forward(par, scratch, out, lse, qkv, b, t, c, nh, dropout),
            }

            // dqkv (B,T,3C) += gradient of attention from dout (B,T,C), qkv, out, lse
            // (overwrite: =).
            "attentionBackward" attention_backward [node wasm] (
                dqkv: out[bt3c], dout: inp[btc], qkv: inp[bt3c], out: inp[btc], lse: inp[bnt],
                b: dim["B"], t: dim["T"], c: dim["C"], nh: dim["NH"], dropout: dropout[p, seed, stream],
                overwrite: flag["overwrite"],
            ) {
                lens: [btc = "B*T*C" (b, t, c), bnt = "B*NH*T" (b, nh, t), bt3c = "B*T*3*C" (b, t, 3, c)],
                checks: [c("C") % nh("NH")],
                run: scratch(par, scratch = attention::attention_scratch_len(b, t, c, nh)),
                call: attention::attention_backward(par, scratch, dqkv, dout, qkv, out, lse, b, t, c, nh, dropout, overwrite),
            }

            // KV-cached attention (decode.rs): appends qkv (B,Tq,3C)'s k, v to kcache, vcache
            // (B,NH,maxT,HS) at rows pos[b].. and attends; out (B,Tq,C). pos (B) each in
            // 0..=maxT (rows past maxT are skipped); not modified.
            "attentionDecode" attention_decode [node wasm] (
                out: out[btc], kcache: out[cache], vcache: out[cache], qkv: inp[bt3c], pos: ids[b, max_t + 1],
                b: dim["B"], tq: dim["Tq"], c: dim["C"], nh: dim["NH"], max_t: dim["maxT"],
            ) {
                lens: [btc = "B*Tq*C" (b, tq, c), bt3c = "B*Tq*3*C" (b, tq, 3, c), cache = "B*maxT*C" (b, max_t, c)],
                checks: [c("C") % nh("NH"), tq("Tq") <= max_t("maxT")],
                run: scratch(par, scratch = decode::attention_decode_scratch_len(max_t)),
                call: decode::attention_decode(par, scratch, out, kcache, vcache, qkv, pos, b, tq, c, nh, max_t),
            }

            // attentionDecode over a bf16 cache (B,NH,maxT,HS): appends bf16(k), bf16(v) and
            // attends over the widened rows in f32 (decode.rs).
            "attentionDecodeBf16" attention_decode_bf16 [node wasm] (
                out: out[btc], kcache: out_bf16[cache], vcache: out_bf16[cache], qkv: inp[bt3c], pos: ids[b, max_t + 1],
                b: dim["B"], tq: dim["Tq"], c: dim["C"], nh: dim["NH"], max_t: dim["maxT"],
            ) {
                lens: [btc = "B*Tq*C" (b, tq, c), bt3c = "B*Tq*3*C" (b, tq, 3, c), cache = "B*maxT*C" (b, max_t, c)],
                checks: [c("C") % nh("NH"), tq("Tq") <= max_t("maxT")],
                run: scratch(par, scratch = decode::attention_decode_scratch_len(max_t)),
                call: decode::attention_decode_bf16(par, scratch, out, kcache, vcache, qkv, pos, b, tq, c, nh, max_t),
            }

            // out (N) = gelu(inp (N)), tanh approximation.
            "geluForward" gelu_forward [node wasm] (out: out[n], inp: inp[n], n: dim["N"]) {
                lens: [],
                checks: [],
                run: pool(par),
                call: gelu::gelu_forward(par, out, inp, n),
            }

            // dinp (N) += gelu'(inp) * dout (overwrite: =).
            "geluBackward" gelu_backward [node wasm] (
                dinp: out[n], inp: inp[n], dout: inp[n], n: dim["N"], overwrite: flag["overwrite"],
            ) {
                lens: [],
                checks: [],
                run: pool(par),
                call: gelu::gelu_backward(par, dinp, inp, dout, n, overwrite),
            }

            // out (N) = inp1 (N) + inp2 (N).
            "residualForward" residual_forward [node wasm] (out: out[n], inp1: inp[n], inp2: inp[n], n: dim["N"]) {
                lens: [],
                checks: [],
                run: pool(par),
                call: residual::residual_forward(par, out, inp1, inp2, n),
            }

            // dinp1 (N) += dout; dinp2 (N) += dout.
            "residualBackward" residual_backward [node wasm] (dinp1: out[n], dinp2: out[n], dout: inp[n], n: dim["N"]) {
                lens: [],
                checks: [],
                run: pool(par),
                call: residual::residual_backward(par, dinp1, dinp2, dout, n),
            }

            // out (R,C) = inp (R,C): whole rows (a KV-cache slot forked into another).
            "copyRows" copy_rows [node wasm] (out: out[rc], inp: inp[rc], r: dim["R"], c: dim["C"]) {
                lens: [rc = "R*C" (r, c)],
                checks: [],
                run: serial,
                call: rows::copy_rows(out, inp, r, c),
            }

            // The same for bf16 rows (a slot of a bf16 KV cache).
            "copyRowsBf16" copy_rows_bf16 [node wasm] (out: out_bf16[rc], inp: inp_bf16[rc], r: dim["R"], c: dim["C"]) {
                lens: [rc = "R*C" (r, c)],
                checks: [],
                run: serial,
                call: rows::copy_rows(out, inp, r, c),
            }

            // out (F,C) = inp (N,C) at rows (F), each in 0..N; accumulate: out += them.
            "gatherRows" gather_rows [node wasm] (
                out: out[fc], inp: rows_in[c, 1 => n], rows: ids[f, rows n],
                f: dim["F"], c: dim["C"], accumulate: flag["accumulate"],
            ) {
                lens: [fc = "F*C" (f, c)],
                checks: [],
                run: serial,
                call: rows::gather_rows(out, inp, rows, f, c, accumulate),
            }

            // dinp (N,C) at rows (F) += dout (F,C), f in order: gatherRows' backward.
            "scatterAddRows" scatter_add_rows [node wasm] (
                dinp: rows_out[c, 1 => n], dout: inp[fc], rows: ids[f, rows n], f: dim["F"], c: dim["C"],
            ) {
                lens: [fc = "F*C" (f, c)],
                checks: [],
                run: serial,
                call: rows::scatter_add_rows(dinp, dout, rows, f, c),
            }

            // losses (N) = cross-entropy of softmax(logits (N,V)) at targets (N); 0 where
            // target == ignoreIndex.
            "crossentropyForward" crossentropy_forward [node wasm] (
                losses: out[n], logits: inp[nv], targets: ids[n, v, ignore_index],
                n: dim["N"], v: dim["V"], ignore_index: int32["ignoreIndex"],
            ) {
                lens: [nv = "N*V" (n, v)],
                checks: [],
                run: pool(par),
                call: crossentropy::crossentropy_forward(par, losses, logits, targets, n, v, ignore_index),
            }

            // dlogits (N,V) += dlosses (N) * (softmax(logits) - onehot(targets)) (overwrite: =).
            "crossentropyBackward" crossentropy_backward [node wasm] (
                dlogits: out[nv], dlosses: inp[n], logits: inp[nv], targets: ids[n, v, ignore_index],
                n: dim["N"], v: dim["V"], ignore_index: int32["ignoreIndex"], overwrite: flag["overwrite"],
            ) {
                lens: [nv = "N*V" (n, v)],
                checks: [],
                run: pool(par),
                call: crossentropy::crossentropy_backward(par, dlogits, dlosses, logits, targets, n, v, ignore_index, overwrite),
            }

            // Inverted dropout: out (N) = inp * keep / (1 - p).
            "dropoutForward" dropout_forward [node wasm] (out: out[n], inp: inp[n], n: dim["N"], d: dropout[p, seed, stream]) {
                lens: [],
                checks: [],
                run: serial,
                call: dropout::dropout_forward(out, inp, n, d.p, d.seed, d.stream),
            }

            // dinp (N) += dout * keep / (1 - p).
            "dropoutBackward" dropout_backward [node wasm] (dinp: out[n], dout: inp[n], n: dim["N"], d: dropout[p, seed, stream]) {
                lens: [],
                checks: [],
                run: serial,
                call: dropout::dropout_backward(dinp, dout, n, d.p, d.seed, d.stream),
            }

            // One AdamW step over params, grads, m, v (each N); step counts from 1.
            "adamwUpdate" adamw_update [node wasm] (
                params: out[n], grads: inp[n], m: out[n], v: out[n], n: dim["N"],
                lr: finite["lr"], beta1: unit["beta1"], beta2: unit["beta2"], eps: finite["eps"],
                weight_decay: finite["weightDecay"], step: count["step"],
            ) {
                lens: [],
                checks: [],
                run: pool(par),
                call: adamw::adamw_update(par, params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, step),
            }

            // Σ x² over x (N), accumulated in f64.
            "sumSquares" sum_squares [node wasm] (x: inp[n], n: dim["N"]) {
                lens: [],
                checks: [],
                run: pool(par),
                call: norm::sum_squares(par, x, n) -> f64,
            }

            // x (N) = 0 (NaN and inf included), on the pool's threads. (The wasm backend
            // fills its memory from JS.)
            "zero" zero [node] (x: out[n], n: dim["N"]) {
                lens: [],
                checks: [],
                run: pool(par),
                call: norm::zero(par, x, n),
            }

            // x (N) *= s.
            "scale" scale [node wasm] (x: out[n], n: dim["N"], s: finite["s"]) {
                lens: [],
                checks: [],
                run: pool(par),
                call: norm::scale(par, x, n, s),
            }
        }
    };
}
