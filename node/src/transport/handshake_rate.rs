//! How fast one network may start handshakes: a token bucket per network
//! (the unit bans and stranger slots count, [`AddrKey`]), taken from when a
//! stranger's connection, its address proven by a Retry, asks for a
//! handshake place.
//!
//! Each handshake costs the node its share of the QUIC/TLS handshake and
//! the check of the Hello's key proof (a BLS pairing check, ~1.3 ms here),
//! and a valid Hello is never charged: a host could make the node verify
//! one proof after another by connecting, saying Hello (the same one each
//! time, free to resend) and leaving. With [`HANDSHAKES_PER_SEC`] (4) and a
//! burst of [`HANDSHAKE_BURST`] (16) per network, an honest node
//! reconnecting a few times a minute never notices, and one network costs
//! the node at most ~5 ms of CPU a second. Configured addresses are not
//! limited: the operator vouched for them.

use std::collections::HashMap;
use std::time::Instant;

use super::budget::TokenBucket;
use super::score::AddrKey;

/// Default handshakes a network may start per second.
pub const HANDSHAKES_PER_SEC: u64 = 4;
/// Default handshakes a network may start at once (its bucket's size).
pub const HANDSHAKE_BURST: u64 = 16;
/// Networks remembered at most; when full, the one whose bucket is fullest
/// goes (it would start full again anyway).
pub const MAX_NETWORKS: usize = 4096;

/// One bucket per network that started a handshake lately.
#[derive(Debug)]
pub struct HandshakeRates {
    per_sec: u64,
    burst: u64,
    buckets: HashMap<AddrKey, TokenBucket>,
}

impl HandshakeRates {
    /// Buckets of `burst` refilled at `per_sec` a second.
    pub fn new(per_sec: u64, burst: u64) -> Self {
        Self {
            per_sec,
            burst,
            buckets: HashMap::new(),
        }
    }

    /// Takes one handshake from `network`'s bucket; whether there was one.
    pub fn try_start(&mut self, network: AddrKey, now: Instant) -> bool {
        if !self.buckets.contains_key(&network) && self.buckets.len() >= MAX_NETWORKS {
            let fullest = self
                .buckets
                .iter_mut()
                .map(|(k, b)| (*k, b.level(now)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(k, _)| k);
            if let Some(k) = fullest {
                self.buckets.remove(&k);
            }
        }
        let (per_sec, burst) = (self.per_sec, self.burst);
        let ok = self
            .buckets
            .entry(network)
            .or_insert_with(|| TokenBucket::new(per_sec, burst, now))
            .try_take(1, now);
        debug_assert!(self.buckets.len() <= MAX_NETWORKS);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn net(s: &str) -> AddrKey {
        AddrKey::of(s.parse().unwrap())
    }

    #[test]
    fn a_network_starts_its_burst_then_its_rate_and_others_are_apart() {
        let t0 = Instant::now();
        let mut r = HandshakeRates::new(4, 16);
        let a = net("192.0.2.1:1");
        let started = (0..40).filter(|_| r.try_start(a, t0)).count();
        assert_eq!(started, 16, "the burst");
        let b = net("192.0.2.2:1");
        assert!(r.try_start(b, t0), "another network has its own bucket");
        // The same /64 is the same bucket.
        let v6 = net("[2001:db8::1]:1");
        assert_eq!((0..40).filter(|_| r.try_start(v6, t0)).count(), 16);
        assert!(!r.try_start(net("[2001:db8::ffff]:9"), t0));
        let later = t0 + Duration::from_secs(1);
        assert_eq!((0..40).filter(|_| r.try_start(a, later)).count(), 4);
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_fullest_bucket() {
        let t0 = Instant::now();
        let mut r = HandshakeRates::new(4, 2);
        let busy = net("10.255.255.255:1");
        assert!(r.try_start(busy, t0) && r.try_start(busy, t0));
        for i in 0..MAX_NETWORKS as u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            r.try_start(AddrKey::of((ip, 1).into()), t0);
        }
        assert_eq!(r.buckets.len(), MAX_NETWORKS);
        assert!(
            !r.try_start(busy, t0),
            "an empty bucket is kept while fuller ones go"
        );
    }
}
