//! Peer accountability: a misbehaviour score per peer that decays over
//! time, and bans bound to the certificate *and* the remote address.
//!
//! Every input that failed a cryptographic or structural check is charged
//! to the peer that sent it with the points of its [`ChargeReason`]. The
//! score halves every [`HALF_LIFE`]; reaching [`BAN_THRESHOLD`] closes the
//! connection and bans the peer. The n-th ban of a peer lasts the base ban
//! (30 s by default) × 2ⁿ⁻¹, at most × 64. Stale-but-valid messages (old
//! heights or rounds, duplicates) are never charged: the engine only
//! reports inputs that *failed* a check, and an honest peer never sends one.
//!
//! Bans bind to the certificate (the [`PeerId`]) and to the remote address,
//! so a banned peer cannot come back with a fresh self-signed certificate.
//! The address is the host's network ([`crate::host_network`]: an IPv4
//! address, or an IPv6 /64, so that a host cannot come back from the next
//! of its 2⁶⁴ addresses), except on loopback where it is IP *and port*:
//! every local test node shares 127.0.0.1, and a node's QUIC endpoint dials
//! from the socket it listens on, so ip:port names one process there.
//! Addresses in the configuration's `peers` are never banned by address
//! and never refused for a ban of their network: the operator vouched for
//! them, and a configured validator behind a NAT (or in a /64) shared with
//! a misbehaving host must still get through; their certificates are
//! banned like anyone's.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::PeerId;

/// A score at or above this bans the peer.
pub const BAN_THRESHOLD: f64 = 100.0;
/// A score halves in this time.
pub const HALF_LIFE: Duration = Duration::from_secs(60);
/// At most this many scored peers and banned addresses are remembered
/// (each table); when full, the entry whose ban ended longest ago goes.
pub const MAX_SCORED: usize = 4096;

/// What a peer is charged for, with its points (see the score table in
/// ARCHITECTURE.md, "Peer accountability and budgets").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChargeReason {
    /// A frame over its kind's limit, or undecodable bytes: 100 (at once).
    Frame = 0,
    /// A proposal or vote the consensus core rejected (bad signature, VRF
    /// or certificate, not the proposer, unknown validator, bad header): 30.
    Consensus = 1,
    /// A block breaking a content rule (relayed body, synced block): 100.
    BadBlock = 2,
    /// A block response nobody asked for: 30. (A slow honest peer's answer
    /// to a request given up is not charged; see `engine::sync`.)
    Unsolicited = 3,
    /// A height announced and not served: 30 (a slow link can time out).
    FalseHeight = 4,
    /// Evidence that does not verify: 60.
    BadEvidence = 5,
    /// A structurally broken message (a synced block without certificate,
    /// out of order): 100.
    Malformed = 6,
    /// A Hello that claims a validator key and does not prove it: 60.
    BadHello = 7,
    /// A gossiped transaction that fails a stateless check (decoding, chain
    /// id, signature): 30. The sender admitted it before gossiping, so it
    /// is at fault; a transaction that only fails a state check (nonce,
    /// balance) can go stale in honest hands and is never charged.
    BadTransaction = 8,
    /// A snapshot manifest or chunk (state sync) that does not hash to the
    /// certified app hash: 100 (honest state cannot hash otherwise).
    BadSnapshot = 9,
}

impl ChargeReason {
    /// Every reason, in label order.
    pub const ALL: [Self; 10] = [
        Self::Frame,
        Self::Consensus,
        Self::BadBlock,
        Self::Unsolicited,
        Self::FalseHeight,
        Self::BadEvidence,
        Self::Malformed,
        Self::BadHello,
        Self::BadTransaction,
        Self::BadSnapshot,
    ];

    /// Points charged per offence. Not divisors of the threshold: scores
    /// decay continuously, so four charges of 25 a second apart would sum
    /// to just under 100. Three charges of 30 never ban; a fourth within
    /// about 30 s does; two of 60 ban within about 35 s of each other.
    pub fn points(self) -> f64 {
        match self {
            Self::Frame | Self::BadBlock | Self::Malformed | Self::BadSnapshot => BAN_THRESHOLD,
            Self::BadEvidence | Self::BadHello => 60.0,
            Self::Consensus | Self::Unsolicited | Self::FalseHeight | Self::BadTransaction => 30.0,
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Frame => "frame",
            Self::Consensus => "consensus",
            Self::BadBlock => "bad_block",
            Self::Unsolicited => "unsolicited",
            Self::FalseHeight => "false_height",
            Self::BadEvidence => "bad_evidence",
            Self::Malformed => "malformed",
            Self::BadHello => "bad_hello",
            Self::BadTransaction => "bad_transaction",
            Self::BadSnapshot => "bad_snapshot",
        }
    }
}

/// The key an address is banned and counted under: the host's network
/// (its IPv4 address or IPv6 /64), or ip:port on loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrKey {
    /// A remote host's network ([`crate::host_network::of`]).
    Network(IpAddr),
    /// A process on this host.
    Loopback(SocketAddr),
}

impl AddrKey {
    /// The key of a remote address.
    pub fn of(addr: SocketAddr) -> Self {
        let ip = addr.ip().to_canonical();
        if ip.is_loopback() {
            Self::Loopback(SocketAddr::new(ip, addr.port()))
        } else {
            Self::Network(crate::host_network::of(ip))
        }
    }
}

/// One peer's record.
#[derive(Debug, Clone)]
pub struct Score {
    /// The score when last charged.
    points: f64,
    /// When it was last charged.
    at: Instant,
    /// How many times it was charged since the node started.
    pub charges: u32,
    /// How many times it was banned.
    pub bans: u32,
    /// The most recent reason.
    pub last_reason: Option<ChargeReason>,
    /// Until when it is refused.
    pub banned_until: Option<Instant>,
}

impl Score {
    /// The decayed score at `now`.
    pub fn at(&self, now: Instant) -> f64 {
        decay(self.points, now.saturating_duration_since(self.at))
    }
}

/// `points` after `elapsed` of exponential decay with [`HALF_LIFE`].
pub fn decay(points: f64, elapsed: Duration) -> f64 {
    points * 0.5f64.powf(elapsed.as_secs_f64() / HALF_LIFE.as_secs_f64())
}

/// What a charge led to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Charged; the score stays below the threshold.
    Charged(f64),
    /// The score reached the threshold: banned for this long.
    Banned(Duration),
}

/// Scores and bans of all peers.
#[derive(Debug, Default)]
pub struct Scores {
    peers: HashMap<PeerId, Score>,
    addrs: HashMap<AddrKey, Instant>,
}

impl Scores {
    /// Charges `peer` (at `addr`, unless that address must never be banned)
    /// for `reason`; bans it for `base_ban` × 2ⁿ⁻¹ (n-th ban, ≤ 64×) when
    /// its score reaches [`BAN_THRESHOLD`].
    pub fn charge(
        &mut self,
        peer: PeerId,
        addr: Option<AddrKey>,
        reason: ChargeReason,
        base_ban: Duration,
        now: Instant,
    ) -> Verdict {
        evict_if_full(&mut self.peers, &peer, |s| s.banned_until.unwrap_or(s.at));
        let s = self.peers.entry(peer).or_insert(Score {
            points: 0.0,
            at: now,
            charges: 0,
            bans: 0,
            last_reason: None,
            banned_until: None,
        });
        s.points = s.at(now) + reason.points();
        s.at = now;
        s.charges = s.charges.saturating_add(1);
        s.last_reason = Some(reason);
        if s.points < BAN_THRESHOLD {
            return Verdict::Charged(s.points);
        }
        s.bans = s.bans.saturating_add(1);
        // The score starts again from zero: the ban is the punishment, and
        // a peer back from one must misbehave anew to be banned again.
        s.points = 0.0;
        let ban = base_ban * (1u32 << (s.bans - 1).min(6));
        let until = now + ban;
        s.banned_until = Some(until);
        if let Some(a) = addr {
            evict_if_full(&mut self.addrs, &a, |t| *t);
            let e = self.addrs.entry(a).or_insert(until);
            *e = (*e).max(until);
        }
        Verdict::Banned(ban)
    }

    /// Whether the certificate is banned at `now`.
    pub fn is_banned(&self, peer: &PeerId, now: Instant) -> bool {
        self.peers
            .get(peer)
            .and_then(|s| s.banned_until)
            .is_some_and(|t| t > now)
    }

    /// Whether the address is banned at `now`.
    pub fn is_addr_banned(&self, addr: &AddrKey, now: Instant) -> bool {
        self.addrs.get(addr).is_some_and(|t| *t > now)
    }

    /// A peer's record.
    pub fn get(&self, peer: &PeerId) -> Option<&Score> {
        self.peers.get(peer)
    }
}

/// Makes room for `key` in a table bounded by [`MAX_SCORED`]: drops the
/// entry with the earliest `age` (the ban that ended longest ago).
fn evict_if_full<K: Eq + std::hash::Hash + Copy, V>(
    map: &mut HashMap<K, V>,
    key: &K,
    age: impl Fn(&V) -> Instant,
) {
    if map.len() >= MAX_SCORED
        && !map.contains_key(key)
        && let Some(oldest) = map.iter().min_by_key(|(_, v)| age(v)).map(|(k, _)| *k)
    {
        map.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAN: Duration = Duration::from_secs(30);

    #[test]
    fn score_decays_by_half_life() {
        assert!((decay(80.0, HALF_LIFE) - 40.0).abs() < 1e-9);
        assert!((decay(80.0, HALF_LIFE * 2) - 20.0).abs() < 1e-9);
        assert_eq!(decay(80.0, Duration::ZERO), 80.0);
    }

    #[test]
    fn four_consensus_faults_in_a_row_ban_but_spread_out_they_do_not() {
        let peer = PeerId([1; 32]);
        let addr = AddrKey::of("10.0.0.1:5000".parse().unwrap());
        let t0 = Instant::now();
        let mut s = Scores::default();
        for i in 0..3 {
            let v = s.charge(peer, Some(addr), ChargeReason::Consensus, BAN, t0);
            assert_eq!(v, Verdict::Charged(30.0 * f64::from(i + 1)));
        }
        assert!(!s.is_banned(&peer, t0));
        assert_eq!(
            s.charge(peer, Some(addr), ChargeReason::Consensus, BAN, t0),
            Verdict::Banned(BAN)
        );
        assert!(s.is_banned(&peer, t0));
        // The address is banned too: a fresh certificate from another port
        // of the same host is refused.
        let again = AddrKey::of("10.0.0.1:6000".parse().unwrap());
        assert!(s.is_addr_banned(&again, t0 + BAN / 2));
        assert!(!s.is_addr_banned(&again, t0 + BAN));

        // Four faults spread over 30 s still ban (30 s is half a half-life).
        let spread = PeerId([4; 32]);
        let verdicts: Vec<Verdict> = (0..4u64)
            .map(|i| {
                let at = t0 + Duration::from_secs(10 * i);
                s.charge(spread, None, ChargeReason::Consensus, BAN, at)
            })
            .collect();
        assert_eq!(verdicts[3], Verdict::Banned(BAN), "{verdicts:?}");

        // Negative control: the same four faults a half-life apart never
        // reach the threshold (30, 45, 52.5, 56.25).
        let other = PeerId([2; 32]);
        let mut t = t0;
        for _ in 0..4 {
            let v = s.charge(other, None, ChargeReason::Consensus, BAN, t);
            assert!(matches!(v, Verdict::Charged(p) if p < 60.0), "{v:?}");
            t += HALF_LIFE;
        }
        assert!(!s.is_banned(&other, t));
    }

    #[test]
    fn repeated_bans_double_and_unbanned_addresses_stay_open() {
        let peer = PeerId([3; 32]);
        let t0 = Instant::now();
        let mut s = Scores::default();
        assert_eq!(
            s.charge(peer, None, ChargeReason::Frame, BAN, t0),
            Verdict::Banned(BAN)
        );
        assert_eq!(
            s.charge(peer, None, ChargeReason::BadBlock, BAN, t0 + BAN),
            Verdict::Banned(BAN * 2)
        );
        assert_eq!(s.get(&peer).map(|x| (x.charges, x.bans)), Some((2, 2)));
        // Charged without an address (a configured peer): no address ban.
        let loop_addr = AddrKey::of("127.0.0.1:7000".parse().unwrap());
        assert!(!s.is_addr_banned(&loop_addr, t0));
    }

    #[test]
    fn loopback_keys_include_the_port_and_remote_keys_do_not() {
        let a = AddrKey::of("127.0.0.1:1".parse().unwrap());
        let b = AddrKey::of("127.0.0.1:2".parse().unwrap());
        assert_ne!(a, b);
        let c = AddrKey::of("192.0.2.7:1".parse().unwrap());
        let d = AddrKey::of("[::ffff:192.0.2.7]:2".parse().unwrap());
        assert_eq!(c, d, "IPv4-mapped IPv6 is the same host");
        let e = AddrKey::of("[2001:db8:1:2::1]:1".parse().unwrap());
        let f = AddrKey::of("[2001:db8:1:2:ab:cd:ef:1]:2".parse().unwrap());
        let g = AddrKey::of("[2001:db8:1:3::1]:1".parse().unwrap());
        assert_eq!(e, f, "one /64 is one host");
        assert_ne!(e, g);
    }

    /// A ban binds to the network: the banned host's next address in its
    /// /64 is still banned, another /64 is not. Checked that it fails: with
    /// keys of whole IPv6 addresses (as before), `next` was admitted.
    #[test]
    fn a_ban_covers_the_hosts_whole_slash_64() {
        let mut s = Scores::default();
        let t0 = Instant::now();
        let peer = PeerId([7; 32]);
        let at = AddrKey::of("[2001:db8:0:1::5]:4000".parse().unwrap());
        assert_eq!(
            s.charge(peer, Some(at), ChargeReason::BadBlock, BAN, t0),
            Verdict::Banned(BAN)
        );
        let next = AddrKey::of("[2001:db8:0:1:9999::1]:4000".parse().unwrap());
        let other = AddrKey::of("[2001:db8:0:2::5]:4000".parse().unwrap());
        assert!(s.is_addr_banned(&next, t0));
        assert!(!s.is_addr_banned(&other, t0));
    }
}
