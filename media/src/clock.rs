//! The media clock: every call's 20 ms frame tick falls on one process-wide grid.
//!
//! Each call paces its media on its own interval. Started at the moment its call started, the
//! intervals of N calls fall at N different instants of every 20 ms, and each wakes a runtime
//! worker on its own: the workers park and wake N times a frame. On one grid, the calls' ticks
//! come due together and a worker runs them in one wake-up. A call's first tick comes at most
//! one frame after it asked (its phase is the grid's, not its own); nothing else changes.
//!
//! Owns: the grid's origin, set once, the first time any call asks. The transports turn
//! [`next_tick`] into their runtime's interval.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The grid's origin: the first tick any call of this process asked for.
static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// The first instant on the grid of `period` at or after `now`.
pub fn next_tick(now: Instant, period: Duration) -> Instant {
    let origin = *ORIGIN.get_or_init(|| now);
    aligned(origin, now, period)
}

/// The first instant `origin + k * period` at or after `now` (`origin` itself when `now` is
/// earlier, or `period` is zero).
pub fn aligned(origin: Instant, now: Instant, period: Duration) -> Instant {
    let since = now.saturating_duration_since(origin);
    let period_ns = period.as_nanos();
    if period_ns == 0 || since.is_zero() {
        return origin.max(now);
    }
    let periods = since.as_nanos().div_ceil(period_ns);
    let offset = u64::try_from(periods * period_ns).unwrap_or(u64::MAX);
    origin + Duration::from_nanos(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_fall_on_the_grid() {
        let origin = Instant::now();
        let ms = Duration::from_millis;
        let period = ms(20);
        assert_eq!(aligned(origin, origin, period), origin);
        assert_eq!(aligned(origin, origin + ms(1), period), origin + ms(20));
        assert_eq!(aligned(origin, origin + ms(20), period), origin + ms(20));
        assert_eq!(aligned(origin, origin + ms(59), period), origin + ms(60));
        assert_eq!(
            aligned(origin, origin + ms(5), Duration::ZERO),
            origin + ms(5)
        );
        // Two calls that start apart tick together.
        let a = next_tick(origin + ms(3), period);
        let b = next_tick(origin + ms(47), period);
        assert_eq!((b - a).as_nanos() % period.as_nanos(), 0);
    }
}
