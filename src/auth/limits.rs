//! Per-key request rate (`RATE_LIMIT_RPS`, `RATE_LIMIT_BURST`): one GCRA bucket
//! per caller (governor), so one heavy client cannot take the server's time
//! from the others. Only authenticated callers get a bucket, so the map grows
//! with the keys that exist, not with what strangers send.

use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{Identity, Scope};
use crate::config::RateLimit;
use crate::domain::{KeyId, TenantName};

/// Whose bucket a request counts against: a key's, a signed-in user's (by
/// tenant and subject), or the operator's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Caller {
    Operator,
    Key(KeyId),
    User(TenantName, String),
}

pub struct RequestLimiter {
    /// Keyed by the caller.
    buckets: DefaultKeyedRateLimiter<Caller>,
    clock: DefaultClock,
}

impl RequestLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            buckets: RateLimiter::keyed(Quota::per_second(limit.per_second).allow_burst(limit.burst)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request of the caller: `Err` says how long until the next one
    /// would be let through.
    pub fn check(&self, scope: &Scope) -> Result<(), Duration> {
        let caller = match &scope.identity {
            Identity::Operator => Caller::Operator,
            Identity::Key { id, .. } => Caller::Key(*id),
            Identity::User { user, .. } => Caller::User(scope.tenant.clone(), user.clone()),
        };
        self.buckets
            .check_key(&caller)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    #[test]
    fn a_caller_past_its_burst_waits_and_others_do_not() {
        let limiter = RequestLimiter::new(RateLimit {
            per_second: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(2).unwrap(),
        });
        let operator = Scope::operator();
        assert!(limiter.check(&operator).is_ok());
        assert!(limiter.check(&operator).is_ok());
        let wait = limiter.check(&operator).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        let other = Scope {
            identity: Identity::Key {
                id: KeyId::new(),
                role: crate::domain::Role::Reader,
            },
            ..Scope::operator()
        };
        assert!(limiter.check(&other).is_ok(), "each caller has its own bucket");
    }
}
