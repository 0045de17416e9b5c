//! Raw `extern "C"` exports of the ferrogpt kernels for wasm32-unknown-unknown: no
//! wasm-bindgen, no crates.io dependencies, builds with Rust 1.63 (see
//! scripts/build-wasm.mjs, which calls rustc directly).
//!
//! The JS side (src/backend/wasm.ts) owns the contract:
//! - Tensors live in linear memory, allocated with `alloc` (zero-filled, 16-byte aligned)
//!   and released with `dealloc(ptr, nbytes)` with the same size.
//! - Every kernel takes pointers (byte addresses of f32 / i32 elements) plus dims, in the
//!   argument order of src/backend/backend.ts. The caller (BaseBackend) has checked
//!   lengths, dims, ids and overlaps first: these exports trust their arguments. A mistake
//!   can only corrupt this module's own memory or trap; it cannot reach the host.
//! - Kernels that need scratch memory use one module-global growable buffer; they return
//!   0 on success and 1 if the scratch memory could not be allocated. `alloc`, and those
//!   kernels, may grow the memory: JS re-derives its views of `memory.buffer` after them.
//! - Built with panic=abort: a kernel panic is a wasm trap (a JS RuntimeError).

#![deny(unsafe_op_in_unsafe_fn)]

use std::alloc::{alloc_zeroed, dealloc as std_dealloc, Layout};
use std::cell::UnsafeCell;

use ferrogpt_kernels as k;
use ferrogpt_kernels::rng::Dropout;
use ferrogpt_kernels::Serial;

pub use ferrogpt_kernels as kernels;

/// Bumped when an export changes; wasm.ts checks it.
const ABI_VERSION: u32 = 3;
const ALIGN: usize = 16;

/// The scratch buffer: one per module instance. wasm32-unknown-unknown (without the
/// atomics feature) runs on one thread, and no export re-enters another.
struct Scratch(UnsafeCell<Vec<f32>>);
// SAFETY: this target is single-threaded (no shared memory, no threads), so the cell is
// never accessed from two threads.
unsafe impl Sync for Scratch {}
static SCRATCH: Scratch = Scratch(UnsafeCell::new(Vec::new()));

/// The first `len` floats of the scratch buffer, grown if needed; None if out of memory.
///
/// # Safety
/// Single-threaded, not re-entrant: the caller holds the returned slice only for the
/// duration of one export call.
unsafe fn scratch<'a>(len: usize) -> Option<&'a mut [f32]> {
    // SAFETY: per this function's contract, no other reference to the Vec is alive.
    let v = unsafe { &mut *SCRATCH.0.get() };
    if v.len() < len {
        let extra = len - v.len();
        if v.try_reserve_exact(extra).is_err() {
            return None;
        }
        v.resize(len, 0.0);
    }
    Some(&mut v[..len])
}

/// # Safety
/// `ptr` points to `len` live, aligned f32 that no mutable slice of this call aliases.
unsafe fn s<'a>(ptr: *const f32, len: usize) -> &'a [f32] {
    if len == 0 {
        return &[];
    }
    // SAFETY: per this function's contract.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// # Safety
/// `ptr` points to `len` live, aligned f32 that no other slice of this call aliases.
unsafe fn m<'a>(ptr: *mut f32, len: usize) -> &'a mut [f32] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: per this function's contract.
    unsafe { std::slice::from_raw_parts_mut(ptr, len) }
}

/// # Safety
/// `ptr` points to `len` live, aligned i32.
unsafe fn si<'a>(ptr: *const i32, len: usize) -> &'a [i32] {
    if len == 0 {
        return &[];
    }
    // SAFETY: per this function's contract.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

fn dropout(p: f32, seed: u32, stream: u32) -> Dropout {
    Dropout { p, seed, stream }
}

// ---- memory ----

/// `nbytes` zero-filled bytes, 16-byte aligned; 0 (null) if out of memory. A zero-size
/// request returns a non-null dangling pointer that must not be read.
#[no_mangle]
pub extern "C" fn alloc(nbytes: usize) -> *mut u8 {
    if nbytes == 0 {
        return ALIGN as *mut u8;
    }
    match Layout::from_size_align(nbytes, ALIGN) {
        // SAFETY: the layout has a non-zero size.
        Ok(layout) => unsafe { alloc_zeroed(layout) },
        Err(_) => std::ptr::null_mut(),
    }
}

/// Frees memory from `alloc(nbytes)`.
///
/// # Safety
/// `ptr` came from `alloc` with this `nbytes` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn dealloc(ptr: *mut u8, nbytes: usize) {
    if nbytes == 0 || ptr.is_null() {
        return;
    }
    if let Ok(layout) = Layout::from_size_align(nbytes, ALIGN) {
        // SAFETY: per this function's contract, ptr was allocated with this layout.
        unsafe { std_dealloc(ptr, layout) }
    }
}

// ---- info ----

/// 1 if the kernels were compiled with simd128, 0 for scalar.
#[no_mangle]
pub extern "C" fn simd_name() -> u32 {
    if k::simd::simd_name() == "simd128" {
        1
    } else {
        0
    }
}

#[no_mangle]
pub extern "C" fn abi_version() -> u32 {
    ABI_VERSION
}

/// The peak-FMA loop, untimed (std has no clock on wasm32): about `iters` vector
/// multiply-adds; returns a value so the work is kept. JS times it (see WasmBackend.peakGflops).
#[no_mangle]
pub extern "C" fn fma_work(iters: f64) -> f32 {
    k::peak::fma_work(if iters >= 1.0 { iters as u64 } else { 1 })
}

/// f32 lanes per vector multiply-add in `fma_work` (4 with simd128, 1 without).
#[no_mangle]
pub extern "C" fn fma_lanes() -> u32 {
    k::peak::fma_lanes() as u32
}

/// Vector multiply-adds `fma_work(iters)` actually runs.
#[no_mangle]
pub extern "C" fn fma_work_count(iters: f64) -> f64 {
    k::peak::fma_work_count(if iters >= 1.0 { iters as u64 } else { 1 }) as f64
}

// ---- kernels (pointers as in backend.ts: outputs, inputs, dims, scalars) ----
// # Safety (every kernel export below): each pointer addresses a live, aligned buffer of
// the length its shape comment gives, and outputs overlap no other argument — what
// BaseBackend checks before calling.

/// Rows of the embedding table the ids reach: max(ids) + 1. The tables' full lengths are
/// not passed (they are not implied by the dims); the kernels' contract only needs the
/// table to hold every row an id names, so the slice covers exactly those rows.
fn rows_used(ids: &[i32]) -> usize {
    ids.iter().map(|&id| id.max(0) as usize + 1).max().unwrap_or(0)
}

/// # Safety
/// See the note above the kernel exports; wte/dwte hold at least max(ids) + 1 rows and
/// wpe/dwpe at least T rows.
#[no_mangle]
pub unsafe extern "C" fn encoder_forward(out: *mut f32, ids: *const i32, wte: *const f32, wpe: *const f32, b: usize, t: usize, c: usize) {
    // SAFETY: per the caller's contract; ids (B,T).
    let ids = unsafe { si(ids, b * t) };
    let v = rows_used(ids);
    // SAFETY: per the caller's contract; out (B,T,C), wte (>= V,C), wpe (>= T,C).
    unsafe { k::encoder::encoder_forward(m(out, b * t * c), ids, s(wte, v * c), s(wpe, t * c), b, t, c) }
}

/// # Safety
/// As `encoder_forward`.
#[no_mangle]
pub unsafe extern "C" fn encoder_backward(dwte: *mut f32, dwpe: *mut f32, dout: *const f32, ids: *const i32, b: usize, t: usize, c: usize) {
    // SAFETY: per the caller's contract; ids (B,T).
    let ids = unsafe { si(ids, b * t) };
    let v = rows_used(ids);
    // SAFETY: per the caller's contract; dwte (>= V,C), dwpe (>= T,C), dout (B,T,C).
    unsafe { k::encoder::encoder_backward(m(dwte, v * c), m(dwpe, t * c), s(dout, b * t * c), ids, b, t, c) }
}

/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn layernorm_forward(out: *mut f32, mean: *mut f32, rstd: *mut f32, inp: *const f32, weight: *const f32, bias: *const f32, n: usize, c: usize) {
    // SAFETY: per the caller's contract; out (N,C), mean (N), rstd (N), inp (N,C), weight (C), bias (C).
    unsafe { k::layernorm::layernorm_forward(&Serial, m(out, n * c), m(mean, n), m(rstd, n), s(inp, n * c), s(weight, c), s(bias, c), n, c) }
}

/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn layernorm_backward(dinp: *mut f32, dweight: *mut f32, dbias: *mut f32, dout: *const f32, inp: *const f32, weight: *const f32, mean: *const f32, rstd: *const f32, n: usize, c: usize) {
    // SAFETY: per the caller's contract; dinp (N,C), dweight (C), dbias (C), dout (N,C),
    // inp (N,C), weight (C), mean (N), rstd (N).
    unsafe {
        k::layernorm::layernorm_backward(m(dinp, n * c), m(dweight, c), m(dbias, c), s(dout, n * c), s(inp, n * c), s(weight, c), s(mean, n), s(rstd, n), n, c)
    }
}

/// `bias` may be 0 (null) for no bias. Returns 0, or 1 if scratch memory ran out.
///
/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn matmul_forward(out: *mut f32, inp: *const f32, weight: *const f32, bias: *const f32, n: usize, c: usize, oc: usize) -> u32 {
    let par = Serial;
    // SAFETY: single-threaded, held for this call only.
    let scratch = match unsafe { scratch(k::matmul::matmul_scratch_len(n, c, oc, 1)) } {
        Some(x) => x,
        None => return 1,
    };
    // SAFETY: per the caller's contract; out (N,OC), inp (N,C), weight (OC,C), bias (OC).
    let bias = if bias.is_null() { None } else { Some(unsafe { s(bias, oc) }) };
    // SAFETY: as above.
    unsafe { k::matmul::matmul_forward(&par, scratch, m(out, n * oc), s(inp, n * c), s(weight, oc * c), bias, n, c, oc) };
    0
}

/// `dbias` may be 0 (null). Returns 0, or 1 if scratch memory ran out.
///
/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn matmul_backward(dinp: *mut f32, dweight: *mut f32, dbias: *mut f32, dout: *const f32, inp: *const f32, weight: *const f32, n: usize, c: usize, oc: usize, overwrite_dinp: u32) -> u32 {
    let par = Serial;
    // SAFETY: single-threaded, held for this call only.
    let scratch = match unsafe { scratch(k::matmul::matmul_scratch_len(n, c, oc, 1)) } {
        Some(x) => x,
        None => return 1,
    };
    // SAFETY: per the caller's contract; dinp (N,C), dweight (OC,C), dbias (OC),
    // dout (N,OC), inp (N,C), weight (OC,C).
    let dbias = if dbias.is_null() { None } else { Some(unsafe { m(dbias, oc) }) };
    // SAFETY: as above.
    unsafe { k::matmul::matmul_backward(&par, scratch, m(dinp, n * c), m(dweight, oc * c), dbias, s(dout, n * oc), s(inp, n * c), s(weight, oc * c), n, c, oc, overwrite_dinp != 0) };
    0
}

/// Returns 0, or 1 if scratch memory ran out.
///
/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn attention_forward(out: *mut f32, lse: *mut f32, qkv: *const f32, b: usize, t: usize, c: usize, nh: usize, p: f32, seed: u32, stream: u32) -> u32 {
    let par = Serial;
    // SAFETY: single-threaded, held for this call only.
    let scratch = match unsafe { scratch(k::attention::attention_scratch_len(b, t, c, nh, 1)) } {
        Some(x) => x,
        None => return 1,
    };
    // SAFETY: per the caller's contract; out (B,T,C), lse (B,NH,T), qkv (B,T,3C).
    unsafe { k::attention::attention_forward(&par, scratch, m(out, b * t * c), m(lse, b * nh * t), s(qkv, b * t * 3 * c), b, t, c, nh, dropout(p, seed, stream)) };
    0
}

/// Returns 0, or 1 if scratch memory ran out.
///
/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn attention_backward(dqkv: *mut f32, dout: *const f32, qkv: *const f32, out: *const f32, lse: *const f32, b: usize, t: usize, c: usize, nh: usize, p: f32, seed: u32, stream: u32, overwrite: u32) -> u32 {
    let par = Serial;
    // SAFETY: single-threaded, held for this call only.
    let scratch = match unsafe { scratch(k::attention::attention_scratch_len(b, t, c, nh, 1)) } {
        Some(x) => x,
        None => return 1,
    };
    let btc = b * t * c;
    // SAFETY: per the caller's contract; dqkv (B,T,3C), dout (B,T,C), qkv (B,T,3C),
    // out (B,T,C), lse (B,NH,T).
    unsafe {
        k::attention::attention_backward(&par, scratch, m(dqkv, 3 * btc), s(dout, btc), s(qkv, 3 * btc), s(out, btc), s(lse, b * nh * t), b, t, c, nh, dropout(p, seed, stream), overwrite != 0)
    };
    0
}

/// KV-cached attention (see crates/kernels/src/decode.rs). pos (B) i32, each in
/// 0..=maxT (checked by BaseBackend). Returns 0, or 1 if scratch memory ran out.
///
/// # Safety
/// See the note above the kernel exports; kcache and vcache are (B,NH,maxT,HS) each.
#[no_mangle]
pub unsafe extern "C" fn attention_decode(out: *mut f32, kcache: *mut f32, vcache: *mut f32, qkv: *const f32, pos: *const i32, b: usize, tq: usize, c: usize, nh: usize, max_t: usize) -> u32 {
    let par = Serial;
    // SAFETY: single-threaded, held for this call only.
    let scratch = match unsafe { scratch(k::decode::attention_decode_scratch_len(max_t, 1)) } {
        Some(x) => x,
        None => return 1,
    };
    let cache = b * max_t * c;
    // SAFETY: per the caller's contract; out (B,Tq,C), kcache/vcache (B,NH,maxT,HS),
    // qkv (B,Tq,3C), pos (B).
    unsafe { k::decode::attention_decode(&par, scratch, m(out, b * tq * c), m(kcache, cache), m(vcache, cache), s(qkv, b * tq * 3 * c), si(pos, b), b, tq, c, nh, max_t) };
    0
}

/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn gelu_forward(out: *mut f32, inp: *const f32, n: usize) {
    // SAFETY: per the caller's contract; out (N), inp (N).
    unsafe { k::gelu::gelu_forward(&Serial, m(out, n), s(inp, n), n) }
}

/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn gelu_backward(dinp: *mut f32, inp: *const f32, dout: *const f32, n: usize, overwrite: u32) {
    // SAFETY: per the caller's contract; dinp (N), inp (N), dout (N).
    unsafe { k::gelu::gelu_backward(&Serial, m(dinp, n), s(inp, n), s(dout, n), n, overwrite != 0) }
}

/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn residual_forward(out: *mut f32, inp1: *const f32, inp2: *const f32, n: usize) {
    // SAFETY: per the caller's contract; out (N), inp1 (N), inp2 (N).
    unsafe { k::residual::residual_forward(&Serial, m(out, n), s(inp1, n), s(inp2, n), n) }
}

/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn residual_backward(dinp1: *mut f32, dinp2: *mut f32, dout: *const f32, n: usize) {
    // SAFETY: per the caller's contract; dinp1 (N), dinp2 (N), dout (N).
    unsafe { k::residual::residual_backward(&Serial, m(dinp1, n), m(dinp2, n), s(dout, n), n) }
}

/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn crossentropy_forward(losses: *mut f32, logits: *const f32, targets: *const i32, n: usize, v: usize, ignore_index: i32) {
    // SAFETY: per the caller's contract; losses (N), logits (N,V), targets (N).
    unsafe { k::crossentropy::crossentropy_forward(&Serial, m(losses, n), s(logits, n * v), si(targets, n), n, v, ignore_index) }
}

/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn crossentropy_backward(dlogits: *mut f32, dlosses: *const f32, logits: *const f32, targets: *const i32, n: usize, v: usize, ignore_index: i32, overwrite: u32) {
    // SAFETY: per the caller's contract; dlogits (N,V), dlosses (N), logits (N,V), targets (N).
    unsafe { k::crossentropy::crossentropy_backward(&Serial, m(dlogits, n * v), s(dlosses, n), s(logits, n * v), si(targets, n), n, v, ignore_index, overwrite != 0) }
}

/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn dropout_forward(out: *mut f32, inp: *const f32, n: usize, p: f32, seed: u32, stream: u32) {
    // SAFETY: per the caller's contract; out (N), inp (N).
    unsafe { k::dropout::dropout_forward(m(out, n), s(inp, n), n, p, seed, stream) }
}

/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn dropout_backward(dinp: *mut f32, dout: *const f32, n: usize, p: f32, seed: u32, stream: u32) {
    // SAFETY: per the caller's contract; dinp (N), dout (N).
    unsafe { k::dropout::dropout_backward(m(dinp, n), s(dout, n), n, p, seed, stream) }
}

/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn adamw_update(params: *mut f32, grads: *const f32, mm: *mut f32, v: *mut f32, n: usize, lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32, step: u32) {
    // SAFETY: per the caller's contract; params, grads, m, v each (N).
    unsafe { k::adamw::adamw_update(&Serial, m(params, n), s(grads, n), m(mm, n), m(v, n), n, lr, beta1, beta2, eps, weight_decay, step) }
}

/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn sum_squares(x: *const f32, n: usize) -> f64 {
    // SAFETY: per the caller's contract; x (N).
    unsafe { k::norm::sum_squares(&Serial, s(x, n), n) }
}

/// # Safety
/// See the note above the kernel exports.
#[no_mangle]
pub unsafe extern "C" fn scale(x: *mut f32, n: usize, sc: f32) {
    // SAFETY: per the caller's contract; x (N).
    unsafe { k::norm::scale(&Serial, m(x, n), n, sc) }
}
