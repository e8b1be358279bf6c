//! A node's life: boot (from genesis, or after a crash from its store,
//! resuming the height being decided from its WAL), its tick, the height
//! it announces, and crashes.

use super::actions::Origin;
use super::wire::Wire;
use super::{Event, Sim, Violation};
use agora_validator::crypto::sha3_256;
use agora_validator::engine::{Engine, TICK_MS};
use rand::Rng;

impl Sim {
    /// Node `i` loses everything volatile; its peers see it go.
    pub(super) fn crash(&mut self, i: usize) {
        self.nodes[i].crash();
        for j in 0..self.nodes.len() {
            if let Some(e) = self.nodes[j].engine.as_mut() {
                e.on_peer_gone(&i);
            }
        }
    }

    /// Node `i` comes back after a crash: from its store, or, a joiner
    /// that had not installed a snapshot yet (its store is empty), by
    /// joining again from the start, as a restarted node configured for
    /// state sync does.
    pub(super) fn restart(&mut self, i: usize) {
        let joiner = self.sc.is_joiner(i);
        if joiner && self.nodes[i].joined_at.is_none() {
            self.nodes[i].stats.rejoins += 1;
            self.start_join(i);
        } else {
            self.nodes[i].stats.restarts_after_join += u64::from(joiner);
            self.boot(i);
        }
    }

    /// Whether node `node` is up and still in life `epoch` (what a timer or
    /// tick of that life needs to fire).
    pub(super) fn live(&self, node: usize, epoch: u64) -> bool {
        self.nodes[node].epoch == epoch && self.nodes[node].engine.is_some()
    }

    /// Starts node `i`'s engine from its store (genesis on first boot),
    /// resumes its WAL, announces its height and schedules its first tick.
    pub(super) fn boot(&mut self, i: usize) {
        let restored = match self.nodes[i].store.restore(&self.g.ledger, self.g.seed0) {
            Ok(r) => r,
            Err(e) => {
                self.violations.push(Violation::Engine {
                    node: i,
                    error: format!("restore: {e}"),
                });
                return;
            }
        };
        let signing = self.nodes[i].store.signing;
        self.nodes[i].wal_sync = agora_validator::consensus::WalSync::restored(signing.as_ref());
        let epoch = self.nodes[i].epoch;
        if epoch > 0 {
            self.nodes[i].stats.restarts += 1;
        }
        let entropy = sha3_256(format!("sim-entropy-{}-{i}-{epoch}", self.sc.seed).as_bytes());
        let engine = Engine::new(
            self.config,
            Some(self.keys[i].clone()),
            self.nodes[i].store.signing,
            restored,
            entropy,
        );
        self.nodes[i].engine = Some(engine);
        // A restart keeps what a node persists; the engine resumes the
        // height being decided from its WAL.
        let wal = self.nodes[i].store.wal.clone();
        let r = self.with_engine(i, |e, m, now| e.resume(wal, now, m));
        self.exec_result(i, r, Origin::Own);
        self.send_status(i);
        let first = self.now + self.rng.random_range(1..=TICK_MS);
        self.push(first, Event::Tick { node: i, epoch });
    }

    /// Node `i`'s periodic tick: the transport's de-duplication window
    /// starts afresh, the engine re-gossips and polls sync, the node
    /// announces its height, and its Byzantine module (if any) acts.
    pub(super) fn tick(&mut self, i: usize) {
        self.nodes[i].seen.clear();
        let now = self.clock(i);
        let actions = self.nodes[i]
            .engine
            .as_mut()
            .map(|e| e.on_tick(now))
            .unwrap_or_default();
        self.exec(i, actions, Origin::Relay);
        self.send_status(i);
        if let Some(outs) = self.with_byz(i, |b, cx| b.tick(cx)) {
            self.emit(i, outs);
        }
    }

    /// Node `i` announces its committed height to every peer (a Byzantine
    /// module may announce another).
    pub(super) fn send_status(&mut self, i: usize) {
        let tip = self.nodes[i].store.tip_height();
        let h = self.nodes[i].byz.as_ref().map_or(tip, |b| b.announce(tip));
        self.broadcast(i, Wire::Status(h), None);
    }
}
