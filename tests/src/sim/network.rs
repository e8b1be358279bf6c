//! The simulated network: connections cut by the partition, by a ban or
//! by either end's restart; seeded loss of gossip before GST, duplication
//! and delay; the receiving transport's de-duplication of gossip.

use super::wire::{SignedTag, Wire, describe_wire};
use super::{Event, Sim, byzantine};
use rand::Rng;

impl Sim {
    /// Whether `a` and `b` are on different sides of the partition now.
    pub(super) fn partitioned(&self, a: usize, b: usize) -> bool {
        match &self.sc.partition {
            Some((side, start, end)) if self.now >= *start && self.now < *end => {
                side.contains(&a) != side.contains(&b)
            }
            _ => false,
        }
    }

    /// The partition starts: connections across the cut time out and close.
    pub(super) fn partition_started(&mut self) {
        for a in 0..self.nodes.len() {
            for b in 0..self.nodes.len() {
                if self.partitioned(a, b)
                    && let Some(e) = self.nodes[a].engine.as_mut()
                {
                    e.on_peer_gone(&b);
                }
            }
        }
    }

    /// Puts `wire` on its way from `from` to `to` unless their connection
    /// is down: gossip (and status) may be lost before GST, gossip may be
    /// duplicated, and each copy takes a seeded delay.
    pub(super) fn send(&mut self, from: usize, to: usize, wire: Wire, tag: Option<SignedTag>) {
        if from == to || self.partitioned(from, to) || !self.nodes[to].is_up() {
            return;
        }
        if self.nodes[from].is_banned(to, self.now) {
            return;
        }
        let gossip = wire.is_gossip() || matches!(wire, Wire::Status(_));
        if gossip
            && self.now < self.sc.gst_ms
            && self.sc.loss > 0.0
            && self.rng.random_bool(self.sc.loss)
        {
            return;
        }
        let copies = if wire.is_gossip()
            && self.sc.duplication > 0.0
            && self.rng.random_bool(self.sc.duplication)
        {
            2
        } else {
            1
        };
        let (from_epoch, to_epoch) = (self.nodes[from].epoch, self.nodes[to].epoch);
        for _ in 0..copies {
            let delay = self
                .rng
                .random_range(self.sc.delay_min_ms..=self.sc.delay_max_ms);
            self.push(
                self.now + delay,
                Event::Deliver {
                    from,
                    from_epoch,
                    to,
                    to_epoch,
                    wire: wire.clone(),
                    tag,
                },
            );
        }
    }

    /// Sends `wire` from `from` to every other node.
    pub(super) fn broadcast(&mut self, from: usize, wire: Wire, tag: Option<SignedTag>) {
        for to in 0..self.nodes.len() {
            self.send(from, to, wire.clone(), tag);
        }
    }

    /// A message arrives at `to`: unless its connection is gone or the
    /// transport drops it, the Byzantine module of `to` (if any) sees it,
    /// then its host receives it.
    pub(super) fn deliver(
        &mut self,
        from: usize,
        from_epoch: u64,
        to: usize,
        to_epoch: u64,
        wire: Wire,
        tag: Option<SignedTag>,
    ) {
        if !self.accepts(from, from_epoch, to, to_epoch, &wire) {
            return;
        }
        if self.trace == Some(to) {
            eprintln!(
                "[{} ms] node {to} <- {from}: {}",
                self.now,
                describe_wire(&wire)
            );
        }
        if let Some(outs) = self.with_byz(to, |b, cx| b.received(cx, from, &wire)) {
            self.emit(to, outs);
        }
        self.receive(from, to, wire, tag);
    }

    /// Whether the transport of `to` hands on a message `from` sent between
    /// these lives of both ends: the connection still stands, a selfish
    /// Byzantine host does not drop it, and gossip was not delivered
    /// before since the last tick (this marks it delivered).
    fn accepts(
        &mut self,
        from: usize,
        from_epoch: u64,
        to: usize,
        to_epoch: u64,
        wire: &Wire,
    ) -> bool {
        // A connection of a previous life of either end, or cut meanwhile,
        // delivers nothing more.
        if self.nodes[to].epoch != to_epoch
            || !self.nodes[to].is_up()
            || self.nodes[from].epoch != from_epoch
            || self.partitioned(from, to)
            || self.nodes[to].is_banned(from, self.now)
        {
            return false;
        }
        if !self.honest(to) && byzantine::selfish_drop(&self.g.addresses[to], wire) {
            return false;
        }
        if let Some(key) = wire.dedup_key()
            && !self.nodes[to].seen.insert(key)
        {
            return false;
        }
        true
    }
}
