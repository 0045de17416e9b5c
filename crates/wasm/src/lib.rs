//! Raw `extern "C"` exports of the ferrogpt kernels for wasm32-unknown-unknown: no
//! wasm-bindgen, no crates.io dependencies. scripts/build-wasm.mjs builds four variants:
//! relaxed-SIMD + threads, simd128 + threads, simd128 and scalar. The threaded ones
//! (`+atomics`) import one shared memory and run the kernels on a pool of workers
//! (pool.rs); the others export their memory and run on the calling thread.
//!
//! The JS side (src/backend/wasm.ts) owns the contract:
//! - Tensors live in linear memory, allocated with `alloc` (zero-filled, 16-byte aligned)
//!   and released with `dealloc(ptr, nbytes)` with the same size.
//! - Every kernel takes pointers (byte addresses of f32 / i32 elements) plus dims, in the
//!   argument order of src/backend/backend.ts. The caller (BaseBackend) has checked
//!   lengths, dims, ids and overlaps first: these exports trust their arguments. A mistake
//!   can only corrupt this module's own memory or trap; it cannot reach the host.
//! - The kernel exports are generated from the kernel registry
//!   (crates/kernels/src/registry.rs) by `wasm_kernels!` below; the registry gives each
//!   argument's ABI type (buffers: pointers; dims: usize; flags: u32, 0 = false; dropout:
//!   p f32, seed u32, stream u32; other scalars f32 / i32 / u32) and each buffer's length.
//! - Kernels that need scratch memory use one module-global growable buffer; they return
//!   0 on success and 1 if the scratch memory could not be allocated. `alloc`, and those
//!   kernels, may grow the memory: JS re-derives its views of `memory.buffer` after them.
//! - Built with panic=abort: a kernel panic is a wasm trap (a JS RuntimeError).
//! - Only one thread calls the exports (the one that owns the backend); pool workers only
//!   run tasks inside a kernel call.

#![deny(unsafe_op_in_unsafe_fn)]
#![cfg_attr(target_feature = "atomics", feature(stdarch_wasm_atomic_wait))]

#[cfg(target_feature = "atomics")]
mod pool;

use std::alloc::{alloc_zeroed, dealloc as std_dealloc, Layout};
use std::cell::UnsafeCell;

use ferrogpt_kernels as k;
use ferrogpt_kernels::rng::Dropout;
use ferrogpt_kernels::Parallel;

pub use ferrogpt_kernels as kernels;

/// Bumped when an export changes; wasm.ts checks it.
const ABI_VERSION: u32 = 5;
const ALIGN: usize = 16;

/// The scratch buffer: one per module instance. Only the calling thread touches it (pool
/// workers see the slices the kernel hands them), and no export re-enters another.
struct Scratch(UnsafeCell<Vec<f32>>);
// SAFETY: only the one thread that calls the exports accesses the cell (see above).
unsafe impl Sync for Scratch {}
static SCRATCH: Scratch = Scratch(UnsafeCell::new(Vec::new()));

/// The first `len` floats of the scratch buffer, grown if needed; None if out of memory.
///
/// # Safety
/// Called only by the thread that calls the exports, not re-entrant: the caller holds the returned slice only for the
/// duration of one export call.
unsafe fn scratch_buf<'a>(len: usize) -> Option<&'a mut [f32]> {
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
/// `ptr` points to `len` live, aligned elements that no mutable slice of this call aliases.
unsafe fn s<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if len == 0 {
        return &[];
    }
    // SAFETY: per this function's contract.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// # Safety
/// `ptr` points to `len` live, aligned elements that no other slice of this call aliases.
unsafe fn m<'a, T>(ptr: *mut T, len: usize) -> &'a mut [T] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: per this function's contract.
    unsafe { std::slice::from_raw_parts_mut(ptr, len) }
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

/// 2 if the kernels were compiled with relaxed SIMD, 1 with simd128, 0 for scalar.
#[no_mangle]
pub extern "C" fn simd_name() -> u32 {
    match k::simd::simd_name() {
        "relaxed-simd" => 2,
        "simd128" => 1,
        _ => 0,
    }
}

// ---- threads (the threaded builds: pool.rs) ----

/// The kernels' `Parallel`: the worker pool in the threaded builds, else the caller alone.
fn pool() -> &'static dyn Parallel {
    #[cfg(target_feature = "atomics")]
    {
        &pool::Pool
    }
    #[cfg(not(target_feature = "atomics"))]
    {
        &k::Serial
    }
}

/// 1 if this build runs on a worker pool over shared memory, 0 if on the caller alone.
#[no_mangle]
pub extern "C" fn threaded() -> u32 {
    cfg!(target_feature = "atomics") as u32
}

/// Sets the threads a kernel may use (the caller included) to `n`, capped at the
/// workers that have started + 1; returns the count set (1 in an unthreaded build).
#[no_mangle]
pub extern "C" fn set_threads(n: u32) -> u32 {
    #[cfg(target_feature = "atomics")]
    {
        pool::set_threads(n)
    }
    #[cfg(not(target_feature = "atomics"))]
    {
        let _ = n;
        1
    }
}

/// Threads a kernel uses now.
#[no_mangle]
pub extern "C" fn threads() -> u32 {
    pool().threads() as u32
}

/// Workers that have entered `worker_main` (0 in an unthreaded build).
#[no_mangle]
pub extern "C" fn workers_started() -> u32 {
    #[cfg(target_feature = "atomics")]
    {
        pool::registered()
    }
    #[cfg(not(target_feature = "atomics"))]
    {
        0
    }
}

/// A worker's loop (threaded builds); bindings/wasm-pool.ts calls it once its instance
/// has its own stack and TLS block. Never returns.
#[cfg(target_feature = "atomics")]
#[no_mangle]
pub extern "C" fn worker_main(id: u32) {
    pool::worker_main(id)
}

/// Called by a worker whose `worker_main` trapped: the caller stops waiting for it.
#[cfg(target_feature = "atomics")]
#[no_mangle]
pub extern "C" fn worker_failed() {
    pool::fail()
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

// ---- kernels: one export per registry entry (pointers as in backend.ts: outputs, inputs,
// dims, scalars) ----
// # Safety (every kernel export): each pointer addresses a live, aligned buffer of the
// length the registry gives it, and outputs overlap no other argument — what BaseBackend
// checks before calling.

/// Rows of the embedding table the ids reach: max(ids) + 1. The tables' full lengths are
/// not passed (they are not implied by the dims); the kernels' contract only needs the
/// table to hold every row an id names, so the slice covers exactly those rows.
fn rows_used(ids: &[i32]) -> usize {
    ids.iter().map(|&id| id.max(0) as usize + 1).max().unwrap_or(0)
}

/// Expands the registry (`for_each_kernel!`) into `extern "C"` exports over pointers:
/// each turns its pointers into slices of the lengths the registry gives (no checks: see
/// the module docs), then calls the kernel on `pool()`.
macro_rules! wasm_kernels {
    ($( $js:tt $name:ident [$($to:ident)*] ( $($args:tt)* ) { $($body:tt)* } )*) => {
        $( wasm_kernel! { @for [$($to)*] [$name ( $($args)* ) { $($body)* }] } )*
    };
}

macro_rules! wasm_kernel {
    // Only entries exported to wasm.
    (@for [wasm $($to:ident)*] [$name:ident ( $($args:tt)* ) $body:tt]) => {
        wasm_kernel! { @args [$name ( $($args)* ) $body] [] $($args)* }
    };
    (@for [$other:ident $($to:ident)*] $e:tt) => { wasm_kernel! { @for [$($to)*] $e } };
    (@for [] $e:tt) => {};

    // The signature, one argument at a time.
    (@args $e:tt [$($sig:tt)*] $a:ident : dropout [$p:ident, $seed:ident, $stream:ident] $(, $($rest:tt)*)?) => {
        wasm_kernel! { @args $e [$($sig)* $p: f32, $seed: u32, $stream: u32,] $($($rest)*)? }
    };
    (@args $e:tt [$($sig:tt)*] $a:ident : $role:ident $s:tt $(, $($rest:tt)*)?) => {
        wasm_kernel! { @args $e [$($sig)* $a: wasm_kernel!(@ty $role),] $($($rest)*)? }
    };
    (@args [$name:ident ( $($args:tt)* ) { $($body:tt)* }] [$($sig:tt)*]) => {
        wasm_kernel! { @fn $name [$($sig)*] ( $($args)* ) $($body)* }
    };
    (@ty out) => { *mut f32 };
    (@ty out_bf16) => { *mut u16 };
    (@ty out_opt) => { *mut f32 };
    (@ty rows_out) => { *mut f32 };
    (@ty inp) => { *const f32 };
    (@ty inp_opt) => { *const f32 };
    (@ty rows_in) => { *const f32 };
    (@ty inp_bf16) => { *const u16 };
    (@ty rows_in_bf16) => { *const u16 };
    (@ty inp_i8) => { *const i8 };
    (@ty rows_in_i8) => { *const i8 };
    (@ty ids) => { *const i32 };
    (@ty dim) => { usize };
    (@ty flag) => { u32 };
    (@ty int32) => { i32 };
    (@ty count) => { u32 };
    (@ty finite) => { f32 };
    (@ty unit) => { f32 };

    // The function: a kernel with scratch returns 0, or 1 if the scratch memory ran out.
    (@fn $name:ident [$($sig:tt)*] ( $($a:ident : $role:ident $s:tt),* $(,)? )
        lens: [ $( $len:ident = $what:tt ( $d0:expr $(, $d:expr)* ) ),* $(,)? ],
        checks: [ $($checks:tt)* ],
        run: scratch ( $($run_args:tt)* ),
        call: $m:ident :: $f:ident ( $($call:tt)* ) $(,)?
    ) => {
        /// # Safety
        /// Every pointer addresses a live, aligned buffer of the length the registry
        /// gives it, and outputs overlap no other argument (see "kernels" above).
        #[no_mangle]
        pub unsafe extern "C" fn $name($($sig)*) -> u32 {
            $( let $len = $d0 $(* $d)*; )*
            // SAFETY: per this function's contract.
            unsafe {
                $( wasm_arg!(ids $a $role $s); )*
                $( wasm_arg!(bufs $a $role $s); )*
                wasm_run!(scratch ( $($run_args)* ); { k::$m::$f($($call)*) })
            }
        }
    };
    (@fn $name:ident [$($sig:tt)*] ( $($a:ident : $role:ident $s:tt),* $(,)? )
        lens: [ $( $len:ident = $what:tt ( $d0:expr $(, $d:expr)* ) ),* $(,)? ],
        checks: [ $($checks:tt)* ],
        run: $run:ident $( ( $($run_args:tt)* ) )?,
        call: $m:ident :: $f:ident ( $($call:tt)* ) $(-> $ret:ident)? $(,)?
    ) => {
        /// # Safety
        /// Every pointer addresses a live, aligned buffer of the length the registry
        /// gives it, and outputs overlap no other argument (see "kernels" above).
        #[no_mangle]
        pub unsafe extern "C" fn $name($($sig)*) $(-> $ret)? {
            $( let $len = $d0 $(* $d)*; )*
            // SAFETY: per this function's contract.
            unsafe {
                $( wasm_arg!(ids $a $role $s); )*
                $( wasm_arg!(bufs $a $role $s); )*
                wasm_run!($run $( ( $($run_args)* ) )?; { k::$m::$f($($call)*) })
            }
        }
    };
}

/// One argument's part of one pass: `ids` first (an embedding's row count comes from its
/// ids), then every other argument as the kernel takes it.
macro_rules! wasm_arg {
    (ids $a:ident ids [$len:expr, rows $v:ident]) => {
        let $a = s($a, $len);
        let $v = rows_used($a);
    };
    (ids $a:ident ids [$len:expr $(, $rest:expr)*]) => { let $a = s($a, $len); };
    (bufs $a:ident out [$len:expr]) => { let $a = m($a, $len); };
    (bufs $a:ident out_bf16 [$len:expr]) => { let $a = m($a, $len); };
    (bufs $a:ident inp [$len:expr]) => { let $a = s($a, $len); };
    (bufs $a:ident out_opt [$len:expr]) => { let $a = if $a.is_null() { None } else { Some(m($a, $len)) }; };
    (bufs $a:ident inp_opt [$len:expr]) => { let $a = if $a.is_null() { None } else { Some(s($a, $len)) }; };
    (bufs $a:ident rows_out [$c:expr, $min:expr => $v:ident]) => { let $a = m($a, $v * $c); };
    (bufs $a:ident rows_out [$c:expr, $min:expr]) => { let $a = m($a, $min * $c); };
    (bufs $a:ident rows_in [$c:expr, $min:expr => $v:ident]) => { let $a = s($a, $v * $c); };
    (bufs $a:ident rows_in [$c:expr, $min:expr]) => { let $a = s($a, $min * $c); };
    (bufs $a:ident inp_bf16 [$len:expr]) => { let $a = s($a, $len); };
    (bufs $a:ident inp_i8 [$len:expr]) => { let $a = s($a, $len); };
    (bufs $a:ident rows_in_bf16 [$c:expr, $min:expr => $v:ident]) => { let $a = s($a, $v * $c); };
    (bufs $a:ident rows_in_i8 [$c:expr, $min:expr => $v:ident]) => { let $a = s($a, $v * $c); };
    (bufs $a:ident flag $s:tt) => { let $a = $a != 0; };
    (bufs $a:ident dropout [$p:ident, $seed:ident, $stream:ident]) => { let $a = Dropout { p: $p, seed: $seed, stream: $stream }; };
    ($pass:ident $a:ident $role:ident $s:tt) => {};
}

/// The kernel call, on `pool()`, with the module's scratch buffer if it needs one.
macro_rules! wasm_run {
    (serial; $call:tt) => { $call };
    (pool($par:ident); $call:tt) => {{
        let $par = pool();
        $call
    }};
    (scratch($par:ident, $scratch:ident = $sm:ident :: $sf:ident ( $($sa:expr),* )); $call:tt) => {{
        let $par = pool();
        let $scratch = match scratch_buf(k::$sm::$sf($($sa,)* $par.threads())) {
            Some(x) => x,
            None => return 1,
        };
        $call;
        0
    }};
}

k::for_each_kernel!(wasm_kernels);
