//! NEON vectors for aarch64 (always present there, so no runtime detection).

use super::F32Vec;
use core::arch::aarch64::*;

/// 4 lanes in a q register.
#[derive(Clone, Copy)]
pub struct Neon(pub float32x4_t);

// SAFETY (whole impl): NEON is mandatory on aarch64; loads/stores are unaligned and the
// caller guarantees LANES valid floats.
impl F32Vec for Neon {
    const LANES: usize = 4;
    #[inline(always)]
    fn zero() -> Self {
        unsafe { Neon(vdupq_n_f32(0.0)) }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        unsafe { Neon(vdupq_n_f32(x)) }
    }
    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        Neon(vld1q_f32(ptr))
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        vst1q_f32(ptr, self.0)
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        unsafe { Neon(vaddq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        unsafe { Neon(vsubq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        unsafe { Neon(vmulq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        unsafe { Neon(vfmaq_f32(c.0, self.0, b.0)) }
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        unsafe { Neon(vmaxq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    fn reduce_sum(self) -> f32 {
        unsafe { vaddvq_f32(self.0) }
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        unsafe { vmaxvq_f32(self.0) }
    }
    #[inline(always)]
    unsafe fn transpose_block(src: *const f32, ld: usize, dst: *mut f32, ldd: usize) {
        let a = vtrnq_f32(vld1q_f32(src), vld1q_f32(src.add(ld)));
        let b = vtrnq_f32(vld1q_f32(src.add(2 * ld)), vld1q_f32(src.add(3 * ld)));
        vst1q_f32(dst, vcombine_f32(vget_low_f32(a.0), vget_low_f32(b.0)));
        vst1q_f32(dst.add(ldd), vcombine_f32(vget_low_f32(a.1), vget_low_f32(b.1)));
        vst1q_f32(dst.add(2 * ldd), vcombine_f32(vget_high_f32(a.0), vget_high_f32(b.0)));
        vst1q_f32(dst.add(3 * ldd), vcombine_f32(vget_high_f32(a.1), vget_high_f32(b.1)));
    }
}
