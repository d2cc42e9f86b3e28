//! Duration histograms with real buckets: 16 per power of two of
//! nanoseconds (one per nanosecond below 32 ns), so a quantile read from
//! one is at least the true value and less than 6.25% above it. Recording
//! is a `leading_zeros`, a shift and one relaxed add.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two, as a power of two: 2^4 = 16.
const SUB_BITS: u32 = 4;
/// Sub-buckets per power of two.
const SUB: usize = 1 << SUB_BITS;
/// Values (nanoseconds minus one) below this have a bucket each.
const LINEAR: usize = 2 * SUB;
/// Values above 2^TOP_BITS ns (about 73 minutes) share the last bucket.
const TOP_BITS: u32 = 42;
/// Buckets of a duration histogram: the linear ones, then 16 per power of
/// two from 2^5 to 2^42 ns.
pub(crate) const BUCKETS: usize = LINEAR + (TOP_BITS - SUB_BITS - 1) as usize * SUB;

/// A duration histogram being written: [`BUCKETS`] relaxed tallies, in the
/// buckets of [`bucket_of`], on cache lines of their own.
pub(crate) struct AtomicHistogram(Box<Buckets>);

/// The tallies, on cache lines of their own.
#[repr(align(128))]
struct Buckets([AtomicU64; BUCKETS]);

impl Default for AtomicHistogram {
    fn default() -> Self {
        AtomicHistogram(Box::new(Buckets(std::array::from_fn(|_| {
            AtomicU64::new(0)
        }))))
    }
}

impl AtomicHistogram {
    /// Counts one value of `ns` nanoseconds.
    pub(crate) fn record(&self, ns: u64) {
        // ORDERING: Relaxed: an independent tally.
        self.0 .0[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of the tallies.
    pub(crate) fn load(&self) -> Histogram {
        // ORDERING: Relaxed: a snapshot of independent tallies.
        Histogram(Box::new(std::array::from_fn(|b| {
            self.0 .0[b].load(Ordering::Relaxed)
        })))
    }
}

/// The histogram bucket of a duration of `ns` nanoseconds.
///
/// Buckets are closed above, as Prometheus' `le` bounds are: with `x = ns -
/// 1`, bucket `b < 32` holds `ns = b + 1` (and 0 ns, in bucket 0); above,
/// `x`'s top bit `e` picks a power of two and the 4 bits under it one of 16
/// sub-buckets, so a bucket holds `(lo, hi]` with `hi - lo = 2^(e-4)` and
/// `lo >= 2^e`: `hi < (1 + 1/16) * v` for any `v` in it. Values above
/// 2^42 ns count in the last bucket.
pub(crate) fn bucket_of(ns: u64) -> usize {
    let x = ns.saturating_sub(1).min((1 << TOP_BITS) - 1);
    if x < LINEAR as u64 {
        return x as usize;
    }
    // The top bit's position, 5..=41.
    let e = u64::BITS - 1 - x.leading_zeros();
    let sub = (x >> (e - SUB_BITS)) as usize & (SUB - 1);
    LINEAR + (e - SUB_BITS - 1) as usize * SUB + sub
}

/// The largest duration, in nanoseconds, that bucket `b` holds (its upper
/// edge; the last bucket also holds everything above it).
pub(crate) fn bucket_upper_ns(b: usize) -> u64 {
    if b < LINEAR {
        return b as u64 + 1;
    }
    let octave = ((b - LINEAR) / SUB) as u32;
    let sub = ((b - LINEAR) % SUB) as u64;
    (SUB as u64 + sub + 1) << (octave + 1)
}

/// A snapshot of a duration histogram: counts per bucket of [`bucket_of`].
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Histogram(Box<[u64; BUCKETS]>);

impl Histogram {
    /// Values counted.
    pub(crate) fn count(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Values of at most `edge_ns` nanoseconds, exact when `edge_ns` is a
    /// bucket's upper edge (every power of two from 1 ns to 2^42 ns is),
    /// else counting the whole bucket `edge_ns` falls in.
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))] // the exporter reads it
    pub(crate) fn count_le(&self, edge_ns: u64) -> u64 {
        self.0[..=bucket_of(edge_ns)].iter().sum()
    }

    /// The value under which `q` (0.0..=1.0) of the samples fall, in
    /// microseconds: the upper edge of its bucket, at least the true value
    /// and less than 6.25% above it, never more than `max_ns` (and `max_ns`
    /// in the last bucket, whose values may exceed its edge). 0 when empty.
    pub(crate) fn quantile_us(&self, max_ns: u64, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        // The rank of the wanted sample, 1-based, at least 1.
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (bucket, &count) in self.0.iter().enumerate() {
            seen += count;
            if seen >= rank {
                // The last bucket also holds everything above its edge.
                let upper = if bucket == BUCKETS - 1 {
                    max_ns
                } else {
                    bucket_upper_ns(bucket).min(max_ns)
                };
                return upper as f64 / 1000.0;
            }
        }
        max_ns as f64 / 1000.0
    }
}

impl fmt::Debug for Histogram {
    /// The non-empty buckets only, as `upper edge in ns: count`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .enumerate()
                    .filter(|(_, &count)| count > 0)
                    .map(|(b, count)| (bucket_upper_ns(b), count)),
            )
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every value's bucket: its upper edge is at least the value and less
    /// than 6.25% above it, and the bucket below ends under the value.
    fn check_bucket(ns: u64) {
        let b = bucket_of(ns);
        assert!(b < BUCKETS, "{ns} ns: bucket {b}");
        let upper = bucket_upper_ns(b);
        if ns > 1 << TOP_BITS {
            assert_eq!(b, BUCKETS - 1, "{ns} ns");
            return;
        }
        assert!(upper >= ns.max(1), "{ns} ns: upper edge {upper}");
        assert!(
            (upper - ns.max(1)) * 16 < ns.max(1),
            "{ns} ns: upper edge {upper} is 6.25% or more above"
        );
        if b > 0 {
            assert!(bucket_upper_ns(b - 1) < ns, "{ns} ns: bucket {b} too high");
        }
    }

    #[test]
    fn buckets_are_within_a_sixteenth_over_a_sweep() {
        for ns in 0..100_000 {
            check_bucket(ns);
        }
        // Multiplicative steps to beyond the range, with each power of two
        // and its neighbours.
        let mut ns = 100_000u64;
        while ns < u64::MAX / 2 {
            check_bucket(ns);
            ns += ns / 97 + 1;
        }
        for k in 0..63 {
            let p = 1u64 << k;
            for v in [p - 1, p, p + 1] {
                check_bucket(v);
            }
        }
        check_bucket(u64::MAX);
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(32), 31);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_upper_ns(BUCKETS - 1), 1 << TOP_BITS);
    }

    #[test]
    fn every_bucket_edge_maps_back_and_edges_increase() {
        for b in 0..BUCKETS {
            assert_eq!(bucket_of(bucket_upper_ns(b)), b, "bucket {b}");
            assert_eq!(bucket_of(bucket_upper_ns(b) + 1), (b + 1).min(BUCKETS - 1));
            if b > 0 {
                assert!(bucket_upper_ns(b) > bucket_upper_ns(b - 1));
            }
        }
        // Every power of two up to the top is an edge, so counts at it are
        // exact.
        for k in 0..=TOP_BITS {
            let p = 1u64 << k;
            assert_eq!(bucket_upper_ns(bucket_of(p)), p, "2^{k}");
        }
    }

    fn histogram_of(values_ns: impl IntoIterator<Item = u64>) -> (Histogram, u64) {
        let h = AtomicHistogram::default();
        let mut max = 0;
        for v in values_ns {
            h.record(v);
            max = max.max(v);
        }
        (h.load(), max)
    }

    /// `estimate` (µs) is at least `truth` (ns) and less than 6.25% above.
    pub(crate) fn assert_close(estimate_us: f64, truth_ns: u64, what: &str) {
        let estimate_ns = estimate_us * 1000.0;
        let truth = truth_ns as f64;
        assert!(
            estimate_ns >= truth - 1e-6 && estimate_ns < truth * 1.0625 + 1e-6,
            "{what}: estimate {estimate_ns} ns, true {truth} ns"
        );
    }

    #[test]
    fn quantiles_of_a_uniform_distribution() {
        // 1 µs, 2 µs, ..., 10 ms.
        let n = 10_000u64;
        let (h, max) = histogram_of((1..=n).map(|i| i * 1000));
        assert_eq!(h.count(), n);
        for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0] {
            let rank = ((q * n as f64).ceil() as u64).max(1);
            assert_close(h.quantile_us(max, q), rank * 1000, &format!("q={q}"));
        }
        // Counts at power-of-two edges are exact.
        for k in 10..=24 {
            let edge = 1u64 << k;
            assert_eq!(h.count_le(edge), (edge / 1000).min(n), "le 2^{k} ns");
        }
    }

    #[test]
    fn quantiles_of_a_geometric_distribution() {
        // Value 1.1^i µs, i = 0..200 (1 µs to about 190 s): every quantile
        // is one of the values.
        let values: Vec<u64> = (0..200).map(|i| (1000.0 * 1.1f64.powi(i)) as u64).collect();
        let (h, max) = histogram_of(values.iter().copied());
        for q in [0.05, 0.5, 0.9, 0.99, 1.0] {
            let rank = ((q * values.len() as f64).ceil() as usize).max(1);
            assert_close(h.quantile_us(max, q), values[rank - 1], &format!("q={q}"));
        }
        // A bimodal one: 90 at 3 µs, 10 at 7 s.
        let (h, max) = histogram_of(
            std::iter::repeat_n(3_000, 90).chain(std::iter::repeat_n(7_000_000_000, 10)),
        );
        assert_close(h.quantile_us(max, 0.5), 3_000, "bimodal p50");
        assert_close(h.quantile_us(max, 0.9), 3_000, "bimodal p90");
        assert_close(h.quantile_us(max, 0.91), 7_000_000_000, "bimodal p91");
        assert_eq!(h.quantile_us(max, 1.0), 7_000_000.0);
        // Beyond the range: reported as the longest seen.
        let (h, max) = histogram_of([u64::MAX / 4]);
        assert_eq!(h.quantile_us(max, 0.5), (u64::MAX / 4) as f64 / 1000.0);
    }
}
