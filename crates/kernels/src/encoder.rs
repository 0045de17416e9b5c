//! Token + position embedding: out[b,t,:] = wte[ids[b,t],:] + wpe[t,:].

use crate::simd::math::acc_into;
use crate::simd::F32Vec;
use crate::simd_kernel;

simd_kernel! {
    /// out (B,T,C) = wte[ids] + wpe[t]. ids (B,T) must be in 0..V (checked by the caller);
    /// wte (V,C); wpe (maxT,C) with maxT >= T.
    pub fn encoder_forward(out: &mut [f32], ids: &[i32], wte: &[f32], wpe: &[f32], b: usize, t: usize, c: usize) => encoder_forward_impl
}

#[inline(always)]
fn encoder_forward_impl<V: F32Vec>(out: &mut [f32], ids: &[i32], wte: &[f32], wpe: &[f32], b: usize, t: usize, c: usize) {
    let out = &mut out[..b * t * c]; // (B,T,C)
    let ids = &ids[..b * t]; // (B,T)
    for bt in 0..b * t {
        let pos = bt % t;
        let id = ids[bt] as usize;
        let o = &mut out[bt * c..(bt + 1) * c]; // (C)
        let we = &wte[id * c..(id + 1) * c]; // (C)
        let pe = &wpe[pos * c..(pos + 1) * c]; // (C)
        add_into::<V>(o, we, pe);
    }
}

/// o = x + y over equal-length rows.
#[inline(always)]
fn add_into<V: F32Vec>(o: &mut [f32], x: &[f32], y: &[f32]) {
    let n = o.len();
    let (x, y) = (&x[..n], &y[..n]);
    let l = V::LANES;
    let mut i = 0;
    while i + l <= n {
        // SAFETY: i + LANES <= n and the three rows hold n floats.
        unsafe { V::load(x.as_ptr().add(i)).add(V::load(y.as_ptr().add(i))).store(o.as_mut_ptr().add(i)) };
        i += l;
    }
    while i < n {
        o[i] = x[i] + y[i];
        i += 1;
    }
}


simd_kernel! {
    /// Scatters dout (B,T,C) into the tables: dwte[ids[b,t]] += dout[b,t]; dwpe[t] += dout[b,t].
    /// Accumulates.
    pub fn encoder_backward(dwte: &mut [f32], dwpe: &mut [f32], dout: &[f32], ids: &[i32], b: usize, t: usize, c: usize) => encoder_backward_impl
}

// Serial on purpose: two positions with the same token id add into the same dwte row, so
// a parallel scatter would need atomics; this pass is tiny next to the matmuls.
#[inline(always)]
fn encoder_backward_impl<V: F32Vec>(dwte: &mut [f32], dwpe: &mut [f32], dout: &[f32], ids: &[i32], b: usize, t: usize, c: usize) {
    let dout = &dout[..b * t * c]; // (B,T,C)
    let ids = &ids[..b * t]; // (B,T)
    for bt in 0..b * t {
        let pos = bt % t;
        let id = ids[bt] as usize;
        let d = &dout[bt * c..(bt + 1) * c]; // (C)
        acc_into::<V>(&mut dwte[id * c..(id + 1) * c], d); // row of dwte (V,C)
        acc_into::<V>(&mut dwpe[pos * c..(pos + 1) * c], d); // row of dwpe (maxT,C)
    }
}

/// Index of the first id outside 0..v, if any. Bindings call this before the encoder.
pub fn first_invalid_id(ids: &[i32], v: usize) -> Option<usize> {
    ids.iter().position(|&id| id < 0 || id as usize >= v)
}
