//! Where threads run: the CPU the calling thread is on, and pinning a
//! thread to a CPU (the wake-cost probe's threads). Linux only; elsewhere
//! the CPU is unknown and pinning does nothing.

#[cfg(target_os = "linux")]
mod imp {
    /// The CPU the calling thread is running on (it may move right after).
    pub(crate) fn current_cpu() -> Option<usize> {
        // SAFETY: no arguments; returns the CPU number or -1.
        let cpu = unsafe { libc::sched_getcpu() };
        usize::try_from(cpu).ok()
    }

    /// Two CPUs this process may run on, if it may use two.
    pub(crate) fn two_cpus() -> Option<(usize, usize)> {
        // SAFETY: an all-zero cpu_set_t is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, writable cpu_set_t of the size passed;
        // 0 is the calling thread.
        let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
        if rc != 0 {
            return None;
        }
        // SAFETY: every `cpu` is below CPU_SETSIZE, inside the set.
        let mut cpus =
            (0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) });
        Some((cpus.next()?, cpus.next()?))
    }

    /// Pins the calling thread to `cpu` (best effort: a CPU this process
    /// may not use, or one past the set's size, leaves it where it was).
    pub(crate) fn pin_to(cpu: usize) {
        if cpu >= libc::CPU_SETSIZE as usize {
            return;
        }
        // SAFETY: an all-zero cpu_set_t is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid cpu_set_t, and `cpu` is below
        // CPU_SETSIZE (checked above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is the
        // calling thread. A failure leaves the thread where it was.
        let _ = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(crate) fn current_cpu() -> Option<usize> {
        None
    }

    pub(crate) fn two_cpus() -> Option<(usize, usize)> {
        None
    }

    pub(crate) fn pin_to(_cpu: usize) {}
}

pub(crate) use imp::{current_cpu, pin_to, two_cpus};
