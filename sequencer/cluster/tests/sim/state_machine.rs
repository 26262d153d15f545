//! The simulated application: a tiny deterministic sequencer. Each log
//! entry is a batch of client records; applying one gives every record not
//! seen before the next global sequence number (gap-free) and folds it into
//! a running hash, so two nodes that applied the same prefix have the same
//! hash.

use std::collections::HashSet;

/// A client record: who sent it, its client sequence, and its payload
/// (derived from the two, so a resend carries identical bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId {
    pub session: u32,
    pub client_seq: u64,
}

impl RecordId {
    pub fn payload(self) -> Vec<u8> {
        let len = (mix(u64::from(self.session), self.client_seq) % 17) as usize;
        (0..len)
            .map(|i| (self.client_seq as u8).wrapping_add(i as u8) ^ self.session as u8)
            .collect()
    }
}

/// Encodes a batch: count (u16), then per record session (u32), client
/// sequence (u64), payload length (u16), payload.
pub fn encode_batch(records: &[RecordId]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(records.len() as u16).to_le_bytes());
    for r in records {
        let payload = r.payload();
        out.extend_from_slice(&r.session.to_le_bytes());
        out.extend_from_slice(&r.client_seq.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        out.extend_from_slice(&payload);
    }
    out
}

/// Decodes a batch, checking each payload is the one its id implies.
pub fn decode_batch(mut bytes: &[u8]) -> Result<Vec<RecordId>, String> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if b.len() < n {
            return Err("batch truncated".into());
        }
        let (head, tail) = b.split_at(n);
        *b = tail;
        Ok(head)
    }
    let count = u16::from_le_bytes(take(&mut bytes, 2)?.try_into().unwrap());
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let session = u32::from_le_bytes(take(&mut bytes, 4)?.try_into().unwrap());
        let client_seq = u64::from_le_bytes(take(&mut bytes, 8)?.try_into().unwrap());
        let len = u16::from_le_bytes(take(&mut bytes, 2)?.try_into().unwrap());
        let payload = take(&mut bytes, len as usize)?;
        let id = RecordId { session, client_seq };
        if payload != id.payload().as_slice() {
            return Err(format!("payload of {id:?} corrupted"));
        }
        out.push(id);
    }
    if !bytes.is_empty() {
        return Err("bytes after the batch".into());
    }
    Ok(out)
}

pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One node's application state, rebuilt from the log after a restart.
#[derive(Debug, Default)]
pub struct StateMachine {
    /// Last Raft index applied.
    pub applied_index: u64,
    /// Records in global-sequence order: `assigned[g - 1]` got sequence `g`.
    pub assigned: Vec<RecordId>,
    seen: HashSet<RecordId>,
    /// Hash of everything applied so far.
    pub hash: u64,
}

impl StateMachine {
    /// Applies the entry at `index`; returns the records that got a global
    /// sequence (first sightings), with their sequences.
    pub fn apply(&mut self, index: u64, data: &[u8]) -> Result<Vec<(u64, RecordId)>, String> {
        if index != self.applied_index + 1 {
            return Err(format!("applied index {index} after {}: gap", self.applied_index));
        }
        self.applied_index = index;
        let mut fresh = Vec::new();
        if !data.is_empty() {
            for id in decode_batch(data)? {
                if self.seen.insert(id) {
                    self.assigned.push(id);
                    let global = self.assigned.len() as u64;
                    self.hash = mix(self.hash, mix(global, mix(u64::from(id.session), id.client_seq)));
                    fresh.push((global, id));
                }
            }
        }
        self.hash = mix(self.hash, index);
        Ok(fresh)
    }
}
