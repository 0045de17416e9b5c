//! The wasm thread pool behind `ferrogpt_kernels::Parallel`, for the threaded builds
//! (`+atomics`, one shared `WebAssembly.Memory`). The same work partitioning as the native
//! pool (crates/node/src/pool.rs) runs on it, so results are bit-identical to one thread
//! wherever native's are.
//!
//! wasm32-unknown-unknown has no `std::thread`: the threads are Web Workers (browsers) or
//! `worker_threads` (Node) that bindings/wasm-pool.ts starts, each instantiating this
//! module on the shared memory and then calling `worker_main(id)`, which never returns.
//! The thread that calls the kernel exports (a page's main thread, a Worker, Node's main
//! thread) takes part as thread 0.
//!
//! A job is published with one atomic word, `(generation << 8) | helpers`: workers
//! 0..helpers may take part, the others go back to sleep. Tasks are claimed from one atomic
//! counter. A helper joins a job (ACTIVE + 1) and then checks that it is still open; the
//! caller, once every task is claimed, closes the job and waits only for the helpers that
//! joined it (ACTIVE back to 0). So a worker that was asleep never delays a job: if it
//! wakes too late, the caller has run its share.
//!
//! Waiting: idle workers spin for a while (about as long as the native pool's 200 µs),
//! then sleep in `memory.atomic.wait32`; the caller wakes sleepers only when there are
//! some. The caller never sleeps: browsers forbid `Atomics.wait` on a page's main thread,
//! so it spins until the helpers that joined are done (it has run tasks itself until none
//! were left, so the spin lasts about one task). A helper that traps (a kernel panic) marks
//! the pool failed, and the spinning caller traps too: an Error on the JS side, never a
//! hang.

use core::arch::wasm32;
use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use ferrogpt_kernels::Parallel;

type TaskFn<'a> = dyn Fn(usize, usize) + Sync + 'a;

/// Helpers a job can have: the low byte of `WORD`.
pub const MAX_HELPERS: u32 = 255;

/// Spins of an idle worker on `WORD` before it sleeps (a few hundred µs in V8): kernels of
/// one training step follow each other faster than a wake-up from `atomic.wait`.
const IDLE_SPINS: u32 = 1 << 18;

/// A value on a cache line of its own: the spinning workers read WORD all the time, so
/// the counters the caller and the helpers write must not share its line.
#[repr(align(64))]
struct Line<T>(T);

/// `(generation << 8) | helpers` of the latest job.
static WORD: Line<AtomicU32> = Line(AtomicU32::new(0));
/// The generation of the job helpers may still join; 0 once its caller closed it.
static OPEN: Line<AtomicU32> = Line(AtomicU32::new(0));
/// Helpers inside a job (joined, not yet left).
static ACTIVE: Line<AtomicU32> = Line(AtomicU32::new(0));
/// Workers asleep in `memory.atomic.wait32` (or about to be).
static SLEEPING: Line<AtomicU32> = Line(AtomicU32::new(0));
/// Next unclaimed task of the current job.
static NEXT: Line<AtomicUsize> = Line(AtomicUsize::new(0));
/// Workers that have entered `worker_main`.
static REGISTERED: AtomicU32 = AtomicU32::new(0);
/// Threads a job may use, the caller included (`set_threads`).
static THREADS: AtomicU32 = AtomicU32::new(1);
/// Set when a worker trapped: the caller must not wait for it.
static FAILED: AtomicU32 = AtomicU32::new(0);

/// The current job's closure (lifetime erased) and task count. Written by the caller only
/// between jobs (no helper inside one: ACTIVE is 0 and the job closed), read by a helper
/// only after it joined and saw the job open.
struct JobCell(UnsafeCell<Option<(&'static TaskFn<'static>, usize)>>);
// SAFETY: see JobCell: the OPEN store/load pair orders every write before the reads, and
// ACTIVE orders the reads before the next write (all SeqCst).
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
            as_thread(0, || (0..tasks).for_each(|task| f(task, 0)));
            return;
        }
        // SAFETY: the closure outlives the job: this function returns only after closing
        // it and seeing every helper that joined it leave, and then clears JOB.
        let f_static: &'static TaskFn<'static> = unsafe { core::mem::transmute::<&TaskFn<'_>, &'static TaskFn<'static>>(f) };
        // SAFETY: between jobs no helper reads JOB (see JobCell).
        unsafe { *JOB.0.get() = Some((f_static, tasks)) };
        NEXT.0.store(0, Ordering::Relaxed);
        // Generations run 1..=2^24-1: OPEN = 0 means closed.
        let generation = ((WORD.0.load(Ordering::Relaxed) >> 8) % 0x00ff_ffff) + 1;
        OPEN.0.store(generation, Ordering::SeqCst);
        WORD.0.store((generation << 8) | helpers, Ordering::SeqCst);
        if SLEEPING.0.load(Ordering::SeqCst) > 0 {
            // SAFETY: WORD is a live, aligned u32 in this module's memory.
            unsafe { wasm32::memory_atomic_notify(WORD.0.as_ptr() as *mut i32, u32::MAX) };
        }

        as_thread(0, || run_tasks(f, 0, tasks));
        // Every task is claimed: no helper may join from now on; wait for those inside.
        OPEN.0.store(0, Ordering::SeqCst);
        while ACTIVE.0.load(Ordering::SeqCst) != 0 {
            if FAILED.load(Ordering::Relaxed) != 0 {
                core::arch::wasm32::unreachable();
            }
            core::hint::spin_loop();
        }
        // SAFETY: the job is closed and no helper is inside it: none reads JOB now.
        unsafe { *JOB.0.get() = None };
    }
}

/// Runs `body` as thread `thread` of the pool (what a nested `for_each` sees).
fn as_thread(thread: usize, body: impl FnOnce()) {
    CURRENT.with(|c| c.set(Some(thread)));
    body();
    CURRENT.with(|c| c.set(None));
}

/// Claims and runs tasks of the current job until none are left.
fn run_tasks(f: &TaskFn<'_>, thread: usize, tasks: usize) {
    loop {
        let task = NEXT.0.fetch_add(1, Ordering::Relaxed);
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

/// Marks the pool failed: bindings/wasm-pool.ts calls this when `worker_main` trapped.
pub fn fail() {
    FAILED.store(1, Ordering::SeqCst);
}

/// A worker's loop: wait for a job that includes it, join it while it is open, run tasks
/// as thread `id + 1`, leave, repeat. Never returns.
pub fn worker_main(id: u32) -> ! {
    let mut seen = WORD.0.load(Ordering::SeqCst);
    REGISTERED.fetch_add(1, Ordering::SeqCst);
    loop {
        let mut spins = 0;
        let word = loop {
            let w = WORD.0.load(Ordering::SeqCst);
            if w != seen {
                break w;
            }
            if spins < IDLE_SPINS {
                spins += 1;
                core::hint::spin_loop();
            } else {
                SLEEPING.0.fetch_add(1, Ordering::SeqCst);
                // SAFETY: WORD is a live, aligned u32 in this module's memory; this is a
                // worker, where waiting is allowed. Returns at once if WORD moved on.
                unsafe { wasm32::memory_atomic_wait32(WORD.0.as_ptr() as *mut i32, w as i32, -1) };
                SLEEPING.0.fetch_sub(1, Ordering::SeqCst);
            }
        };
        seen = word;
        if id >= word & 0xff {
            continue;
        }
        ACTIVE.0.fetch_add(1, Ordering::SeqCst);
        if OPEN.0.load(Ordering::SeqCst) == word >> 8 {
            // SAFETY: this worker joined the job while it was open, so its caller keeps
            // JOB as it is until this worker leaves (ACTIVE - 1).
            if let Some((f, tasks)) = unsafe { *JOB.0.get() } {
                let thread = id as usize + 1;
                as_thread(thread, || run_tasks(f, thread, tasks));
            }
        }
        ACTIVE.0.fetch_sub(1, Ordering::SeqCst);
    }
}
