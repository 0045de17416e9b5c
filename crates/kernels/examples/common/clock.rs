//! CPU-time clocks for the dev benchmarks in examples/: this machine is shared with
//! compilers, and CPU time ignores the time a benchmark sits descheduled.

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// clock_gettime's id for this thread's CPU time (Linux).
pub const THREAD_CPU: i32 = 3;
/// clock_gettime's id for the whole process's CPU time (Linux).
pub const PROCESS_CPU: i32 = 2;

/// Seconds on `clock` (THREAD_CPU or PROCESS_CPU).
pub fn cpu_secs(clock: i32) -> f64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: ts is a valid timespec for clock_gettime to fill (Linux x86_64 layout).
    unsafe { clock_gettime(clock, &mut ts) };
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}
