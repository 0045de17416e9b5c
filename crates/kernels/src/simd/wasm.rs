//! simd128 vectors for wasm32 built with `-C target-feature=+simd128`. With
//! `+relaxed-simd` as well, `mul_add` is `f32x4.relaxed_madd`: a fused multiply-add on
//! hardware that has one (x86 FMA3, Arm), which engines may also lower to a multiply and an
//! add. Either way one engine on one machine gives the same bits every time, which is all
//! the kernels' determinism needs (the reference tests allow for the rounding either way).

use super::F32Vec;
use core::arch::wasm32::*;

/// 4 lanes in a v128.
#[derive(Clone, Copy)]
pub struct Simd128(pub v128);

impl F32Vec for Simd128 {
    const LANES: usize = 4;
    #[inline(always)]
    fn zero() -> Self {
        Simd128(f32x4_splat(0.0))
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        Simd128(f32x4_splat(x))
    }
    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        Simd128(v128_load(ptr as *const v128))
    }
    #[inline(always)]
    unsafe fn load_bf16(ptr: *const u16) -> Self {
        let h = u32x4_extend_low_u16x8(v128_load64_zero(ptr as *const u64));
        Simd128(i32x4_shl(h, 16))
    }
    #[inline(always)]
    unsafe fn load_i8(ptr: *const i8) -> Self {
        let b = v128_load32_zero(ptr as *const u32);
        Simd128(f32x4_convert_i32x4(i32x4_extend_low_i16x8(i16x8_extend_low_i8x16(b))))
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        v128_store(ptr as *mut v128, self.0)
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Simd128(f32x4_add(self.0, o.0))
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Simd128(f32x4_sub(self.0, o.0))
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Simd128(f32x4_mul(self.0, o.0))
    }
    /// Baseline simd128 has no fused multiply-add: multiply then add.
    #[cfg(not(target_feature = "relaxed-simd"))]
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Simd128(f32x4_add(f32x4_mul(self.0, b.0), c.0))
    }
    #[cfg(target_feature = "relaxed-simd")]
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Simd128(f32x4_relaxed_madd(self.0, b.0, c.0))
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        Simd128(f32x4_pmax(self.0, o.0))
    }
    #[inline(always)]
    fn reduce_sum(self) -> f32 {
        f32x4_extract_lane::<0>(self.0) + f32x4_extract_lane::<1>(self.0) + f32x4_extract_lane::<2>(self.0) + f32x4_extract_lane::<3>(self.0)
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        let a = f32x4_extract_lane::<0>(self.0).max(f32x4_extract_lane::<1>(self.0));
        let b = f32x4_extract_lane::<2>(self.0).max(f32x4_extract_lane::<3>(self.0));
        a.max(b)
    }
    #[inline(always)]
    unsafe fn transpose_block(src: *const f32, ld: usize, dst: *mut f32, ldd: usize) {
        let r0 = v128_load(src as *const v128);
        let r1 = v128_load(src.add(ld) as *const v128);
        let r2 = v128_load(src.add(2 * ld) as *const v128);
        let r3 = v128_load(src.add(3 * ld) as *const v128);
        let t0 = i32x4_shuffle::<0, 4, 1, 5>(r0, r1);
        let t1 = i32x4_shuffle::<2, 6, 3, 7>(r0, r1);
        let t2 = i32x4_shuffle::<0, 4, 1, 5>(r2, r3);
        let t3 = i32x4_shuffle::<2, 6, 3, 7>(r2, r3);
        v128_store(dst as *mut v128, i32x4_shuffle::<0, 1, 4, 5>(t0, t2));
        v128_store(dst.add(ldd) as *mut v128, i32x4_shuffle::<2, 3, 6, 7>(t0, t2));
        v128_store(dst.add(2 * ldd) as *mut v128, i32x4_shuffle::<0, 1, 4, 5>(t1, t3));
        v128_store(dst.add(3 * ldd) as *mut v128, i32x4_shuffle::<2, 3, 6, 7>(t1, t3));
    }
}
