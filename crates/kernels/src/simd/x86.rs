//! AVX-512F and AVX2+FMA vectors. Which one runs is decided once at run time.
//! AVX-512 intrinsics are stable since Rust 1.89 (the crate's rust-version).

use super::F32Vec;
use std::arch::x86_64::*;
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    Scalar,
    Avx2,
    Avx512,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(0); // 0 = not yet detected

fn detect() -> Level {
    let hw = if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        Level::Avx512
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        Level::Avx2
    } else {
        Level::Scalar
    };
    // FERROGPT_SIMD lowers the level (never raises it), so tests can cover every path.
    // (`avx512` keeps the level and turns off the extensions of `ext()`.)
    match std::env::var("FERROGPT_SIMD").as_deref() {
        Ok("scalar") => Level::Scalar,
        Ok("avx2") if hw != Level::Scalar => Level::Avx2,
        _ => hw,
    }
}

/// AVX-512 extensions that a few kernels use beyond `Level::Avx512` (compact.rs's GEMVs):
/// bits of `ext()`. Each comes with avx512bw and avx512vl, which their kernels also use.
pub const EXT_BW: u8 = 1; // avx512bw (with avx512vl): byte and word instructions
pub const EXT_BF16: u8 = 2; // avx512_bf16: vdpbf16ps, vcvtne2ps2bf16
pub const EXT_VNNI: u8 = 4; // avx512_vnni: vpdpbusd

static EXT: AtomicU8 = AtomicU8::new(0x80); // 0x80 = not yet detected

fn detect_ext() -> u8 {
    if best() != Level::Avx512 || !(is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vl")) {
        return 0;
    }
    // FERROGPT_SIMD=avx512: plain AVX-512 (BW kept), so that the tests reach the paths
    // written for AVX-512 CPUs without BF16/VNNI (Skylake-X) on one that has them.
    if std::env::var("FERROGPT_SIMD").as_deref() == Ok("avx512") {
        return EXT_BW;
    }
    let mut e = EXT_BW;
    if is_x86_feature_detected!("avx512bf16") {
        e |= EXT_BF16;
    }
    if is_x86_feature_detected!("avx512vnni") {
        e |= EXT_VNNI;
    }
    e
}

/// The extensions (EXT_* bits) usable on this CPU at the level `best()` picked: none
/// below Avx512 (cached after the first call).
#[inline]
pub fn ext() -> u8 {
    let e = EXT.load(Ordering::Relaxed);
    if e != 0x80 {
        return e;
    }
    let e = detect_ext();
    EXT.store(e, Ordering::Relaxed);
    e
}

/// The best level this CPU supports (cached after the first call).
#[inline]
pub fn best() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        1 => Level::Scalar,
        2 => Level::Avx2,
        3 => Level::Avx512,
        _ => {
            let level = detect();
            LEVEL.store(
                match level {
                    Level::Scalar => 1,
                    Level::Avx2 => 2,
                    Level::Avx512 => 3,
                },
                Ordering::Relaxed,
            );
            level
        }
    }
}

/// The x86 prefetch hint `H` for the line holding `ptr` (both vector widths use it).
#[inline(always)]
fn prefetch<const H: i32>(ptr: *const f32) {
    // SAFETY: a prefetch is a hint: it never faults, whatever the address.
    unsafe { _mm_prefetch::<H>(ptr as *const i8) }
}

/// 16 lanes in a zmm register. Only constructed inside `#[target_feature(enable = "avx512f")]` code.
#[derive(Clone, Copy)]
pub struct Avx512(pub __m512);

// SAFETY (whole impl): these methods are only reached through `simd_kernel!`, which calls
// them from a function compiled with avx512f after runtime detection; loads and stores are
// unaligned and the caller guarantees LANES valid floats.
impl F32Vec for Avx512 {
    const LANES: usize = 16;
    #[inline(always)]
    fn zero() -> Self {
        unsafe { Avx512(_mm512_setzero_ps()) }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        unsafe { Avx512(_mm512_set1_ps(x)) }
    }
    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        Avx512(_mm512_loadu_ps(ptr))
    }
    #[inline(always)]
    unsafe fn load_bf16(ptr: *const u16) -> Self {
        let h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(ptr as *const __m256i));
        Avx512(_mm512_castsi512_ps(_mm512_slli_epi32::<16>(h)))
    }
    #[inline(always)]
    unsafe fn load_i8(ptr: *const i8) -> Self {
        Avx512(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(ptr as *const __m128i))))
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        _mm512_storeu_ps(ptr, self.0)
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        unsafe { Avx512(_mm512_add_ps(self.0, o.0)) }
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        unsafe { Avx512(_mm512_sub_ps(self.0, o.0)) }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        unsafe { Avx512(_mm512_mul_ps(self.0, o.0)) }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        unsafe { Avx512(_mm512_fmadd_ps(self.0, b.0, c.0)) }
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        unsafe { Avx512(_mm512_max_ps(self.0, o.0)) }
    }
    #[inline(always)]
    fn reduce_sum(self) -> f32 {
        unsafe { _mm512_reduce_add_ps(self.0) }
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        unsafe { _mm512_reduce_max_ps(self.0) }
    }
    const PREFETCH: bool = true;
    #[inline(always)]
    fn prefetch_l2(ptr: *const f32) {
        prefetch::<_MM_HINT_T1>(ptr)
    }
    #[inline(always)]
    fn prefetch_write(ptr: *const f32) {
        prefetch::<_MM_HINT_ET0>(ptr) // PREFETCHW
    }
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    unsafe fn transpose_block(src: *const f32, ld: usize, dst: *mut f32, ldd: usize) {
        let mut r = [_mm512_setzero_ps(); 16];
        for i in 0..16 {
            r[i] = _mm512_loadu_ps(src.add(i * ld));
        }
        // Pairs of rows interleaved, then 4×4 blocks transposed within each 128-bit lane:
        // u[4q + c] lane L = column 4L + c, rows 4q..4q+4.
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..16 / 2 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let mut u = [_mm512_setzero_ps(); 16];
        for q in 0..16 / 4 {
            u[4 * q] = _mm512_shuffle_ps::<0x44>(t[4 * q], t[4 * q + 2]);
            u[4 * q + 1] = _mm512_shuffle_ps::<0xEE>(t[4 * q], t[4 * q + 2]);
            u[4 * q + 2] = _mm512_shuffle_ps::<0x44>(t[4 * q + 1], t[4 * q + 3]);
            u[4 * q + 3] = _mm512_shuffle_ps::<0xEE>(t[4 * q + 1], t[4 * q + 3]);
        }
        // Then the 4×4 grid of 128-bit lanes: output row 4L + c = lane L of u[c], u[4+c],
        // u[8+c], u[12+c].
        for c in 0..4 {
            let x0 = _mm512_shuffle_f32x4::<0x44>(u[c], u[4 + c]);
            let x1 = _mm512_shuffle_f32x4::<0xEE>(u[c], u[4 + c]);
            let y0 = _mm512_shuffle_f32x4::<0x44>(u[8 + c], u[12 + c]);
            let y1 = _mm512_shuffle_f32x4::<0xEE>(u[8 + c], u[12 + c]);
            _mm512_storeu_ps(dst.add(c * ldd), _mm512_shuffle_f32x4::<0x88>(x0, y0));
            _mm512_storeu_ps(dst.add((4 + c) * ldd), _mm512_shuffle_f32x4::<0xDD>(x0, y0));
            _mm512_storeu_ps(dst.add((8 + c) * ldd), _mm512_shuffle_f32x4::<0x88>(x1, y1));
            _mm512_storeu_ps(dst.add((12 + c) * ldd), _mm512_shuffle_f32x4::<0xDD>(x1, y1));
        }
    }
}

/// 8 lanes in a ymm register. Only constructed inside `#[target_feature(enable = "avx2,fma")]` code.
#[derive(Clone, Copy)]
pub struct Avx2(pub __m256);

// SAFETY (whole impl): as for Avx512, with avx2+fma.
impl F32Vec for Avx2 {
    const LANES: usize = 8;
    #[inline(always)]
    fn zero() -> Self {
        unsafe { Avx2(_mm256_setzero_ps()) }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        unsafe { Avx2(_mm256_set1_ps(x)) }
    }
    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        Avx2(_mm256_loadu_ps(ptr))
    }
    #[inline(always)]
    unsafe fn load_bf16(ptr: *const u16) -> Self {
        let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(ptr as *const __m128i));
        Avx2(_mm256_castsi256_ps(_mm256_slli_epi32::<16>(h)))
    }
    #[inline(always)]
    unsafe fn load_i8(ptr: *const i8) -> Self {
        Avx2(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(ptr as *const __m128i))))
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        _mm256_storeu_ps(ptr, self.0)
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        unsafe { Avx2(_mm256_add_ps(self.0, o.0)) }
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        unsafe { Avx2(_mm256_sub_ps(self.0, o.0)) }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        unsafe { Avx2(_mm256_mul_ps(self.0, o.0)) }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        unsafe { Avx2(_mm256_fmadd_ps(self.0, b.0, c.0)) }
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        unsafe { Avx2(_mm256_max_ps(self.0, o.0)) }
    }
    #[inline(always)]
    fn reduce_sum(self) -> f32 {
        unsafe {
            let lo = _mm256_castps256_ps128(self.0);
            let hi = _mm256_extractf128_ps(self.0, 1);
            let s = _mm_add_ps(lo, hi);
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        unsafe {
            let lo = _mm256_castps256_ps128(self.0);
            let hi = _mm256_extractf128_ps(self.0, 1);
            let s = _mm_max_ps(lo, hi);
            let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
            _mm_cvtss_f32(s)
        }
    }
    const PREFETCH: bool = true;
    #[inline(always)]
    fn prefetch_l2(ptr: *const f32) {
        prefetch::<_MM_HINT_T1>(ptr)
    }
    #[inline(always)]
    fn prefetch_write(ptr: *const f32) {
        prefetch::<_MM_HINT_ET0>(ptr) // PREFETCHW
    }
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    unsafe fn transpose_block(src: *const f32, ld: usize, dst: *mut f32, ldd: usize) {
        let mut r = [_mm256_setzero_ps(); 8];
        for i in 0..8 {
            r[i] = _mm256_loadu_ps(src.add(i * ld));
        }
        let mut t = [_mm256_setzero_ps(); 8];
        for i in 0..8 / 2 {
            t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // u[4q + c] lane L = column 4L + c, rows 4q..4q+4 (as in Avx512).
        let mut u = [_mm256_setzero_ps(); 8];
        for q in 0..8 / 4 {
            u[4 * q] = _mm256_shuffle_ps::<0x44>(t[4 * q], t[4 * q + 2]);
            u[4 * q + 1] = _mm256_shuffle_ps::<0xEE>(t[4 * q], t[4 * q + 2]);
            u[4 * q + 2] = _mm256_shuffle_ps::<0x44>(t[4 * q + 1], t[4 * q + 3]);
            u[4 * q + 3] = _mm256_shuffle_ps::<0xEE>(t[4 * q + 1], t[4 * q + 3]);
        }
        for c in 0..4 {
            _mm256_storeu_ps(dst.add(c * ldd), _mm256_permute2f128_ps::<0x20>(u[c], u[4 + c]));
            _mm256_storeu_ps(dst.add((4 + c) * ldd), _mm256_permute2f128_ps::<0x31>(u[c], u[4 + c]));
        }
    }
}
