//! The argument checks of one addon call (`Call`), and the only way from checked
//! arguments to slices (`Checked`).
//!
//! Every argument arrives as a raw JS value and is converted here, so that a wrong type
//! names the argument, and -1 or 1.5 as a dim is an error instead of a wrapped u32. Every
//! error is a JS Error "<function>: <what is wrong>".
//!
//! Buffers: `Call::out` / `inp` / `ids` / `rows_*` check a typed array (element type,
//! length), note its address range, and return an `Out`, `In` or `Ids`. Those are not
//! Copy and only this module makes them. `Call::finish` checks that no output overlaps
//! another argument and returns a `Checked`, which turns each of them into one slice.

use std::marker::PhantomData;

use ferrogpt_kernels as k;
use ferrogpt_kernels::rng::Dropout;
use napi::bindgen_prelude::Unknown;
use napi::{sys, JsValue, Result};

use crate::{err, MAX_U32};

/// Room for the outputs, and the inputs, of most kernels (layernormBackward: 3 and 5).
const OUTS: usize = 4;
const INS: usize = 6;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F32,
    I32,
    /// bf16 bits (a compact weight).
    U16,
    /// int8 (a compact weight).
    I8,
}

impl Elem {
    fn js_name(self) -> &'static str {
        match self {
            Elem::F32 => "Float32Array",
            Elem::I32 => "Int32Array",
            Elem::U16 => "Uint16Array",
            Elem::I8 => "Int8Array",
        }
    }
    fn napi_type(self) -> i32 {
        match self {
            Elem::F32 => sys::TypedarrayType::float32_array,
            Elem::I32 => sys::TypedarrayType::int32_array,
            Elem::U16 => sys::TypedarrayType::uint16_array,
            Elem::I8 => sys::TypedarrayType::int8_array,
        }
    }
    fn size(self) -> usize {
        match self {
            Elem::F32 | Elem::I32 => 4,
            Elem::U16 => 2,
            Elem::I8 => 1,
        }
    }
}

/// A typed-array argument: its element pointer (aligned to its element, non-null), length
/// and element type; its bytes are [ptr, ptr + size*len).
pub struct Raw {
    name: &'static str,
    pub ptr: *mut u8,
    len: usize,
    elem: Elem,
}

/// A checked output: f32, or (`Call::out_of`) bf16 bits (a bf16 KV cache).
pub struct Out(Raw);
/// A checked input: f32, or (`Call::compact`) a bf16 or int8 weight.
pub struct In(Raw);
/// A checked i32 input (ids in range).
pub struct Ids(Raw);

/// The address range of a checked buffer, kept for the overlap check.
#[derive(Clone, Copy)]
struct Span {
    name: &'static str,
    start: usize,
    end: usize,
}

impl Span {
    fn of(r: &Raw) -> Span {
        let start = r.ptr as usize;
        Span { name: r.name, start, end: start + r.len * r.elem.size() }
    }
}

/// The checks of one call; every error names the function and the argument.
pub struct Call<'env> {
    pub fn_name: &'static str,
    outs: Vec<Span>,
    ins: Vec<Span>,
    _env: PhantomData<&'env ()>,
}

impl<'env> Call<'env> {
    pub fn new(fn_name: &'static str) -> Self {
        Call { fn_name, outs: Vec::with_capacity(OUTS), ins: Vec::with_capacity(INS), _env: PhantomData }
    }

    pub fn fail<T>(&self, msg: String) -> Result<T> {
        Err(err(format!("{}: {}", self.fn_name, msg)))
    }

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

    /// A dimension: an integer in 1..=u32::MAX.
    pub fn dim(&self, name: &str, x: Unknown<'env>) -> Result<usize> {
        let x = self.num(name, x)?;
        if !(x.fract() == 0.0 && (1.0..=MAX_U32).contains(&x)) {
            return self.fail(format!("{name} must be an integer >= 1, got {x}"));
        }
        Ok(x as usize)
    }

    /// An integer in [lo, hi].
    pub fn int(&self, name: &str, x: Unknown<'env>, lo: f64, hi: f64) -> Result<f64> {
        let x = self.num(name, x)?;
        if !(x.fract() == 0.0 && x >= lo && x <= hi) {
            return self.fail(format!("{name} must be an integer in [{lo}, {hi}], got {x}"));
        }
        Ok(x)
    }

    pub fn finite(&self, name: &str, x: Unknown<'env>) -> Result<f32> {
        let x = self.num(name, x)?;
        let y = x as f32;
        if !x.is_finite() || !y.is_finite() {
            return self.fail(format!("{name} must be a finite number, got {x}"));
        }
        Ok(y)
    }

    /// A number in [0, 1), also after rounding to f32 (0.999999999 rounds to 1.0).
    pub fn unit(&self, name: &str, x: Unknown<'env>) -> Result<f32> {
        let x = self.num(name, x)?;
        let y = x as f32;
        if !((0.0..1.0).contains(&x) && y < 1.0) {
            return self.fail(format!("{name} must be in [0, 1), got {x}"));
        }
        Ok(y)
    }

    /// An optional boolean: missing (undefined or null) is false.
    pub fn flag(&self, name: &str, x: Option<Unknown<'env>>) -> Result<bool> {
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

    pub fn dropout(&self, p: Unknown<'env>, seed: Unknown<'env>, stream: Unknown<'env>) -> Result<Dropout> {
        let p = self.unit("dropout p", p)?;
        let seed = self.int("dropout seed", seed, 0.0, MAX_U32)? as u32;
        let stream = self.int("dropout stream", stream, 0.0, MAX_U32)? as u32;
        Ok(Dropout { p, seed, stream })
    }

    /// The product of `dims`, or an error naming `what` if it overflows.
    pub fn prod(&self, what: &str, dims: &[usize]) -> Result<usize> {
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
    pub fn typed(&self, name: &'static str, v: Unknown<'env>, elem: Elem) -> Result<Raw> {
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
        if !(data as usize).is_multiple_of(elem.size()) {
            // Cannot happen for a typed array (its byteOffset is a multiple of its element
            // size), but a slice must be aligned, so refuse rather than assume.
            return self.fail(format!("{name} is not {}-byte aligned", elem.size()));
        }
        Ok(Raw { name, ptr: data.cast(), len, elem })
    }

    fn exact(&self, name: &'static str, v: Unknown<'env>, elem: Elem, len: usize) -> Result<Raw> {
        let raw = self.typed(name, v, elem)?;
        if raw.len != len {
            return self.fail(format!("{name} has length {}, expected {len}", raw.len));
        }
        Ok(raw)
    }


    /// An f32 output of exactly `len` elements.
    pub fn out(&mut self, name: &'static str, v: Unknown<'env>, len: usize) -> Result<Out> {
        self.out_of(name, v, Elem::F32, len)
    }

    /// An output of `elem` of exactly `len` elements; its span, for the overlap check, is
    /// in bytes (Span::of), so a bf16 output is compared correctly with f32 arguments.
    pub fn out_of(&mut self, name: &'static str, v: Unknown<'env>, elem: Elem, len: usize) -> Result<Out> {
        let raw = self.exact(name, v, elem, len)?;
        self.outs.push(Span::of(&raw));
        Ok(Out(raw))
    }

    /// An f32 input of exactly `len` elements.
    pub fn inp(&mut self, name: &'static str, v: Unknown<'env>, len: usize) -> Result<In> {
        self.inp_of(name, v, Elem::F32, len)
    }

    /// An input of `elem` (a compact weight: U16 or I8) of exactly `len` elements.
    pub fn inp_of(&mut self, name: &'static str, v: Unknown<'env>, elem: Elem, len: usize) -> Result<In> {
        let raw = self.exact(name, v, elem, len)?;
        self.ins.push(Span::of(&raw));
        Ok(In(raw))
    }

    /// An f32 table of rows of `c` (an embedding or its gradient), at least `min_rows`
    /// rows. Returns the buffer and its row count.
    fn rows(&self, name: &'static str, v: Unknown<'env>, elem: Elem, c: usize, min_rows: usize) -> Result<(Raw, usize)> {
        let raw = self.typed(name, v, elem)?;
        if !raw.len.is_multiple_of(c) || raw.len / c < min_rows {
            return self.fail(format!(
                "{name} must hold at least {min_rows} rows of C = {c} (length a multiple of {c}), got length {}",
                raw.len
            ));
        }
        let rows = raw.len / c;
        Ok((raw, rows))
    }

    /// `rows`, for a table the kernel writes.
    pub fn rows_out(&mut self, name: &'static str, v: Unknown<'env>, c: usize, min_rows: usize) -> Result<(Out, usize)> {
        let (raw, rows) = self.rows(name, v, Elem::F32, c, min_rows)?;
        self.outs.push(Span::of(&raw));
        Ok((Out(raw), rows))
    }

    /// `rows`, for a table of `elem` the kernel reads.
    pub fn rows_in(&mut self, name: &'static str, v: Unknown<'env>, elem: Elem, c: usize, min_rows: usize) -> Result<(In, usize)> {
        let (raw, rows) = self.rows(name, v, elem, c, min_rows)?;
        self.ins.push(Span::of(&raw));
        Ok((In(raw), rows))
    }

    /// An i32 input of exactly `len` ids, each in 0..v or equal to `allowed`.
    pub fn ids(&mut self, name: &'static str, x: Unknown<'env>, len: usize, v: usize, allowed: Option<i32>) -> Result<Ids> {
        let raw = self.exact(name, x, Elem::I32, len)?;
        // SAFETY: raw was read from a live Int32Array of `len` elements, 4-byte aligned and
        // non-null; JS does not run during this synchronous call, and the slice is only
        // read here (no output slice exists before `finish`, and none may overlap it).
        let ids = unsafe { std::slice::from_raw_parts(raw.ptr as *const i32, raw.len) };
        let bad = match allowed {
            None => k::encoder::first_invalid_id(ids, v),
            Some(a) => ids.iter().position(|&id| (id < 0 || id as usize >= v) && id != a),
        };
        if let Some(i) = bad {
            let extra = allowed.map(|a| format!(" or {a}")).unwrap_or_default();
            return self.fail(format!("{name}[{i}] = {} is out of range (must be in 0..{}{extra})", ids[i], v - 1));
        }
        self.ins.push(Span::of(&raw));
        Ok(Ids(raw))
    }

    /// Ends the checks: no output may share memory with another output or any input
    /// (compared as address ranges, so two views of one ArrayBuffer are caught). Takes the
    /// checker, so no buffer can be taken after the overlap check that `Checked` stands for.
    pub fn finish(self) -> Result<Checked<'env>> {
        let outs = &self.outs[..];
        for (i, a) in outs.iter().enumerate() {
            for b in outs[i + 1..].iter().chain(self.ins.iter()) {
                if a.start < a.end && b.start < b.end && a.start < b.end && b.start < a.end {
                    return self.fail(format!(
                        "output {} overlaps {}; outputs must not share memory with other arguments",
                        a.name, b.name
                    ));
                }
            }
        }
        Ok(Checked(PhantomData))
    }
}

/// Proof that every check of a call passed, overlaps included: turns each of the call's
/// checked buffers into a slice that lives for the call.
pub struct Checked<'env>(PhantomData<&'env ()>);

impl<'env> Checked<'env> {
    pub fn f32s_mut(&self, b: Out) -> &'env mut [f32] {
        assert!(b.0.elem == Elem::F32, "internal: {} is not f32", b.0.name);
        // SAFETY: b comes from `Call::out`/`rows_out` of this call (only this module makes
        // an Out) and is consumed, so this is its only slice: a live, 4-byte aligned,
        // non-null Float32Array of `len` elements that no other argument overlaps (checked
        // by `finish`). JS does not run during the call, and 'env ends with it.
        unsafe { std::slice::from_raw_parts_mut(b.0.ptr as *mut f32, b.0.len) }
    }

    pub fn f32s(&self, b: In) -> &'env [f32] {
        assert!(b.0.elem == Elem::F32, "internal: {} is not f32", b.0.name);
        // SAFETY: as for `f32s_mut`; inputs are only read, and no output overlaps them.
        unsafe { std::slice::from_raw_parts(b.0.ptr as *const f32, b.0.len) }
    }

    /// A checked bf16 output's bits.
    pub fn u16s_mut(&self, b: Out) -> &'env mut [u16] {
        assert!(b.0.elem == Elem::U16, "internal: {} is not bf16", b.0.name);
        // SAFETY: as for `f32s_mut`, for a Uint16Array (2-byte aligned, checked by `typed`).
        unsafe { std::slice::from_raw_parts_mut(b.0.ptr as *mut u16, b.0.len) }
    }

    /// A checked bf16 input's bits.
    pub fn u16s(&self, b: In) -> &'env [u16] {
        assert!(b.0.elem == Elem::U16, "internal: {} is not bf16", b.0.name);
        // SAFETY: as for `f32s`, for a Uint16Array (2-byte aligned, checked by `typed`).
        unsafe { std::slice::from_raw_parts(b.0.ptr as *const u16, b.0.len) }
    }

    /// A checked int8 input.
    pub fn i8s(&self, b: In) -> &'env [i8] {
        assert!(b.0.elem == Elem::I8, "internal: {} is not int8", b.0.name);
        // SAFETY: as for `f32s`, for an Int8Array.
        unsafe { std::slice::from_raw_parts(b.0.ptr as *const i8, b.0.len) }
    }

    pub fn i32s(&self, b: Ids) -> &'env [i32] {
        // SAFETY: as for `f32s`, for an Int32Array.
        unsafe { std::slice::from_raw_parts(b.0.ptr as *const i32, b.0.len) }
    }
}
