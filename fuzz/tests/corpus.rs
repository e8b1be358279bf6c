//! Every checked-in corpus file runs cleanly through every target, and the
//! corpus holds every seed the generator makes (so it cannot go stale
//! silently when an encoding changes).

use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn every_corpus_file_replays_through_every_target() {
    let mut all = Vec::new();
    for (name, _) in agora_fuzz::TARGETS {
        let f = files(&corpus_dir().join(name));
        assert!(!f.is_empty(), "no corpus for {name}");
        all.extend(f);
    }
    for (name, target) in agora_fuzz::TARGETS {
        for f in &all {
            let data = std::fs::read(f).expect("read corpus file");
            let r = std::panic::catch_unwind(|| target(&data));
            assert!(r.is_ok(), "target {name} panicked on {}", f.display());
        }
    }
}

#[test]
fn corpus_holds_every_generated_seed() {
    for (target, seeds) in agora_fuzz::corpus::seeds() {
        for (name, bytes) in seeds {
            let path = corpus_dir().join(target).join(&name);
            let stored = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run `cargo run -p agora-fuzz --bin gen_corpus`)",
                    path.display()
                )
            });
            assert_eq!(
                stored,
                bytes,
                "{} is stale: regenerate the corpus",
                path.display()
            );
        }
    }
}

#[test]
fn seeds_pass_the_deep_checks() {
    use agora_proto::v1 as pb;
    use agora_validator::CommitCertificate;
    use agora_validator::consensus::signed_points::SignedPoints;
    use agora_validator::engine::BlockLimits;
    use agora_validator::engine::block_rules::{self, Context, Provenance};
    use prost::Message;

    let w = agora_fuzz::fixtures::world();
    let read = |t: &str, f: &str| std::fs::read(corpus_dir().join(t).join(f)).expect(f);
    let cert = pb::CommitCertificate::decode(read("certificate", "height_1").as_slice()).unwrap();
    let cert = CommitCertificate::from_proto(&cert).unwrap();
    cert.verify_for(&w.chain, &w.set, 1, &w.after_block_1.tip.block_hash)
        .expect("the height-1 certificate verifies");
    let limits = BlockLimits::default();
    let signed = SignedPoints::default();
    for (file, restored, height) in [("block_1", &w.genesis, 1), ("block_2", &w.after_block_1, 2)] {
        let b = pb::Block::decode(read("block", file).as_slice()).unwrap();
        let ctx = Context {
            chain: &w.chain,
            ledger: &restored.ledger,
            tip: &restored.tip,
            height,
            limits: &limits,
            signed: &signed,
        };
        block_rules::check_block(&ctx, &b, Provenance::Certified)
            .unwrap_or_else(|e| panic!("{file} is a valid synced block: {e}"));
        assert!(b.txs.len() == 8 || height == 2);
    }
}
