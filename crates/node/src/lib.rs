//! The N-API surface of ferrogpt: one function per kernel in src/backend/backend.ts.
//!
//! Thin by design (docs/ARCHITECTURE.md#the-backend-boundary): argument checks, dispatch, threads — no maths.
//!
//! - Buffers arrive as JS typed arrays (Float32Array / Int32Array) and reach the kernels
//!   zero-copy: we read the data pointer and length of each view and build the Rust slice
//!   over the JS memory ourselves, only after every check below has passed.
//! - Everything is checked here again, even though src/backend/base.ts checks first, because
//!   anyone can call the addon directly: argument types, dims (integers >= 1, products
//!   overflow-checked), lengths vs dims, NH divides C, token ids / targets in range, dropout
//!   p in [0, 1), optimizer scalars, and that no output's memory overlaps any other
//!   argument's (compared as address ranges, so two views of one ArrayBuffer are caught).
//!   Every failure is a JS Error naming the function and the argument; kernel panics are
//!   caught (catch_unwind) and become Errors too.
//! - Every argument is taken as a raw JS value and converted here, so that a wrong type
//!   names the argument, and -1 or 1.5 as a dim is an error instead of a wrapped u32.
//! - A process-global runtime (Mutex) owns the thread pool and one growable scratch
//!   buffer shared by matmul and attention (grown only when a call needs more). The mutex
//!   also serialises calls from several worker_threads.

#![deny(unsafe_op_in_unsafe_fn)]
// The exports mirror the kernels' signatures (outputs, inputs, dims): many arguments.
#![allow(clippy::too_many_arguments)]

use std::any::Any;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

use ferrogpt_kernels as k;
use ferrogpt_kernels::rng::Dropout;
use ferrogpt_kernels::{Parallel, Serial};
use napi::bindgen_prelude::Unknown;
use napi::{sys, Error, JsValue, Result};
use napi_derive::napi;

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
// Argument checks
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Elem {
    F32,
    I32,
}

impl Elem {
    fn js_name(self) -> &'static str {
        match self {
            Elem::F32 => "Float32Array",
            Elem::I32 => "Int32Array",
        }
    }
    fn napi_type(self) -> i32 {
        match self {
            Elem::F32 => sys::TypedarrayType::float32_array,
            Elem::I32 => sys::TypedarrayType::int32_array,
        }
    }
}

/// A checked typed-array argument: its element pointer and length. Both element types are
/// 4 bytes wide, so the byte range is [addr, addr + 4*len).
#[derive(Clone, Copy)]
struct Raw {
    name: &'static str,
    ptr: *mut u8,
    len: usize,
}

impl Raw {
    fn range(&self) -> (usize, usize) {
        let start = self.ptr as usize;
        (start, start + self.len * 4)
    }
}

/// The checks of one call; every error names the function and the argument.
struct Call<'env> {
    fn_name: &'static str,
    outs: Vec<Raw>,
    ins: Vec<Raw>,
    _env: PhantomData<&'env ()>,
}

impl<'env> Call<'env> {
    fn new(fn_name: &'static str) -> Self {
        Call { fn_name, outs: Vec::with_capacity(4), ins: Vec::with_capacity(6), _env: PhantomData }
    }

    fn fail<T>(&self, msg: String) -> Result<T> {
        Err(err(format!("{}: {}", self.fn_name, msg)))
    }

    /// A dimension: an integer in 1..=u32::MAX.
    /// A JS number.
    fn num(&self, name: &str, v: Unknown<'env>) -> Result<f64> {
        let value = v.value();
        let mut x = 0f64;
        // SAFETY: env and value are the live handles napi gave this call; x is a valid local.
        let status = unsafe { sys::napi_get_value_double(value.env, value.value, &mut x) };
        if status != sys::Status::napi_ok {
            return self.fail(format!("{name} must be a number"));
        }
        Ok(x)
    }

    fn dim(&self, name: &str, x: Unknown<'env>) -> Result<usize> {
        let x = self.num(name, x)?;
        if !(x.fract() == 0.0 && (1.0..=MAX_U32).contains(&x)) {
            return self.fail(format!("{name} must be an integer >= 1, got {x}"));
        }
        Ok(x as usize)
    }

    /// An integer in [lo, hi].
    fn int(&self, name: &str, x: Unknown<'env>, lo: f64, hi: f64) -> Result<f64> {
        let x = self.num(name, x)?;
        if !(x.fract() == 0.0 && x >= lo && x <= hi) {
            return self.fail(format!("{name} must be an integer in [{lo}, {hi}], got {x}"));
        }
        Ok(x)
    }

    fn finite(&self, name: &str, x: Unknown<'env>) -> Result<f32> {
        let x = self.num(name, x)?;
        let y = x as f32;
        if !x.is_finite() || !y.is_finite() {
            return self.fail(format!("{name} must be a finite number, got {x}"));
        }
        Ok(y)
    }

    /// A number in [0, 1), also after rounding to f32 (0.999999999 rounds to 1.0).
    fn unit(&self, name: &str, x: Unknown<'env>) -> Result<f32> {
        let x = self.num(name, x)?;
        let y = x as f32;
        if !((0.0..1.0).contains(&x) && y < 1.0) {
            return self.fail(format!("{name} must be in [0, 1), got {x}"));
        }
        Ok(y)
    }

    /// An optional boolean: missing (undefined or null) is false.
    fn flag(&self, name: &str, x: Option<Unknown<'env>>) -> Result<bool> {
        let value = match x {
            Some(x) => x.value(),
            None => return Ok(false),
        };
        let mut b = false;
        // SAFETY: env and value are the live handles napi gave this call; b is a valid local.
        let status = unsafe { sys::napi_get_value_bool(value.env, value.value, &mut b) };
        if status != sys::Status::napi_ok {
            return self.fail(format!("{name} must be a boolean"));
        }
        Ok(b)
    }

    fn dropout(&self, p: Unknown<'env>, seed: Unknown<'env>, stream: Unknown<'env>) -> Result<Dropout> {
        let p = self.unit("dropout p", p)?;
        let seed = self.int("dropout seed", seed, 0.0, MAX_U32)? as u32;
        let stream = self.int("dropout stream", stream, 0.0, MAX_U32)? as u32;
        Ok(Dropout { p, seed, stream })
    }

    /// The product of `dims`, or an error naming `what` if it overflows.
    fn prod(&self, what: &str, dims: &[usize]) -> Result<usize> {
        let mut n: usize = 1;
        for &d in dims {
            n = match n.checked_mul(d) {
                Some(n) => n,
                None => return self.fail(format!("{what} overflows")),
            };
        }
        // Element counts must also fit in bytes for the address arithmetic.
        if n.checked_mul(4).is_none() {
            return self.fail(format!("{what} overflows"));
        }
        Ok(n)
    }

    /// Reads pointer and length of a typed array of the wanted element type.
    fn typed(&self, name: &'static str, v: Unknown<'env>, elem: Elem) -> Result<Raw> {
        let value = v.value();
        let mut ty: sys::napi_typedarray_type = -1;
        let mut is_typed = false;
        let mut len: usize = 0;
        let mut data: *mut std::ffi::c_void = std::ptr::null_mut();
        let mut buffer: sys::napi_value = std::ptr::null_mut();
        let mut offset: usize = 0;
        // SAFETY: env and value are the live handles napi gave this call; the out-pointers
        // are valid locals.
        let status = unsafe { sys::napi_is_typedarray(value.env, value.value, &mut is_typed) };
        if status != sys::Status::napi_ok || !is_typed {
            return self.fail(format!("{name} must be a {}", elem.js_name()));
        }
        // SAFETY: as above; value is a typed array (checked just now).
        let status = unsafe {
            sys::napi_get_typedarray_info(value.env, value.value, &mut ty, &mut len, &mut data, &mut buffer, &mut offset)
        };
        if status != sys::Status::napi_ok || ty != elem.napi_type() {
            return self.fail(format!("{name} must be a {}", elem.js_name()));
        }
        if len > 0 && data.is_null() {
            return self.fail(format!("{name} has no data (detached ArrayBuffer?)"));
        }
        if len == 0 {
            // Zero-length (or detached) views: any aligned non-null pointer is a valid empty slice.
            data = std::ptr::NonNull::<f32>::dangling().as_ptr().cast();
        }
        if !(data as usize).is_multiple_of(4) {
            // Cannot happen for Float32Array/Int32Array (byteOffset is a multiple of 4), but
            // a slice must be aligned, so refuse rather than assume.
            return self.fail(format!("{name} is not 4-byte aligned"));
        }
        Ok(Raw { name, ptr: data.cast(), len })
    }

    fn exact(&self, name: &'static str, v: Unknown<'env>, elem: Elem, len: usize) -> Result<Raw> {
        let raw = self.typed(name, v, elem)?;
        if raw.len != len {
            return self.fail(format!("{name} has length {}, expected {len}", raw.len));
        }
        Ok(raw)
    }

    /// An f32 output of exactly `len` elements.
    fn out(&mut self, name: &'static str, v: Unknown<'env>, len: usize) -> Result<Raw> {
        let raw = self.exact(name, v, Elem::F32, len)?;
        self.outs.push(raw);
        Ok(raw)
    }

    /// An f32 input of exactly `len` elements.
    fn inp(&mut self, name: &'static str, v: Unknown<'env>, len: usize) -> Result<Raw> {
        let raw = self.exact(name, v, Elem::F32, len)?;
        self.ins.push(raw);
        Ok(raw)
    }

    /// An f32 table of rows of `c` (an embedding or its gradient), at least `min_rows`
    /// rows. Returns the buffer and its row count.
    fn rows(&mut self, name: &'static str, v: Unknown<'env>, c: usize, min_rows: usize, is_out: bool) -> Result<(Raw, usize)> {
        let raw = self.typed(name, v, Elem::F32)?;
        if !raw.len.is_multiple_of(c) || raw.len / c < min_rows {
            return self.fail(format!(
                "{name} must hold at least {min_rows} rows of C = {c} (length a multiple of {c}), got length {}",
                raw.len
            ));
        }
        if is_out {
            self.outs.push(raw)
        } else {
            self.ins.push(raw)
        }
        Ok((raw, raw.len / c))
    }

    /// An i32 input of exactly `len` ids, each in 0..v or equal to `allowed`.
    fn ids(&mut self, name: &'static str, x: Unknown<'env>, len: usize, v: usize, allowed: Option<i32>) -> Result<Raw> {
        let raw = self.exact(name, x, Elem::I32, len)?;
        // SAFETY: raw was read from a live Int32Array of `len` elements, 4-byte aligned and
        // non-null; JS does not run during this synchronous call, and the slice is only
        // read here (outputs are checked not to overlap it before any kernel writes).
        let ids = unsafe { std::slice::from_raw_parts(raw.ptr as *const i32, raw.len) };
        let bad = match allowed {
            None => k::encoder::first_invalid_id(ids, v),
            Some(a) => ids.iter().position(|&id| (id < 0 || id as usize >= v) && id != a),
        };
        if let Some(i) = bad {
            let extra = allowed.map(|a| format!(" or {a}")).unwrap_or_default();
            return self.fail(format!("{name}[{i}] = {} is out of range (must be in 0..{}{extra})", ids[i], v - 1));
        }
        self.ins.push(raw);
        Ok(raw)
    }

    /// No output may share memory with another output or any input.
    fn no_overlaps(&self) -> Result<()> {
        for (i, a) in self.outs.iter().enumerate() {
            let (a0, a1) = a.range();
            for b in self.outs[i + 1..].iter().chain(self.ins.iter()) {
                let (b0, b1) = b.range();
                if a.len > 0 && b.len > 0 && a0 < b1 && b0 < a1 {
                    return self.fail(format!(
                        "output {} overlaps {}; outputs must not share memory with other arguments",
                        a.name, b.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// # Safety
/// `r` must come from `Call::typed` of an f32 array in a call whose checks all passed
/// (`no_overlaps` included), and the slice must not outlive that call.
unsafe fn f32s<'a>(r: Raw) -> &'a [f32] {
    // SAFETY: per this function's contract: live, aligned, non-null, `len` elements.
    unsafe { std::slice::from_raw_parts(r.ptr as *const f32, r.len) }
}

/// # Safety
/// As `f32s`, and `r` must be an output (checked to overlap no other argument).
unsafe fn f32s_mut<'a>(r: Raw) -> &'a mut [f32] {
    // SAFETY: per this function's contract; no other slice of this call aliases it.
    unsafe { std::slice::from_raw_parts_mut(r.ptr as *mut f32, r.len) }
}

/// # Safety
/// As `f32s`, for an i32 array.
unsafe fn i32s<'a>(r: Raw) -> &'a [i32] {
    // SAFETY: per this function's contract.
    unsafe { std::slice::from_raw_parts(r.ptr as *const i32, r.len) }
}

// ---------------------------------------------------------------------------------------
// Info
// ---------------------------------------------------------------------------------------

/// The instruction set the kernels run with: 'avx512', 'avx2', 'neon' or 'scalar'.
#[napi]
pub fn simd_name() -> String {
    k::simd::simd_name().to_string()
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

/// Peak fp32 FMA rate of one thread in GFLOPS, measured over about `iters` vector FMAs.
#[napi]
pub fn peak_gflops(iters: Unknown) -> Result<f64> {
    let c = Call::new("peakGflops");
    let iters = c.int("iters", iters, 1.0, 1e15)? as u64;
    guarded("peakGflops", || k::peak::peak_gflops(iters))
}

/// Bytes of scratch the attention kernels need at these dimensions on the current thread
/// count (forward and backward share one buffer): what attention allocates beyond its
/// inputs, outputs and lse. For bench/.
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
        check += guarded("memoryBandwidth", || k::decode::stream_read(par, &mut partials, &buf))?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    if !(check > 0.0) {
        return Err(err("memoryBandwidth: probe read nothing".to_string()));
    }
    Ok((n * 4) as f64 / best / 1e9)
}

/// Version of this addon (the crate version).
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

// ---------------------------------------------------------------------------------------
// Kernels (argument order as in backend.ts: outputs, inputs, dims, then scalars)
// ---------------------------------------------------------------------------------------

/// out (B,T,C) = wte[ids] + wpe[t]; ids (B,T) in 0..V where V = wte.length / C.
#[napi]
pub fn encoder_forward(out: Unknown, ids: Unknown, wte: Unknown, wpe: Unknown, b: Unknown, t: Unknown, c: Unknown) -> Result<()> {
    let mut k_ = Call::new("encoderForward");
    let (b, t, c) = (k_.dim("B", b)?, k_.dim("T", t)?, k_.dim("C", c)?);
    let btc = k_.prod("B*T*C", &[b, t, c])?;
    let bt = b * t;
    let (wte, v) = k_.rows("wte", wte, c, 1, false)?;
    let (wpe, _) = k_.rows("wpe", wpe, c, t, false)?;
    let out = k_.out("out", out, btc)?; // (B,T,C)
    let ids = k_.ids("ids", ids, bt, v, None)?; // (B,T)
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (out, ids, wte, wpe) = unsafe { (f32s_mut(out), i32s(ids), f32s(wte), f32s(wpe)) };
    guarded(k_.fn_name, || k::encoder::encoder_forward(out, ids, wte, wpe, b, t, c))
}

/// dwte (V,C) += scatter of dout; dwpe (maxT,C) += dout summed over B. Accumulates.
#[napi]
pub fn encoder_backward(dwte: Unknown, dwpe: Unknown, dout: Unknown, ids: Unknown, b: Unknown, t: Unknown, c: Unknown) -> Result<()> {
    let mut k_ = Call::new("encoderBackward");
    let (b, t, c) = (k_.dim("B", b)?, k_.dim("T", t)?, k_.dim("C", c)?);
    let btc = k_.prod("B*T*C", &[b, t, c])?;
    let (dwte, v) = k_.rows("dwte", dwte, c, 1, true)?;
    let (dwpe, _) = k_.rows("dwpe", dwpe, c, t, true)?;
    let dout = k_.inp("dout", dout, btc)?; // (B,T,C)
    let ids = k_.ids("ids", ids, b * t, v, None)?; // (B,T)
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (dwte, dwpe, dout, ids) = unsafe { (f32s_mut(dwte), f32s_mut(dwpe), f32s(dout), i32s(ids)) };
    guarded(k_.fn_name, || k::encoder::encoder_backward(dwte, dwpe, dout, ids, b, t, c))
}

/// out (N,C), mean (N), rstd (N) = layernorm of inp (N,C) with weight (C), bias (C).
#[napi]
pub fn layernorm_forward(out: Unknown, mean: Unknown, rstd: Unknown, inp: Unknown, weight: Unknown, bias: Unknown, n: Unknown, c: Unknown) -> Result<()> {
    let mut k_ = Call::new("layernormForward");
    let (n, c) = (k_.dim("N", n)?, k_.dim("C", c)?);
    let nc = k_.prod("N*C", &[n, c])?;
    let out = k_.out("out", out, nc)?;
    let mean = k_.out("mean", mean, n)?;
    let rstd = k_.out("rstd", rstd, n)?;
    let inp = k_.inp("inp", inp, nc)?;
    let weight = k_.inp("weight", weight, c)?;
    let bias = k_.inp("bias", bias, c)?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (out, mean, rstd, inp, weight, bias) =
        unsafe { (f32s_mut(out), f32s_mut(mean), f32s_mut(rstd), f32s(inp), f32s(weight), f32s(bias)) };
    with_par(k_.fn_name, |par| k::layernorm::layernorm_forward(par, out, mean, rstd, inp, weight, bias, n, c))
}

/// dinp (N,C), dweight (C), dbias (C) += gradients of layernorm. Accumulates.
#[napi]
pub fn layernorm_backward(
    dinp: Unknown, dweight: Unknown, dbias: Unknown, dout: Unknown, inp: Unknown, weight: Unknown, mean: Unknown, rstd: Unknown,
    n: Unknown, c: Unknown,
) -> Result<()> {
    let mut k_ = Call::new("layernormBackward");
    let (n, c) = (k_.dim("N", n)?, k_.dim("C", c)?);
    let nc = k_.prod("N*C", &[n, c])?;
    let dinp = k_.out("dinp", dinp, nc)?;
    let dweight = k_.out("dweight", dweight, c)?;
    let dbias = k_.out("dbias", dbias, c)?;
    let dout = k_.inp("dout", dout, nc)?;
    let inp = k_.inp("inp", inp, nc)?;
    let weight = k_.inp("weight", weight, c)?;
    let mean = k_.inp("mean", mean, n)?;
    let rstd = k_.inp("rstd", rstd, n)?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (dinp, dweight, dbias, dout, inp, weight, mean, rstd) = unsafe {
        (f32s_mut(dinp), f32s_mut(dweight), f32s_mut(dbias), f32s(dout), f32s(inp), f32s(weight), f32s(mean), f32s(rstd))
    };
    guarded(k_.fn_name, || k::layernorm::layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, n, c))
}

/// out (N,OC) = inp (N,C) · weight (OC,C)ᵀ + bias (OC); bias may be null/undefined.
#[napi]
pub fn matmul_forward(out: Unknown, inp: Unknown, weight: Unknown, bias: Option<Unknown>, n: Unknown, c: Unknown, oc: Unknown) -> Result<()> {
    let mut k_ = Call::new("matmulForward");
    let (n, c, oc) = (k_.dim("N", n)?, k_.dim("C", c)?, k_.dim("OC", oc)?);
    let (noc, nc, occ) = (k_.prod("N*OC", &[n, oc])?, k_.prod("N*C", &[n, c])?, k_.prod("OC*C", &[oc, c])?);
    let out = k_.out("out", out, noc)?;
    let inp = k_.inp("inp", inp, nc)?;
    let weight = k_.inp("weight", weight, occ)?;
    let bias = match bias {
        Some(b) => Some(k_.inp("bias", b, oc)?),
        None => None,
    };
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (out, inp, weight, bias) = unsafe { (f32s_mut(out), f32s(inp), f32s(weight), bias.map(|b| f32s(b))) };
    let mut guard = runtime();
    let Runtime { par, scratch } = guard.as_mut().expect("runtime initialised by runtime()");
    let par: &dyn Parallel = &**par;
    let need = guarded(k_.fn_name, || k::matmul::matmul_scratch_len(n, c, oc, par.threads()))?;
    let scratch = grow(scratch, k_.fn_name, need)?;
    guarded(k_.fn_name, || k::matmul::matmul_forward(par, scratch, out, inp, weight, bias, n, c, oc))
}

/// dinp (N,C) += dout·weight; dweight (OC,C) += doutᵀ·inp; dbias (OC) += Σ dout (dbias may
/// be null/undefined). Accumulates; overwriteDinp (optional) overwrites dinp instead.
#[napi]
pub fn matmul_backward(
    dinp: Unknown, dweight: Unknown, dbias: Option<Unknown>, dout: Unknown, inp: Unknown, weight: Unknown,
    n: Unknown, c: Unknown, oc: Unknown, overwrite_dinp: Option<Unknown>,
) -> Result<()> {
    let mut k_ = Call::new("matmulBackward");
    let (n, c, oc) = (k_.dim("N", n)?, k_.dim("C", c)?, k_.dim("OC", oc)?);
    let overwrite_dinp = k_.flag("overwriteDinp", overwrite_dinp)?;
    let (noc, nc, occ) = (k_.prod("N*OC", &[n, oc])?, k_.prod("N*C", &[n, c])?, k_.prod("OC*C", &[oc, c])?);
    let dinp = k_.out("dinp", dinp, nc)?;
    let dweight = k_.out("dweight", dweight, occ)?;
    let dbias = match dbias {
        Some(b) => Some(k_.out("dbias", b, oc)?),
        None => None,
    };
    let dout = k_.inp("dout", dout, noc)?;
    let inp = k_.inp("inp", inp, nc)?;
    let weight = k_.inp("weight", weight, occ)?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (dinp, dweight, dbias, dout, inp, weight) =
        unsafe { (f32s_mut(dinp), f32s_mut(dweight), dbias.map(|b| f32s_mut(b)), f32s(dout), f32s(inp), f32s(weight)) };
    let mut guard = runtime();
    let Runtime { par, scratch } = guard.as_mut().expect("runtime initialised by runtime()");
    let par: &dyn Parallel = &**par;
    let need = guarded(k_.fn_name, || k::matmul::matmul_scratch_len(n, c, oc, par.threads()))?;
    let scratch = grow(scratch, k_.fn_name, need)?;
    guarded(k_.fn_name, || k::matmul::matmul_backward(par, scratch, dinp, dweight, dbias, dout, inp, weight, n, c, oc, overwrite_dinp))
}

/// Causal self-attention: out (B,T,C), lse (B,NH,T) from qkv (B,T,3C); dropout on the
/// attention weights with (p, seed, stream), p = 0 for none.
#[napi]
pub fn attention_forward(
    out: Unknown, lse: Unknown, qkv: Unknown, b: Unknown, t: Unknown, c: Unknown, nh: Unknown, p: Unknown, seed: Unknown, stream: Unknown,
) -> Result<()> {
    let mut k_ = Call::new("attentionForward");
    let (b, t, c, nh) = (k_.dim("B", b)?, k_.dim("T", t)?, k_.dim("C", c)?, k_.dim("NH", nh)?);
    if !c.is_multiple_of(nh) {
        return k_.fail(format!("C ({c}) must be divisible by NH ({nh})"));
    }
    let dropout = k_.dropout(p, seed, stream)?;
    let (btc, bnt, bt3c) = (k_.prod("B*T*C", &[b, t, c])?, k_.prod("B*NH*T", &[b, nh, t])?, k_.prod("B*T*3*C", &[b, t, 3, c])?);
    let out = k_.out("out", out, btc)?;
    let lse = k_.out("lse", lse, bnt)?;
    let qkv = k_.inp("qkv", qkv, bt3c)?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (out, lse, qkv) = unsafe { (f32s_mut(out), f32s_mut(lse), f32s(qkv)) };
    let mut guard = runtime();
    let Runtime { par, scratch } = guard.as_mut().expect("runtime initialised by runtime()");
    let par: &dyn Parallel = &**par;
    let need = guarded(k_.fn_name, || k::attention::attention_scratch_len(b, t, c, nh, par.threads()))?;
    let scratch = grow(scratch, k_.fn_name, need)?;
    guarded(k_.fn_name, || k::attention::attention_forward(par, scratch, out, lse, qkv, b, t, c, nh, dropout))
}

/// dqkv (B,T,3C) += gradient of attention from dout (B,T,C), qkv, out, lse (B,NH,T).
/// Accumulates; overwrite (optional) overwrites dqkv instead.
#[napi]
pub fn attention_backward(
    dqkv: Unknown, dout: Unknown, qkv: Unknown, out: Unknown, lse: Unknown,
    b: Unknown, t: Unknown, c: Unknown, nh: Unknown, p: Unknown, seed: Unknown, stream: Unknown, overwrite: Option<Unknown>,
) -> Result<()> {
    let mut k_ = Call::new("attentionBackward");
    let (b, t, c, nh) = (k_.dim("B", b)?, k_.dim("T", t)?, k_.dim("C", c)?, k_.dim("NH", nh)?);
    let overwrite = k_.flag("overwrite", overwrite)?;
    if !c.is_multiple_of(nh) {
        return k_.fail(format!("C ({c}) must be divisible by NH ({nh})"));
    }
    let dropout = k_.dropout(p, seed, stream)?;
    let (btc, bnt, bt3c) = (k_.prod("B*T*C", &[b, t, c])?, k_.prod("B*NH*T", &[b, nh, t])?, k_.prod("B*T*3*C", &[b, t, 3, c])?);
    let dqkv = k_.out("dqkv", dqkv, bt3c)?;
    let dout = k_.inp("dout", dout, btc)?;
    let qkv = k_.inp("qkv", qkv, bt3c)?;
    let out = k_.inp("out", out, btc)?;
    let lse = k_.inp("lse", lse, bnt)?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (dqkv, dout, qkv, out, lse) = unsafe { (f32s_mut(dqkv), f32s(dout), f32s(qkv), f32s(out), f32s(lse)) };
    let mut guard = runtime();
    let Runtime { par, scratch } = guard.as_mut().expect("runtime initialised by runtime()");
    let par: &dyn Parallel = &**par;
    let need = guarded(k_.fn_name, || k::attention::attention_scratch_len(b, t, c, nh, par.threads()))?;
    let scratch = grow(scratch, k_.fn_name, need)?;
    guarded(k_.fn_name, || k::attention::attention_backward(par, scratch, dqkv, dout, qkv, out, lse, b, t, c, nh, dropout, overwrite))
}

/// KV-cached causal attention (crates/kernels/src/decode.rs): appends the k, v of qkv
/// (B,Tq,3C) to kcache, vcache (B,NH,maxT,HS) at rows pos[b].. of each sequence, then
/// out (B,Tq,C) = attention of each new query over its sequence's cache rows 0..=pos[b]+t.
/// pos (B) i32, each in 0..=maxT; rows past maxT are padding (skipped, output 0); pos is
/// not modified.
#[napi]
pub fn attention_decode(
    out: Unknown, kcache: Unknown, vcache: Unknown, qkv: Unknown, pos: Unknown,
    b: Unknown, tq: Unknown, c: Unknown, nh: Unknown, max_t: Unknown,
) -> Result<()> {
    let mut k_ = Call::new("attentionDecode");
    let (b, tq, c, nh, max_t) = (k_.dim("B", b)?, k_.dim("Tq", tq)?, k_.dim("C", c)?, k_.dim("NH", nh)?, k_.dim("maxT", max_t)?);
    if !c.is_multiple_of(nh) {
        return k_.fail(format!("C ({c}) must be divisible by NH ({nh})"));
    }
    if tq > max_t {
        return k_.fail(format!("Tq ({tq}) exceeds maxT ({max_t})"));
    }
    let (btc, bt3c, cache) = (k_.prod("B*Tq*C", &[b, tq, c])?, k_.prod("B*Tq*3*C", &[b, tq, 3, c])?, k_.prod("B*maxT*C", &[b, max_t, c])?);
    let out = k_.out("out", out, btc)?;
    let kcache = k_.out("kcache", kcache, cache)?;
    let vcache = k_.out("vcache", vcache, cache)?;
    let qkv = k_.inp("qkv", qkv, bt3c)?;
    // Each position in 0..=maxT (rows that would land past the cache are skipped).
    let pos = k_.ids("pos", pos, b, max_t + 1, None)?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (out, kcache, vcache, qkv, pos) = unsafe { (f32s_mut(out), f32s_mut(kcache), f32s_mut(vcache), f32s(qkv), i32s(pos)) };
    let mut guard = runtime();
    let Runtime { par, scratch } = guard.as_mut().expect("runtime initialised by runtime()");
    let par: &dyn Parallel = &**par;
    let need = k::decode::attention_decode_scratch_len(max_t, par.threads());
    let scratch = grow(scratch, k_.fn_name, need)?;
    guarded(k_.fn_name, || k::decode::attention_decode(par, scratch, out, kcache, vcache, qkv, pos, b, tq, c, nh, max_t))
}

/// out (N) = gelu(inp (N)), tanh approximation.
#[napi]
pub fn gelu_forward(out: Unknown, inp: Unknown, n: Unknown) -> Result<()> {
    let mut k_ = Call::new("geluForward");
    let n = k_.dim("N", n)?;
    let out = k_.out("out", out, n)?;
    let inp = k_.inp("inp", inp, n)?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (out, inp) = unsafe { (f32s_mut(out), f32s(inp)) };
    with_par(k_.fn_name, |par| k::gelu::gelu_forward(par, out, inp, n))
}

/// dinp (N) += gelu'(inp) * dout. Accumulates; overwrite (optional) overwrites dinp instead.
#[napi]
pub fn gelu_backward(dinp: Unknown, inp: Unknown, dout: Unknown, n: Unknown, overwrite: Option<Unknown>) -> Result<()> {
    let mut k_ = Call::new("geluBackward");
    let n = k_.dim("N", n)?;
    let overwrite = k_.flag("overwrite", overwrite)?;
    let dinp = k_.out("dinp", dinp, n)?;
    let inp = k_.inp("inp", inp, n)?;
    let dout = k_.inp("dout", dout, n)?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (dinp, inp, dout) = unsafe { (f32s_mut(dinp), f32s(inp), f32s(dout)) };
    with_par(k_.fn_name, |par| k::gelu::gelu_backward(par, dinp, inp, dout, n, overwrite))
}

/// out (N) = inp1 (N) + inp2 (N).
#[napi]
pub fn residual_forward(out: Unknown, inp1: Unknown, inp2: Unknown, n: Unknown) -> Result<()> {
    let mut k_ = Call::new("residualForward");
    let n = k_.dim("N", n)?;
    let out = k_.out("out", out, n)?;
    let inp1 = k_.inp("inp1", inp1, n)?;
    let inp2 = k_.inp("inp2", inp2, n)?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (out, inp1, inp2) = unsafe { (f32s_mut(out), f32s(inp1), f32s(inp2)) };
    with_par(k_.fn_name, |par| k::residual::residual_forward(par, out, inp1, inp2, n))
}

/// dinp1 (N) += dout; dinp2 (N) += dout. Accumulates.
#[napi]
pub fn residual_backward(dinp1: Unknown, dinp2: Unknown, dout: Unknown, n: Unknown) -> Result<()> {
    let mut k_ = Call::new("residualBackward");
    let n = k_.dim("N", n)?;
    let dinp1 = k_.out("dinp1", dinp1, n)?;
    let dinp2 = k_.out("dinp2", dinp2, n)?;
    let dout = k_.inp("dout", dout, n)?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (dinp1, dinp2, dout) = unsafe { (f32s_mut(dinp1), f32s_mut(dinp2), f32s(dout)) };
    with_par(k_.fn_name, |par| k::residual::residual_backward(par, dinp1, dinp2, dout, n))
}

/// losses (N) = cross-entropy of softmax(logits (N,V)) at targets (N); 0 where target ==
/// ignoreIndex.
#[napi]
pub fn crossentropy_forward(losses: Unknown, logits: Unknown, targets: Unknown, n: Unknown, v: Unknown, ignore_index: Unknown) -> Result<()> {
    let mut k_ = Call::new("crossentropyForward");
    let (n, v) = (k_.dim("N", n)?, k_.dim("V", v)?);
    let ignore = k_.int("ignoreIndex", ignore_index, i32::MIN as f64, i32::MAX as f64)? as i32;
    let nv = k_.prod("N*V", &[n, v])?;
    let losses = k_.out("losses", losses, n)?;
    let logits = k_.inp("logits", logits, nv)?;
    let targets = k_.ids("targets", targets, n, v, Some(ignore))?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (losses, logits, targets) = unsafe { (f32s_mut(losses), f32s(logits), i32s(targets)) };
    with_par(k_.fn_name, |par| k::crossentropy::crossentropy_forward(par, losses, logits, targets, n, v, ignore))
}

/// dlogits (N,V) += dlosses (N) * (softmax(logits) - onehot(targets)); rows with target ==
/// ignoreIndex get nothing. Accumulates; overwrite (optional) overwrites dlogits instead.
#[napi]
pub fn crossentropy_backward(
    dlogits: Unknown, dlosses: Unknown, logits: Unknown, targets: Unknown, n: Unknown, v: Unknown, ignore_index: Unknown, overwrite: Option<Unknown>,
) -> Result<()> {
    let mut k_ = Call::new("crossentropyBackward");
    let (n, v) = (k_.dim("N", n)?, k_.dim("V", v)?);
    let ignore = k_.int("ignoreIndex", ignore_index, i32::MIN as f64, i32::MAX as f64)? as i32;
    let overwrite = k_.flag("overwrite", overwrite)?;
    let nv = k_.prod("N*V", &[n, v])?;
    let dlogits = k_.out("dlogits", dlogits, nv)?;
    let dlosses = k_.inp("dlosses", dlosses, n)?;
    let logits = k_.inp("logits", logits, nv)?;
    let targets = k_.ids("targets", targets, n, v, Some(ignore))?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (dlogits, dlosses, logits, targets) = unsafe { (f32s_mut(dlogits), f32s(dlosses), f32s(logits), i32s(targets)) };
    with_par(k_.fn_name, |par| k::crossentropy::crossentropy_backward(par, dlogits, dlosses, logits, targets, n, v, ignore, overwrite))
}

/// Inverted dropout: out (N) = inp * keep / (1 - p), mask from the counter RNG.
#[napi]
pub fn dropout_forward(out: Unknown, inp: Unknown, n: Unknown, p: Unknown, seed: Unknown, stream: Unknown) -> Result<()> {
    let mut k_ = Call::new("dropoutForward");
    let n = k_.dim("N", n)?;
    let d = k_.dropout(p, seed, stream)?;
    let out = k_.out("out", out, n)?;
    let inp = k_.inp("inp", inp, n)?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (out, inp) = unsafe { (f32s_mut(out), f32s(inp)) };
    guarded(k_.fn_name, || k::dropout::dropout_forward(out, inp, n, d.p, d.seed, d.stream))
}

/// dinp (N) += dout * keep / (1 - p). Accumulates.
#[napi]
pub fn dropout_backward(dinp: Unknown, dout: Unknown, n: Unknown, p: Unknown, seed: Unknown, stream: Unknown) -> Result<()> {
    let mut k_ = Call::new("dropoutBackward");
    let n = k_.dim("N", n)?;
    let d = k_.dropout(p, seed, stream)?;
    let dinp = k_.out("dinp", dinp, n)?;
    let dout = k_.inp("dout", dout, n)?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (dinp, dout) = unsafe { (f32s_mut(dinp), f32s(dout)) };
    guarded(k_.fn_name, || k::dropout::dropout_backward(dinp, dout, n, d.p, d.seed, d.stream))
}

/// One AdamW step over params, grads, m, v (each N); step counts from 1.
#[napi]
pub fn adamw_update(
    params: Unknown, grads: Unknown, m: Unknown, v: Unknown, n: Unknown,
    lr: Unknown, beta1: Unknown, beta2: Unknown, eps: Unknown, weight_decay: Unknown, step: Unknown,
) -> Result<()> {
    let mut k_ = Call::new("adamwUpdate");
    let n = k_.dim("N", n)?;
    let lr = k_.finite("lr", lr)?;
    let beta1 = k_.unit("beta1", beta1)?;
    let beta2 = k_.unit("beta2", beta2)?;
    let eps = k_.finite("eps", eps)?;
    let weight_decay = k_.finite("weightDecay", weight_decay)?;
    let step = k_.int("step", step, 1.0, MAX_U32)? as u32;
    let params = k_.out("params", params, n)?;
    let m = k_.out("m", m, n)?;
    let v = k_.out("v", v, n)?;
    let grads = k_.inp("grads", grads, n)?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slices live only for this call.
    let (params, grads, m, v) = unsafe { (f32s_mut(params), f32s(grads), f32s_mut(m), f32s_mut(v)) };
    with_par(k_.fn_name, |par| k::adamw::adamw_update(par, params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, step))
}

/// Σ x² over x (N), accumulated in f64.
#[napi]
pub fn sum_squares(x: Unknown, n: Unknown) -> Result<f64> {
    let mut k_ = Call::new("sumSquares");
    let n = k_.dim("N", n)?;
    let x = k_.inp("x", x, n)?;
    // SAFETY: all checks of this call passed (no outputs); the slice lives only for this call.
    let x = unsafe { f32s(x) };
    with_par(k_.fn_name, |par| k::norm::sum_squares(par, x, n))
}

/// Bytes from the start of the 64-byte cache line holding x's first element to that
/// element: the native backend uses it to start every f32 tensor on a line.
#[napi]
pub fn line_offset(x: Unknown) -> Result<u32> {
    let k_ = Call::new("lineOffset");
    let raw = k_.typed("x", x, Elem::F32)?;
    Ok((raw.ptr as usize % 64) as u32)
}

/// x (N) = 0 (NaN and inf included), on the pool's threads.
#[napi]
pub fn zero(x: Unknown, n: Unknown) -> Result<()> {
    let mut k_ = Call::new("zero");
    let n = k_.dim("N", n)?;
    let x = k_.out("x", x, n)?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slice lives only for this call.
    let x = unsafe { f32s_mut(x) };
    with_par(k_.fn_name, |par| k::norm::zero(par, x, n))
}

/// x (N) *= s.
#[napi]
pub fn scale(x: Unknown, n: Unknown, s: Unknown) -> Result<()> {
    let mut k_ = Call::new("scale");
    let n = k_.dim("N", n)?;
    let s = k_.finite("s", s)?;
    let x = k_.out("x", x, n)?;
    k_.no_overlaps()?;
    // SAFETY: all checks of this call passed; the slice lives only for this call.
    let x = unsafe { f32s_mut(x) };
    with_par(k_.fn_name, |par| k::norm::scale(par, x, n, s))
}
