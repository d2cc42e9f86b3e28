//! Where a bench's threads run: left to the kernel, or pinned so that runs
//! compare like with like.
//!
//! On a machine with two CPUs and four busy threads, where the kernel puts
//! each thread decides a service shape's throughput more than the bridge
//! does: the same code measures several times apart from one process to
//! the next, for the naive bridge as for ours. Pinned, every run of a
//! shape draws the same placement, and two bridges compare on equal terms.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Where a [`Setup`](crate::setup::Setup)'s threads run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// Wherever the kernel puts them (what services get).
    #[default]
    Kernel,
    /// Executor thread `i` and compute thread `i` pinned together on the
    /// `i`-th usable CPU (modulo their number): at 1 + 1, both on one CPU.
    Paired,
    /// Executor threads on the first usable CPU, compute threads on the
    /// second: every job crosses from one CPU to the other.
    Apart,
}

impl Placement {
    /// Every placement, the kernel's first.
    pub const ALL: [Placement; 3] = [Placement::Kernel, Placement::Paired, Placement::Apart];

    /// The name used in labels and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Kernel => "kernel",
            Placement::Paired => "paired",
            Placement::Apart => "apart",
        }
    }

    /// The placement called `name`, if any.
    pub fn from_name(name: &str) -> Option<Placement> {
        Placement::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The CPU the `index`-th thread of its kind goes to (`executor`:
    /// a tokio worker, else a compute thread), out of `cpus` (the usable
    /// ones, see [`usable_cpus`]); `None` for [`Placement::Kernel`].
    ///
    /// # Panics
    ///
    /// For a pinned placement with fewer CPUs than it needs (two for
    /// [`Placement::Apart`], one otherwise).
    pub fn cpu_for(self, cpus: &[usize], executor: bool, index: usize) -> Option<usize> {
        if self == Placement::Kernel {
            return None;
        }
        self.check(cpus);
        Some(match self {
            Placement::Paired => cpus[index % cpus.len()],
            _ => cpus[usize::from(!executor)],
        })
    }

    /// A thread-start hook that pins each thread it runs on to its CPU, in
    /// the order they start; the first `executors` threads are executor
    /// threads, the rest compute threads (a tokio runtime starts all its
    /// workers as it is built, and its blocking threads later, on demand).
    /// The usable CPUs are the calling thread's, read here: a thread
    /// started by a pinned one inherits its single CPU.
    ///
    /// # Panics
    ///
    /// Here, not in the threads, for a pinned placement this process does
    /// not have the CPUs for (see [`cpu_for`](Self::cpu_for); outside
    /// Linux none can be listed).
    pub fn pinner(self, executors: usize) -> impl Fn() + Send + Sync + 'static {
        let cpus = usable_cpus();
        if self != Placement::Kernel {
            self.check(&cpus);
        }
        let started = Arc::new(AtomicUsize::new(0));
        move || {
            // ORDERING: Relaxed: only the count matters, each thread gets
            // its own number.
            let n = started.fetch_add(1, Ordering::Relaxed);
            let cpu = if n < executors {
                self.cpu_for(&cpus, true, n)
            } else {
                self.cpu_for(&cpus, false, n - executors)
            };
            if let Some(cpu) = cpu {
                pin_to(cpu);
            }
        }
    }

    /// Panics unless `cpus` are enough for this placement.
    fn check(self, cpus: &[usize]) {
        let needed = if self == Placement::Apart { 2 } else { 1 };
        assert!(
            cpus.len() >= needed,
            "placement `{}` needs {needed} usable CPU(s); this process may use {}",
            self.name(),
            cpus.len()
        );
    }
}

/// The CPUs this process may run on, in increasing order (empty where they
/// cannot be listed).
pub fn usable_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: an all-zero cpu_set_t is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is the
        // calling thread.
        if unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `cpu` is below CPU_SETSIZE and `set` a valid cpu_set_t.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

/// Pins the calling thread to `cpu`.
///
/// # Panics
///
/// If the kernel refuses (a CPU this process may not use).
pub fn pin_to(cpu: usize) {
    #[cfg(target_os = "linux")]
    {
        assert!(cpu < libc::CPU_SETSIZE as usize, "no CPU {cpu}");
        // SAFETY: an all-zero cpu_set_t is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` is below CPU_SETSIZE (checked above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is the
        // calling thread.
        let pinned = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
        assert_eq!(pinned, 0, "pin this thread to CPU {cpu}");
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for placement in Placement::ALL {
            assert_eq!(Placement::from_name(placement.name()), Some(placement));
        }
        assert_eq!(Placement::from_name("anywhere"), None);
    }

    #[test]
    fn pinned_placements_put_threads_where_they_say() {
        assert!(!usable_cpus().is_empty(), "Linux lists the usable CPUs");
        let cpus = [3, 5];
        assert_eq!(Placement::Kernel.cpu_for(&cpus, true, 0), None);
        assert_eq!(Placement::Paired.cpu_for(&cpus, true, 0), Some(3));
        assert_eq!(Placement::Paired.cpu_for(&cpus, false, 0), Some(3));
        assert_eq!(Placement::Paired.cpu_for(&cpus, true, 1), Some(5));
        assert_eq!(
            Placement::Paired.cpu_for(&cpus, false, 2),
            Some(3),
            "round the usable CPUs"
        );
        assert_eq!(Placement::Apart.cpu_for(&cpus, true, 1), Some(3));
        assert_eq!(Placement::Apart.cpu_for(&cpus, false, 0), Some(5));
    }

    #[test]
    #[should_panic(expected = "placement `apart` needs 2 usable CPU(s)")]
    fn apart_needs_two_cpus() {
        Placement::Apart.cpu_for(&[0], true, 0);
    }

    #[test]
    fn the_pinner_pins_executors_first_then_compute_threads() {
        let cpus = usable_cpus();
        if cpus.len() < 2 {
            return; // One CPU: every placement is the same.
        }
        // Fresh threads, so pinning never touches the test harness's.
        let pin = Arc::new(Placement::Apart.pinner(1));
        let ran_on = |pin: Arc<dyn Fn() + Send + Sync>| {
            std::thread::spawn(move || {
                pin();
                crate::cpu::current_cpu().map(|cpu| cpu as usize)
            })
            .join()
            .unwrap()
        };
        assert_eq!(ran_on(pin.clone()), Some(cpus[0]), "the executor");
        assert_eq!(ran_on(pin.clone()), Some(cpus[1]), "a compute thread");
        assert_eq!(ran_on(pin), Some(cpus[1]), "another compute thread");
        // A compute thread started by a pinned executor thread inherits its
        // one CPU; the pinner still knows every usable CPU.
        let pin = Arc::new(Placement::Apart.pinner(1));
        let inner = pin.clone();
        let (executor, compute) = std::thread::spawn(move || {
            inner();
            (crate::cpu::current_cpu(), ran_on(inner))
        })
        .join()
        .unwrap();
        assert_eq!(executor.map(|cpu| cpu as usize), Some(cpus[0]));
        assert_eq!(compute, Some(cpus[1]));
    }
}
