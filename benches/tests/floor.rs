//! The floor's placements: threads go where they are told, or the floor
//! says it cannot place them.

use std::time::Duration;

use compute_benches::floor::{allowed_cpus, hand_off, pin_to, Placement, Wait};

#[test]
fn with_one_cpu_allowed_threads_cannot_be_placed_apart_but_can_be_together() {
    // Spawned threads inherit the affinity: the floor sees one CPU only.
    std::thread::spawn(|| {
        let cpu = compute_benches::cpu::current_cpu().expect("sched_getcpu works here");
        assert!(pin_to(cpu as usize), "confine the test thread to CPU {cpu}");
        let job = Duration::from_micros(20);
        assert_eq!(hand_off(Wait::Sleep, Placement::Apart, job, 10), None);
        let together = hand_off(Wait::Sleep, Placement::Together, job, 10)
            .expect("one CPU is enough for two threads together");
        assert!(together.wall_p50 >= job);
    })
    .join()
    .expect("the confined thread does not panic");
}

#[test]
fn every_placement_runs_both_ways_of_waiting_and_pins_where_it_says() {
    // The affinity mask, not `available_parallelism` (which also counts a
    // cgroup's CPU quota): it is what pinning can use.
    let cpus = allowed_cpus().len();
    for wait in [Wait::Spin, Wait::Sleep] {
        for placement in [Placement::Free, Placement::Apart, Placement::Together] {
            let cost = hand_off(wait, placement, Duration::from_micros(10), 20);
            if placement == Placement::Apart && cpus < 2 {
                assert_eq!(cost, None, "{wait:?} {placement:?}");
                continue;
            }
            let cost = cost.unwrap_or_else(|| panic!("{wait:?} {placement:?}: placed"));
            assert!(
                cost.wall_p50 >= Duration::from_micros(10),
                "{wait:?} {placement:?}: a round trip holds the job"
            );
            assert!(
                cost.cpu_per_job > Duration::ZERO,
                "{wait:?} {placement:?}: CPU counted"
            );
            if let (Some(submitter), Some(worker)) = cost.cpus {
                match placement {
                    Placement::Apart => assert_ne!(submitter, worker, "{wait:?}: apart"),
                    Placement::Together => assert_eq!(submitter, worker, "{wait:?}: together"),
                    Placement::Free => {}
                }
            }
        }
    }
}
