//! The N-API surface of ferrogpt: one function per kernel in src/backend/backend.ts,
//! generated from the kernel registry (crates/kernels/src/registry.rs) by `napi_kernels!`
//! below, plus a few non-kernel exports (info, threads; benchmark probes with feature `bench`).
//!
//! Thin by design (docs/ARCHITECTURE.md#the-backend-boundary): argument checks, dispatch, threads — no maths.
//!
//! - Buffers arrive as JS typed arrays (Float32Array / Int32Array) and reach the kernels
//!   zero-copy: we read the data pointer and length of each view and build the Rust slice
//!   over the JS memory ourselves, only after every check has passed (check.rs).
//! - Everything is checked here again, even though src/backend/base.ts checks first, because
//!   anyone can call the addon directly: argument types, dims (integers >= 1, products
//!   overflow-checked), lengths vs dims, NH divides C, token ids / targets in range, dropout
//!   p in [0, 1), optimizer scalars, and that no output's memory overlaps any other
//!   argument's (compared as address ranges, so two views of one ArrayBuffer are caught).
//!   Every failure is a JS Error naming the function and the argument; kernel panics are
//!   caught (catch_unwind) and become Errors too.
//! - A process-global runtime (Mutex) owns the thread pool and one growable scratch
//!   buffer shared by matmul and attention (grown only when a call needs more). The mutex
//!   also serialises calls from several worker_threads.

#![deny(unsafe_op_in_unsafe_fn)]

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

use ferrogpt_kernels as k;
use ferrogpt_kernels::{Parallel, Serial};
use napi::bindgen_prelude::Unknown;
use napi::{Error, Result};
use napi_derive::napi;

mod check;
use check::{Call, Elem};

// ---------------------------------------------------------------------------------------
// Runtime: thread pool + scratch
// ---------------------------------------------------------------------------------------

/// Most threads `setThreads` accepts.
const MAX_THREADS: usize = 1024;
/// Same limit as BaseBackend: counts and dims are u32.
const MAX_U32: f64 = u32::MAX as f64;

struct Runtime {
    par: Box<dyn Parallel + Send>,
    /// Shared by matmul and attention; grown (never shrunk) to the largest need seen.
    scratch: Vec<f32>, // (scratch_len,)
}

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

// pool.rs also offers a process-wide pool (global/set_threads); the addon keeps its pool
// in RUNTIME instead, next to the scratch buffer sized for it.
#[allow(dead_code)]
mod pool;

/// The pool for `threads` threads (the calling thread counts as one).
fn make_pool(threads: usize) -> Box<dyn Parallel + Send> {
    if threads <= 1 {
        Box::new(Serial)
    } else {
        Box::new(pool::Pool::new(threads))
    }
}

fn default_threads() -> usize {
    if let Ok(s) = std::env::var("FERROGPT_THREADS") {
        if let Ok(n) = s.trim().parse::<usize>() {
            if (1..=MAX_THREADS).contains(&n) {
                return n;
            }
        }
    }
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(MAX_THREADS)
}

/// Locks the runtime, creating it on first use. A poisoned lock (a panic while held) is
/// recovered: the runtime holds no invariant a panic can break (scratch is plain floats).
fn runtime() -> MutexGuard<'static, Option<Runtime>> {
    let mut guard = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        *guard = Some(Runtime { par: make_pool(default_threads()), scratch: Vec::new() });
    }
    guard
}

/// The first `len` floats of the scratch buffer, growing it (fallibly) if needed.
fn grow<'a>(scratch: &'a mut Vec<f32>, fn_name: &str, len: usize) -> Result<&'a mut [f32]> {
    if scratch.len() < len {
        let extra = len - scratch.len();
        scratch
            .try_reserve_exact(extra)
            .map_err(|_| err(format!("{fn_name}: cannot allocate {len} floats of scratch memory")))?;
        scratch.resize(len, 0.0);
    }
    Ok(&mut scratch[..len])
}

// ---------------------------------------------------------------------------------------
// Errors and panics
// ---------------------------------------------------------------------------------------

fn err(msg: String) -> Error {
    Error::from_reason(msg)
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs `f`, turning a panic into a JS Error.
fn guarded<R>(fn_name: &str, f: impl FnOnce() -> R) -> Result<R> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|p| err(format!("{fn_name}: kernel failed: {}", panic_message(p.as_ref()))))
}

/// `guarded`, for a kernel that runs on the addon's thread pool (and needs no scratch).
fn with_par<R>(fn_name: &str, f: impl FnOnce(&dyn Parallel) -> R) -> Result<R> {
    let guard = runtime();
    let par: &dyn Parallel = &*guard.as_ref().expect("runtime initialised by runtime()").par;
    guarded(fn_name, || f(par))
}

// ---------------------------------------------------------------------------------------
// Info
// ---------------------------------------------------------------------------------------

/// The instruction set the kernels run with: 'avx512', 'avx2', 'neon' or 'scalar'.
#[napi]
pub fn simd_name() -> String {
    k::simd::simd_name().to_string()
}

/// The CPU extensions beyond simd_name() the kernels use here ('avx512bw', 'avx512bf16',
/// 'avx512vnni'); empty below AVX-512.
#[napi]
pub fn simd_extensions() -> Vec<String> {
    k::simd::simd_extensions().into_iter().map(String::from).collect()
}

/// Threads the kernels may use.
#[napi]
pub fn threads() -> u32 {
    runtime().as_ref().map(|r| r.par.threads() as u32).unwrap_or(1)
}

/// Rebuilds the thread pool with `n` threads (1..=1024).
#[napi]
pub fn set_threads(n: Unknown) -> Result<()> {
    let c = Call::new("setThreads");
    let n = c.int("n", n, 1.0, MAX_THREADS as f64)? as usize;
    let mut guard = runtime();
    if let Some(rt) = guard.as_mut() {
        // Drop the old pool (joining its threads) before starting the new one.
        rt.par = Box::new(Serial);
        rt.par = guarded("setThreads", || make_pool(n))?;
    }
    Ok(())
}

/// Bytes from the start of the 64-byte cache line holding x's first element to that
/// element: the native backend uses it to start every f32 tensor on a line.
#[napi]
pub fn line_offset(x: Unknown) -> Result<u32> {
    let k_ = Call::new("lineOffset");
    let raw = k_.typed("x", x, Elem::F32)?;
    Ok((raw.ptr as usize % 64) as u32)
}

/// Version of this addon (the crate version).
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

// ---------------------------------------------------------------------------------------
// Benchmark probes (feature `bench`: npm run build:native:bench; not in the shipped addon)
// ---------------------------------------------------------------------------------------

/// Peak fp32 FMA rate of one thread in GFLOPS, measured over about `iters` vector FMAs.
#[cfg(feature = "bench")]
#[napi]
pub fn peak_gflops(iters: Unknown) -> Result<f64> {
    let c = Call::new("peakGflops");
    let iters = c.int("iters", iters, 1.0, 1e15)? as u64;
    guarded("peakGflops", || k::peak::peak_gflops(iters))
}

/// Bytes of scratch the attention kernels need at these dimensions on the current thread
/// count (forward and backward share one buffer): what attention allocates beyond its
/// inputs, outputs and lse. For bench/.
#[cfg(feature = "bench")]
#[napi]
pub fn attention_scratch_bytes(b: Unknown, t: Unknown, c: Unknown, nh: Unknown) -> Result<f64> {
    let k_ = Call::new("attentionScratchBytes");
    let (b, t, c, nh) = (k_.dim("B", b)?, k_.dim("T", t)?, k_.dim("C", c)?, k_.dim("NH", nh)?);
    if !c.is_multiple_of(nh) {
        return k_.fail(format!("C ({c}) must be divisible by NH ({nh})"));
    }
    let threads = runtime().as_ref().map(|r| r.par.threads()).unwrap_or(1);
    guarded(k_.fn_name, || 4.0 * k::attention::attention_scratch_len(b, t, c, nh, threads) as f64)
}

/// Read bandwidth of main memory in GB/s (1e9 bytes/s), on the addon's threads: the best
/// of `reps` passes summing a fresh buffer of `mib` MiB (much larger than the caches). For
/// the decode roofline in bench/; allocates the buffer for the call.
#[cfg(feature = "bench")]
#[napi]
pub fn memory_bandwidth(mib: Unknown, reps: Unknown) -> Result<f64> {
    let c = Call::new("memoryBandwidth");
    let mib = c.int("mib", mib, 1.0, 65536.0)? as usize;
    let reps = c.int("reps", reps, 1.0, 1000.0)? as usize;
    let n = mib * (1 << 20) / 4;
    let mut buf: Vec<f32> = Vec::new();
    buf.try_reserve_exact(n).map_err(|_| err(format!("memoryBandwidth: cannot allocate {mib} MiB")))?;
    buf.resize(n, 1.0);
    let guard = runtime();
    let par: &dyn Parallel = &*guard.as_ref().expect("runtime initialised by runtime()").par;
    let mut partials = vec![0.0f32; par.threads()];
    let mut best = f64::INFINITY;
    let mut check = 0.0;
    for _ in 0..reps {
        let t0 = std::time::Instant::now();
        check += guarded("memoryBandwidth", || k::stream::stream_read(par, &mut partials, &buf))?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    if !(check > 0.0) {
        return Err(err("memoryBandwidth: probe read nothing".to_string()));
    }
    Ok((n * 4) as f64 / best / 1e9)
}

/// STREAM's copy or triad bandwidth in GB/s (1e9 bytes/s, STREAM's byte counts: 2 or 3
/// arrays per pass), on the addon's threads: the best of `reps` passes over arrays of `mib`
/// MiB each (much larger than the caches). For the decode bounds in bench/; allocates the
/// arrays for the call.
#[cfg(feature = "bench")]
#[napi]
pub fn stream_bandwidth(kind: String, mib: Unknown, reps: Unknown) -> Result<f64> {
    let c = Call::new("streamBandwidth");
    let mib = c.int("mib", mib, 1.0, 16384.0)? as usize;
    let reps = c.int("reps", reps, 1.0, 1000.0)? as usize;
    let arrays = match kind.as_str() {
        "copy" => 2,
        "triad" => 3,
        _ => return c.fail(format!("kind must be 'copy' or 'triad', got {kind:?}")),
    };
    let n = mib * (1 << 20) / 4;
    let alloc = |fill: f32| -> Result<Vec<f32>> {
        let mut v: Vec<f32> = Vec::new();
        v.try_reserve_exact(n).map_err(|_| err(format!("streamBandwidth: cannot allocate {mib} MiB")))?;
        v.resize(n, fill);
        Ok(v)
    };
    let (mut a, b, cc) = (alloc(0.0)?, alloc(1.0)?, if arrays == 3 { Some(alloc(2.0)?) } else { None });
    let guard = runtime();
    let par: &dyn Parallel = &*guard.as_ref().expect("runtime initialised by runtime()").par;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t0 = std::time::Instant::now();
        guarded("streamBandwidth", || k::stream::stream_pass(par, &mut a, &b, cc.as_deref(), 3.0))?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let want = if arrays == 3 { 7.0 } else { 1.0 };
    if a[n / 2] != want {
        return Err(err("streamBandwidth: the pass did not write its result".to_string()));
    }
    Ok((arrays * n * 4) as f64 / best / 1e9)
}

// ---------------------------------------------------------------------------------------
// Kernels: one #[napi] function per registry entry
// ---------------------------------------------------------------------------------------

/// Expands the registry (`for_each_kernel!`) into #[napi] functions: each takes its
/// arguments as raw JS values in the registry's order, runs the checks of check.rs in the
/// registry's fixed order (dims, scalars and flags, checks, dropout, lens, tables,
/// outputs, inputs, overlaps), then calls the kernel under catch_unwind.
macro_rules! napi_kernels {
    ($( $js:tt $name:ident [$($to:ident)*] ( $($args:tt)* ) { $($body:tt)* } )*) => {
        $( napi_kernel! { @for [$($to)*] [$js $name ( $($args)* ) { $($body)* }] } )*
    };
}

macro_rules! napi_kernel {
    // Only entries exported to node.
    (@for [node $($to:ident)*] $e:tt) => { napi_kernel! { @sig $e [] } };
    (@for [$other:ident $($to:ident)*] $e:tt) => { napi_kernel! { @for [$($to)*] $e } };
    (@for [] $e:tt) => {};

    // The signature, one argument at a time: flags and optional buffers may be missing
    // (Option), a dropout spec is three arguments, everything else one JS value.
    (@sig [$js:tt $name:ident ( $($args:tt)* ) $body:tt] [$($sig:tt)*]) => {
        napi_kernel! { @args [$js $name ( $($args)* ) $body] [$($sig)*] $($args)* }
    };
    (@args $e:tt [$($sig:tt)*] $a:ident : flag $s:tt $(, $($rest:tt)*)?) => {
        napi_kernel! { @args $e [$($sig)* $a: Option<Unknown>,] $($($rest)*)? }
    };
    (@args $e:tt [$($sig:tt)*] $a:ident : out_opt $s:tt $(, $($rest:tt)*)?) => {
        napi_kernel! { @args $e [$($sig)* $a: Option<Unknown>,] $($($rest)*)? }
    };
    (@args $e:tt [$($sig:tt)*] $a:ident : inp_opt $s:tt $(, $($rest:tt)*)?) => {
        napi_kernel! { @args $e [$($sig)* $a: Option<Unknown>,] $($($rest)*)? }
    };
    (@args $e:tt [$($sig:tt)*] $a:ident : dropout [$p:ident, $seed:ident, $stream:ident] $(, $($rest:tt)*)?) => {
        napi_kernel! { @args $e [$($sig)* $p: Unknown, $seed: Unknown, $stream: Unknown,] $($($rest)*)? }
    };
    (@args $e:tt [$($sig:tt)*] $a:ident : $role:ident $s:tt $(, $($rest:tt)*)?) => {
        napi_kernel! { @args $e [$($sig)* $a: Unknown,] $($($rest)*)? }
    };
    (@args [$js:tt $name:ident ( $($args:tt)* ) { $($body:tt)* }] [$($sig:tt)*]) => {
        napi_kernel! { @fn $js $name [$($sig)*] ( $($args)* ) $($body)* }
    };

    // The function.
    (@fn $js:tt $name:ident [$($sig:tt)*] ( $($a:ident : $role:ident $s:tt),* $(,)? )
        lens: [ $( $len:ident = $what:tt ( $($d:expr),* ) ),* $(,)? ],
        checks: [ $( $cx:ident ( $cxl:tt ) $op:tt $cy:tt $( ( $cyl:tt ) )? ),* $(,)? ],
        run: $run:ident $( ( $($run_args:tt)* ) )?,
        call: $m:ident :: $f:ident ( $($call:tt)* ) $(-> $ret:ident)? $(,)?
    ) => {
        #[napi(js_name = $js)]
        #[allow(clippy::too_many_arguments)]
        pub fn $name($($sig)*) -> Result<napi_kernel!(@ret $($ret)?)> {
            let mut k_ = Call::new($js);
            $( napi_arg!(dims k_ $a $role $s); )*
            $( napi_arg!(scalars k_ $a $role $s); )*
            $( napi_check!(k_ $cx $cxl $op $cy $($cyl)?); )*
            $( napi_arg!(dropout k_ $a $role $s); )*
            $( let $len = k_.prod($what, &[$($d),*])?; )*
            $( napi_arg!(rows k_ $a $role $s); )*
            $( napi_arg!(outs k_ $a $role $s); )*
            $( napi_arg!(ins k_ $a $role $s); )*
            let checked = k_.finish()?;
            $( napi_arg!(slices checked $a $role $s); )*
            napi_run!($js; $run $( ( $($run_args)* ) )?; { k::$m::$f($($call)*) })
        }
    };
    (@ret) => { () };
    (@ret $ret:ident) => { $ret };
}

/// One argument's part of one pass of the checks (nothing if its role has none).
macro_rules! napi_arg {
    (dims $k:ident $a:ident dim [$l:tt]) => { let $a = $k.dim($l, $a)?; };
    (scalars $k:ident $a:ident flag [$l:tt]) => { let $a = $k.flag($l, $a)?; };
    (scalars $k:ident $a:ident int32 [$l:tt]) => { let $a = $k.int($l, $a, i32::MIN as f64, i32::MAX as f64)? as i32; };
    (scalars $k:ident $a:ident count [$l:tt]) => { let $a = $k.int($l, $a, 1.0, MAX_U32)? as u32; };
    (scalars $k:ident $a:ident finite [$l:tt]) => { let $a = $k.finite($l, $a)?; };
    (scalars $k:ident $a:ident unit [$l:tt]) => { let $a = $k.unit($l, $a)?; };
    (dropout $k:ident $a:ident dropout [$p:ident, $seed:ident, $stream:ident]) => { let $a = $k.dropout($p, $seed, $stream)?; };
    (rows $k:ident $a:ident rows_out [$c:expr, $min:expr $(=> $v:ident)?]) => {
        let ($a, _rows) = $k.rows_out(stringify!($a), $a, $c, $min)?;
        $( let $v = _rows; )?
    };
    (rows $k:ident $a:ident rows_in [$c:expr, $min:expr $(=> $v:ident)?]) => {
        let ($a, _rows) = $k.rows_in(stringify!($a), $a, Elem::F32, $c, $min)?;
        $( let $v = _rows; )?
    };
    (rows $k:ident $a:ident rows_in_bf16 [$c:expr, $min:expr $(=> $v:ident)?]) => {
        let ($a, _rows) = $k.rows_in(stringify!($a), $a, Elem::U16, $c, $min)?;
        $( let $v = _rows; )?
    };
    (rows $k:ident $a:ident rows_in_i8 [$c:expr, $min:expr $(=> $v:ident)?]) => {
        let ($a, _rows) = $k.rows_in(stringify!($a), $a, Elem::I8, $c, $min)?;
        $( let $v = _rows; )?
    };
    (outs $k:ident $a:ident out [$len:expr]) => { let $a = $k.out(stringify!($a), $a, $len)?; };
    (outs $k:ident $a:ident out_bf16 [$len:expr]) => { let $a = $k.out_of(stringify!($a), $a, Elem::U16, $len)?; };
    (outs $k:ident $a:ident out_opt [$len:expr]) => {
        let $a = match $a {
            Some(x) => Some($k.out(stringify!($a), x, $len)?),
            None => None,
        };
    };
    (ins $k:ident $a:ident inp [$len:expr]) => { let $a = $k.inp(stringify!($a), $a, $len)?; };
    (ins $k:ident $a:ident inp_bf16 [$len:expr]) => { let $a = $k.inp_of(stringify!($a), $a, Elem::U16, $len)?; };
    (ins $k:ident $a:ident inp_i8 [$len:expr]) => { let $a = $k.inp_of(stringify!($a), $a, Elem::I8, $len)?; };
    (ins $k:ident $a:ident inp_opt [$len:expr]) => {
        let $a = match $a {
            Some(x) => Some($k.inp(stringify!($a), x, $len)?),
            None => None,
        };
    };
    (ins $k:ident $a:ident ids [$len:expr, rows $v:ident]) => { let $a = $k.ids(stringify!($a), $a, $len, $v, None)?; };
    (ins $k:ident $a:ident ids [$len:expr, $lim:expr, $allowed:ident]) => {
        let $a = $k.ids(stringify!($a), $a, $len, $lim, Some($allowed))?;
    };
    (ins $k:ident $a:ident ids [$len:expr, $lim:expr]) => { let $a = $k.ids(stringify!($a), $a, $len, $lim, None)?; };
    (slices $c:ident $a:ident out $s:tt) => { let $a = $c.f32s_mut($a); };
    (slices $c:ident $a:ident out_bf16 $s:tt) => { let $a = $c.u16s_mut($a); };
    (slices $c:ident $a:ident rows_out $s:tt) => { let $a = $c.f32s_mut($a); };
    (slices $c:ident $a:ident out_opt $s:tt) => { let $a = $a.map(|x| $c.f32s_mut(x)); };
    (slices $c:ident $a:ident inp $s:tt) => { let $a = $c.f32s($a); };
    (slices $c:ident $a:ident rows_in $s:tt) => { let $a = $c.f32s($a); };
    (slices $c:ident $a:ident inp_bf16 $s:tt) => { let $a = $c.u16s($a); };
    (slices $c:ident $a:ident rows_in_bf16 $s:tt) => { let $a = $c.u16s($a); };
    (slices $c:ident $a:ident inp_i8 $s:tt) => { let $a = $c.i8s($a); };
    (slices $c:ident $a:ident rows_in_i8 $s:tt) => { let $a = $c.i8s($a); };
    (slices $c:ident $a:ident inp_opt $s:tt) => { let $a = $a.map(|x| $c.f32s(x)); };
    (slices $c:ident $a:ident ids $s:tt) => { let $a = $c.i32s($a); };
    ($pass:ident $k:ident $a:ident $role:ident $s:tt) => {};
}

/// A relation between two dims.
macro_rules! napi_check {
    ($k:ident $x:ident $xl:tt % $y:ident $yl:tt) => {
        if !$x.is_multiple_of($y) {
            return $k.fail(format!("{} ({}) must be divisible by {} ({})", $xl, $x, $yl, $y));
        }
    };
    ($k:ident $x:ident $xl:tt % $y:literal) => {
        if !$x.is_multiple_of($y) {
            return $k.fail(format!("{} ({}) must be divisible by {}", $xl, $x, $y));
        }
    };
    ($k:ident $x:ident $xl:tt <= $y:ident $yl:tt) => {
        if $x > $y {
            return $k.fail(format!("{} ({}) exceeds {} ({})", $xl, $x, $yl, $y));
        }
    };
}

/// The kernel call, under catch_unwind: on the calling thread, on the pool, or on the
/// pool with the shared scratch buffer (grown first if the kernel needs more).
macro_rules! napi_run {
    ($js:tt; serial; $call:tt) => { guarded($js, || $call) };
    ($js:tt; pool($par:ident); $call:tt) => { with_par($js, |$par| $call) };
    ($js:tt; scratch($par:ident, $scratch:ident = $sm:ident :: $sf:ident ( $($sa:expr),* )); $call:tt) => {{
        let mut guard = runtime();
        let Runtime { par, scratch } = guard.as_mut().expect("runtime initialised by runtime()");
        let $par: &dyn Parallel = &**par;
        let need = guarded($js, || k::$sm::$sf($($sa,)* $par.threads()))?;
        let $scratch = grow(scratch, $js, need)?;
        guarded($js, || $call)
    }};
}

k::for_each_kernel!(napi_kernels);
