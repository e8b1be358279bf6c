//! The two-slot layout of the signing-state file, as pure functions over
//! bytes (the I/O is in [`super::signing_file`]).
//!
//! The file is [`FILE_BYTES`] long: two slots of [`SLOT_BYTES`], each one
//! line of JSON padded with spaces to the slot's end:
//!
//! ```text
//! {"sequence":41,"document":{ …the interchange document… },"sha3_256":"<hex>"}
//! ```
//!
//! `sha3_256` is SHA3-256 of the line's bytes before `,"sha3_256"`, so it
//! covers the sequence and the document. Slot `sequence mod 2` holds a
//! write; the state is the one of the valid slot with the highest
//! sequence.
//!
//! Why a checksum and not only a JSON parse: a power cut inside a write can
//! leave the slot half new and half what it held two writes ago, and two
//! documents of equal length mix into valid JSON (the new sequence with an
//! old lock, say). Chosen by its sequence, that mix would roll the state
//! back. The checksum rejects it, and the other slot, the previous state,
//! is then the newest: correct, because nothing signed under the torn
//! state was sent (the write had not returned).

use agora_validator::crypto::sha3_256;
use serde::{Deserialize, Serialize};

use super::signing_doc::SigningDoc;

/// Bytes of one slot: a filesystem block, so a torn write of one slot never
/// touches the other's block.
pub const SLOT_BYTES: usize = 4096;
/// Bytes of the file: two slots.
pub const FILE_BYTES: usize = 2 * SLOT_BYTES;
/// How a slot starts; a file that does not is the older one-document form.
const SLOT_START: &[u8] = b"{\"sequence\":";
/// The last field of a slot's line, the checksum of everything before it.
const CHECKSUM_FIELD: &str = ",\"sha3_256\":\"";

/// One slot's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    /// Counts the writes since the file was made; the highest valid wins.
    pub sequence: u64,
    /// The state, in the interchange form.
    pub document: SigningDoc,
    /// SHA3-256 (hex) of the line before this field.
    pub sha3_256: String,
}

/// What a signing-state file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileContent {
    /// The two-slot form: the newest valid slot.
    Slots(Slot),
    /// The one-document form written by earlier versions (replaced by the
    /// two-slot form at the next save).
    Single(SigningDoc),
}

/// The slot line of `document` at `sequence`, padded to [`SLOT_BYTES`];
/// `Err(len)` if the line would not fit.
pub fn encode_slot(sequence: u64, document: &SigningDoc) -> Result<Vec<u8>, usize> {
    // The document is plain strings and numbers: serialising cannot fail.
    let doc = serde_json::to_string(document).unwrap_or_default();
    let body = format!("{{\"sequence\":{sequence},\"document\":{doc}");
    let sum = hex::encode(sha3_256(body.as_bytes()));
    let mut line = format!("{body}{CHECKSUM_FIELD}{sum}\"}}").into_bytes();
    if line.len() >= SLOT_BYTES {
        return Err(line.len());
    }
    line.resize(SLOT_BYTES - 1, b' ');
    line.push(b'\n');
    debug_assert_eq!(line.len(), SLOT_BYTES);
    Ok(line)
}

/// The slot in `raw` if its checksum holds and its document is valid.
pub fn parse_slot(raw: &[u8]) -> Result<Slot, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "not UTF-8".to_string())?;
    let line = text.trim_end_matches([' ', '\n']);
    let at = line
        .rfind(CHECKSUM_FIELD)
        .ok_or_else(|| "no checksum".to_string())?;
    let slot: Slot = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if slot.sha3_256 != hex::encode(sha3_256(&line.as_bytes()[..at])) {
        return Err("checksum mismatch (a torn write)".into());
    }
    slot.document.check_form()?;
    Ok(slot)
}

/// The content of a whole file's bytes, or why none of it is usable.
pub fn parse_file(bytes: &[u8]) -> Result<FileContent, String> {
    if !bytes.starts_with(SLOT_START) {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
        let doc: SigningDoc = serde_json::from_str(text).map_err(|e| e.to_string())?;
        doc.check_form()?;
        return Ok(FileContent::Single(doc));
    }
    if bytes.len() != FILE_BYTES {
        return Err(format!(
            "{} bytes, a two-slot file has {FILE_BYTES}",
            bytes.len()
        ));
    }
    let (a, b) = bytes.split_at(SLOT_BYTES);
    // A slot holds only the sequences of its parity (see the writer).
    let in_place = |slot: Slot, parity: u64| {
        if slot.sequence % 2 == parity {
            Ok(slot)
        } else {
            Err(format!("sequence {} in slot {parity}", slot.sequence))
        }
    };
    let a = parse_slot(a).and_then(|s| in_place(s, 0));
    let b = parse_slot(b).and_then(|s| in_place(s, 1));
    match (a, b) {
        (Ok(a), Ok(b)) => Ok(FileContent::Slots(if a.sequence >= b.sequence {
            a
        } else {
            b
        })),
        (Ok(s), Err(_)) | (Err(_), Ok(s)) => Ok(FileContent::Slots(s)),
        (Err(a), Err(b)) => Err(format!("both slots are unusable: {a}; {b}")),
    }
}
