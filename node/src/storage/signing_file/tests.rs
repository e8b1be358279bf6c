use std::os::unix::fs::MetadataExt;

use agora_validator::SecretKey;
use agora_validator::consensus::SignStep;

use super::*;
use crate::storage::signing_slots::{FILE_BYTES, Slot, parse_slot};

fn state(height: u64, step: SignStep) -> SigningState {
    SigningState {
        height,
        round: 2,
        step,
        signed_hash: [height as u8; 32],
        value: [6; 32],
        locked: Some(([height as u8 ^ 0x55; 32], 1)),
    }
}

fn file(dir: &Path, seed: u8, chain: &str) -> SigningFile {
    let key = SecretKey::from_seed(&[seed; 32]).unwrap().public_key();
    SigningFile::new(
        dir.join("signing_state.json"),
        ChainId::new(chain).unwrap(),
        key,
    )
}

/// The two slots as they are on disk (parsed, or why not).
fn slots(f: &SigningFile) -> [Result<Slot, String>; 2] {
    let bytes = std::fs::read(f.path()).unwrap();
    assert_eq!(bytes.len(), FILE_BYTES);
    let (a, b) = bytes.split_at(SLOT_BYTES);
    [parse_slot(a), parse_slot(b)]
}

fn state_of(slot: &Result<Slot, String>) -> SigningState {
    slot.as_ref().unwrap().document.state().unwrap()
}

/// The states both slots hold, lowest height first.
fn held(f: &SigningFile) -> Vec<SigningState> {
    let mut held: Vec<_> = slots(f).iter().map(state_of).collect();
    held.sort_by_key(|s| s.height);
    held
}

#[test]
fn save_load_round_trip_without_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let f = file(dir.path(), 1, "c1");
    assert_eq!(f.load().unwrap(), None);
    f.save(&state(9, SignStep::Prevote)).unwrap();
    f.save(&state(10, SignStep::Precommit)).unwrap();
    assert_eq!(f.load().unwrap(), Some(state(10, SignStep::Precommit)));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("signing_state.json")]);
    let unlocked = SigningState {
        locked: None,
        ..state(11, SignStep::Propose)
    };
    f.save(&unlocked).unwrap();
    assert_eq!(f.load().unwrap(), Some(unlocked));
}

/// After the file is made, a save rewrites one slot of the same file (no
/// rename), the one not holding the newest state: the two slots hold the
/// last two states.
#[test]
fn a_save_overwrites_the_older_slot_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let f = file(dir.path(), 1, "c1");
    f.save(&state(1, SignStep::Prevote)).unwrap();
    let inode = std::fs::metadata(f.path()).unwrap().ino();
    for h in 2..=5 {
        f.save(&state(h, SignStep::Prevote)).unwrap();
        assert_eq!(std::fs::metadata(f.path()).unwrap().ino(), inode);
        let [a, b] = slots(&f);
        let (newest, older) = if h % 2 == 0 { (a, b) } else { (b, a) };
        assert_eq!(state_of(&newest), state(h, SignStep::Prevote));
        assert_eq!(state_of(&older), state(h - 1, SignStep::Prevote));
        assert_eq!(newest.unwrap().sequence, older.unwrap().sequence + 1);
    }
}

/// A second `SigningFile` on an existing file (a restarted node) continues
/// the sequence: its first save goes to the older slot, never over the
/// newest state.
#[test]
fn a_reopened_file_continues_after_its_newest_slot() {
    let dir = tempfile::tempdir().unwrap();
    let first = file(dir.path(), 1, "c1");
    for h in 1..=4 {
        first.save(&state(h, SignStep::Precommit)).unwrap();
    }
    let second = file(dir.path(), 1, "c1");
    assert_eq!(second.load().unwrap(), Some(state(4, SignStep::Precommit)));
    second.save(&state(5, SignStep::Precommit)).unwrap();
    assert_eq!(
        held(&second),
        vec![state(4, SignStep::Precommit), state(5, SignStep::Precommit)]
    );
}

/// A power cut inside a save can leave its slot half new, half what it
/// held two saves before. Such a mix can be valid JSON with the newest
/// sequence (the negative control below shows it parses), so only the
/// checksum keeps it from being read as the state: the load falls back to
/// the other slot, the last state a signature left under.
#[test]
fn a_torn_slot_is_refused_and_the_previous_state_read() {
    let dir = tempfile::tempdir().unwrap();
    let f = file(dir.path(), 1, "c1");
    for h in 10..=12 {
        f.save(&state(h, SignStep::Prevote)).unwrap();
    }
    // Height 13 goes to the slot holding 11. A device tears at a sector
    // boundary, wherever that falls in the document; here the tear keeps
    // 13's start (sequence, height, signing root) and 11's end (lock,
    // checksum).
    let torn_index = slots(&f)
        .iter()
        .position(|s| state_of(s).height == 11)
        .unwrap();
    let old = slots(&f)[torn_index].clone().unwrap();
    let new = encode_slot(
        old.sequence + 2,
        &SigningDoc::new(&f.chain, &f.key, &state(13, SignStep::Prevote)),
    )
    .unwrap();
    let old_bytes = encode_slot(old.sequence, &old.document).unwrap();
    let tear = new.windows(8).position(|w| w == b"\"locked\"").unwrap();
    let mut mixed = new[..tear].to_vec();
    mixed.extend_from_slice(&old_bytes[tear..]);
    // Negative control: without the checksum the mix reads as a state with
    // the newest sequence that was never written whole.
    let text = std::str::from_utf8(&mixed).unwrap().trim_end();
    let unchecked: Slot = serde_json::from_str(text).expect("the mix is valid JSON");
    assert_eq!(unchecked.sequence, old.sequence + 2);
    let unchecked_state = unchecked.document.state().unwrap();
    assert_ne!(unchecked_state, state(13, SignStep::Prevote));
    assert_ne!(unchecked_state, state(12, SignStep::Prevote));
    // The check: the torn slot is refused, the other slot (12) is read.
    assert!(parse_slot(&mixed).unwrap_err().contains("checksum"));
    let file_bytes = std::fs::OpenOptions::new()
        .write(true)
        .open(f.path())
        .unwrap();
    file_bytes
        .write_all_at(&mixed, (torn_index * SLOT_BYTES) as u64)
        .unwrap();
    let reader = file(dir.path(), 1, "c1");
    assert_eq!(reader.load().unwrap(), Some(state(12, SignStep::Prevote)));
    // And the next save goes over the torn slot, keeping 12.
    reader.save(&state(14, SignStep::Prevote)).unwrap();
    assert_eq!(
        held(&reader),
        vec![state(12, SignStep::Prevote), state(14, SignStep::Prevote)]
    );
}

#[test]
fn foreign_and_corrupt_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), 1, "c1")
        .save(&state(3, SignStep::Prevote))
        .unwrap();
    assert!(matches!(
        file(dir.path(), 1, "c2").load(),
        Err(SigningFileError::ForeignChain { .. })
    ));
    assert!(matches!(
        file(dir.path(), 2, "c1").load(),
        Err(SigningFileError::ForeignKey { .. })
    ));
    let path = dir.path().join("signing_state.json");
    // Both slots unusable: an error that says not to delete the file.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    bytes[SLOT_BYTES + 100] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let e = file(dir.path(), 1, "c1").load().unwrap_err();
    assert!(matches!(e, SigningFileError::Corrupt { .. }));
    assert!(e.to_string().contains("both slots"), "{e}");
    assert!(e.to_string().contains("do NOT delete"), "{e}");
    // A slot with the other slot's parity is not ours either.
    let f = file(dir.path(), 1, "c1");
    let doc = SigningDoc::new(&f.chain, &f.key, &state(4, SignStep::Prevote));
    let mut swapped = encode_slot(1, &doc).unwrap();
    swapped.extend(encode_slot(0, &doc).unwrap());
    std::fs::write(&path, &swapped).unwrap();
    assert!(f.load().unwrap_err().to_string().contains("in slot"));
    // Truncated, and the older form broken.
    std::fs::write(&path, &bytes[..SLOT_BYTES]).unwrap();
    assert!(matches!(f.load(), Err(SigningFileError::Corrupt { .. })));
    std::fs::write(&path, "{\"format\":").unwrap();
    assert!(matches!(f.load(), Err(SigningFileError::Corrupt { .. })));
}

/// A file in the one-document form earlier versions wrote is read, and the
/// next save makes it a two-slot file holding the new state.
#[test]
fn the_one_document_form_is_read_and_replaced_at_the_next_save() {
    let dir = tempfile::tempdir().unwrap();
    let f = file(dir.path(), 1, "c1");
    let old = SigningDoc::new(&f.chain, &f.key, &state(7, SignStep::Precommit));
    std::fs::write(f.path(), old.to_json()).unwrap();
    assert_eq!(f.load().unwrap(), Some(state(7, SignStep::Precommit)));
    f.save(&state(8, SignStep::Prevote)).unwrap();
    assert_eq!(
        std::fs::metadata(f.path()).unwrap().len(),
        FILE_BYTES as u64
    );
    assert_eq!(f.load().unwrap(), Some(state(8, SignStep::Prevote)));
    f.save(&state(9, SignStep::Prevote)).unwrap();
    assert_eq!(
        file(dir.path(), 1, "c1").load().unwrap(),
        Some(state(9, SignStep::Prevote))
    );
}

#[test]
fn newer_takes_the_maximum() {
    let a = state(5, SignStep::Precommit);
    let b = state(6, SignStep::Propose);
    assert_eq!(newer(Some(a), b), b);
    assert_eq!(newer(Some(b), a), b);
    assert_eq!(newer(None, a), a);
    assert_eq!(newer(Some(a), a), a);
}
