//! Step 6: node3, backed by delegator1 and delegator3, is restarted with
//! `testing.double_sign` while delegator3 redelegates away from it, until
//! its evidence is committed; what the chain held just before is kept for
//! the checks of steps 7, 8 and 10.

use std::path::Path;
use std::time::Instant;

use agora_node::home::Home;
use agora_proto::v1 as pb;
use agora_validator::Address;
use anyhow::{Context, Result, bail, ensure};

use super::rpc::{latest, query_client, wait_all_heights};
use super::{
    BYZANTINE_BOND, Demo, EVIDENCE_DEADLINE, HEIGHTS_DEADLINE, POLL, VALIDATORS, economics,
};
use crate::evidence::{EvidenceFinder, EvidenceRow, all_slashes};
use crate::manifest::ByzantineNote;

/// The slash event step 6 found, and the state just before the double signing.
pub(super) struct Seen {
    /// node3's slashing event.
    pub(super) event: pb::SlashingEvent,
    /// node3's staking record before it double-signed.
    pub(super) validator_before: pb::ValidatorRecord,
    /// delegator1's delegation to node3 before it double-signed.
    pub(super) delegation_before: pb::Delegation,
    /// The operator account and its self-bond delegation before the slash.
    pub(super) self_delegation_before: Option<(Address, pb::Delegation)>,
    /// delegator3's redelegations away from node3 during its restart.
    pub(super) moves: economics::Moves,
}

/// node3's record and delegations once its backers bonded, before it
/// double-signs.
struct Backed {
    validator_before: pb::ValidatorRecord,
    delegation_before: pb::Delegation,
    self_delegation_before: Option<(Address, pb::Delegation)>,
}

impl Demo<'_> {
    /// Step 6: node3 double-signs while delegator3 redelegates away from it,
    /// until its evidence is committed.
    pub(super) async fn double_sign(&mut self, agora: &Path) -> Result<(Seen, String)> {
        let v = VALIDATORS - 1;
        let va = self.validators[v];
        let backed = self.back_double_signer(v, &va).await?;

        // Redelegations are slashed with node3 if created at its infraction
        // height − 1 or later and before the evidence lands, a window of a
        // few heights whose start depends on how fast node3 restarts. So
        // delegator3 moves one slice per block, on its own thread (stopping
        // and starting nodes blocks this one), until the evidence is
        // committed: some slices land in that window. Restarted, node3 votes
        // first at the height after the last one it stored, so its
        // infraction height h is at least that + 1. node3 is stopped only
        // once it has stored a block after the one holding the first slice:
        // then h − 1 is past that block, and at least one entry precedes the
        // slashed range however late the mover's thread gets going.
        let mut mover = self.mover()?.start();
        let first = mover.first_move(self.net).await?;
        self.restart_double_signing(agora, v, first).await?;
        let t0 = Instant::now();
        let events = self.wait_evidence(v, &va, t0).await?;
        let mut moves = mover.finish()?;
        self.snapshot_moves(&mut moves).await?;
        ensure!(
            events.len() == 1,
            "node{v} was slashed {} times; one infraction kind, one tombstone, one slash expected",
            events.len()
        );
        let event = events[0].clone();
        let row = self.check_evidence(v, &events, &event).await?;
        let moves_count = moves.count();
        Ok((
            Seen {
                event,
                validator_before: backed.validator_before,
                delegation_before: backed.delegation_before,
                self_delegation_before: backed.self_delegation_before,
                moves,
            },
            format!(
                "{} at height {} committed at height {}, {:.1} s after the restart; {} redelegations away from node{v} meanwhile",
                row.kind,
                row.height,
                row.committed_at,
                t0.elapsed().as_secs_f64(),
                moves_count
            ),
        ))
    }

    /// delegator1 and the mover bond to node `v`; returns its record and
    /// delegations once their power is in the set.
    async fn back_double_signer(&mut self, v: usize, va: &Address) -> Result<Backed> {
        // A delegator backs node3 first, so the slash shows what delegators lose.
        let (del, hb, p) = self.bond_and_watch(1, v, BYZANTINE_BOND).await?;
        // delegator3 too, to redelegate away while node3 double-signs.
        let hm = self.bond_mover().await?;
        self.wait_height(hm + 2, HEIGHTS_DEADLINE).await?;
        let p = self.power_at(hm + 2, va).await?.max(p);
        detail!("node{v} power {p} from height {}", hm.max(hb) + 2);
        let validator_before = self.validator(va).await?;
        let op = Address::from_slice(&validator_before.operator).context("the operator address")?;
        let self_delegation_before = self.delegation(&op, va).await.ok().map(|d| (op, d));
        Ok(Backed {
            validator_before,
            delegation_before: del,
            self_delegation_before,
        })
    }

    /// Once node `v` stored the block after `first` (the mover's first
    /// slice), stops it, sets `testing.double_sign` in its config.toml,
    /// restarts it and marks it byzantine in testnet.json.
    async fn restart_double_signing(&mut self, agora: &Path, v: usize, first: u64) -> Result<()> {
        let node3 = query_client(&self.net.m()?.nodes[v].grpc)?;
        let seen = wait_all_heights(self.net, &[node3], first + 1, HEIGHTS_DEADLINE)
            .await
            .with_context(|| format!("waiting for node{v} to store height {}", first + 1))?;
        let stopped_at = latest(&mut self.q).await?;
        self.net.stop_one(v)?;
        let home = self.net.m()?.nodes[v].home.clone();
        let h = Home::new(&home);
        let mut cfg = h.load_config().context("reading node3's config.toml")?;
        cfg.testing.double_sign = true;
        let tmp = h.config().with_extension("toml.tmp");
        std::fs::write(&tmp, cfg.to_toml())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, h.config())
            .with_context(|| format!("replacing {}", h.config().display()))?;
        let pid = self.net.start_one(agora, v)?;
        if let Some(m) = self.net.manifest.as_mut() {
            m.nodes[v].byzantine = true;
            m.byzantine = ByzantineNote {
                requested: 1,
                applied: 1,
                note: None,
            };
            m.save()?;
        }
        detail!(
            "node{v} stopped at height {stopped_at} (it had stored {} > {first}, the first slice's block), restarted as pid {pid} with testing.double_sign = true in {}",
            seen.first().copied().unwrap_or_default(),
            h.config().display()
        );
        Ok(())
    }

    /// Waits (from `t0`, at most [`EVIDENCE_DEADLINE`]) until node `v` has a
    /// slashing event; returns its events.
    async fn wait_evidence(
        &mut self,
        v: usize,
        va: &Address,
        t0: Instant,
    ) -> Result<Vec<pb::SlashingEvent>> {
        loop {
            self.net.check_alive()?;
            let ev = all_slashes(&mut self.q, &va.0).await.unwrap_or_default();
            if !ev.is_empty() {
                break Ok(ev);
            }
            if t0.elapsed() > EVIDENCE_DEADLINE {
                let now = latest(&mut self.q).await.ok();
                bail!(
                    "no evidence against node{v} committed within {EVIDENCE_DEADLINE:?} (chain at {now:?}); see {}",
                    self.net.m()?.nodes[v].log.display()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Finds the evidence behind `event` in the block that slashed node `v`,
    /// shows it, and checks it is for the infraction height.
    async fn check_evidence(
        &mut self,
        v: usize,
        events: &[pb::SlashingEvent],
        event: &pb::SlashingEvent,
    ) -> Result<EvidenceRow> {
        let rows = EvidenceFinder::default()
            .recent(&mut self.q, events, 1)
            .await;
        let row = rows.first().context("no evidence row")?;
        ensure!(
            row.round.is_some(),
            "the evidence {} is not in block {}: {}",
            row.hash,
            event.slash_height,
            row.kind
        );
        detail!(
            "evidence {}: {} by node{v} at height {} round {}, committed in block {}",
            row.hash,
            row.kind,
            row.height,
            row.round.unwrap_or_default(),
            row.committed_at
        );
        if let Some((a, b)) = &row.conflicting {
            detail!("node{v} signed both block hash {a} and {b}");
        }
        detail!("(the live view of `agora-testnet up` shows this in its \"recent evidence\" pane)");
        ensure!(
            row.height == event.infraction_height,
            "the evidence is for height {}, the slash for {}",
            row.height,
            event.infraction_height
        );
        Ok(row.clone())
    }
}
