//! The gRPC API against a real `agora` process: a delegator's bond and
//! unbond round trip, slashing from submitted evidence, the status codes of
//! bad requests, `GetBlocks` ranges, and `agora audit` (batched) passing on
//! the real chain and failing on a tampered certificate at its height.

use agora_node::client::audit;
use agora_node::client::pages;
use agora_node::client::query::{self, QueryKind};
use agora_node::client::tx::{DEFAULT_FEE, TxAction, submit};
use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_proto::v1::staking_client::StakingClient;
use agora_validator::signing::{sign_transaction, vote_bytes};
use agora_validator::{Address, ChainId, VoteType};
use std::process::Command;
use tonic::Code;

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegator_bonds_unbonds_and_double_signer_is_slashed_over_grpc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut node, a, b, bob) = setup(dir.path());
    let (mut q, ch) = client(&node).await;
    wait_height(&mut q, &node, 2).await;
    let a_addr = Address::of(&a.public_key());
    let b_addr = Address::of(&b.public_key());
    let bob_addr = Address::of_account(&bob.public_key());

    // Bond: the delegation is visible and the power grows two heights later.
    let amount: u128 = 50_000_000_000;
    let r = submit(
        ch.clone(),
        &bob,
        &TxAction::Bond {
            validator: a_addr,
            amount,
        },
        true,
    )
    .await
    .expect("bond");
    assert_eq!(r.status, pb::TxStatus::Committed as i32, "{}", r.log);
    let hb = r.height;
    let d = q
        .get_delegation(pb::GetDelegationRequest {
            prove: false,
            delegator: bob_addr.0.to_vec(),
            validator: a_addr.0.to_vec(),
        })
        .await
        .expect("delegation")
        .into_inner()
        .delegation
        .expect("some");
    assert_eq!(d.tokens, amount.to_string());
    // `agora query delegations` (the CLI's query code) sees the same.
    let listed = query::run(
        ch.clone(),
        &QueryKind::Delegations(bob_addr),
        pages::PAGE_LIMIT,
    )
    .await
    .expect("query delegations");
    let listed = listed.as_array().expect("a JSON array");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["tokens"], amount.to_string(), "{listed:?}");
    wait_height(&mut q, &node, hb + 2).await;
    let before = power_of(&set_at(&mut q, hb + 1).await, &a_addr);
    let after = power_of(&set_at(&mut q, hb + 2).await, &a_addr);
    assert_eq!(
        after,
        before + (amount / 1_000_000) as u64,
        "power must grow at h+2"
    );

    // Unbond: an entry appears and the tokens come back after the period.
    let shares: u128 = d.shares.parse().expect("shares");
    let r = submit(
        ch.clone(),
        &bob,
        &TxAction::Unbond {
            validator: a_addr,
            shares,
        },
        true,
    )
    .await
    .expect("unbond");
    assert_eq!(r.status, pb::TxStatus::Committed as i32, "{}", r.log);
    let entries = q
        .list_unbonding(pb::ListUnbondingRequest {
            prove: false,
            delegator: bob_addr.0.to_vec(),
            page: None,
        })
        .await
        .expect("unbonding")
        .into_inner()
        .entries;
    assert_eq!(entries.len(), 1);
    let done = entries[0].completion_height;
    assert_eq!(done, r.height + UNBONDING);
    let listed = query::run(
        ch.clone(),
        &QueryKind::Unbonding(bob_addr),
        pages::PAGE_LIMIT,
    )
    .await
    .expect("query unbonding");
    assert_eq!(
        listed.as_array().map(|a| a
            .iter()
            .map(|e| e["completion_height"].as_u64())
            .collect::<Vec<_>>()),
        Some(vec![Some(done)]),
        "{listed}"
    );
    let balance = |q: &mut QueryClient<tonic::transport::Channel>| {
        let mut q = q.clone();
        async move {
            q.get_account(pb::GetAccountRequest {
                prove: false,
                address: bob_addr.0.to_vec(),
            })
            .await
            .expect("account")
            .into_inner()
            .balance
            .parse::<u128>()
            .expect("amount")
        }
    };
    // Two fees paid; the unbond also paid the rewards the delegation earned.
    let after_unbond = balance(&mut q).await;
    assert!(
        after_unbond + amount + 2 * DEFAULT_FEE > BOB_FUNDS,
        "the unbond pays the delegation's accrued rewards: {after_unbond}"
    );
    wait_height(&mut q, &node, done).await;
    assert_eq!(
        balance(&mut q).await,
        after_unbond + amount,
        "unbonded tokens are paid out at the completion height"
    );

    // Double signing by B: submitted evidence slashes exactly 5% and tombstones.
    let chain = ChainId::new(CHAIN).expect("chain");
    let latest = wait_height(&mut q, &node, 1).await;
    let vote = |hash: [u8; 32]| pb::Vote {
        vote_type: VoteType::Prevote as i32,
        height: latest,
        round: 0,
        block_hash: hash.to_vec(),
        validator_address: b_addr.0.to_vec(),
        signature: b
            .sign(&vote_bytes(&chain, VoteType::Prevote, latest, 0, &hash))
            .to_bytes()
            .to_vec(),
    };
    let b_tokens: u128 = q
        .get_validator(pb::GetValidatorRequest {
            prove: false,
            address: b_addr.0.to_vec(),
        })
        .await
        .expect("validator b")
        .into_inner()
        .validator
        .expect("b")
        .tokens
        .parse()
        .expect("tokens");
    let evidence = pb::Evidence {
        kind: Some(pb::evidence::Kind::DuplicateVote(
            pb::DuplicateVoteEvidence {
                vote_a: Some(vote([1; 32])),
                vote_b: Some(vote([2; 32])),
            },
        )),
    };
    let mut staking = StakingClient::new(ch.clone());
    staking
        .submit_evidence(pb::SubmitEvidenceRequest {
            evidence: Some(evidence.clone()),
        })
        .await
        .expect("evidence accepted");
    let mut commits = latest;
    let events = loop {
        let ev = q
            .list_slashing_events(pb::ListSlashingEventsRequest {
                prove: false,
                validator: b_addr.0.to_vec(),
                page: None,
            })
            .await
            .expect("slashes")
            .into_inner()
            .events;
        if !ev.is_empty() {
            break ev;
        }
        commits = wait_height(&mut q, &node, commits + 1).await;
        assert!(
            commits < latest + 30,
            "evidence never included\n{}",
            node.log_tail()
        );
    };
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].fraction_bps, 500);
    assert_eq!(events[0].amount, (b_tokens * 500 / 10_000).to_string());
    assert!(events[0].tombstoned);
    let vb = q
        .get_validator(pb::GetValidatorRequest {
            prove: false,
            address: b_addr.0.to_vec(),
        })
        .await
        .expect("validator b")
        .into_inner()
        .validator
        .expect("b");
    assert!(vb.tombstoned && vb.jailed);
    // The same infraction is not slashed twice.
    let again = staking
        .submit_evidence(pb::SubmitEvidenceRequest {
            evidence: Some(evidence),
        })
        .await
        .expect_err("already slashed");
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_right_status_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut node, a, _b, bob) = setup(dir.path());
    let (mut q, ch) = client(&node).await;
    wait_height(&mut q, &node, 1).await;
    let chain = ChainId::new(CHAIN).expect("chain");
    let mut staking = StakingClient::new(ch.clone());
    let a_addr = Address::of(&a.public_key());
    let body = |nonce: u64| pb::TxBody {
        chain_id: CHAIN.into(),
        fee: "1000".into(),
        nonce,
        kind: Some(pb::tx_body::Kind::Bond(pb::Bond {
            validator: a_addr.0.to_vec(),
            amount: "1000".into(),
        })),
    };
    let req = |tx: pb::Transaction| pb::SubmitTxRequest {
        tx: Some(tx),
        wait_for_commit: true,
        timeout_ms: 20_000,
    };

    let good = sign_transaction(&chain, &bob, body(0));
    let r = staking
        .bond(req(good.clone()))
        .await
        .expect("bond")
        .into_inner();
    assert_eq!(r.status, pb::TxStatus::Committed as i32, "{}", r.log);
    // Replaying the same signed transaction: its nonce is spent.
    let replay = staking.bond(req(good)).await.expect_err("replay");
    assert_eq!(replay.code(), Code::FailedPrecondition, "{replay:?}");
    assert!(replay.message().contains("nonce"), "{}", replay.message());
    // A bad signature.
    let mut forged = sign_transaction(&chain, &bob, body(1));
    forged.signature = sign_transaction(&chain, &bob, body(7)).signature;
    let e = staking.bond(req(forged)).await.expect_err("forged");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    // Signed for another chain.
    let other = ChainId::new("other-chain").expect("chain");
    let mut wrong_chain = body(1);
    wrong_chain.chain_id = "other-chain".into();
    let e = staking
        .bond(req(sign_transaction(&other, &bob, wrong_chain)))
        .await
        .expect_err("chain");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    // A Transfer sent to the Bond method.
    let transfer = sign_transaction(
        &chain,
        &bob,
        pb::TxBody {
            chain_id: CHAIN.into(),
            fee: "1000".into(),
            nonce: 1,
            kind: Some(pb::tx_body::Kind::Transfer(pb::Transfer {
                to: a_addr.0.to_vec(),
                amount: "1".into(),
            })),
        },
    );
    let e = staking.bond(req(transfer)).await.expect_err("wrong method");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    // Evidence: checked on a worker thread before the runner sees it. A
    // forged half is refused with the reason; so is a half signed by a key
    // that is not a validator, and evidence with no kind.
    let h = wait_height(&mut q, &node, 1).await;
    let vote = |k: &agora_validator::SecretKey, hash: [u8; 32]| pb::Vote {
        vote_type: VoteType::Prevote as i32,
        height: h,
        round: 0,
        block_hash: hash.to_vec(),
        validator_address: Address::of(&k.public_key()).0.to_vec(),
        signature: k
            .sign(&vote_bytes(&chain, VoteType::Prevote, h, 0, &hash))
            .to_bytes()
            .to_vec(),
    };
    let evidence = |a: pb::Vote, b: pb::Vote| pb::SubmitEvidenceRequest {
        evidence: Some(pb::Evidence {
            kind: Some(pb::evidence::Kind::DuplicateVote(
                pb::DuplicateVoteEvidence {
                    vote_a: Some(a),
                    vote_b: Some(b),
                },
            )),
        }),
    };
    let mut forged_b = vote(&a.consensus, [2; 32]);
    forged_b.signature = vote(&a.consensus, [3; 32]).signature;
    let e = staking
        .submit_evidence(evidence(vote(&a.consensus, [1; 32]), forged_b))
        .await
        .expect_err("forged evidence");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("signature"), "{}", e.message());
    let stranger = agora_validator::SecretKey::from_seed(&[0x5e; 32]).expect("key");
    let e = staking
        .submit_evidence(evidence(vote(&stranger, [1; 32]), vote(&stranger, [2; 32])))
        .await
        .expect_err("not a validator");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("not a validator"), "{}", e.message());
    let e = staking
        .submit_evidence(pb::SubmitEvidenceRequest {
            evidence: Some(pb::Evidence { kind: None }),
        })
        .await
        .expect_err("no kind");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    // Missing transaction, malformed address, unknown validator, unknown block.
    let e = staking
        .bond(pb::SubmitTxRequest::default())
        .await
        .expect_err("empty");
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = q
        .get_account(pb::GetAccountRequest {
            prove: false,
            address: vec![1, 2, 3],
        })
        .await
        .expect_err("short");
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = q
        .get_validator(pb::GetValidatorRequest {
            prove: false,
            address: vec![9; 20],
        })
        .await
        .expect_err("unknown");
    assert_eq!(e.code(), Code::NotFound);
    let e = q
        .get_block(pb::GetBlockRequest { height: 1 << 40 })
        .await
        .expect_err("future");
    assert_eq!(e.code(), Code::NotFound);
    // Validator sets: known two heights past the latest block (the set of
    // h is fixed at the end of h - 2), not beyond, where the node once
    // answered with its latest set as if it were decided.
    let latest = q
        .get_status(pb::GetStatusRequest {})
        .await
        .expect("status")
        .into_inner()
        .latest_height;
    let set = |height| pb::GetValidatorSetRequest { height };
    let known = q
        .get_validator_set(set(latest + 2))
        .await
        .expect("latest + 2");
    assert_eq!(known.into_inner().height, latest + 2);
    let e = q
        .get_validator_set(set(1 << 40))
        .await
        .expect_err("future set");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().contains("is decided"), "{}", e.message());
    // GetBlocks: height 0, no blocks asked, past the head.
    let range = |from_height, max_blocks| pb::GetBlocksRequest {
        from_height,
        max_blocks,
    };
    let e = q.get_blocks(range(0, 5)).await.expect_err("height 0");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = q.get_blocks(range(1, 0)).await.expect_err("zero blocks");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = q.get_blocks(range(1 << 40, 5)).await.expect_err("future");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    // Bonding more than Bob has.
    let e = staking
        .bond(req(sign_transaction(
            &chain,
            &bob,
            pb::TxBody {
                chain_id: CHAIN.into(),
                fee: "1000".into(),
                nonce: 1,
                kind: Some(pb::tx_body::Kind::Bond(pb::Bond {
                    validator: a_addr.0.to_vec(),
                    amount: (BOB_FUNDS * 10).to_string(),
                })),
            },
        )))
        .await
        .expect_err("too much");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("insufficient"), "{}", e.message());
    // An oversized request is refused, and the node still answers after it.
    let mut huge = sign_transaction(&chain, &bob, body(1));
    huge.signature = vec![0; 1 << 20];
    let e = staking.bond(req(huge)).await.expect_err("huge");
    assert!(
        matches!(
            e.code(),
            Code::OutOfRange | Code::InvalidArgument | Code::ResourceExhausted
        ),
        "{e:?}"
    );
    q.get_status(pb::GetStatusRequest {})
        .await
        .expect("still serving");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_passes_on_the_real_chain_and_fails_on_a_tampered_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut node, _a, _b, _bob) = setup(dir.path());
    let (mut q, ch) = client(&node).await;
    let h = wait_height(&mut q, &node, 6).await;
    let (cfg, _) = audit_config(&node, h);
    let report = audit::audit(ch.clone(), cfg.clone())
        .await
        .expect("audit passes");
    assert_eq!(report.verified, h);

    // GetBlocks: consecutive blocks with the certificates that commit them,
    // the same as GetBlock and GetCommitCertificate give one by one.
    let r = q
        .get_blocks(pb::GetBlocksRequest {
            from_height: 2,
            max_blocks: 3,
        })
        .await
        .expect("range")
        .into_inner();
    assert_eq!(r.blocks.len(), 3);
    assert!(r.latest_height >= h);
    for (i, entry) in r.blocks.iter().enumerate() {
        let height = 2 + i as u64;
        let block = entry.block.as_ref().expect("block");
        let header = block.header.as_ref().expect("header");
        assert_eq!(header.height, height);
        assert_eq!(
            entry.block_hash,
            agora_validator::block::header_hash(header).to_vec()
        );
        let cert = entry.certificate.as_ref().expect("certificate");
        assert_eq!((cert.height, &cert.block_hash), (height, &entry.block_hash));
        let one = q
            .get_block(pb::GetBlockRequest { height })
            .await
            .expect("block")
            .into_inner();
        assert_eq!(one.block.as_ref(), Some(block));
        let c = q
            .get_commit_certificate(pb::GetCommitCertificateRequest { height })
            .await
            .expect("certificate")
            .into_inner();
        assert_eq!(c.certificate.as_ref(), Some(cert));
    }
    // Asking for more than exists returns up to the head; more than the cap, the cap.
    let r = q
        .get_blocks(pb::GetBlocksRequest {
            from_height: 1,
            max_blocks: u32::MAX,
        })
        .await
        .expect("range")
        .into_inner();
    assert!(r.blocks.len() as u64 >= h && r.blocks.len() <= 256);
    let last = r
        .blocks
        .last()
        .and_then(|b| b.block.as_ref()?.header.as_ref());
    assert_eq!(last.map(|hd| hd.height), Some(r.blocks.len() as u64));
    // The CLI agrees, with exit code 0.
    let out = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["audit", "--node", &node.grpc, "--genesis"])
        .arg(node.home.join("genesis.json"))
        .args(["--to", &h.to_string()])
        .output()
        .expect("agora audit");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("verified {h} certificates")));
    // A height the node does not have yet is refused, not quietly lowered
    // to the tip with an OK.
    let beyond = h + 1_000_000;
    let out = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["audit", "--node", &node.grpc, "--genesis"])
        .arg(node.home.join("genesis.json"))
        .args(["--to", &beyond.to_string()])
        .output()
        .expect("agora audit");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("--to {beyond} is past the node's latest height")),
        "{text}"
    );
    node.stop();

    // Tamper with the stored certificate of height 3: swap in height 4's signature.
    {
        use prost::Message;
        use redb::{ReadableDatabase, TableDefinition};
        const CERTS: TableDefinition<u64, &[u8]> = TableDefinition::new("certificates");
        let db = redb::Database::create(agora_node::home::Home::new(&node.home).db()).expect("db");
        let (c3, c4) = {
            let r = db.begin_read().expect("read");
            let t = r.open_table(CERTS).expect("table");
            let get = |h: u64| {
                pb::CommitCertificate::decode(t.get(h).expect("get").expect("stored").value())
                    .expect("decode")
            };
            (get(3), get(4))
        };
        let mut bad = c3;
        bad.aggregate_signature = c4.aggregate_signature;
        let w = db.begin_write().expect("write");
        {
            let mut t = w.open_table(CERTS).expect("table");
            t.insert(3u64, bad.encode_to_vec().as_slice())
                .expect("insert");
        }
        w.commit().expect("commit");
    }
    node.start();
    let (_q, ch) = client(&node).await;
    let err = audit::audit(ch, cfg)
        .await
        .expect_err("tampered chain must fail");
    assert!(err.to_string().contains("height 3"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["audit", "--node", &node.grpc, "--genesis"])
        .arg(node.home.join("genesis.json"))
        .output()
        .expect("agora audit");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("AUDIT FAILED"));
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services_and_health_reports_serving() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut node, _a, _b, _bob) = setup(dir.path());
    let (_q, ch) = client(&node).await;
    // What `grpcurl -plaintext HOST:PORT list` asks.
    let mut refl = ServerReflectionClient::new(ch.clone());
    let req = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(tonic::codegen::tokio_stream::iter(vec![req]))
        .await
        .expect("reflection")
        .into_inner();
    let resp = stream
        .message()
        .await
        .expect("answer")
        .expect("one message");
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "agora.v1.Query",
        "agora.v1.Staking",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
    let s = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "agora.v1.Query".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        s.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    node.stop();
}
