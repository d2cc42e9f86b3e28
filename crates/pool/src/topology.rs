//! Counting the cores this process may use, for the default thread counts.

/// The number of physical cores this process may use: the CPUs it may run
/// on ([`std::thread::available_parallelism`], which honours affinity and
/// cgroup quotas) divided by the hardware threads per core (SMT width, read
/// from Linux sysfs; 1 where that is unavailable). At least 1.
///
/// The default thread counts are worked out from it:
/// [`default_num_threads`](crate::default_num_threads) is half of it.
///
/// ```
/// let cores = compute_pool::physical_cores();
/// assert!(cores >= 1);
/// assert!(cores <= std::thread::available_parallelism().map_or(1, |n| n.get()));
/// ```
pub fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    (logical / smt_width()).max(1)
}

/// Hardware threads per core, from `thread_siblings_list` of cpu0
/// (for example `0,4` or `0-1` means 2). 1 if unknown.
fn smt_width() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list")
        .map_or(1, |list| siblings_in(&list))
}

/// How many CPUs a sysfs CPU list such as `0,4` or `0-1` names; at least 1.
fn siblings_in(list: &str) -> usize {
    let count: usize = list
        .trim()
        .split(',')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('-') {
            Some((lo, hi)) => match (lo.trim().parse::<usize>(), hi.trim().parse::<usize>()) {
                (Ok(lo), Ok(hi)) if hi >= lo => hi - lo + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum();
    count.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_lists() {
        assert_eq!(siblings_in("0\n"), 1);
        assert_eq!(siblings_in("0,4\n"), 2);
        assert_eq!(siblings_in("0-1"), 2);
        assert_eq!(siblings_in("0-3,8-11"), 8);
        assert_eq!(siblings_in(""), 1);
        assert_eq!(siblings_in("3-1"), 1);
    }

    #[test]
    fn smt_width_is_at_least_one() {
        assert!(smt_width() >= 1);
        assert!(physical_cores() >= 1);
    }
}
