//! The one seam between kernels and threads. The native addon implements `Parallel` on a
//! persistent thread pool; WASM and tests use `Serial`.

/// Runs independent tasks, possibly on several threads.
pub trait Parallel: Sync {
    /// How many threads `for_each` may run tasks on (>= 1). Kernels size per-thread
    /// scratch with it.
    fn threads(&self) -> usize;
    /// Calls `f(task, thread)` once for every `task` in `0..tasks` and returns when all
    /// calls have returned. `thread` is in `0..self.threads()` and no two concurrent calls
    /// share a `thread` value, so it can index per-thread scratch.
    fn for_each(&self, tasks: usize, f: &(dyn Fn(usize, usize) + Sync));
}

/// Runs every task on the calling thread, in order.
pub struct Serial;

impl Parallel for Serial {
    fn threads(&self) -> usize {
        1
    }
    fn for_each(&self, tasks: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        for task in 0..tasks {
            f(task, 0);
        }
    }
}

/// Elements per task of `for_ranges`: a multiple of every vector width, so that an
/// elementwise kernel gives the same bits split or whole (only the last range can end in
/// a scalar tail, as the whole would).
pub(crate) const RANGE: usize = 1 << 16;

/// Below this many elements `for_ranges` runs on the calling thread: a task hand-off
/// costs more than it saves.
pub(crate) const RANGE_PAR_MIN: usize = 1 << 15;

/// Calls `f(lo, hi)` on disjoint ranges that cover `0..n`: the whole of it on the calling
/// thread when n is small or `par` has one thread, else RANGE elements per task.
pub(crate) fn for_ranges(par: &dyn Parallel, n: usize, f: &(dyn Fn(usize, usize) + Sync)) {
    if n < RANGE_PAR_MIN || par.threads() <= 1 {
        f(0, n);
        return;
    }
    par.for_each((n + RANGE - 1) / RANGE, &|task, _| {
        let lo = task * RANGE;
        f(lo, (lo + RANGE).min(n));
    });
}

/// A raw pointer that tasks on several threads share, each touching only its own part
/// of the buffer (a range from `for_ranges`, a tile, a slot), which outlives the
/// `for_each`.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr<T>(pub *mut T);

// SAFETY: see the struct: tasks never touch the same element, and for_each joins before
// the buffer's borrow ends.
unsafe impl<T> Send for SyncPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    /// The pointer. Closures must call this rather than read `.0`: a field access would
    /// capture the bare pointer, which is not Sync.
    #[inline(always)]
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// Runs `f(lo, part)` on disjoint parts of x that cover it (the ranges of `for_ranges`),
/// where part is x[lo..lo + part.len()].
pub(crate) fn for_parts(par: &dyn Parallel, x: &mut [f32], f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
    let p = SyncPtr(x.as_mut_ptr());
    for_ranges(par, x.len(), &|lo, hi| {
        // SAFETY: lo..hi lies inside x and no other range overlaps it.
        f(lo, unsafe { core::slice::from_raw_parts_mut(p.get().add(lo), hi - lo) })
    });
}
