//! Per-peer budgets for expensive work: token buckets checked when a
//! message arrives, before anything verifies it.
//!
//! Two buckets per connection:
//!
//! - **checks** — signature and pairing checks the message may cost: a vote
//!   1, a proposal 2 (signature and VRF proof), evidence 2 (two signed
//!   messages), a block response 1 per block (its certificate's aggregate
//!   check). A message that does not fit is dropped unverified and counted
//!   (`agora_budget_dropped_total{kind="checks"}`).
//! - **served bytes** — bytes of blocks read from storage and encoded for
//!   this peer's block requests. A request is served only while the bucket
//!   is not in debt, then the bytes actually served are taken, so the long-
//!   run rate is the refill rate (`{kind="serve"}` counts refusals).
//!
//! Sizing for an honest 100-validator network (written down in
//! ARCHITECTURE.md): per round a height carries ≤ 100 prevotes, 100
//! precommits and one proposal, ~202 check units; each peer relays it
//! fresh once and re-gossips the height's verified messages once per tick
//! (1 s), so ~404 units per second per round in progress; a sync answer
//! holds ≤ 512 blocks (one request in flight, one answer per round trip;
//! a catch-up of empty blocks at ~1,500 blocks/s, as measured here, spends
//! ~1,500 units/s of its server's bucket).
//! The default of 4,000 units/s with a burst of 8,000 covers eight rounds
//! in one height plus a full sync answer every second with room to spare;
//! beyond that only re-gossip of old rounds can be dropped, and it comes
//! again the next tick. Serving: a syncing peer asks for 256 blocks at a
//! time, one request in flight, and an answer is at most one 4 MiB frame:
//! 8 MiB/s with a 16 MiB burst serves two full answers a second (a node
//! catching up on empty blocks, ~1,500 a second here, asks for about
//! 1.5 MiB/s).

use std::time::Instant;

/// Per-peer bucket sizes (see the module docs for the arithmetic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Check units refilled per second.
    pub checks_per_sec: u64,
    /// Check units the bucket holds at most (and starts with).
    pub checks_burst: u64,
    /// Block bytes served per second.
    pub serve_bytes_per_sec: u64,
    /// Block bytes the serving bucket holds at most (and starts with).
    pub serve_bytes_burst: u64,
    /// Handshakes one stranger network may start per second
    /// ([`super::handshake_rate`]).
    pub handshakes_per_sec: u64,
    /// Handshakes one stranger network may start at once.
    pub handshake_burst: u64,
}

/// Default check units per second and peer.
pub const CHECKS_PER_SEC: u64 = 4_000;
/// Default check burst per peer.
pub const CHECKS_BURST: u64 = 8_000;
/// Default block bytes served per second and peer: 8 MiB.
pub const SERVE_BYTES_PER_SEC: u64 = 8 * 1024 * 1024;
/// Default serving burst per peer: 16 MiB.
pub const SERVE_BYTES_BURST: u64 = 16 * 1024 * 1024;

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            checks_per_sec: CHECKS_PER_SEC,
            checks_burst: CHECKS_BURST,
            serve_bytes_per_sec: SERVE_BYTES_PER_SEC,
            serve_bytes_burst: SERVE_BYTES_BURST,
            handshakes_per_sec: super::handshake_rate::HANDSHAKES_PER_SEC,
            handshake_burst: super::handshake_rate::HANDSHAKE_BURST,
        }
    }
}

/// A token bucket: `capacity` tokens at most, `rate` per second refilled,
/// full at the start. The level may go negative ([`Self::spend`]): a debt
/// paid back by the refill before anything else is allowed.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    level: f64,
    capacity: f64,
    rate: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u64, capacity: u64, now: Instant) -> Self {
        Self {
            level: capacity as f64,
            capacity: capacity as f64,
            rate: rate as f64,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + dt * self.rate).min(self.capacity);
        self.at = self.at.max(now);
    }

    /// Takes `cost` tokens if there are that many; returns whether it did.
    pub fn try_take(&mut self, cost: u64, now: Instant) -> bool {
        self.refill(now);
        let cost = cost as f64;
        if self.level >= cost {
            self.level -= cost;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is not in debt (work of unknown size may start).
    pub fn solvent(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.level > 0.0
    }

    /// Takes `cost` tokens even if that puts the bucket in debt.
    pub fn spend(&mut self, cost: u64, now: Instant) {
        self.refill(now);
        self.level -= cost as f64;
    }

    /// Tokens now (negative in debt).
    pub fn level(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.level
    }
}

/// One connection's buckets.
#[derive(Debug, Clone)]
pub struct PeerBudget {
    /// Signature and pairing checks.
    pub checks: TokenBucket,
    /// Block bytes served.
    pub serve: TokenBucket,
}

impl PeerBudget {
    /// Full buckets.
    pub fn new(cfg: &BudgetConfig, now: Instant) -> Self {
        Self {
            checks: TokenBucket::new(cfg.checks_per_sec, cfg.checks_burst, now),
            serve: TokenBucket::new(cfg.serve_bytes_per_sec, cfg.serve_bytes_burst, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 50, t0);
        let first = (0..100).filter(|_| b.try_take(1, t0)).count();
        assert_eq!(first, 50, "the burst");
        assert!(!b.try_take(1, t0));
        // Half a second refills 5 tokens, never more than the capacity.
        let later = t0 + Duration::from_millis(500);
        assert_eq!((0..100).filter(|_| b.try_take(1, later)).count(), 5);
        let much_later = t0 + Duration::from_secs(3600);
        assert!((b.level(much_later) - 50.0).abs() < 1e-9);
        // A cost larger than what is left is refused whole.
        assert!(!b.try_take(51, much_later));
        assert!(b.try_take(50, much_later));
    }

    #[test]
    fn debt_is_paid_back_before_more_work() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, 100, t0);
        assert!(b.solvent(t0));
        b.spend(300, t0);
        assert!(!b.solvent(t0));
        assert!(!b.solvent(t0 + Duration::from_millis(1_900)));
        assert!(b.solvent(t0 + Duration::from_millis(2_100)));
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::new(10, 10, t0);
        assert!(b.try_take(10, t0));
        assert!(!b.try_take(1, t0 - Duration::from_secs(5)));
        assert!(!b.try_take(1, t0));
    }
}
