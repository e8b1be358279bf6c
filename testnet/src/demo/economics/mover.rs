//! delegator3, the mover: bonded to node3 before it double-signs, then
//! redelegating slices of that stake away from it on a thread of its own
//! while node3 restarts into double-signing, until its evidence is
//! committed. What it made is the [`Moves`] step 8 checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agora_node::client::tx::TxAction;
use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::{AccountSecretKey, Address};
use anyhow::{Context, Result, bail};
use tonic::transport::Channel;

use super::MOVER;
use super::redelegation::list_redelegations;
use crate::demo::rpc::{endpoint, parse_u128, query_client, send_on};
use crate::demo::{Demo, Net, POLL, RPC_TIMEOUT, TX_DEADLINE, VALIDATORS};

/// Tokens the mover bonds to node3 before it double-signs: 30 slices, one
/// per block from just before node3's stop until its evidence is committed.
/// Local runs took 4 to 12 (blocks come every ~80 ms), but 24 in one where
/// the evidence landed 23 heights after node3's restart: 20 would have run
/// out. Still small enough that the other three keep more than 2/3 of the
/// power while node3 is down (node3 has 150 of ~490).
pub(super) const MOVER_BOND: u128 = 30_000_000;
/// Shares of node3 moved by each redelegation (1:1 with tokens while node3
/// is unslashed: the 5% cut of each is exact). A whole unit of power, so
/// that node3's stake stays its power x the power reduction, which step 7's
/// exact 5% per delegator relies on: smaller slices cannot buy more moves.
pub(super) const SLICE: u128 = 1_000_000;
/// Destinations of the redelegations, in order of use (never slashed, so
/// their shares stay 1:1 with tokens).
pub(super) const DESTINATIONS: [usize; 2] = [0, 1];
/// Longest wait for the mover's first redelegation: its transaction's own
/// deadline plus the queries around it (the mover fails first if one of
/// those runs out; this only bounds the wait should it hang).
const FIRST_MOVE_DEADLINE: Duration =
    Duration::from_secs(TX_DEADLINE.as_secs() + 4 * RPC_TIMEOUT.as_secs());

/// One redelegation the demo made: what ListRedelegations said right after
/// its commit (its initial balance never changes).
#[derive(Debug, Clone)]
pub(super) struct Move {
    /// The destination: node `dst`.
    pub(super) dst: usize,
    /// The block of the redelegation.
    pub(super) creation_height: u64,
    /// The tokens it moved.
    pub(super) initial: u128,
}

/// The redelegations made while node3 restarted into double-signing.
#[derive(Default)]
pub(in crate::demo) struct Moves {
    /// In the order made.
    pub(super) made: Vec<Move>,
    /// ListRedelegations of the mover right after node3's slash was seen.
    pub(super) listed: Vec<pb::RedelegationEntry>,
    /// The mover's delegations to the destinations at that moment.
    pub(super) delegations: Vec<(usize, Option<pb::Delegation>)>,
    /// The node3 shares the mover had left when it stopped for want of a
    /// whole slice, if it ran out before node3's evidence was committed.
    pub(super) short: Option<u128>,
}

impl Moves {
    /// Tokens moved away from node3, in all.
    pub(in crate::demo) fn moved(&self) -> u128 {
        self.made.iter().map(|m| m.initial).sum()
    }

    /// Redelegations made.
    pub(in crate::demo) fn count(&self) -> usize {
        self.made.len()
    }
}

impl Demo<'_> {
    /// Bonds the mover's tokens to node3 (before it double-signs).
    pub(in crate::demo) async fn bond_mover(&mut self) -> Result<u64> {
        let (key, d) = self.delegator(MOVER)?;
        let v3 = self.validators[VALIDATORS - 1];
        let r = self
            .send(
                &key,
                TxAction::Bond {
                    validator: v3,
                    amount: MOVER_BOND,
                },
            )
            .await?;
        let del = self.delegation(&d, &v3).await?;
        detail!(
            "delegator{MOVER} bonds {MOVER_BOND} to node{} at height {}: {} shares",
            VALIDATORS - 1,
            r.height,
            del.shares
        );
        Ok(r.height)
    }

    /// The redelegating delegator, ready to run on its own thread.
    pub(in crate::demo) fn mover(&self) -> Result<Mover> {
        let (key, d) = self.delegator(MOVER)?;
        Ok(Mover {
            grpc: self.net.m()?.nodes[0].grpc.clone(),
            key,
            d,
            src: self.validators[VALIDATORS - 1],
            dsts: DESTINATIONS
                .iter()
                .map(|&i| (i, self.validators[i]))
                .collect(),
            max: self.params.max_redelegation_entries as usize,
        })
    }
}

/// delegator3 redelegating slices of its node3 stake away from it, one per
/// block, from before node3 is stopped until its evidence is committed.
///
/// Redelegations are slashed with node3 if created at its infraction height
/// h − 1 or later and before the block carrying its evidence: a window of
/// two or three heights. Its start is not known in advance: node3 may
/// double-sign at once, at the height after the last one it stored before
/// it stopped (seen: evidence committed 0.4 s after the restart), or many
/// heights later, so h − 1 may be any height from the stop on. Only a slice
/// every block from before the stop covers it. The demo stops node3 only
/// once the first slice is committed and node3 has stored a later block, so
/// that entry always precedes the slashed range. Should the
/// [`MOVER_BOND`] / [`SLICE`] slices run out before the evidence (a very
/// slow restart), the mover stops rather than submit a redelegation the
/// chain would refuse, and step 8's check says so if no entry fell in the
/// window.
pub(in crate::demo) struct Mover {
    /// node0, where it queries and submits.
    grpc: String,
    key: AccountSecretKey,
    d: Address,
    src: Address,
    dsts: Vec<(usize, Address)>,
    max: usize,
}

/// What the demo's thread and the mover's share.
#[derive(Default)]
struct Flags {
    /// Set once the evidence is committed (or the demo gave up): no new slice.
    stop: AtomicBool,
    /// The block of the first redelegation, once committed (0 until then:
    /// height 0 holds no transaction).
    first: AtomicU64,
}

/// What the mover's thread returns.
struct Made {
    made: Vec<Move>,
    short: Option<u128>,
}

/// One attempt at moving a slice.
enum Slice {
    Moved(Move),
    /// Fewer node3 shares than a slice are left (the delegation's shares).
    Short(u128),
}

/// A [`Mover`] running on its own thread; dropping it stops it.
pub(in crate::demo) struct Running {
    flags: Arc<Flags>,
    thread: Option<std::thread::JoinHandle<Result<Made>>>,
}

impl Mover {
    /// Runs the mover on a thread with its own runtime and clients (the
    /// demo's thread blocks while it stops and starts node processes).
    pub(in crate::demo) fn start(self) -> Running {
        let flags = Arc::new(Flags::default());
        let shared = flags.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the redelegation thread's runtime")?;
            rt.block_on(self.run(&shared))
        });
        Running {
            flags,
            thread: Some(thread),
        }
    }

    async fn run(self, flags: &Flags) -> Result<Made> {
        let mut q = query_client(&self.grpc)?;
        let tx = endpoint(&self.grpc)?
            .connect_timeout(RPC_TIMEOUT)
            .connect_lazy();
        let mut made = Vec::new();
        let mut short = None;
        // The first slice is made whatever `stop` says: the demo waits for
        // it (see `Running::first_move`).
        loop {
            match self.slice(&mut q, &tx, made.len()).await? {
                Slice::Moved(m) => {
                    if made.is_empty() {
                        flags.first.store(m.creation_height, Ordering::SeqCst);
                    }
                    made.push(m);
                }
                Slice::Short(held) if made.is_empty() => bail!(
                    "delegator{MOVER} holds {held} node3 shares, less than one slice of {SLICE}"
                ),
                Slice::Short(held) => {
                    short = Some(held);
                    break;
                }
            }
            if flags.stop.load(Ordering::SeqCst) {
                break;
            }
        }
        Ok(Made { made, short })
    }

    /// Moves one slice to a destination that still has room for an entry
    /// and returns the entry, or says how few node3 shares are left if they
    /// no longer make a slice (the chain would refuse the redelegation).
    async fn slice(
        &self,
        q: &mut QueryClient<Channel>,
        tx: &Channel,
        done: usize,
    ) -> Result<Slice> {
        let held = self.held(q).await?;
        if held < SLICE {
            detail!(
                "delegator{MOVER} has {held} node3 shares left after {done} redelegations, less than a slice of {SLICE}: it stops moving"
            );
            return Ok(Slice::Short(held));
        }
        let listed = list_redelegations(q, &self.d).await?;
        let (dst, da) = self
            .dsts
            .iter()
            .copied()
            .find(|(_, a)| listed.iter().filter(|e| e.dst_validator == a.0).count() < self.max)
            .with_context(|| {
                format!(
                    "every destination holds {} pending redelegation entries",
                    self.max
                )
            })?;
        let r = send_on(
            tx.clone(),
            &self.key,
            TxAction::Redelegate {
                src: self.src,
                dst: da,
                shares: SLICE,
            },
        )
        .await?;
        let e = list_redelegations(q, &self.d)
            .await?
            .into_iter()
            .find(|e| e.dst_validator == da.0 && e.creation_height == r.height)
            .with_context(|| {
                format!(
                    "no redelegation entry node3 -> node{dst} created at height {}",
                    r.height
                )
            })?;
        let initial = parse_u128(&e.initial_balance, "redelegation balance")?;
        detail!(
            "delegator{MOVER} redelegates {SLICE} shares node3 -> node{dst} at height {} ({initial} tokens)",
            r.height
        );
        Ok(Slice::Moved(Move {
            dst,
            creation_height: r.height,
            initial,
        }))
    }

    /// The mover's node3 shares.
    async fn held(&self, q: &mut QueryClient<Channel>) -> Result<u128> {
        let r = q
            .get_delegation(pb::GetDelegationRequest {
                delegator: self.d.0.to_vec(),
                validator: self.src.0.to_vec(),
                prove: false,
            })
            .await;
        // The last slice removes the delegation: NotFound then means none left.
        Ok(match r {
            Err(s) if s.code() == tonic::Code::NotFound => 0,
            r => r
                .context("GetDelegation")?
                .into_inner()
                .delegation
                .map(|x| parse_u128(&x.shares, "delegation shares"))
                .transpose()?
                .unwrap_or(0),
        })
    }
}

impl Running {
    /// Waits until the mover's first redelegation is committed and returns
    /// its block; fails with the mover's own error if it stopped before.
    pub(in crate::demo) async fn first_move(&mut self, net: &mut Net) -> Result<u64> {
        let t0 = Instant::now();
        loop {
            let first = self.flags.first.load(Ordering::SeqCst);
            if first != 0 {
                return Ok(first);
            }
            net.check_alive()?;
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                self.join()?;
                bail!("the redelegation thread ended before its first redelegation");
            }
            if t0.elapsed() > FIRST_MOVE_DEADLINE {
                bail!(
                    "delegator{MOVER}'s first redelegation was not committed within {FIRST_MOVE_DEADLINE:?}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops the mover after its transaction in flight; returns what it made.
    pub(in crate::demo) fn finish(mut self) -> Result<Moves> {
        self.flags.stop.store(true, Ordering::SeqCst);
        let Made { made, short } = self.join()?;
        Ok(Moves {
            made,
            short,
            ..Moves::default()
        })
    }

    fn join(&mut self) -> Result<Made> {
        self.thread
            .take()
            .context("the redelegation thread was already joined")?
            .join()
            .map_err(|_| anyhow::anyhow!("the redelegation thread panicked"))?
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.flags.stop.store(true, Ordering::SeqCst);
    }
}
