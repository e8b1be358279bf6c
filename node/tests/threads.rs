//! The node's threads (`agora_node::threads`): the servers for clients run
//! on the services pool, so a consensus thread that is busy does not stop
//! the gRPC API, and the API cannot take that thread from consensus.
//!
//! A one-validator chain runs in this process on the runtimes `agora start`
//! uses. The test holds the consensus thread on purpose (a task that blocks
//! it until released) and asks for the status: the answer must come while
//! the thread is held. Negative control: the same node with its servers on
//! the consensus runtime (`Node::start_on` given that runtime's handle)
//! cannot answer until the thread is released.

mod support;

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use agora_node::client::connect;
use agora_node::home::Home;
use agora_node::node::Node;
use agora_node::threads::Runtimes;
use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;

/// How long the status may take while the consensus thread is held, when
/// the servers have their own threads: generous for a loaded CI machine.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// How long the control waits for an answer that cannot come.
const CONTROL_WAIT: Duration = Duration::from_secs(3);

/// Where the node's servers run.
#[derive(Clone, Copy, Debug)]
enum Servers {
    /// On the services pool, as `agora start` runs them.
    OwnPool,
    /// On the consensus thread (the negative control).
    ConsensusThread,
}

/// The chain's height from the status, `None` past `within`.
async fn status_height(
    q: &mut QueryClient<tonic::transport::Channel>,
    within: Duration,
) -> Option<u64> {
    match tokio::time::timeout(within, q.get_status(pb::GetStatusRequest {})).await {
        Ok(Ok(r)) => Some(r.into_inner().latest_height),
        _ => None,
    }
}

/// Polls the status until the height reaches `at_least` (deadline 60 s).
async fn wait_height(q: &mut QueryClient<tonic::transport::Channel>, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(h) = status_height(q, Duration::from_secs(5)).await
            && h >= at_least
        {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "the chain never reached {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the node with its servers where `servers` says, holds its
/// consensus thread once the chain commits, asks for the status, releases
/// the thread and waits for the next height (consensus went on); stops the
/// node. Returns the height answered while the thread was held, if any.
fn hold_and_ask(servers: Servers) -> Option<u64> {
    let net = support::net::build(1, 0, |_, _| {});
    let (home, grpc) = (net.homes[0].clone(), format!("127.0.0.1:{}", net.grpc[0]));
    let rt = Runtimes::new().expect("runtimes");
    let consensus = rt.consensus.handle().clone();
    let services = match servers {
        Servers::OwnPool => rt.services.handle().clone(),
        Servers::ConsensusThread => consensus.clone(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let node_thread = std::thread::spawn(move || {
        rt.consensus.block_on(async {
            let node = Node::start_on(&Home::new(&home), services)
                .await
                .expect("start");
            node.run(async {
                let _ = stop_rx.await;
            })
            .await
            .expect("run");
        });
    });
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let outcome = client.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        let channel = loop {
            if let Ok(c) = connect(&grpc).await {
                break c;
            }
            assert!(Instant::now() < deadline, "gRPC never came up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut q = QueryClient::new(channel);
        let before = wait_height(&mut q, 2).await;
        // Hold the consensus thread: the task blocks it until released.
        let (held_tx, held_rx) = std_mpsc::channel::<()>();
        let (release_tx, release_rx) = std_mpsc::channel::<()>();
        consensus.spawn(async move {
            let _ = held_tx.send(());
            let _ = release_rx.recv();
        });
        held_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the consensus thread was never held");
        let wait = match servers {
            Servers::OwnPool => ANSWER_WITHIN,
            Servers::ConsensusThread => CONTROL_WAIT,
        };
        let answered = status_height(&mut q, wait).await;
        release_tx.send(()).expect("release");
        // Consensus goes on once released (`wait_height` fails otherwise).
        wait_height(&mut q, answered.unwrap_or(before) + 1).await;
        answered
    });
    let _ = stop_tx.send(());
    node_thread.join().expect("node thread");
    outcome
}

#[test]
fn clients_are_answered_while_the_consensus_thread_is_busy() {
    let answered =
        hold_and_ask(Servers::OwnPool).expect("no status while the consensus thread was held");
    assert!(answered >= 2, "answered height {answered}");

    // Negative control: servers on the consensus thread cannot answer while
    // it is held, so the check above is what tells the layouts apart.
    let control = hold_and_ask(Servers::ConsensusThread);
    assert_eq!(
        control, None,
        "a server on the held thread answered: the hold did not hold"
    );
}
