//! Login throttling with growing delays, per account-and-address, per address and per account.
//! The per-account delay is short and capped, so strangers guessing at an account slow it down
//! but can never lock its owner out for long; the owner, from their own address, is held only by
//! their own failures.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

#[derive(Clone, Copy, Debug)]
struct State {
    failures: u32,
    blocked_until: Instant,
    last_failure: Instant,
}

/// How many failures each key forgives before delays start, and the longest delay.
#[derive(Clone, Copy, Debug)]
struct Policy {
    free: u32,
    base: Duration,
    cap: Duration,
}

const PAIR: Policy = Policy {
    free: 3,
    base: Duration::from_secs(1),
    cap: Duration::from_secs(15 * 60),
};
const ADDRESS: Policy = Policy {
    free: 20,
    base: Duration::from_secs(1),
    cap: Duration::from_secs(15 * 60),
};
const ACCOUNT: Policy = Policy {
    free: 10,
    base: Duration::from_millis(500),
    cap: Duration::from_secs(30),
};
/// Failures older than this are forgotten.
const MEMORY: Duration = Duration::from_secs(60 * 60);

#[derive(Default)]
pub struct Throttle {
    states: DashMap<String, State>,
}

impl Throttle {
    fn keys(account: &str, addr: IpAddr) -> [(String, Policy); 3] {
        let account = account.to_lowercase();
        [
            (format!("p:{account}:{addr}"), PAIR),
            (format!("a:{addr}"), ADDRESS),
            (format!("u:{account}"), ACCOUNT),
        ]
    }

    /// `Err(wait)` when a login for `account` from `addr` must wait before being tried.
    pub fn check(&self, account: &str, addr: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut wait = Duration::ZERO;
        for (key, _) in Self::keys(account, addr) {
            if let Some(s) = self.states.get(&key)
                && s.blocked_until > now
            {
                wait = wait.max(s.blocked_until - now);
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    pub fn failed(&self, account: &str, addr: IpAddr) {
        let now = Instant::now();
        for (key, policy) in Self::keys(account, addr) {
            let mut entry = self.states.entry(key).or_insert(State {
                failures: 0,
                blocked_until: now,
                last_failure: now,
            });
            if now.duration_since(entry.last_failure) > MEMORY {
                entry.failures = 0;
            }
            entry.failures += 1;
            entry.last_failure = now;
            if entry.failures > policy.free {
                let exp = (entry.failures - policy.free - 1).min(20);
                let delay = policy.base.saturating_mul(1 << exp).min(policy.cap);
                entry.blocked_until = now + delay;
            }
        }
        if self.states.len() > 100_000 {
            self.states.retain(|_, s| {
                now.duration_since(s.last_failure) < MEMORY && s.blocked_until > now
            });
        }
    }

    pub fn succeeded(&self, account: &str, addr: IpAddr) {
        let [(pair, _), _, (acct, _)] = Self::keys(account, addr);
        self.states.remove(&pair);
        self.states.remove(&acct);
        self.states.remove(&Self::lock_key(account));
    }

    fn lock_key(account: &str) -> String {
        format!("l:{}", account.to_lowercase())
    }

    /// The admin console's lockout (authentication): how long `account` stays locked, if it is.
    pub fn locked(&self, account: &str) -> Option<Duration> {
        let now = Instant::now();
        self.states
            .get(&Self::lock_key(account))
            .filter(|s| s.blocked_until > now)
            .map(|s| s.blocked_until - now)
    }

    /// Counts a failed sign-in of `account` (from any address) against the lockout: after
    /// `attempts` consecutive failures it locks for `duration`; the count restarts then.
    /// Returns whether this failure locked the account.
    pub fn lockout_failed(&self, account: &str, attempts: u32, duration: Duration) -> bool {
        let now = Instant::now();
        let mut e = self.states.entry(Self::lock_key(account)).or_insert(State {
            failures: 0,
            blocked_until: now,
            last_failure: now,
        });
        if now.duration_since(e.last_failure) > MEMORY.max(duration) {
            e.failures = 0;
        }
        e.failures += 1;
        e.last_failure = now;
        if e.failures >= attempts {
            e.blocked_until = now + duration;
            e.failures = 0;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_per_pair_and_success_clears_them() {
        let t = Throttle::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(t.check("alice", a).is_ok());
            t.failed("alice", a);
        }
        assert!(t.check("alice", a).is_ok(), "three failures are free");
        t.failed("alice", a);
        let first = t.check("alice", a).unwrap_err();
        t.failed("alice", a);
        let second = t.check("alice", a).unwrap_err();
        assert!(second > first, "delay grows: {first:?} then {second:?}");
        t.succeeded("alice", a);
        assert!(t.check("alice", a).is_ok());
    }

    #[test]
    fn strangers_delay_an_account_only_briefly() {
        let t = Throttle::default();
        for i in 0..200u32 {
            let ip: IpAddr = format!("10.1.{}.{}", i / 250, i % 250).parse().unwrap();
            t.failed("bob", ip);
        }
        let owner: IpAddr = "192.0.2.7".parse().unwrap();
        let wait = t.check("bob", owner).unwrap_err();
        assert!(
            wait <= ACCOUNT.cap,
            "the account's own delay is capped at {:?}, got {wait:?}",
            ACCOUNT.cap
        );
    }
}
