//! Step 8: the redelegations away from node3 made at its infraction height
//! − 1 or later (and before its evidence) were slashed at their destination,
//! each by the double-sign fraction of what it moved, and those together
//! make the event's `from_redelegations`.

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::Address;
use anyhow::{Context, Result, ensure};
use tonic::transport::Channel;

use super::MOVER;
use super::mover::{DESTINATIONS, Move, Moves, SLICE};
use crate::demo::Demo;
use crate::demo::double_sign::Seen;
use crate::demo::rpc::parse_u128;

impl Demo<'_> {
    /// The redelegation entries of delegator `d`.
    async fn redelegations(&mut self, d: &Address) -> Result<Vec<pb::RedelegationEntry>> {
        list_redelegations(&mut self.q, d).await
    }

    /// Records the mover's entries and delegations right after the slash.
    pub(in crate::demo) async fn snapshot_moves(&mut self, moves: &mut Moves) -> Result<()> {
        let (_, d) = self.delegator(MOVER)?;
        moves.listed = self.redelegations(&d).await?;
        moves.delegations.clear();
        for i in DESTINATIONS {
            let va = self.validators[i];
            let del = self.delegation(&d, &va).await.ok();
            moves.delegations.push((i, del));
        }
        Ok(())
    }

    /// Step 8: the redelegations created at the infraction height − 1 or
    /// later lost floor(initial · bps / 10000) each at their destination.
    pub(in crate::demo) async fn check_redelegation_slash(
        &mut self,
        s: &Seen,
    ) -> Result<((), String)> {
        let e = &s.event;
        let m = &s.moves;
        let bps = self.params.slash_fraction_double_sign_bps;
        let h = e.infraction_height;
        let from_red = parse_u128(&e.from_redelegations, "from_redelegations")?;
        detail!(
            "slashing event of node3: from_bonded {}, from_unbonding {}, from_redelegations {from_red}",
            e.from_bonded,
            e.from_unbonding
        );
        // Entries created at h−1 or later still carried stake counted at h;
        // those created in the slash's block came after its evidence.
        let slashed = |c: u64| c + 1 >= h && c < e.slash_height;
        let mut want_total = 0u128;
        let mut n_slashed = 0;
        for mv in &m.made {
            if let Some(cut) = self.check_entry(m, mv, bps, h, slashed(mv.creation_height))? {
                want_total += cut;
                n_slashed += 1;
            }
        }
        ensure!(
            n_slashed > 0,
            "none of the {} redelegations (heights {:?}) was created at or after the infraction height {h} - 1 and before the slash at {}{}",
            m.made.len(),
            m.made.iter().map(|x| x.creation_height).collect::<Vec<_>>(),
            e.slash_height,
            m.short.map_or_else(String::new, |held| format!(
                " (delegator{MOVER} ran out of node3 shares first: {held} left, a slice is {SLICE})"
            ))
        );
        ensure!(
            from_red == want_total,
            "from_redelegations is {from_red}, the slashed entries' cuts add up to {want_total}"
        );
        check_destinations(m, bps, slashed)?;
        Ok((
            (),
            format!(
                "{n_slashed} of {} redelegations away from node3 were created at or after height {} and lost {from_red} tokens = from_redelegations",
                m.made.len(),
                h.saturating_sub(1)
            ),
        ))
    }

    /// Checks the entry of `mv` as listed right after the slash: if `hit`
    /// (created in the slashed range) it lost its cut, which is returned;
    /// otherwise it lost nothing.
    fn check_entry(
        &self,
        m: &Moves,
        mv: &Move,
        bps: u32,
        h: u64,
        hit: bool,
    ) -> Result<Option<u128>> {
        let cut = mv.initial * u128::from(bps) / 10_000;
        let dst = self.validators[mv.dst];
        let listed = m
            .listed
            .iter()
            .find(|x| x.dst_validator == dst.0 && x.creation_height == mv.creation_height);
        let now = listed
            .map(|x| parse_u128(&x.shares_dst, "redelegation shares"))
            .transpose()?;
        detail!(
            "entry node3 -> node{} created at {}: {} tokens, {}; node{} shares left {}",
            mv.dst,
            mv.creation_height,
            mv.initial,
            if hit {
                format!(
                    "created at or after {} - 1: loses floor({} x {bps} / 10000) = {cut}",
                    h, mv.initial
                )
            } else {
                "outside the slashed range".to_string()
            },
            mv.dst,
            now.map_or_else(|| "(matured)".to_string(), |x| x.to_string())
        );
        if hit {
            let now = now.with_context(|| {
                format!(
                    "the slashed entry created at {} is no longer listed",
                    mv.creation_height
                )
            })?;
            // The destinations were never slashed: 1 share = 1 token.
            ensure!(
                now + cut == mv.initial,
                "the entry created at {} holds {now} shares of node{}, expected {} - {cut}",
                mv.creation_height,
                mv.dst,
                mv.initial
            );
            return Ok(Some(cut));
        } else if let Some(now) = now {
            ensure!(
                now == mv.initial,
                "the entry created at {} (outside the slashed range) lost {} shares",
                mv.creation_height,
                mv.initial - now.min(mv.initial)
            );
        }
        Ok(None)
    }
}

/// Checks the mover's delegation at each destination: what it moved there,
/// less the cuts of the entries `slashed` by their creation height.
fn check_destinations(m: &Moves, bps: u32, slashed: impl Fn(u64) -> bool) -> Result<()> {
    for (i, del) in &m.delegations {
        let moved: u128 = m
            .made
            .iter()
            .filter(|x| x.dst == *i)
            .map(|x| x.initial)
            .sum();
        let cut: u128 = m
            .made
            .iter()
            .filter(|x| x.dst == *i && slashed(x.creation_height))
            .map(|x| x.initial * u128::from(bps) / 10_000)
            .sum();
        let (shares, tokens) = match del {
            Some(d) => (
                parse_u128(&d.shares, "delegation shares")?,
                parse_u128(&d.tokens, "delegation tokens")?,
            ),
            None => (0, 0),
        };
        if moved == 0 && shares == 0 {
            continue;
        }
        detail!(
            "delegator{MOVER} -> node{i}: {shares} shares worth {tokens} tokens = {moved} moved - {cut} taken back"
        );
        ensure!(
            shares == moved - cut && tokens == shares,
            "delegator{MOVER}'s delegation to node{i} is {shares} shares worth {tokens}, expected {} (moved {moved}, cut {cut})",
            moved - cut
        );
    }
    Ok(())
}

/// Every redelegation entry of delegator `d`, page by page.
pub(super) async fn list_redelegations(
    q: &mut QueryClient<Channel>,
    d: &Address,
) -> Result<Vec<pb::RedelegationEntry>> {
    let mut all = Vec::new();
    let mut token = Vec::new();
    for _ in 0..64 {
        let page = q
            .list_redelegations(pb::ListRedelegationsRequest {
                prove: false,
                delegator: d.0.to_vec(),
                page: Some(pb::PageRequest {
                    page_token: token,
                    limit: 100,
                }),
            })
            .await
            .context("ListRedelegations")?
            .into_inner();
        all.extend(page.entries);
        token = page.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    Ok(all)
}
