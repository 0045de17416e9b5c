//! A persistent thread pool behind `ferrogpt_kernels::Parallel`: threads are created once
//! and park between calls; the calling thread takes part as thread 0.
//!
//! A training step runs hundreds of small kernels, so dispatch latency matters: a job is
//! published by bumping a generation counter that idle workers spin on for a short while
//! before they sleep on a condvar, and tasks are claimed from one atomic counter (so a
//! slow thread takes fewer of them). A panic in a task is caught on whichever thread ran
//! it, the job still finishes on the others, and the panic resumes on the caller.

use ferrogpt_kernels::Parallel;
use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type TaskFn<'a> = dyn Fn(usize, usize) + Sync + 'a;

/// How long an idle worker spins on the generation counter before it sleeps. Kernels of
/// one training step follow each other within microseconds; between steps the workers
/// sleep.
const SPIN: Duration = Duration::from_micros(200);

/// A job as the workers see it: the caller's closure, its lifetime erased.
#[derive(Clone, Copy)]
struct Job {
    f: *const TaskFn<'static>,
    tasks: usize,
}

// SAFETY: the closure is Sync, and `for_each` keeps it alive until every worker that
// entered the job has left it (it closes the job, then waits for `active` to reach 0).
unsafe impl Send for Job {}

struct State {
    /// The open job; None once its caller has closed it.
    job: Option<Job>,
    gen: u64,
    sleeping: usize,
    shutdown: bool,
    /// The first panic a worker caught in the current job.
    panic: Option<Box<dyn Any + Send>>,
}

struct Shared {
    state: Mutex<State>,
    /// Sleeping workers wait here for a new generation.
    wake: Condvar,
    /// The caller waits here for `active` to reach 0.
    idle: Condvar,
    /// Mirrors `state.gen`, so that spinning workers need no lock.
    gen: AtomicU64,
    /// Workers inside the current job. Incremented only under `state`'s lock while the
    /// job is open, so once the caller has closed it the count can only fall.
    active: AtomicUsize,
    /// Next unclaimed task of the current job.
    next: AtomicUsize,
}

/// The thread pool. Dropping it stops and joins its threads.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    threads: usize,
    /// Serialises callers from different OS threads, so thread indices never overlap.
    dispatch: Mutex<()>,
}

thread_local! {
    /// (pool, thread index) while this OS thread runs tasks of that pool.
    static CURRENT: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// Restores CURRENT on scope exit, unwinding included.
struct CurrentGuard(Option<(usize, usize)>);

impl CurrentGuard {
    fn set(v: (usize, usize)) -> CurrentGuard {
        CurrentGuard(CURRENT.with(|c| c.replace(Some(v))))
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// A poisoned lock only means a task panicked while another thread held it; the data
/// behind our locks stays consistent, so carry on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// std::thread::available_parallelism(), or 1 when unknown.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

impl Pool {
    /// A pool of `threads` threads in all, the caller included (0 = default_threads()).
    pub fn new(threads: usize) -> Pool {
        let threads = if threads == 0 { default_threads() } else { threads };
        let shared = Arc::new(Shared {
            state: Mutex::new(State { job: None, gen: 0, sleeping: 0, shutdown: false, panic: None }),
            wake: Condvar::new(),
            idle: Condvar::new(),
            gen: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
        });
        let workers = (1..threads)
            .map(|index| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("ferrogpt-{index}"))
                    .spawn(move || worker(shared, index))
                    .expect("ferrogpt: cannot spawn pool thread")
            })
            .collect();
        Pool { shared, workers, threads, dispatch: Mutex::new(()) }
    }

    fn id(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        {
            let mut st = lock(&self.shared.state);
            st.shutdown = true;
            st.gen += 1;
            self.shared.gen.store(st.gen, Ordering::Release);
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Claims and runs tasks of `job` until none are left; returns the first panic caught.
fn run_tasks(shared: &Shared, job: Job, thread: usize) -> Option<Box<dyn Any + Send>> {
    // SAFETY: the job is open or this thread is counted in `active` (workers) or is the
    // caller itself, so the closure is alive (see Job).
    let f = unsafe { &*job.f };
    let mut caught = None;
    loop {
        let task = shared.next.fetch_add(1, Ordering::Relaxed);
        if task >= job.tasks {
            return caught;
        }
        if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| f(task, thread))) {
            caught.get_or_insert(p);
        }
    }
}

fn worker(shared: Arc<Shared>, index: usize) {
    let _current = CurrentGuard::set((Arc::as_ptr(&shared) as usize, index));
    let mut seen = 0u64;
    loop {
        // Spin briefly on the generation counter, then sleep.
        let start = Instant::now();
        let mut spins = 0u32;
        while shared.gen.load(Ordering::Acquire) == seen {
            std::hint::spin_loop();
            spins += 1;
            if spins % 64 == 0 && start.elapsed() > SPIN {
                break;
            }
        }
        let job = {
            let mut st = lock(&shared.state);
            while st.gen == seen && !st.shutdown {
                st.sleeping += 1;
                st = shared.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                st.sleeping -= 1;
            }
            if st.shutdown {
                return;
            }
            seen = st.gen;
            match st.job {
                Some(job) => {
                    // Entering under the lock, while the job is open: see `active`.
                    shared.active.fetch_add(1, Ordering::Relaxed);
                    job
                }
                None => continue, // already closed: wait for the next one
            }
        };
        if let Some(p) = run_tasks(&shared, job, index) {
            lock(&shared.state).panic.get_or_insert(p);
        }
        if shared.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Taking the lock orders this wake-up after the caller's check of `active`.
            let _st = lock(&shared.state);
            shared.idle.notify_all();
        }
    }
}

impl Parallel for Pool {
    fn threads(&self) -> usize {
        self.threads
    }

    fn for_each(&self, tasks: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        if tasks == 0 {
            return;
        }
        // A task of this pool calling back into it: run inline on its own thread index
        // (waiting for the pool from inside the pool would deadlock).
        if let Some((pool, thread)) = CURRENT.with(|c| c.get()) {
            if pool == self.id() {
                for task in 0..tasks {
                    f(task, thread);
                }
                return;
            }
        }
        let _dispatch = lock(&self.dispatch);
        let _current = CurrentGuard::set((self.id(), 0));
        if tasks == 1 || self.threads == 1 {
            for task in 0..tasks {
                f(task, 0);
            }
            return;
        }
        let shared = &*self.shared;
        // SAFETY: only the lifetime is erased; the closure outlives this call, and this
        // call returns only after no worker can touch it any more (below).
        let f: *const TaskFn<'static> = unsafe { std::mem::transmute::<*const TaskFn<'_>, *const TaskFn<'static>>(f) };
        let job = Job { f, tasks };
        {
            let mut st = lock(&shared.state);
            shared.next.store(0, Ordering::Relaxed);
            st.job = Some(job);
            st.gen += 1;
            shared.gen.store(st.gen, Ordering::Release);
            if st.sleeping > 0 {
                shared.wake.notify_all();
            }
        }
        let mine = run_tasks(shared, job, 0);
        // Close the job, then wait for the workers inside it: after this no worker holds f.
        lock(&shared.state).job = None;
        let start = Instant::now();
        let mut spins = 0u32;
        while shared.active.load(Ordering::Acquire) > 0 {
            std::hint::spin_loop();
            spins += 1;
            if spins % 64 == 0 && start.elapsed() > SPIN {
                break;
            }
        }
        let theirs = {
            let mut st = lock(&shared.state);
            while shared.active.load(Ordering::Acquire) > 0 {
                st = shared.idle.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.panic.take()
        };
        if let Some(p) = mine.or(theirs) {
            panic::resume_unwind(p);
        }
    }
}

/// The process-wide pool the addon's kernels run on.
static GLOBAL: Mutex<Option<Arc<Pool>>> = Mutex::new(None);

/// The process-wide pool, created with default_threads() on first use.
pub fn global() -> Arc<Pool> {
    let mut g = lock(&GLOBAL);
    Arc::clone(g.get_or_insert_with(|| Arc::new(Pool::new(0))))
}

/// Replaces the process-wide pool with one of `threads` threads (0 = default). Calls in
/// flight finish on the old pool, which stops when its last user drops it.
pub fn set_threads(threads: usize) {
    let pool = Arc::new(Pool::new(threads));
    *lock(&GLOBAL) = Some(pool);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn runs_every_task_once_with_distinct_threads() {
        let pool = Pool::new(4);
        for tasks in [1, 2, 3, 4, 5, 17, 1000] {
            let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
            let busy: Vec<AtomicBool> = (0..4).map(|_| AtomicBool::new(false)).collect();
            pool.for_each(tasks, &|task, thread| {
                assert!(thread < 4);
                assert!(!busy[thread].swap(true, Ordering::SeqCst), "thread index {thread} used twice at once");
                hits[task].fetch_add(1, Ordering::Relaxed);
                busy[thread].store(false, Ordering::SeqCst);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn many_small_dispatches() {
        let pool = Pool::new(3);
        let sum = AtomicUsize::new(0);
        for _ in 0..20_000 {
            pool.for_each(3, &|task, _| {
                sum.fetch_add(task + 1, Ordering::Relaxed);
            });
        }
        assert_eq!(sum.load(Ordering::Relaxed), 20_000 * 6);
    }

    #[test]
    fn wakes_after_sleeping() {
        let pool = Pool::new(2);
        let sum = AtomicUsize::new(0);
        for _ in 0..3 {
            std::thread::sleep(SPIN * 3);
            pool.for_each(8, &|_, _| {
                sum.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(sum.load(Ordering::Relaxed), 24);
    }

    #[test]
    fn panic_reaches_caller_and_pool_survives() {
        let pool = Pool::new(3);
        for bad in [0, 5] {
            let r = panic::catch_unwind(AssertUnwindSafe(|| {
                pool.for_each(8, &|task, _| {
                    if task == bad {
                        panic!("task {task} fails");
                    }
                });
            }));
            assert!(r.is_err());
        }
        let sum = AtomicUsize::new(0);
        pool.for_each(8, &|_, _| {
            sum.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn nested_call_runs_inline() {
        let pool = Pool::new(2);
        let sum = AtomicUsize::new(0);
        pool.for_each(4, &|_, outer| {
            pool.for_each(3, &|_, inner| {
                assert_eq!(inner, outer);
                sum.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(sum.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn concurrent_callers() {
        let pool = Pool::new(2);
        let sum = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..200 {
                        pool.for_each(5, &|_, _| {
                            sum.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(sum.load(Ordering::Relaxed), 3 * 200 * 5);
    }
}
