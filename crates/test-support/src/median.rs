//! The median of a set of samples.

use std::cmp::Ordering;
use std::time::Duration;

/// A kind of sample [`median`] takes: totally ordered, with a midpoint for
/// an even count of samples.
pub trait Sample: Copy {
    /// How two samples compare (a total order).
    fn compare(&self, other: &Self) -> Ordering;
    /// Halfway between `self` and `other`.
    fn midpoint(self, other: Self) -> Self;
}

impl Sample for f64 {
    fn compare(&self, other: &Self) -> Ordering {
        self.total_cmp(other)
    }

    fn midpoint(self, other: Self) -> Self {
        (self + other) / 2.0
    }
}

impl Sample for Duration {
    fn compare(&self, other: &Self) -> Ordering {
        self.cmp(other)
    }

    fn midpoint(self, other: Self) -> Self {
        let (low, high) = if self <= other {
            (self, other)
        } else {
            (other, self)
        };
        low + (high - low) / 2
    }
}

/// The median of `samples` (the middle one, or halfway between the two
/// middle ones for an even count); `None` if there are none. Reorders
/// `samples`.
///
/// ```
/// use std::time::Duration;
/// use compute_test_support::median;
///
/// assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
/// assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
/// assert_eq!(median::<f64>(&mut []), None);
/// let mut times = [Duration::from_micros(3), Duration::from_micros(1)];
/// assert_eq!(median(&mut times), Some(Duration::from_micros(2)));
/// ```
pub fn median<T: Sample>(samples: &mut [T]) -> Option<T> {
    let n = samples.len();
    if n == 0 {
        return None;
    }
    let (below, &mut upper, _) = samples.select_nth_unstable_by(n / 2, T::compare);
    if n % 2 == 1 {
        return Some(upper);
    }
    let lower = below
        .iter()
        .copied()
        .max_by(T::compare)
        .expect("an even count of at least two samples leaves one below the middle");
    Some(lower.midpoint(upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_one() {
        assert_eq!(median(&mut [5.0, 1.0, 9.0, 3.0, 7.0]), Some(5.0));
        assert_eq!(median(&mut [8.0, 2.0, 6.0, 4.0]), Some(5.0));
        assert_eq!(median(&mut [1.5]), Some(1.5));
    }

    #[test]
    fn median_of_durations() {
        let ms = Duration::from_millis;
        assert_eq!(median(&mut [ms(9), ms(1), ms(4)]), Some(ms(4)));
        assert_eq!(
            median(&mut [ms(1), ms(2)]),
            Some(Duration::from_micros(1500))
        );
        assert_eq!(median::<Duration>(&mut []), None);
    }
}
