//! A circuit breaker for the LLM provider: after `threshold` failed calls in a
//! row it stops calling for `cooldown`, so a dead provider costs each question
//! nothing instead of a timeout; then one call probes it, and a success closes
//! the circuit again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; another is let through if it never reports back.
    HalfOpen {
        since: Instant,
    },
}

#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

/// The circuit is open: no call, try again after `retry_in`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Open {
    pub retry_in: Duration,
    pub failures: u32,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// May a call go out now?
    pub fn permit(&self) -> Result<(), Open> {
        self.permit_at(Instant::now())
    }

    pub fn succeeded(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    pub fn failed(&self) {
        self.failed_at(Instant::now());
    }

    fn permit_at(&self, now: Instant) -> Result<(), Open> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if now < until => Err(Open {
                retry_in: until - now,
                failures: self.threshold,
            }),
            State::HalfOpen { since } if now < since + self.cooldown => Err(Open {
                retry_in: since + self.cooldown - now,
                failures: self.threshold,
            }),
            State::Open { .. } | State::HalfOpen { .. } => {
                *state = State::HalfOpen { since: now };
                Ok(())
            }
        }
    }

    fn failed_at(&self, now: Instant) {
        let mut state = self.lock();
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed { failures: failures + 1 },
            State::Closed { .. } | State::HalfOpen { .. } => {
                tracing::error!(
                    failures = self.threshold,
                    cooldown_s = self.cooldown.as_secs(),
                    "the LLM provider keeps failing; not calling it for a while"
                );
                State::Open {
                    until: now + self.cooldown,
                }
            }
            open @ State::Open { .. } => open,
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value: a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(30);

    #[test]
    fn opens_after_the_threshold_then_lets_one_probe_through() {
        let breaker = CircuitBreaker::new(3, COOLDOWN);
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(breaker.permit_at(t0).is_ok());
            breaker.failed_at(t0);
        }
        assert!(breaker.permit_at(t0).is_ok(), "two failures of three: still closed");
        breaker.failed_at(t0);
        let open = breaker.permit_at(t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(open.retry_in, Duration::from_secs(20));

        // After the cooldown one probe goes out, the others wait for it.
        let later = t0 + COOLDOWN;
        assert!(breaker.permit_at(later).is_ok());
        assert!(breaker.permit_at(later).is_err());
        // The probe fails: open again for a whole cooldown.
        breaker.failed_at(later);
        assert!(breaker.permit_at(later + Duration::from_secs(29)).is_err());
        // The next probe succeeds: closed.
        assert!(breaker.permit_at(later + COOLDOWN).is_ok());
        breaker.succeeded();
        assert!(breaker.permit_at(later + COOLDOWN).is_ok());
        assert!(breaker.permit_at(later + COOLDOWN).is_ok());
    }

    #[test]
    fn a_success_resets_the_count_and_a_lost_probe_is_replaced() {
        let breaker = CircuitBreaker::new(2, COOLDOWN);
        let t0 = Instant::now();
        breaker.failed_at(t0);
        breaker.succeeded();
        breaker.failed_at(t0);
        assert!(breaker.permit_at(t0).is_ok(), "failures must be in a row");
        breaker.failed_at(t0);
        assert!(breaker.permit_at(t0).is_err());
        // A probe whose caller went away never reports; a cooldown later, another goes.
        assert!(breaker.permit_at(t0 + COOLDOWN).is_ok());
        assert!(breaker.permit_at(t0 + COOLDOWN + Duration::from_secs(1)).is_err());
        assert!(breaker.permit_at(t0 + COOLDOWN * 2).is_ok());
    }
}
