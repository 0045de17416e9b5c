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
