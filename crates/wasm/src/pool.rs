//! The wasm thread pool behind `ferrogpt_kernels::Parallel`, for the threaded builds
//! (`+atomics`, one shared `WebAssembly.Memory`). The same work partitioning as the native
//! pool (crates/node/src/pool.rs) runs on it, so results are bit-identical to one thread
//! wherever native's are.
//!
//! wasm32-unknown-unknown has no `std::thread`: the threads are Web Workers (browsers) or
//! `worker_threads` (Node) that bindings/wasm-worker.ts starts, each instantiating this
//! module on the shared memory and then calling `worker_main(id)`, which never returns.
//! The thread that calls the kernel exports (a page's main thread, a Worker, Node's main
//! thread) takes part as thread 0.
//!
//! A job is published with one atomic word, `(generation << 8) | helpers`: workers
//! 0..helpers take part, the others go back to sleep. Tasks are claimed from one atomic
//! counter. Each helper acknowledges the job when it has run out of tasks, and the caller
//! returns only when every helper has, so no worker ever holds a closure past its job.
//!
//! Waiting: idle workers spin for a while, then sleep in `memory.atomic.wait32`. The
//! caller never sleeps: browsers forbid `Atomics.wait` on a page's main thread, so it
//! spins until the helpers acknowledge (it has run tasks itself until none were left, so
//! the spin lasts about one task). A helper that traps (a kernel panic) marks the pool
//! failed, and the spinning caller traps too: an Error on the JS side, never a hang.

use core::arch::wasm32;
use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use ferrogpt_kernels::Parallel;

type TaskFn<'a> = dyn Fn(usize, usize) + Sync + 'a;

/// Helpers a job can have: the low byte of `WORD`.
pub const MAX_HELPERS: u32 = 255;

/// Spins of an idle worker on `WORD` before it sleeps (about 50 µs in V8): kernels of one
/// training step follow each other faster than a wake-up from `atomic.wait`.
const IDLE_SPINS: u32 = 1 << 14;

/// `(generation << 8) | helpers` of the latest job.
static WORD: AtomicU32 = AtomicU32::new(0);
/// Next unclaimed task of the current job.
static NEXT: AtomicUsize = AtomicUsize::new(0);
/// Helpers done with the current job.
static ACKS: AtomicU32 = AtomicU32::new(0);
/// Workers that have entered `worker_main`.
static REGISTERED: AtomicU32 = AtomicU32::new(0);
/// Threads a job may use, the caller included (`set_threads`).
static THREADS: AtomicU32 = AtomicU32::new(1);
/// Set when a worker trapped: the caller must not wait for it.
static FAILED: AtomicU32 = AtomicU32::new(0);

/// The current job's closure (lifetime erased) and task count. Written by the caller only
/// between jobs (after every helper of the previous one acknowledged), read by helpers
/// only after they saw its `WORD`.
struct JobCell(UnsafeCell<Option<(&'static TaskFn<'static>, usize)>>);
// SAFETY: see JobCell: the WORD release/acquire pair orders every write before the reads,
// and ACKS orders the reads before the next write.
unsafe impl Sync for JobCell {}
static JOB: JobCell = JobCell(UnsafeCell::new(None));

thread_local! {
    /// This thread's index while it runs a task: a kernel that calls `for_each` from
    /// inside a task runs it inline (waiting for the pool from inside it would deadlock).
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The pool: one per module instance (its state lives in the shared memory).
pub struct Pool;

impl Parallel for Pool {
    fn threads(&self) -> usize {
        THREADS.load(Ordering::Relaxed) as usize
    }

    fn for_each(&self, tasks: usize, f: &TaskFn<'_>) {
        if let Some(thread) = CURRENT.with(|c| c.get()) {
            for task in 0..tasks {
                f(task, thread);
            }
            return;
        }
        let helpers = (self.threads() - 1).min(tasks.saturating_sub(1)) as u32;
        if helpers == 0 {
            run_inline(tasks, f);
            return;
        }
        // SAFETY: the closure outlives the job: this function returns only after every
        // helper has acknowledged it, and then clears JOB.
        let f_static: &'static TaskFn<'static> = unsafe { core::mem::transmute::<&TaskFn<'_>, &'static TaskFn<'static>>(f) };
        // SAFETY: between jobs no helper reads JOB (see JobCell).
        unsafe { *JOB.0.get() = Some((f_static, tasks)) };
        NEXT.store(0, Ordering::Relaxed);
        ACKS.store(0, Ordering::Relaxed);
        let generation = (WORD.load(Ordering::Relaxed) >> 8).wrapping_add(1) & 0x00ff_ffff;
        WORD.store((generation << 8) | helpers, Ordering::Release);
        // SAFETY: WORD is a live, aligned u32 in this module's memory.
        unsafe { wasm32::memory_atomic_notify(WORD.as_ptr() as *mut i32, u32::MAX) };

        CURRENT.with(|c| c.set(Some(0)));
        run_tasks(f, 0, tasks);
        CURRENT.with(|c| c.set(None));
        while ACKS.load(Ordering::Acquire) < helpers {
            if FAILED.load(Ordering::Relaxed) != 0 {
                core::arch::wasm32::unreachable();
            }
            core::hint::spin_loop();
        }
        // SAFETY: every helper has acknowledged: none reads JOB now.
        unsafe { *JOB.0.get() = None };
    }
}

fn run_inline(tasks: usize, f: &TaskFn<'_>) {
    CURRENT.with(|c| c.set(Some(0)));
    for task in 0..tasks {
        f(task, 0);
    }
    CURRENT.with(|c| c.set(None));
}

/// Claims and runs tasks of the current job until none are left.
fn run_tasks(f: &TaskFn<'_>, thread: usize, tasks: usize) {
    loop {
        let task = NEXT.fetch_add(1, Ordering::Relaxed);
        if task >= tasks {
            return;
        }
        f(task, thread);
    }
}

/// Sets the threads a job may use, the caller included; returns what was set: at least 1,
/// at most the workers registered + 1 (and MAX_HELPERS + 1).
pub fn set_threads(n: u32) -> u32 {
    let n = n.max(1).min(REGISTERED.load(Ordering::SeqCst) + 1).min(MAX_HELPERS + 1);
    THREADS.store(n, Ordering::Relaxed);
    n
}

pub fn registered() -> u32 {
    REGISTERED.load(Ordering::SeqCst)
}

/// Marks the pool failed: bindings/wasm-worker.ts calls this when `worker_main` trapped.
pub fn fail() {
    FAILED.store(1, Ordering::SeqCst);
}

/// A worker's loop: wait for a job that includes it, run tasks as thread `id + 1`,
/// acknowledge, repeat. Never returns.
pub fn worker_main(id: u32) -> ! {
    let mut seen = WORD.load(Ordering::SeqCst);
    // After `seen` is read: a job published once this worker counts has another WORD.
    REGISTERED.fetch_add(1, Ordering::SeqCst);
    loop {
        let mut spins = 0;
        let word = loop {
            let w = WORD.load(Ordering::Acquire);
            if w != seen {
                break w;
            }
            if spins < IDLE_SPINS {
                spins += 1;
                core::hint::spin_loop();
            } else {
                // SAFETY: WORD is a live, aligned u32 in this module's memory; this is a
                // worker, where waiting is allowed. Returns at once if WORD moved on.
                unsafe { wasm32::memory_atomic_wait32(WORD.as_ptr() as *mut i32, w as i32, -1) };
            }
        };
        seen = word;
        if id >= word & 0xff {
            continue;
        }
        // SAFETY: this worker is a helper of the job `word` published, so the caller keeps
        // JOB as it is until this worker acknowledges.
        if let Some((f, tasks)) = unsafe { *JOB.0.get() } {
            CURRENT.with(|c| c.set(Some(id as usize + 1)));
            run_tasks(f, id as usize + 1, tasks);
            CURRENT.with(|c| c.set(None));
        }
        ACKS.fetch_add(1, Ordering::Release);
    }
}
