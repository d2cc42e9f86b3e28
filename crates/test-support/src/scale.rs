//! The `COMPUTE_TEST_SCALE` knob: the memcheck step sets it below 1 to run
//! the heavy tests with fewer rounds, since valgrind is slow.

/// `COMPUTE_TEST_SCALE` (a positive float, default 1).
///
/// # Panics
///
/// If the variable is set to something other than a positive number.
pub fn test_scale() -> f64 {
    match std::env::var("COMPUTE_TEST_SCALE") {
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(scale) if scale.is_finite() && scale > 0.0 => scale,
            _ => panic!("COMPUTE_TEST_SCALE = {text:?}: expected a positive number"),
        },
        Err(_) => 1.0,
    }
}

/// `n` scaled by [`test_scale`], at least `min`.
///
/// ```
/// // With COMPUTE_TEST_SCALE unset (or 1), `n` itself.
/// # if std::env::var_os("COMPUTE_TEST_SCALE").is_none() {
/// assert_eq!(compute_test_support::scaled(5_000, 1), 5_000);
/// # }
/// ```
pub fn scaled(n: u64, min: u64) -> u64 {
    ((n as f64 * test_scale()) as u64).max(min)
}
