//! CPU time burnt by the whole process (all threads).

use std::sync::atomic::{AtomicU64, Ordering};
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
    clock_time(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// The process's CPU time, as [`process_cpu_time`], but exact for threads
/// running on other CPUs right now, and without the cost of making it so.
///
/// The kernel adds a running thread's time to the process total only at a
/// scheduler tick or when the thread leaves the CPU, so a plain
/// `CLOCK_PROCESS_CPUTIME_ID` misses up to a tick (4 ms here) of every
/// thread running elsewhere at that moment, and books it into whatever
/// interval is measured next. A compute thread that ran jobs back to back
/// until just before an "idle" window made that window look busy (up to
/// 12 % of a core in the cost report). Reading `/proc/self/task/*/schedstat`
/// brings each thread's count up to date; this does that first, and leaves
/// out the CPU the reading itself took (kept in a running total, so the
/// difference of two readings excludes both). That total is an estimate,
/// which over a nearly idle interval can put a later reading a few
/// microseconds below an earlier one; readings never go back (a later one
/// is at least the latest before it), so the difference of two is never
/// negative.
///
/// ```
/// let before = compute_benches::cpu::settled_process_cpu_time();
/// compute_benches::job::spin_for(std::time::Duration::from_millis(2));
/// assert!(compute_benches::cpu::settled_process_cpu_time() > before);
/// ```
pub fn settled_process_cpu_time() -> Duration {
    static SETTLING: AtomicU64 = AtomicU64::new(0);
    let started = thread_cpu_time();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            // Reading a thread's schedstat updates its runtime first.
            let _ = std::fs::read(task.path().join("schedstat"));
        }
    }
    let now = process_cpu_time();
    let took = thread_cpu_time().saturating_sub(started);
    let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    // ORDERING: Relaxed: a running total only this bench's threads add to.
    let settling = SETTLING.fetch_add(took, Ordering::Relaxed) + took;
    let settled = u64::try_from(now.as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_sub(settling);
    static LATEST: AtomicU64 = AtomicU64::new(0);
    // ORDERING: Relaxed: fetch_max alone keeps the readings monotonic;
    // nothing else is published through it.
    let latest = LATEST.fetch_max(settled, Ordering::Relaxed);
    Duration::from_nanos(settled.max(latest))
}

/// The CPU the calling thread is running on right now (`sched_getcpu`), if
/// the system says.
///
/// ```
/// // One of the CPUs this thread may run on.
/// let cpu = compute_benches::cpu::current_cpu().expect("Linux says");
/// assert!(compute_benches::floor::allowed_cpus().contains(&(cpu as usize)));
/// ```
pub fn current_cpu() -> Option<u32> {
    // SAFETY: no arguments; returns the CPU number or -1.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).ok()
}

/// The CPU time of the calling thread.
pub fn thread_cpu_time() -> Duration {
    clock_time(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The time of one of the kernel's CPU-time clocks.
fn clock_time(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the
    // call, and both clocks used here exist on every Linux since 2.6.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime({clock}) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time used so far by each group of the process's threads, a group
/// being a thread name without its trailing `-<index>` (so `bench-ours-0`
/// and `bench-ours-1` add up under `bench-ours`). Read from
/// `/proc/self/task/*/schedstat` (nanoseconds on CPU); empty where that is
/// not available. Threads that exited are no longer counted.
///
/// ```
/// let groups = compute_benches::cpu::cpu_by_thread_group();
/// if std::path::Path::new("/proc/self/task").exists() {
///     assert!(!groups.is_empty());
/// }
/// ```
pub fn cpu_by_thread_group() -> std::collections::BTreeMap<String, Duration> {
    let mut groups = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return groups;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("schedstat")),
        ) else {
            continue;
        };
        let Some(ns) = stat.split_whitespace().next().and_then(|f| f.parse().ok()) else {
            continue;
        };
        let name = name.trim();
        let group = match name.rsplit_once('-') {
            Some((stem, index))
                if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) =>
            {
                stem
            }
            _ => name,
        };
        *groups.entry(group.to_owned()).or_insert(Duration::ZERO) += Duration::from_nanos(ns);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_readings_never_go_back() {
        // Back to back, each reading's own cost is left out of the next:
        // without the guard, a later one often comes out lower.
        let mut last = settled_process_cpu_time();
        for _ in 0..500 {
            let now = settled_process_cpu_time();
            assert!(now >= last, "{now:?} after {last:?}");
            last = now;
        }
    }
}
