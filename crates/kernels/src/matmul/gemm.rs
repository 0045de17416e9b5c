//! The GEMM under the linear layer: C (M,N) = A (M,K) · B (K,N), overwriting (plus an
//! optional bias row) or accumulating into C. BLIS structure:
//!
//! ```text
//! for jc in N by NC:                      one column block of C
//!   for pc in K by KC:                    one slice of the contraction (KC = K up to
//!                                         768 on AVX-512: one pass over C; 256 when
//!                                         A is column-major, doutᵀ in dweight)
//!     pack B[pc.., jc..] -> (KC, NC)      shared scratch, split over threads (for_each #1);
//!                                         KC×NC is sized to sit in L2
//!     for each task (disjoint tile of C): for_each #2
//!       for ic in its rows by MC:
//!         pack A[ic.., pc..] -> (MC, KC)  this thread's scratch (row-major A is read in
//!                                         place; only a partial last panel is packed)
//!         for ir in MC by MR:             A micro-panel (MR, KC) stays in L1
//!           for jr in its columns by NR:  B micro-panels stream from L2
//!             microkernel: MR×NR tile of C held in registers for all of KC
//! ```
//!
//! The ir/jr order is the reverse of BLIS's: a (KC, NR) micro-panel of B is 196 KB at
//! KC = 768, NR = 64, far past L1 (48 KB), while the (MR, KC) A micro-panel is 18 KB.
//! KC = K then costs no extra traffic, and one pass over C instead of two is what lifted
//! the wide outputs (OC = 3072, 2304) from 72% to over 80% of peak.
//!
//! Tried and dropped (on this 2-core AVX-512 Xeon): computing Cᵀ = Bᵀ·Aᵀ so that
//! the weight is a row-major A read in place (no transposing pack of weightᵀ) and C is
//! written through a transposed store. It skips packing 154 MB at (256, 768, 50257),
//! yet ran 5–8 points of peak slower on every forward shape: the microkernel then
//! streams the weight from DRAM itself. A 12×32 AVX-512 tile (less B traffic per
//! multiply-add) ran out of general registers for its 12 row pointers: far slower.
//!
//! With several threads, wide products whose A is read in place (the forward pass and
//! dinp) split the columns instead: each task runs the loops above on its own range of
//! NR panels with its thread's own B blocks (see `gemm`). There are up to 8 tasks per
//! thread, handed out as threads come free, not one: on a machine shared with other work
//! a thread that loses its core for a while then leaves its remaining ranges to the other.
//!
//! The lm head, (256, 768, 50257), on a 2-core Zen 4 EPYC (1 MB L2 a core, 32 MB L3),
//! on a machine shared with other work (bench/gemm-scale.js, medians of 5 rounds on idle
//! cores): 100 GFLOPS on 1 thread and 196-198 on 2, ~79% of the FMA peak (126 a core),
//! against OpenBLAS 0.3.21's 92 and 185 and onnxruntime's 93 and 157. By thread CPU
//! time the rate is ~80%; without the B pack (timing only: a stale block) ~90%: the
//! transposing pack of the 154 MB weight, with its stream from DRAM, is ~11% of the call
//! (perf samples agree), the weight's DRAM read alone ~3% (154 MB at ~30 GB/s of a
//! ~100-200 ms call). Each B block meets all 256 rows of A before the next is packed.
//! With one core taken by another process, 2 threads run no faster than 1 (each holds
//! its core half the time), which is where figures like 105 GFLOPS come from.
//!
//! A and B are read through strides, so the same packing reads inp, weight, weightᵀ, dout
//! and doutᵀ and one microkernel serves the forward and both backward products. The
//! microkernel is written once over `F32Vec`; `with_tile!` picks the register tile that
//! fits each instruction set's register file.

use crate::simd::F32Vec;
use crate::{simd_kernel, Parallel};

/// A read-only strided matrix: element (i, j) is at `ptr[i*rs + j*cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

/// One GEMM call. `c` is row-major with row stride `ldc`.
#[derive(Clone, Copy)]
pub(crate) struct Problem {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Mat, // (M, K)
    pub b: Mat, // (K, N)
    pub c: *mut f32, // (M, N), row stride ldc
    pub ldc: usize,
    /// C += A·B when true; otherwise C = A·B + bias.
    pub accumulate: bool,
    /// (N) or null; read only when `accumulate` is false.
    pub bias: *const f32,
    /// B already packed (`pack_b_all`): its blocks are read in place and nothing is
    /// packed. `PackedB::NONE` packs B block by block, as usual.
    pub packed: PackedB,
}

/// A whole B (K, N) packed once, as `pack_b_all` lays it out for the forward pass's
/// blocking: the slices of depth kb (`balanced_block(K, KC, 1)`) one after another, slice
/// pc at float pc·P (P = `row_stride`, N rounded up to a multiple of
/// PACKED_ROW_MULTIPLE), each slice the NR panels (kb, NR) of all N columns. Any (kb, nb)
/// block `gemm_blocks` would pack (its columns start on a panel) is then one contiguous
/// run of it, with the same floats the block's packing writes.
#[derive(Clone, Copy)]
pub(crate) struct PackedB {
    pub ptr: *const f32,
    /// Floats per k row of the packed B: P.
    pub row_stride: usize,
    /// The panel of the whole packed B that this problem's column 0 starts (a column
    /// split task's sub-problem starts part-way).
    pub first_panel: usize,
}

impl PackedB {
    pub const NONE: PackedB = PackedB { ptr: core::ptr::null(), row_stride: 0, first_panel: 0 };

    fn is_some(self) -> bool {
        !self.ptr.is_null()
    }

    /// The packed block of slice pc (depth kb), columns from jc (a panel boundary) on.
    fn block(self, nr: usize, jc: usize, pc: usize, kb: usize) -> *const f32 {
        // wrapping_add: also the address of a prefetch hint, which may be one past the end.
        self.ptr.wrapping_add(pc * self.row_stride + (self.first_panel + jc / nr) * kb * nr)
    }
}

/// The packed B of every problem is padded to a multiple of this many columns: one that
/// every blocking's NR divides (64, 16, 12, 16, 4), so that the packed size is known
/// without knowing which instruction set packs it.
pub(crate) const PACKED_ROW_MULTIPLE: usize = 192;
const _: () = {
    let mut i = 0;
    while i < ALL_LANES.len() {
        assert!(PACKED_ROW_MULTIPLE % blocking_for(ALL_LANES[i]).nr == 0);
        i += 1;
    }
};

// SAFETY: a Problem is only built by `matmul.rs` from slices that outlive the `gemm` call,
// and `gemm` returns only after every task has returned (`for_each` joins). Tasks read A,
// B and bias, and write disjoint tiles of C, so sharing the pointers between threads is
// race-free.
unsafe impl Send for Problem {}
// SAFETY: see Send above.
unsafe impl Sync for Problem {}

/// Cache blocking and register tile for one vector width.
#[derive(Clone, Copy)]
pub(crate) struct Blocking {
    /// Micro-tile rows (broadcast values of A per k).
    pub mr: usize,
    /// Micro-tile columns (NV vectors of B per k).
    pub nr: usize,
    /// Depth of one packed slice. Each slice costs a pass over C (read and written
    /// back), so it is as deep as an (MR, KC) A micro-panel fitting in L1 allows.
    pub kc: usize,
    /// Rows of A packed at once, where A is packed.
    pub mc: usize,
    /// Floats of packed B per (KC, NC) block: it is streamed from L2 once per A
    /// micro-panel, so it should take about half of a core's L2 (2 MB here).
    pub b_block: usize,
}

// Register tiles, MR rows × NV vectors. Accumulators MR*NV plus NV loads of B and one
// broadcast of A must fit the register file:
//   AVX-512 (32 zmm):  6 × 4 (=64 columns): 24 accumulators + 4 + 1. Against 8 × 3 (48
//     columns) on this Xeon: the same on the GPT-2 shapes and 5-20% faster on the
//     nanoGPT ones, whose 128 columns 48 does not divide (a third of a panel wasted).
//   AVX2    (16 ymm):  6 × 2 (=16): 12 + 2 + 1.
//   NEON    (32 q):    8 × 3 (=12): 24 + 3 + 1.
//   simd128 (16 xmm in V8 on x86-64; no FMA): 4 × 3 (=12): 12 + 3 + 1. Timed in Node 20
//     (CPU time, this Xeon): 4×3 28–29 GFLOPS forward, 4×4 the same forward but 10%
//     slower backward, 4×2 26, 6×2 / 8×2 / 5×2 ≤ 20 (spills), 3×4 25.
//   relaxed SIMD (fused: no register for the product): 3 × 4 (=16): 12 + 4 + 1. Timed in
//     Node 20 on a Zen 4 EPYC, one thread, the four 1024-row GPT-2 shapes: 3×4 31 GFLOPS
//     forward (87% of the measured FMA peak, 36), 4×3 30, 6×2 25.
//   Scalar:            4 × 4.
const MR16: usize = 6;
const NV16: usize = 4;
const MR8: usize = 6;
const NV8: usize = 2;
#[cfg(all(target_arch = "wasm32", not(target_feature = "relaxed-simd")))]
const MR4: usize = 4;
#[cfg(all(target_arch = "wasm32", not(target_feature = "relaxed-simd")))]
const NV4: usize = 3;
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
const MR4: usize = 3;
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
const NV4: usize = 4;
#[cfg(not(target_arch = "wasm32"))]
const MR4: usize = 8;
#[cfg(not(target_arch = "wasm32"))]
const NV4: usize = 3;
const MR1: usize = 4;
const NV1: usize = 4;

/// Calls `$f::<V, MR, NV>(args)` with the register tile for `V`'s width. Keep in step
/// with `blocking_for`.
macro_rules! with_tile {
    ($V:ident, $f:ident ( $($arg:expr),* )) => {
        match $V::LANES {
            16 => $f::<$V, MR16, NV16>($($arg),*),
            8 => $f::<$V, MR8, NV8>($($arg),*),
            4 => $f::<$V, MR4, NV4>($($arg),*),
            _ => $f::<$V, MR1, NV1>($($arg),*),
        }
    };
}

/// Blocking for a vector width (see `with_tile!` for MR, NR).
pub(crate) const fn blocking_for(lanes: usize) -> Blocking {
    match lanes {
        // (6, 768) A micro-panel: 18 KB of a 48 KB L1d. (KC = 1024, one pass over C for
        // K = 1024, timed the same or slower.)
        16 => Blocking { mr: MR16, nr: NV16 * 16, kc: 768, mc: 192, b_block: B_BLOCK },
        8 => Blocking { mr: MR8, nr: NV8 * 8, kc: 512, mc: 144, b_block: B_BLOCK },
        4 => Blocking { mr: MR4, nr: NV4 * 4, kc: 256, mc: 128, b_block: B_BLOCK },
        _ => Blocking { mr: MR1, nr: NV1, kc: 256, mc: 64, b_block: B_BLOCK },
    }
}

/// Slice depth for products whose A is column-major (doutᵀ in dweight): shallower than
/// KC. The extra passes over C are cheap there (dweight is OC×C, small) and each piece of
/// A is reused sooner: +2-7% on the nanoGPT and GPT-2 dweight products, the lm head's
/// included (gemm_bench, cold caches; 384, 128 and 96 time the same as 256).
const KC_TRANSPOSED_A: usize = 256;

/// The blocking `gemm` uses for a vector width and A's layout.
fn blocking(lanes: usize, transposed_a: bool) -> Blocking {
    let bl = blocking_for(lanes);
    if transposed_a {
        Blocking { kc: bl.kc.min(KC_TRANSPOSED_A), ..bl }
    } else {
        bl
    }
}

/// Widest column stride (floats) at which a column-major A is read in place rather than
/// packed. doutᵀ in dweight at nanoGPT's OC = 128-512: 3-11% faster in place than packed
/// (gemm_bench, cold caches); at GPT-2's OC = 2304 and 3072, 9% and 55% slower.
const DIRECT_COLUMN_STRIDE: usize = 512;

/// Floats in a packed B block: 1 MB, half of a 2 MB L2 (the rest holds A and C lines).
/// On Zen 4, whose L2 is 1 MB, 512 KB blocks timed 75% -> 81% of peak (thread CPU time)
/// on the lm head and 85-86% -> 80-84% on the 1024-row GPT-2 shapes, on a loaded
/// machine: not clear enough to change it.
const B_BLOCK: usize = 256 * 1024;

/// Columns of B per block for a slice of depth kb: as many whole NR panels as fit in
/// `b_block` floats, at least one.
fn nc_for(bl: Blocking, kb: usize) -> usize {
    (bl.b_block / kb.max(1) / bl.nr).max(1) * bl.nr
}

/// Every vector width some build of this crate can pick; scratch is sized for the worst.
const ALL_LANES: [usize; 4] = [16, 8, 4, 1];

simd_kernel! {
    /// The vector width the GEMM runs with on this machine.
    fn active_lanes() -> usize => active_lanes_impl
}

#[inline(always)]
fn active_lanes_impl<V: F32Vec>() -> usize {
    V::LANES
}

/// Floats of alignment slack: packed buffers start on 64-byte boundaries.
const ALIGN: usize = 16;

fn round_up(x: usize, to: usize) -> usize {
    (x + to - 1) / to * to
}

fn ceil_div(x: usize, y: usize) -> usize {
    (x + y - 1) / y
}

/// Splits `len` into equal blocks of at most `max` (rounded up to `unit`), so that the
/// last block is not a sliver: K = 300 with KC = 256 becomes 152 + 148, not 256 + 44.
pub(crate) fn balanced_block(len: usize, max: usize, unit: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let blocks = ceil_div(len, max);
    round_up(ceil_div(len, blocks), unit).min(round_up(max, unit))
}

/// Buffer sizes (floats) for one problem: (shared packed B, packed A per thread).
fn buffer_lens(bl: Blocking, m: usize, n: usize, k: usize) -> (usize, usize) {
    let kcb = balanced_block(k, bl.kc, 1);
    let ncb = balanced_block(n, nc_for(bl, kcb), bl.nr);
    let mcb = round_up(m.min(bl.mc), bl.mr);
    (round_up(kcb * ncb, ALIGN), round_up(mcb * kcb, ALIGN))
}

/// Scratch floats `gemm` needs for an (M,K)·(K,N) product on `threads` threads, whatever
/// instruction set the machine picks: one shared B block (row split) or one per thread
/// (column split), plus a packed A buffer per thread.
pub(crate) fn scratch_len(m: usize, n: usize, k: usize, threads: usize) -> usize {
    let threads = threads.max(1);
    // Either layout of A (the caller's product may have either).
    ALL_LANES
        .iter()
        .flat_map(|&lanes| [blocking(lanes, false), blocking(lanes, true)])
        .map(|bl| {
            let (b, a) = buffer_lens(bl, m, n, k);
            (ALIGN + b + threads * a).max(threads * column_split_scratch(bl, m, n, k, threads))
        })
        .max()
        .unwrap_or(0)
}

/// Scratch floats per thread of the column split. A thread's B blocks can be wider than
/// the whole problem's (512 columns make one block of 512, 896 make two of 448), so its
/// B buffer holds the widest block any share up to `widest` columns can have.
fn column_split_scratch(bl: Blocking, m: usize, n: usize, k: usize, threads: usize) -> usize {
    let widest = ceil_div(ceil_div(n, bl.nr), threads) * bl.nr;
    let kcb = balanced_block(k, bl.kc, 1);
    let b = round_up(kcb * widest.min(round_up(nc_for(bl, kcb), bl.nr)), ALIGN);
    let (_, a) = buffer_lens(bl, m, n, k);
    ALIGN + b + a
}

/// Column split needs at least this many NR-column panels per thread; below it the
/// threads share each B block and split the rows instead.
const COLUMN_SPLIT_PANELS: usize = 4;

/// Most column-split tasks per thread (see `column_tasks`).
const COLUMN_TASKS_PER_THREAD: usize = 8;

/// How many tasks the column split cuts its NR panels into: a multiple of `threads`, up to
/// COLUMN_TASKS_PER_THREAD each, but no task narrower than one B block. The pool hands
/// tasks out as threads come free, so when one core is taken by another process for a
/// while the other thread takes over its remaining tasks; with one task per thread the
/// call waited for the slow thread's whole half.
fn column_tasks(bl: Blocking, k: usize, np_all: usize, threads: usize) -> usize {
    let nc_panels = nc_for(bl, balanced_block(k, bl.kc, 1)) / bl.nr;
    let per_thread = ceil_div(ceil_div(np_all, nc_panels), threads);
    threads * per_thread.clamp(1, COLUMN_TASKS_PER_THREAD)
}

/// Below this many multiply-adds the product runs on the calling thread: waking the
/// pool costs more than it saves.
const SERIAL_FMAS: usize = 1 << 17;

/// C (M,N) = A·B [+ bias] or C += A·B, on `par`'s threads, with packing buffers from
/// `scratch` (at least `scratch_len(m, n, k, par.threads())` floats).
pub(crate) fn gemm(par: &dyn Parallel, scratch: &mut [f32], p: Problem) {
    if p.m == 0 || p.n == 0 {
        return;
    }
    if p.k == 0 {
        if !p.accumulate {
            fill_bias(p);
        }
        return;
    }
    let bl = blocking(active_lanes(), p.a.rs == 1);
    let threads = par.threads().max(1);
    let np_all = ceil_div(p.n, bl.nr);
    if threads > 1 && p.m * p.n * p.k >= SERIAL_FMAS && np_all >= COLUMN_SPLIT_PANELS * threads && p.a.cs == 1 {
        // Column split: each task owns a range of whole NR panels of C and runs the
        // serial algorithm on it with its thread's own B blocks (`column_tasks` says how
        // many ranges). Nothing is shared but A (read
        // only) and no thread waits for another until the end, where the row split joins
        // twice per B block and reads half of every packed block from the other core's
        // L2. Two threads went from 1.6-1.9x one thread to 1.96-1.98x on the GPT-2 shapes
        // (256x768x50257: 229 -> 281 GFLOPS).
        let per = column_split_scratch(bl, p.m, p.n, p.k, threads);
        assert!(scratch.len() >= threads * per, "matmul: scratch too small");
        let base = crate::parallel::SyncPtr(scratch.as_mut_ptr());
        let tasks = column_tasks(bl, p.k, np_all, threads);
        let p = &p; // the closure then captures the Sync Problem, not its raw fields
        par.for_each(tasks, &|task, thread| {
            let (q0, q1) = split_front(np_all, tasks, task);
            let (j0, j1) = (q0 * bl.nr, (q1 * bl.nr).min(p.n));
            if j0 >= j1 {
                return;
            }
            // The last block prefetches the first block of task + threads: tasks are
            // claimed in order, so with the threads in step that is the one this thread
            // runs next (a wrong guess only fetches lines another thread is about to read).
            // Without it every task begins by packing from L3 or DRAM (c_attn's forward,
            // (1024, 768, 2304), has one B block per task). Its effect was within the noise
            // here; the 9% c_attn lost with 8 tasks a thread came from `split_front`'s case.
            let (n0, n1) = split_front(np_all, tasks, task + threads);
            let (n0, n1) = (n0 * bl.nr, (n1 * bl.nr).min(p.n));
            let after = if task + threads < tasks && n0 < n1 {
                let kb = balanced_block(p.k, bl.kc, 1);
                Region::of_block(*p, bl, n0, balanced_block(n1 - n0, nc_for(bl, kb), bl.nr).min(n1 - n0), 0, kb)
            } else {
                Region::NONE
            };
            // SAFETY: concurrent tasks run on distinct threads (for_each's contract), so they
            // use disjoint `per`-float slices of scratch (checked above), and tasks write
            // disjoint column ranges j0..j1 of C; the sub-problem's B, C and bias
            // pointers stay inside the caller's operands (columns j0..j1 < N).
            unsafe {
                let sub = Problem {
                    n: j1 - j0,
                    b: Mat { ptr: p.b.ptr.add(j0 * p.b.cs), ..p.b },
                    packed: PackedB { first_panel: p.packed.first_panel + q0, ..p.packed },
                    c: p.c.add(j0),
                    bias: if p.bias.is_null() { p.bias } else { p.bias.add(j0) },
                    ..*p
                };
                let mine = core::slice::from_raw_parts_mut(base.get().add(thread * per), per);
                gemm_blocks(&crate::Serial, mine, sub, bl, after);
            }
        });
        return;
    }
    gemm_blocks(par, scratch, p, bl, Region::NONE);
}

/// The blocked GEMM of the module comment on `par`'s threads (rows or tiles split per B
/// block), with its packing buffers in `scratch`. The last block prefetches `after`.
fn gemm_blocks(par: &dyn Parallel, scratch: &mut [f32], p: Problem, bl: Blocking, after: Region) {
    let threads = par.threads().max(1);
    let (b_len, a_len) = buffer_lens(bl, p.m, p.n, p.k);
    assert!(scratch.len() >= ALIGN + b_len + threads * a_len, "matmul: scratch too small");
    let base = scratch.as_mut_ptr();
    let skew = (base as usize / 4).wrapping_neg() % ALIGN;
    // SAFETY: skew < ALIGN and the assert above leaves ALIGN floats of slack.
    let bbuf = unsafe { base.add(skew) }; // (KC, NC) packed B, shared
    // SAFETY: b_len + threads*a_len floats follow bbuf inside scratch (assert above).
    let abase = unsafe { bbuf.add(b_len) }; // threads × (MC, KC) packed A

    let kcb = balanced_block(p.k, bl.kc, 1);
    let ncb = balanced_block(p.n, nc_for(bl, kcb), bl.nr);
    let mc = round_up(p.m.min(bl.mc), bl.mr);
    let serial = p.m * p.n * p.k < SERIAL_FMAS || threads == 1;
    let mp = ceil_div(p.m, bl.mr);

    let mut jc = 0;
    while jc < p.n {
        let nb = ncb.min(p.n - jc);
        let np = ceil_div(nb, bl.nr);
        let mut pc = 0;
        while pc < p.k {
            let kb = kcb.min(p.k - pc);
            // The block after this one, whose source the compute phase prefetches.
            let (jc2, pc2) = if pc + kb < p.k { (jc, pc + kb) } else { (jc + nb, 0) };
            let next = if jc2 < p.n { Region::of_block(p, bl, jc2, ncb.min(p.n - jc2), pc2, kcb.min(p.k - pc2)) } else { after };
            // A packed B is read where it lies (compute tasks only read bbuf).
            let bbuf = if p.packed.is_some() { p.packed.block(bl.nr, jc, pc, kb) as *mut f32 } else { bbuf };
            let blk = Block { p, bbuf, abase, a_len, jc, nb, np, pc, kb, mc, mt: 1, nt: 1, tasks: 1, next };

            if !p.packed.is_some() {
                let pack_tasks = if serial { 1 } else { threads.min(np) };
                let pack = Block { tasks: pack_tasks, ..blk };
                // SAFETY: tasks pack disjoint micro-panels; operands and bbuf are checked above.
                par.for_each(pack_tasks, &|task, _thread| unsafe { pack_b_task(pack, task) });
            }

            let (mt, nt) = if serial { (1, 1) } else { grid(threads, mp, np, bl) };
            let comp = Block { mt, nt, tasks: mt * nt, ..blk };
            // SAFETY: the B block is packed (the for_each above has joined); tasks write
            // disjoint tiles of C, and for_each gives concurrent calls distinct threads.
            par.for_each(mt * nt, &|task, thread| unsafe { compute_task(comp, task, thread) });
            pc += kb;
        }
        jc += nb;
    }
}

/// The (KC, NC) slice being multiplied and where its buffers live.
#[derive(Clone, Copy)]
struct Block {
    p: Problem,
    bbuf: *mut f32,  // (KC, NC) packed B: np micro-panels of (kb, NR)
    abase: *mut f32, // threads × a_len floats
    a_len: usize,
    jc: usize,
    nb: usize,
    np: usize,
    pc: usize,
    kb: usize,
    mc: usize,
    mt: usize,
    nt: usize,
    tasks: usize,
    /// Source of the next block's B, prefetched into L2 during this block's compute.
    next: Region,
}

/// Cache lines of a strided 2-D region of an operand: `outer` runs of `run` contiguous
/// floats, `stride` floats apart, starting at `ptr`.
#[derive(Clone, Copy)]
struct Region {
    ptr: *const f32,
    outer: usize,
    stride: usize,
    run: usize,
}

/// Floats per 64-byte cache line.
const LINE: usize = 16;

impl Region {
    const NONE: Region = Region { ptr: core::ptr::null(), outer: 0, stride: 0, run: 0 };

    /// What the block B[pc..pc+kb, j0..j0+nb] of problem p is computed from: the source
    /// it is packed from, or the packed block itself (one run).
    fn of_block(p: Problem, bl: Blocking, j0: usize, nb: usize, pc: usize, kb: usize) -> Region {
        if p.packed.is_some() {
            Region { ptr: p.packed.block(bl.nr, j0, pc, kb), outer: 1, stride: 0, run: ceil_div(nb, bl.nr) * bl.nr * kb }
        } else {
            Region::of_b(p.b, j0, nb, pc, kb)
        }
    }

    /// B[pc..pc+kb, j0..j0+nb] as runs along its contiguous direction.
    fn of_b(b: Mat, j0: usize, nb: usize, pc: usize, kb: usize) -> Region {
        let ptr = b.ptr.wrapping_add(pc * b.rs + j0 * b.cs);
        if b.cs == 1 {
            Region { ptr, outer: kb, stride: b.rs, run: nb }
        } else if b.rs == 1 {
            Region { ptr, outer: nb, stride: b.cs, run: kb }
        } else {
            Region::NONE // no contiguous runs to prefetch
        }
    }

    fn lines_per_run(self) -> usize {
        ceil_div(self.run, LINE)
    }

    fn lines(self) -> usize {
        self.outer * self.lines_per_run()
    }

    /// Prefetches lines l0..l1 (numbered run by run) into L2.
    #[inline(always)]
    fn prefetch<V: F32Vec>(self, l0: usize, l1: usize) {
        if l0 >= l1 {
            return;
        }
        let lpr = self.lines_per_run();
        // One division per call, then stepping: these run between microkernel calls.
        let (mut o, mut i) = (l0 / lpr, l0 % lpr);
        for _ in l0..l1 {
            // wrapping_add: only an address for the hint, never dereferenced here.
            V::prefetch_l2(self.ptr.wrapping_add(o * self.stride + i * LINE));
            i += 1;
            if i == lpr {
                i = 0;
                o += 1;
            }
        }
    }
}

// SAFETY: as for Problem. Packing tasks write disjoint micro-panels of bbuf, compute
// tasks write only their thread's slice of abase (for_each never runs two tasks with the
// same thread index at once) and disjoint tiles of C; the two phases are separated by the
// join at the end of for_each.
unsafe impl Send for Block {}
// SAFETY: see Send above.
unsafe impl Sync for Block {}

/// Task grid (rows × columns of tiles) for the compute phase: the split of the MR-row
/// panels and NR-column panels that makes the largest task cheapest. Splitting columns
/// costs extra: each column task repacks its rows of A.
fn grid(threads: usize, mp: usize, np: usize, bl: Blocking) -> (usize, usize) {
    let t = threads.min(mp * np).max(1);
    let mut best = (1, 1);
    let mut best_cost = usize::MAX;
    for nt in 1..=t {
        if t % nt != 0 {
            continue;
        }
        let mt = t / nt;
        if mt > mp || nt > np {
            continue;
        }
        // Per k-step of the largest task: its multiply-adds, plus reading (or packing) its
        // rows of A once more per column task, at roughly 16 multiply-adds a float.
        let rows = ceil_div(mp, mt) * bl.mr;
        let cols = ceil_div(np, nt) * bl.nr;
        let cost = rows * cols + rows * 16;
        if cost < best_cost {
            best_cost = cost;
            best = (mt, nt);
        }
    }
    best
}

/// The part `[task*len/parts, (task+1)*len/parts)` of `0..len`.
fn split(len: usize, parts: usize, task: usize) -> (usize, usize) {
    (task * len / parts, (task + 1) * len / parts)
}

/// The part of `0..len` that task gets of `parts`, the longer parts first. The column
/// split's threads claim tasks in turn, so `split`'s alternating 4- and 5-panel ranges
/// (36 panels in 8) gave one thread all the 4s and the other all the 5s: 16 against 20
/// panels, c_attn's forward 8% slower on 2 idle threads. Longer first, each thread gets
/// its share of both.
pub(crate) fn split_front(len: usize, parts: usize, task: usize) -> (usize, usize) {
    let (base, rem) = (len / parts, len % parts);
    let start = task * base + task.min(rem);
    (start, start + base + usize::from(task < rem))
}

fn fill_bias(p: Problem) {
    for i in 0..p.m {
        for j in 0..p.n {
            // SAFETY: i < m and j < n, inside C (M, N) with row stride ldc; bias, when
            // non-null, has N floats.
            unsafe {
                *p.c.add(i * p.ldc + j) = if p.bias.is_null() { 0.0 } else { *p.bias.add(j) };
            }
        }
    }
}

simd_kernel! {
    /// Packs this task's share of the block's B micro-panels.
    /// Safety: `blk` was built by `gemm` (its buffers and operands are valid) and no
    /// other call packs the same task of the same block concurrently.
    unsafe fn pack_b_task(blk: Block, task: usize) => pack_b_task_impl
}

#[inline(always)]
fn pack_b_task_impl<V: F32Vec>(blk: Block, task: usize) {
    with_tile!(V, pack_b_tiled(blk, task))
}

#[inline(always)]
fn pack_b_tiled<V: F32Vec, const MR: usize, const NV: usize>(blk: Block, task: usize) {
    let nr = NV * V::LANES;
    let (q0, q1) = split(blk.np, blk.tasks, task);
    for q in q0..q1 {
        let j0 = blk.jc + q * nr;
        let nvalid = nr.min(blk.jc + blk.nb - j0);
        // SAFETY: micro-panel q of (kb, NR) floats lies inside bbuf (kb*np*NR <= b_len,
        // checked in gemm); B is read at rows pc..pc+kb < K and columns j0..j0+nvalid <= N.
        unsafe { pack_b_panel::<V, NV>(blk.p.b, j0, nvalid, blk.pc, blk.kb, blk.bbuf.add(q * nr * blk.kb)) }
    }
}

/// Packs B[pc..pc+kb, j0..j0+nvalid] into `dst` (kb, NR), k-major, zero-padding the
/// columns past nvalid.
///
/// # Safety
/// `dst` has kb*NR writable floats; the source rows and columns exist.
#[inline(always)]
unsafe fn pack_b_panel<V: F32Vec, const NV: usize>(b: Mat, j0: usize, nvalid: usize, pc: usize, kb: usize, dst: *mut f32) {
    let nr = NV * V::LANES;
    if b.cs == 1 {
        // Rows of B are contiguous (dout, inp): straight copies of NR floats per k.
        for k in 0..kb {
            let src = b.ptr.add((pc + k) * b.rs + j0);
            let d = dst.add(k * nr);
            if nvalid == nr {
                for v in 0..NV {
                    V::load(src.add(v * V::LANES)).store(d.add(v * V::LANES));
                }
            } else {
                for j in 0..nr {
                    *d.add(j) = if j < nvalid { *src.add(j) } else { 0.0 };
                }
            }
        }
    } else if b.rs == 1 {
        // Columns of B are contiguous (weightᵀ in the forward pass): transpose.
        pack_transposed::<V>(b.ptr.add(j0 * b.cs + pc), b.cs, nvalid, nr, kb, dst);
    } else {
        for k in 0..kb {
            for j in 0..nr {
                *dst.add(k * nr + j) = if j < nvalid { *b.ptr.add((pc + k) * b.rs + (j0 + j) * b.cs) } else { 0.0 };
            }
        }
    }
}

/// dst (kb, w) = the transpose of src (valid, kb) with row stride ld, zero-padding
/// columns valid..w. Goes LANES rows of k at a time, transposing LANES×LANES blocks in
/// registers where w allows, so that the rows of dst being written stay in L1.
///
/// # Safety
/// src has `valid` rows of kb floats at stride ld; dst has kb*w writable floats.
#[inline(always)]
pub(crate) unsafe fn pack_transposed<V: F32Vec>(src: *const f32, ld: usize, valid: usize, w: usize, kb: usize, dst: *mut f32) {
    let l = V::LANES;
    let mut k0 = 0;
    while k0 < kb {
        let kn = l.min(kb - k0);
        let d = dst.add(k0 * w);
        let mut j = 0;
        if kn == l && w % l == 0 {
            while j + l <= valid {
                V::transpose_block(src.add(j * ld + k0), ld, d.add(j), w);
                j += l;
            }
        }
        for j in j..valid {
            for kk in 0..kn {
                *d.add(kk * w + j) = *src.add(j * ld + k0 + kk);
            }
        }
        for j in valid..w {
            for kk in 0..kn {
                *d.add(kk * w + j) = 0.0;
            }
        }
        k0 += kn;
    }
}

/// Packs all of B (K, N) into `dst` (K × row_stride floats) in `PackedB`'s layout, for a
/// product whose A is row-major (the forward pass, whose blocking it uses), on `par`'s
/// threads. The padding columns of every slice are zeros.
pub(crate) fn pack_b_all(par: &dyn Parallel, b: Mat, k: usize, n: usize, row_stride: usize, dst: &mut [f32]) {
    assert!(row_stride % PACKED_ROW_MULTIPLE == 0 && row_stride >= n && dst.len() >= k * row_stride, "pack: packed buffer too small");
    let bl = blocking(active_lanes(), false);
    let np = ceil_div(n, bl.nr);
    let tasks = if k * n < SERIAL_FMAS { 1 } else { (par.threads().max(1) * COLUMN_TASKS_PER_THREAD).min(np) };
    let base = crate::parallel::SyncPtr(dst.as_mut_ptr());
    let src = crate::parallel::SyncPtr(b.ptr as *mut f32); // read only
    // SAFETY: tasks write disjoint panels of every slice, inside dst (checked above: every
    // slice's panels, np·NR·kb floats, fit in its kb·row_stride); B is read at rows < K and
    // columns < N.
    par.for_each(tasks, &|task, _thread| unsafe {
        let (q0, q1) = split(np, tasks, task);
        pack_panels(Mat { ptr: src.get(), ..b }, k, n, row_stride, q0, q1, base.get())
    });
    let kcb = balanced_block(k, bl.kc, 1);
    let mut pc = 0;
    while pc < k {
        let kb = kcb.min(k - pc);
        dst[pc * row_stride + np * bl.nr * kb..(pc + kb) * row_stride].fill(0.0);
        pc += kb;
    }
}

simd_kernel! {
    /// Packs panels q0..q1 of every slice of B (K, N) into `PackedB`'s layout at dst.
    /// Safety: dst holds K × row_stride floats, row_stride >= N rounded up to NR, B's rows
    /// < K and columns < N exist, and no other call writes the same panels.
    unsafe fn pack_panels(b: Mat, k: usize, n: usize, row_stride: usize, q0: usize, q1: usize, dst: *mut f32) => pack_panels_impl
}

#[inline(always)]
fn pack_panels_impl<V: F32Vec>(b: Mat, k: usize, n: usize, row_stride: usize, q0: usize, q1: usize, dst: *mut f32) {
    with_tile!(V, pack_panels_tiled(b, k, n, row_stride, q0, q1, dst))
}

#[inline(always)]
fn pack_panels_tiled<V: F32Vec, const MR: usize, const NV: usize>(b: Mat, k: usize, n: usize, row_stride: usize, q0: usize, q1: usize, dst: *mut f32) {
    let nr = NV * V::LANES;
    // The slices `gemm_blocks` cuts the forward product into (its kcb).
    let kcb = balanced_block(k, blocking(V::LANES, false).kc, 1);
    let mut pc = 0;
    while pc < k {
        let kb = kcb.min(k - pc);
        for q in q0..q1 {
            let j0 = q * nr;
            // SAFETY: pack_panels' contract: panel q of slice pc is kb·NR floats at
            // pc·row_stride + q·kb·NR, inside dst; B rows pc..pc+kb and columns j0.. exist.
            unsafe { pack_b_panel::<V, NV>(b, j0, nr.min(n - j0), pc, kb, dst.add(pc * row_stride + q * kb * nr)) }
        }
        pc += kb;
    }
}

/// Packs A[i0..i0+rows, pc..pc+kb] of a column-contiguous A (doutᵀ in dweight) into
/// ceil(rows/MR) panels (kb, MR) one after another in `dst`, zero-padding the rows past
/// `rows`. It goes PACK_K columns of A at a time: those (rows, PACK_K) floats sit in L1
/// while every panel takes its contiguous (PACK_K, MR) piece. Panel by panel over all of
/// kb, every k step read a new cache line (stride OC); column by column, every k step
/// wrote to every panel, kb*MR floats apart. Either way the gather took a quarter of the
/// dweight product.
///
/// # Safety
/// `dst` has ceil(rows/MR)*MR*kb writable floats; the source rows and columns exist.
#[inline(always)]
unsafe fn pack_a_columns<const MR: usize>(a: Mat, i0: usize, rows: usize, pc: usize, kb: usize, dst: *mut f32) {
    let full = rows / MR;
    let rest = rows - full * MR;
    let mut k0 = 0;
    while k0 < kb {
        let k1 = (k0 + PACK_K).min(kb);
        for q in 0..full {
            for k in k0..k1 {
                let src = a.ptr.add((pc + k) * a.cs + i0 + q * MR);
                core::ptr::copy_nonoverlapping(src, dst.add((q * kb + k) * MR), MR);
            }
        }
        if rest > 0 {
            for k in k0..k1 {
                let src = a.ptr.add((pc + k) * a.cs + i0 + full * MR);
                let d = dst.add((full * kb + k) * MR);
                for i in 0..MR {
                    *d.add(i) = if i < rest { *src.add(i) } else { 0.0 };
                }
            }
        }
        k0 = k1;
    }
}

/// Columns of A per round of `pack_a_columns`: (MC, 16) floats are 12 KB at MC = 192.
const PACK_K: usize = 16;

/// Packs A[i0..i0+mvalid, pc..pc+kb] into `dst` (kb, MR), k-major, zero-padding the rows
/// past mvalid.
///
/// # Safety
/// `dst` has kb*MR writable floats; the source rows and columns exist.
#[inline(always)]
unsafe fn pack_a_panel<V: F32Vec, const MR: usize>(a: Mat, i0: usize, mvalid: usize, pc: usize, kb: usize, dst: *mut f32) {
    if a.cs == 1 {
        // Rows of A are contiguous (inp, dout): transpose.
        pack_transposed::<V>(a.ptr.add(i0 * a.rs + pc), a.rs, mvalid, MR, kb, dst);
    } else if a.rs == 1 {
        // Columns of A are contiguous (doutᵀ in dweight): one panel of pack_a_columns.
        pack_a_columns::<MR>(a, i0, mvalid, pc, kb, dst);
    } else {
        for k in 0..kb {
            for i in 0..MR {
                *dst.add(k * MR + i) = if i < mvalid { *a.ptr.add((i0 + i) * a.rs + (pc + k) * a.cs) } else { 0.0 };
            }
        }
    }
}

simd_kernel! {
    /// Runs one task of the compute phase: its tile of C for this (KC, NC) block.
    /// Safety: `blk` was built by `gemm` after its B block was packed; `thread` is not
    /// in use by another concurrent call; no other call computes the same task.
    unsafe fn compute_task(blk: Block, task: usize, thread: usize) => compute_task_impl
}

#[inline(always)]
fn compute_task_impl<V: F32Vec>(blk: Block, task: usize, thread: usize) {
    with_tile!(V, compute_tiled(blk, task, thread))
}

#[inline(always)]
fn compute_tiled<V: F32Vec, const MR: usize, const NV: usize>(blk: Block, task: usize, thread: usize) {
    let p = blk.p;
    let nr = NV * V::LANES;
    let mp = ceil_div(p.m, MR);
    let (q0, q1) = split(mp, blk.mt, task / blk.nt); // MR-row panels of this task
    let (r0, r1) = split(blk.np, blk.nt, task % blk.nt); // NR-column panels of this task
    let overwrite = !p.accumulate && blk.pc == 0;
    // SAFETY: each thread owns a_len floats at abase + thread*a_len (sized in gemm).
    let abuf = unsafe { blk.abase.add(thread * blk.a_len) }; // (MC, KC) packed A
    // Row-major A (inp, dout) is read in place: the microkernel's MR row streams are as
    // cache-friendly as a packed panel, and packing it would mean a transpose. So is a
    // column-major A (doutᵀ) with a narrow stride, whose MR values per k are contiguous.
    // Only a partial last panel is packed (zero-padded). Other layouts are packed.
    let direct = p.a.cs == 1 || (p.a.rs == 1 && p.a.cs <= DIRECT_COLUMN_STRIDE);
    let mc_panels = blk.mc / MR;
    // Prefetch this task's share of the next block's B source, spread evenly over its
    // microkernel calls: packing the next block then reads L2, not DRAM. For the
    // (256, 768, 50257) forward, the weight (154 MB) is read exactly once per call, and
    // this hides that stream behind the multiply-adds.
    let (pl0, pl1) = split(blk.next.lines(), blk.tasks, task);
    let calls = (q1 - q0) * (r1 - r0);
    let mut call = 0;
    let mut qa = q0;
    while qa < q1 {
        let qb = (qa + mc_panels).min(q1);
        if p.a.rs == 1 && !direct {
            let i0 = qa * MR;
            // SAFETY: as for pack_a_panel below, for all the panels qa..qb at once.
            unsafe { pack_a_columns::<MR>(p.a, i0, (qb * MR).min(p.m) - i0, blk.pc, blk.kb, abuf) }
        } else {
            for q in qa..qb {
                let i0 = q * MR;
                let mvalid = MR.min(p.m - i0);
                if direct && mvalid == MR {
                    continue;
                }
                // SAFETY: (qb-qa)*MR*kb <= mc*kb <= a_len floats; rows i0..i0+mvalid < M
                // and columns pc..pc+kb <= K of A exist.
                unsafe { pack_a_panel::<V, MR>(p.a, i0, mvalid, blk.pc, blk.kb, abuf.add((q - qa) * MR * blk.kb)) }
            }
        }
        // Each A micro-panel (MR, kb) stays in L1 while it meets every B micro-panel of
        // this task; the packed B block streams from L2 (see the module comment).
        for q in qa..qb {
            let i0 = q * MR;
            let mvalid = MR.min(p.m - i0);
            for r in r0..r1 {
                let j0 = blk.jc + r * nr;
                let nvalid = nr.min(blk.jc + blk.nb - j0);
                // SAFETY: micro-panel r of packed B was written by the packing phase; A
                // is read at rows i0..i0+MR < M (direct, full panel) or from the packed
                // panel of kb*MR floats; packed B holds kb*NR floats; the C tile at (i0,
                // j0) is clipped to mvalid × nvalid inside (M, N) and belongs to this
                // task only; bias (when read) has N floats.
                unsafe {
                    let bp = blk.bbuf.add(r * nr * blk.kb);
                    let c = p.c.add(i0 * p.ldc + j0);
                    let bias = if p.bias.is_null() { p.bias } else { p.bias.add(j0) };
                    let out = Out { c, ldc: p.ldc, mvalid, nvalid, overwrite, bias };
                    if direct && mvalid == MR {
                        let ap = p.a.ptr.add(i0 * p.a.rs + blk.pc * p.a.cs);
                        microkernel::<V, MR, NV, false>(blk.kb, ap, p.a.rs, p.a.cs, bp, out);
                    } else {
                        let ap = abuf.add((q - qa) * MR * blk.kb);
                        microkernel::<V, MR, NV, true>(blk.kb, ap, 1, MR, bp, out);
                    }
                }
                if V::PREFETCH {
                    let (f0, f1) = split(pl1 - pl0, calls, call);
                    blk.next.prefetch::<V>(pl0 + f0, pl0 + f1);
                    call += 1;
                }
            }
        }
        qa = qb;
    }
}

/// k steps per iteration of the microkernel loop.
const UNROLL: usize = 4;

/// How many k steps before the end of the microkernel loop the C tile is prefetched.
const C_PREFETCH_STEPS: usize = 32;

/// One k step: acc (MR, NR) += A column (MR) × B row (NR).
///
/// # Safety
/// MR floats at a[i*ars] and NR floats at b are readable.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn microkernel_step<V: F32Vec, const MR: usize, const NV: usize>(acc: &mut [[V; NV]; MR], a: *const f32, ars: usize, b: *const f32) {
    let mut bv = [V::zero(); NV];
    for v in 0..NV {
        bv[v] = V::load(b.add(v * V::LANES));
    }
    for i in 0..MR {
        let ai = V::splat(*a.add(i * ars));
        for v in 0..NV {
            acc[i][v] = ai.mul_add(bv[v], acc[i][v]);
        }
    }
}

/// Largest MR*NR over all tiles (AVX-512 6×64: 384; NEON 8×12, simd128 4×12, AVX2 6×16).
const TILE_MAX: usize = 512;

/// Where a microkernel's tile goes (this GEMM's and compact/bf16_gemm.rs's).
#[derive(Clone, Copy)]
pub(crate) struct Out {
    /// Tile origin in C; element (i, j) of the tile at c[i*ldc + j].
    pub c: *mut f32,
    pub ldc: usize,
    pub mvalid: usize,
    pub nvalid: usize,
    /// C = tile (+ bias) on the first slice of K when not accumulating, else C += tile.
    pub overwrite: bool,
    /// Null, or the tile's nvalid floats of bias, added with the first slice of K.
    pub bias: *const f32,
}

/// C tile (mvalid, nvalid) = or += A panel (MR, kc) · packed B panel (kc, NR), where A's
/// element (i, k) is at a[i*ars + k*acs] (a packed panel: ars = 1, acs = MR).
///
/// # Safety
/// A's MR×kc elements are readable, `b` has kc*NR floats; `out` describes a writable
/// tile of C (mvalid × nvalid) and, when non-null, its bias.
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn microkernel<V: F32Vec, const MR: usize, const NV: usize, const PACKED: bool>(kc: usize, a: *const f32, ars: usize, acs: usize, b: *const f32, out: Out) {
    let Out { c, ldc, mvalid, nvalid, overwrite, bias } = out;
    let l = V::LANES;
    let nr = NV * l;
    // A packed panel has compile-time strides: its loads take immediate offsets, so the
    // loop needs almost no integer work competing with the FMAs for issue ports.
    let (ars, acs) = if PACKED { (1, MR) } else { (ars, acs) };
    // The whole MR×NR tile lives in registers for the k loop: MR*NV accumulators.
    let mut acc = [[V::zero(); NV]; MR];
    let mut a = a;
    let mut b = b;
    let mut k = 0;
    // The C tile is fetched for writing C_PREFETCH_STEPS steps before the loop ends: C is
    // usually fresh memory (an activation written once per step), and without the hint
    // the tile's stores wait for their lines: 2-5% of nanoGPT's small products with cold
    // caches (gemm_bench, GEMM_ROTATE=16). Any earlier and the streaming B panel evicts
    // the lines from L1 again.
    let prefetch_at = if V::PREFETCH && mvalid == MR && nvalid == nr { kc.saturating_sub(C_PREFETCH_STEPS) / UNROLL * UNROLL } else { usize::MAX };
    while k + UNROLL <= kc {
        if k == prefetch_at {
            for i in 0..MR {
                for line in 0..nr / LINE {
                    V::prefetch_write(c.add(i * ldc + line * LINE));
                }
            }
        }
        for u in 0..UNROLL {
            microkernel_step::<V, MR, NV>(&mut acc, a.add(u * acs), ars, b.add(u * nr));
        }
        a = a.add(UNROLL * acs);
        b = b.add(UNROLL * nr);
        k += UNROLL;
    }
    while k < kc {
        microkernel_step::<V, MR, NV>(&mut acc, a, ars, b);
        a = a.add(acs);
        b = b.add(nr);
        k += 1;
    }

    if mvalid == MR && nvalid == nr {
        if overwrite {
            let mut bvec = [V::zero(); NV];
            if !bias.is_null() {
                for v in 0..NV {
                    bvec[v] = V::load(bias.add(v * l));
                }
            }
            for i in 0..MR {
                for v in 0..NV {
                    acc[i][v].add(bvec[v]).store(c.add(i * ldc + v * l));
                }
            }
        } else {
            for i in 0..MR {
                for v in 0..NV {
                    let d = c.add(i * ldc + v * l);
                    V::load(d).add(acc[i][v]).store(d);
                }
            }
        }
    } else {
        // Edge tile: spill to the stack and write only the part inside C.
        let mut tmp = [0.0f32; TILE_MAX]; // (MR, NR)
        debug_assert!(MR * nr <= TILE_MAX);
        for i in 0..MR {
            for v in 0..NV {
                acc[i][v].store(tmp.as_mut_ptr().add(i * nr + v * l));
            }
        }
        for i in 0..mvalid {
            for j in 0..nvalid {
                let d = c.add(i * ldc + j);
                let x = tmp[i * nr + j];
                if overwrite {
                    *d = if bias.is_null() { x } else { x + *bias.add(j) };
                } else {
                    *d += x;
                }
            }
        }
    }
}
