use super::F32Vec;

/// One lane: the portable fallback and the model the vector types must agree with.
#[derive(Clone, Copy)]
pub struct Scalar(pub f32);

impl F32Vec for Scalar {
    const LANES: usize = 1;
    #[inline(always)]
    fn zero() -> Self {
        Scalar(0.0)
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        Scalar(x)
    }
    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        Scalar(*ptr)
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        *ptr = self.0
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Scalar(self.0 + o.0)
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Scalar(self.0 - o.0)
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Scalar(self.0 * o.0)
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Scalar(self.0 * b.0 + c.0)
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        Scalar(if self.0 > o.0 { self.0 } else { o.0 })
    }
    #[inline(always)]
    fn reduce_sum(self) -> f32 {
        self.0
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        self.0
    }
    #[inline(always)]
    unsafe fn transpose_block(src: *const f32, _ld: usize, dst: *mut f32, _ldd: usize) {
        *dst = *src;
    }
}
