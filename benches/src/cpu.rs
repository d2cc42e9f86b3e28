//! CPU time burnt by the whole process (all threads).

use std::time::Duration;

/// The CPU time the process has used so far, all threads together, from
/// `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`.
///
/// ```
/// let before = compute_benches::cpu::process_cpu_time();
/// compute_benches::job::spin_for(std::time::Duration::from_millis(2));
/// assert!(compute_benches::cpu::process_cpu_time() > before);
/// ```
pub fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call,
    // and CLOCK_PROCESS_CPUTIME_ID is supported on every Linux kernel since 2.6.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
