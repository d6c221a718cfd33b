//! How long a failed job waits before its next attempt.

use std::time::Duration;

/// The wait after failed attempt `attempt` (from 1): the step `min(cap, base * 2^(attempt-1))`,
/// half of it fixed and half random ("equal jitter"). Workers retrying together spread out, and
/// each wait is at least half its step, so waits grow with the attempts.
pub fn retry_delay(attempt: i32, base: Duration, cap: Duration) -> Duration {
    let doublings = attempt.saturating_sub(1).clamp(0, 31) as u32;
    let step = base.saturating_mul(1u32 << doublings).min(cap);
    let half = step / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// The next wait of a loop that retries something failing (reconnecting, say): doubled, at most
/// `cap`.
pub(crate) fn doubled(wait: Duration, cap: Duration) -> Duration {
    wait.saturating_mul(2).min(cap)
}
