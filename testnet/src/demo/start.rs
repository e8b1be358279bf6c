//! Step 1: generate a four-validator testnet (with the demo's short
//! unbonding period, signing window and downtime jail), start its nodes and
//! wait until all of them committed the first heights.

use std::path::Path;
use std::time::Instant;

use agora_proto::v1::query_client::QueryClient;
use anyhow::Result;
use tonic::transport::Channel;

use super::rpc::{query_client, wait_all_heights};
use super::{
    CHAIN_ID, DemoArgs, FIRST_HEIGHTS, Net, START_DEADLINE, UNBONDING_PERIOD, VALIDATORS, economics,
};
use crate::generate;
use crate::manifest::{ByzantineNote, Manifest};

/// Generates the testnet, starts its nodes and waits for the first heights.
pub(super) async fn start(net: &mut Net, agora: &Path, a: &DemoArgs) -> Result<((), String)> {
    crate::prepare_dir(&a.dir, true)?;
    let mut plan = generate::loopback_plan(VALIDATORS, a.base_port, CHAIN_ID, UNBONDING_PERIOD)?;
    // delegator3 redelegates away from the double signer.
    plan.delegators = plan.delegators.max(economics::MOVER + 1);
    plan.signed_blocks_window = economics::SIGNED_BLOCKS_WINDOW;
    plan.downtime_jail_heights = economics::DOWNTIME_JAIL_HEIGHTS;
    crate::check_ports(&plan)?;
    let (dir, g) = generate::generate_in(&plan, &a.dir)?;
    let m = Manifest::loopback(CHAIN_ID, &dir, agora, &plan, &g, ByzantineNote::default());
    net.children = (0..m.nodes.len()).map(|_| None).collect();
    net.manifest = Some(m);
    for i in 0..VALIDATORS {
        net.start_one(agora, i)?;
    }
    let m = net.m()?;
    detail!("testnet in {} (chain {CHAIN_ID:?})", dir.display());
    for n in &m.nodes {
        detail!(
            "{}  pid {}  gRPC {}  validator {}",
            n.moniker,
            n.pid.unwrap_or_default(),
            n.grpc,
            n.validator_address
        );
    }
    let clients: Vec<QueryClient<Channel>> = m
        .nodes
        .iter()
        .map(|n| query_client(&n.grpc))
        .collect::<Result<_>>()?;
    let t0 = Instant::now();
    let heights = wait_all_heights(net, &clients, FIRST_HEIGHTS, START_DEADLINE).await?;
    Ok((
        (),
        format!(
            "heights {heights:?} after {:.1} s",
            t0.elapsed().as_secs_f64()
        ),
    ))
}
