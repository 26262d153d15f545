//! Checking offered entries before anything is written: every entry must
//! be a normal entry whose data is whole journal records, each intact
//! (CRC) and carrying the next global sequence. Refusing the whole append
//! up front keeps the journal and the index in step: a bad entry never
//! leaves half an append behind.

use super::error::{BadEntryReason, JournalStoreError};
use peregrine_journal::{decode_record, decode_unchecked, RECORD_LEN};
use raft::eraftpb::{Entry, EntryType};

/// Whether records' CRCs are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crc {
    /// Every record's CRC is checked (entries from another node).
    Check,
    /// Records are trusted to be intact (entries this node's own sequencer
    /// encoded); their sequences are still checked.
    Trust,
}

/// Checks `entries` (consecutive indexes from `entries[0].index`) whose
/// records must start at global sequence `first_seq`. Leaves each entry's
/// record count in `counts` (cleared first; reused to avoid allocating).
pub fn check_entries(
    entries: &[Entry],
    first_seq: u64,
    counts: &mut Vec<u32>,
    crc: Crc,
) -> Result<(), JournalStoreError> {
    counts.clear();
    let mut expected_seq = first_seq;
    let mut expected_index = entries.first().map_or(0, |e| e.index);
    for e in entries {
        if e.index != expected_index {
            return Err(JournalStoreError::NonConsecutiveEntries {
                expected: expected_index,
                found: e.index,
            });
        }
        let bad = |reason| JournalStoreError::BadEntry {
            index: e.index,
            reason,
        };
        if e.get_entry_type() != EntryType::EntryNormal {
            return Err(bad(BadEntryReason::UnsupportedType(e.get_entry_type())));
        }
        if !e.context.is_empty() {
            return Err(bad(BadEntryReason::Context(e.context.len())));
        }
        let data: &[u8] = &e.data;
        if data.len() % RECORD_LEN != 0 {
            return Err(bad(BadEntryReason::NotWholeRecords {
                len: data.len(),
                record_len: RECORD_LEN,
            }));
        }
        let records = data.len() / RECORD_LEN;
        let Ok(count) = u32::try_from(records) else {
            return Err(bad(BadEntryReason::TooManyRecords {
                records,
                max: u32::MAX,
            }));
        };
        for (i, slot) in data.chunks_exact(RECORD_LEN).enumerate() {
            let r = match crc {
                Crc::Check => decode_record(slot)
                    .map_err(|problem| bad(BadEntryReason::BadRecord { record: i, problem }))?,
                Crc::Trust => decode_unchecked(slot),
            };
            if r.global_seq == u64::MAX {
                return Err(bad(BadEntryReason::SequenceExhausted));
            }
            if r.global_seq != expected_seq {
                return Err(bad(BadEntryReason::SequenceGap {
                    record: i,
                    expected: expected_seq,
                    found: r.global_seq,
                }));
            }
            // Cannot overflow: global_seq < u64::MAX.
            expected_seq += 1;
        }
        counts.push(count);
        expected_index = expected_index.wrapping_add(1);
    }
    Ok(())
}
