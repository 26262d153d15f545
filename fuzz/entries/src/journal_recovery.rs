// Over 600 lines: the damage script, the independent layout encoder, the recovery-rule model and the observer are one executable specification and are read together.
//! Journal recovery (`Journal::open`, `Journal::open_read_only`) on a real
//! journal damaged by a script.
//!
//! The input is a configuration (2 bytes: records per segment, slack bytes
//! after the last slot, records written, salt, flush) followed by a script
//! of damage operations ([`Op`]). Each run:
//!
//! 1. writes records `1..=n` with the real writer into a fresh directory
//!    (under /dev/shm when there is one) and checks every file byte for byte
//!    against the layout tables of the journal module doc, encoded here
//!    independently (with a CRC32C of its own);
//! 2. damages the files: bit flips, overwrites, zeroed ranges, truncation,
//!    appended bytes, files deleted, renamed or created, record slots torn,
//!    copied or re-signed (valid CRC, any sequence or kind), headers
//!    re-signed with one field changed;
//! 3. predicts the outcome from the recovery rules of the module doc (a model
//!    over the directory's bytes, [`expect`]) and compares every open with
//!    it: the same error (variant, file, byte offset, sequences) or the same
//!    segments, records, tail report and removed files. A read-only open
//!    changes nothing; a repair changes exactly the predicted bytes (tail
//!    zeroed, files removed); a failed repair changes nothing at all. The
//!    directory is opened read-only and for repair, and every `.journal`
//!    file read-only alone;
//! 4. after a successful repair: a second open finds no tail and the same
//!    records, a third changes nothing, and the writer resumes at
//!    `next_seq` across a segment roll (or up to sequence u64::MAX, which
//!    it must refuse), after which a reopen reads the old records followed
//!    by the new ones.
//!
//! Scripts without the operations that can write chosen bytes (overwrite,
//! append data, forged slots or segments) cannot make a record whose CRC
//! matches, so then every recovered record is one the writer wrote: same
//! sequence, same bytes.
//!
//! Wherever the implementation departs from the module doc the run fails.

use crate::Bytes;
use peregrine_journal::{
    parse_segment_name, FlushPolicy, Journal, JournalError, Prealloc, Precreate, RecordFilter, Recovered,
    SequencedRecord, WriterConfig, FORMAT_VERSION, HEADER_LEN, RECORD_LEN,
};
use peregrine_sequencer::SessionRef;
use peregrine_wire::message::MESSAGE_LEN;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Segment header bytes (module doc table).
const HDR: usize = 64;
/// Record bytes (module doc table).
const REC: usize = 144;
/// Record kind of a sequenced message.
const KIND_MESSAGE: u16 = 1;
const _: () = assert!(HEADER_LEN == HDR && RECORD_LEN == REC && FORMAT_VERSION == 1 && MESSAGE_LEN == 100);

/// Most damage operations decoded from one input.
const MAX_OPS: usize = 16;
/// Bytes after the last slot of a segment, by [`Config::slack`].
const SLACK: [u64; 8] = [0, 0, 0, 0, 1, 8, 80, 143];
/// The sequence that name and sequence codes `0x80..` count down from
/// (see [`coded_seq`]): the top of the range, where a record with sequence
/// u64::MAX leaves no next sequence.
const TOP_SEQ: u64 = u64::MAX;

/// A directory's regular files: name → bytes.
type Dir = BTreeMap<String, Vec<u8>>;

/// The journal written before the damage, from the first 2 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    /// Record slots per segment (1–4).
    pub per_seg: u8,
    /// Index into [`SLACK`] (0–7).
    pub slack: u8,
    /// Create the next (empty) segment ahead, as the writer's helper does.
    pub prepare_next: bool,
    /// After the appends: 0 nothing, 1 `flush(Msync)`, 2
    /// `flush(Fdatasync)`, 3 `close()`.
    pub flush: u8,
    /// Records written (0–16).
    pub records: u8,
    /// Varies the record contents (0–7).
    pub salt: u8,
}

impl Config {
    pub(crate) fn decode(r: &mut Bytes<'_>) -> Config {
        let (b0, b1) = (r.u8(), r.u8());
        Config {
            per_seg: 1 + b0 % 4,
            slack: (b0 >> 2) & 7,
            prepare_next: b0 & 0x20 != 0,
            flush: b0 >> 6,
            records: (b1 & 0x1f) % 17,
            salt: b1 >> 5,
        }
    }

    /// The 2 bytes that decode to this configuration (fields in range).
    pub(crate) fn encode(&self) -> [u8; 2] {
        [
            (self.per_seg - 1) | self.slack << 2 | u8::from(self.prepare_next) << 5 | self.flush << 6,
            self.records | self.salt << 5,
        ]
    }

    fn per(&self) -> u64 {
        u64::from(self.per_seg)
    }

    fn segment_size(&self) -> u64 {
        (HDR + REC * usize::from(self.per_seg)) as u64 + SLACK[usize::from(self.slack)]
    }

    fn writer(&self) -> WriterConfig {
        WriterConfig {
            segment_size: self.segment_size(),
            prealloc: Prealloc::Fallocate,
            populate: false,
            populate_writable: false,
            precreate: Precreate::Manual,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            per_seg: 4,
            slack: 0,
            prepare_next: false,
            flush: 0,
            records: 6,
            salt: 0,
        }
    }
}

/// One damage operation. `file` picks among the directory's files in name
/// order (modulo their number); offsets are taken modulo the file length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Flip bit `bit` (0–7) of byte `at`.
    Flip { file: u8, at: u16, bit: u8 },
    /// Overwrite from byte `at` (mod length + 1) with `bytes` (< 64; cut at
    /// the end of the file).
    Write { file: u8, at: u16, bytes: Vec<u8> },
    /// Zero `len` bytes from `at` (a page that never reached the disk).
    Zero { file: u8, at: u16, len: u16 },
    /// Cut the file to `len` (mod length) bytes.
    Truncate { file: u8, len: u16 },
    /// Append `bytes` (< 128); with `zeros` they are all zero.
    Append { file: u8, zeros: bool, bytes: Vec<u8> },
    /// Remove the file.
    Delete { file: u8 },
    /// Rename the file (replacing any file of that name) to
    /// [`rename_target`]`(to)`.
    Rename { file: u8, to: u8 },
    /// Create (or replace) a file, see [`Op::apply`]; named for sequence
    /// [`coded_seq`]`(seq)`.
    Create { what: u8, seq: u8 },
    /// Damage record slot `slot` (mod the file's slots, < 32) of the file
    /// in way `how` (0–7) with parameter `p`, see [`Op::apply`].
    Slot { file: u8, slot: u8, how: u8, p: u8 },
    /// Change header field `field` from `value`, then re-sign the header
    /// (its CRC matches again), see [`Op::apply`].
    Header { file: u8, field: u8, value: u8 },
}

impl Op {
    fn decode(r: &mut Bytes<'_>) -> Op {
        let op = r.u8();
        let file = op >> 4;
        match op & 15 {
            0 => Op::Flip {
                file,
                at: r.u16(),
                bit: r.u8() % 8,
            },
            1 => {
                let at = r.u16();
                let n = usize::from(r.u8() % 64);
                Op::Write {
                    file,
                    at,
                    bytes: r.take(n).to_vec(),
                }
            }
            2 => Op::Zero {
                file,
                at: r.u16(),
                len: r.u16(),
            },
            3 => Op::Truncate { file, len: r.u16() },
            4 => {
                let b = r.u8();
                let n = usize::from(b & 0x7f);
                let zeros = b & 0x80 != 0;
                let bytes = if zeros { vec![0; n] } else { r.take(n).to_vec() };
                Op::Append { file, zeros, bytes }
            }
            5 => Op::Delete { file },
            6 => Op::Rename { file, to: r.u8() },
            7 => Op::Create {
                what: file % 8,
                seq: r.u8(),
            },
            9 => Op::Header {
                file,
                field: r.u8() % 8,
                value: r.u8(),
            },
            // 8 and 10–15: slot damage, the most interesting kind.
            _ => {
                let b = r.u8();
                Op::Slot {
                    file,
                    slot: b >> 3,
                    how: b & 7,
                    p: r.u8(),
                }
            }
        }
    }

    /// Appends the bytes that decode to this op (fields must be in range).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Op::Flip { file, at, bit } => {
                out.push(file << 4);
                out.extend_from_slice(&at.to_le_bytes());
                out.push(*bit);
            }
            Op::Write { file, at, bytes } => {
                out.push(1 | file << 4);
                out.extend_from_slice(&at.to_le_bytes());
                out.push(bytes.len() as u8);
                out.extend_from_slice(bytes);
            }
            Op::Zero { file, at, len } => {
                out.push(2 | file << 4);
                out.extend_from_slice(&at.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
            }
            Op::Truncate { file, len } => {
                out.push(3 | file << 4);
                out.extend_from_slice(&len.to_le_bytes());
            }
            Op::Append { file, zeros, bytes } => {
                out.push(4 | file << 4);
                if *zeros {
                    out.push(bytes.len() as u8 | 0x80);
                } else {
                    out.push(bytes.len() as u8);
                    out.extend_from_slice(bytes);
                }
            }
            Op::Delete { file } => out.push(5 | file << 4),
            Op::Rename { file, to } => out.extend_from_slice(&[6 | file << 4, *to]),
            Op::Create { what, seq } => out.extend_from_slice(&[7 | what << 4, *seq]),
            Op::Slot { file, slot, how, p } => out.extend_from_slice(&[8 | file << 4, how | slot << 3, *p]),
            Op::Header { file, field, value } => out.extend_from_slice(&[9 | file << 4, *field, *value]),
        }
    }

    /// Applies the damage to `files`. True when it may have written a
    /// CRC-valid record of chosen content.
    fn apply(&self, files: &mut Dir, cfg: &Config) -> bool {
        match self {
            Op::Flip { file, at, bit } => {
                if let Some(b) = pick_mut(files, *file).filter(|b| !b.is_empty()) {
                    let i = usize::from(*at) % b.len();
                    b[i] ^= 1 << bit;
                }
                false
            }
            Op::Write { file, at, bytes } => {
                if let Some(b) = pick_mut(files, *file) {
                    let i = usize::from(*at) % (b.len() + 1);
                    let n = bytes.len().min(b.len() - i);
                    b[i..i + n].copy_from_slice(&bytes[..n]);
                }
                !bytes.is_empty()
            }
            Op::Zero { file, at, len } => {
                if let Some(b) = pick_mut(files, *file).filter(|b| !b.is_empty()) {
                    let i = usize::from(*at) % b.len();
                    let end = (i + usize::from(*len)).min(b.len());
                    b[i..end].fill(0);
                }
                false
            }
            Op::Truncate { file, len } => {
                if let Some(b) = pick_mut(files, *file).filter(|b| !b.is_empty()) {
                    let n = usize::from(*len) % b.len();
                    b.truncate(n);
                }
                false
            }
            Op::Append { file, bytes, .. } => {
                if let Some(b) = pick_mut(files, *file) {
                    b.extend_from_slice(bytes);
                }
                bytes.iter().any(|&x| x != 0)
            }
            Op::Delete { file } => {
                if let Some(name) = pick(files, *file) {
                    files.remove(&name);
                }
                false
            }
            Op::Rename { file, to } => {
                if let Some(name) = pick(files, *file) {
                    let new = rename_target(&name, *to);
                    if new != name {
                        let b = files.remove(&name).expect("picked");
                        files.insert(new, b);
                    }
                }
                false
            }
            Op::Create { what, seq } => {
                let s = coded_seq(*seq);
                let size = cfg.segment_size();
                let (name, bytes, forged) = match what % 8 {
                    // A segment whose creation did not finish.
                    0 => (format!("{}.tmp", seg_name(s)), b"half-made".to_vec(), false),
                    1 => (seg_name(s), Vec::new(), false),
                    // Preallocated, header never written.
                    2 => (seg_name(s), vec![0; size as usize], false),
                    // Created ahead, never written.
                    3 => (seg_name(s), segment_image(s, size, &[]), false),
                    4 => ("7.journal".to_string(), b"x".to_vec(), false),
                    5 => ("notes.txt".to_string(), b"not a segment".to_vec(), false),
                    // A segment written by someone else: one valid record.
                    6 => (seg_name(s), segment_image(s, size, &[rec(s, cfg.salt)]), true),
                    // A copy of the first file under another name.
                    _ => match files.values().next() {
                        Some(b) => (seg_name(s), b.clone(), false),
                        None => return false,
                    },
                };
                files.insert(name, bytes);
                forged
            }
            Op::Slot { file, slot, how, p } => {
                let Some(name) = pick(files, *file) else {
                    return false;
                };
                let len = files[&name].len();
                if len < HDR + REC {
                    return false;
                }
                let cap = (len - HDR) / REC;
                let at = HDR + usize::from(*slot) % cap * REC;
                let cur: [u8; REC] = files[&name][at..at + REC].try_into().expect("slot");
                // The sequence this slot holds if the header is right.
                let seq = le64(&files[&name], 16).wrapping_add(((at - HDR) / REC) as u64);
                let pu = usize::from(*p);
                let mut forged = false;
                let new: [u8; REC] = match how % 8 {
                    // Torn: only the first bytes reached the file.
                    0 => {
                        let mut s = cur;
                        s[pu % REC..].fill(0);
                        s
                    }
                    // Garbage from byte p on.
                    1 => {
                        let mut s = cur;
                        for (i, x) in s.iter_mut().enumerate().skip(pu % REC) {
                            *x = (i as u8).wrapping_mul(31).wrapping_add(*p) | 1;
                        }
                        s
                    }
                    2 => [0; REC],
                    // A copy of another slot (any file): a valid record in
                    // the wrong place.
                    3 => {
                        let src = pick(files, file.wrapping_add(p >> 5)).expect("a file exists");
                        let b = &files[&src];
                        if b.len() < HDR + REC {
                            return false;
                        }
                        let o = HDR + usize::from(p & 31) % ((b.len() - HDR) / REC) * REC;
                        b[o..o + REC].try_into().expect("slot")
                    }
                    // A valid record for this slot's sequence + delta.
                    4 => {
                        const DELTA: [i64; 8] = [0, 1, -1, 2, -2, 3, 7, -7];
                        let salt = if p & 0x80 != 0 { cfg.salt ^ 1 } else { cfg.salt };
                        forged = true;
                        record_bytes(&rec(seq.wrapping_add_signed(DELTA[pu & 7]), salt), KIND_MESSAGE)
                    }
                    // CRC-valid, kind p.
                    5 => {
                        forged = true;
                        record_bytes(&rec(seq, cfg.salt), u16::from(*p))
                    }
                    // A record for this slot written up to byte p (the CRC
                    // goes last, so it is missing or incomplete).
                    6 => {
                        forged = true;
                        let full = record_bytes(&rec(seq, cfg.salt), KIND_MESSAGE);
                        let mut s = [0; REC];
                        s[..pu % REC].copy_from_slice(&full[..pu % REC]);
                        s
                    }
                    _ => {
                        let mut s = cur;
                        s[pu * 37 % REC] ^= 1 << (p % 8);
                        s
                    }
                };
                files.get_mut(&name).expect("picked")[at..at + REC].copy_from_slice(&new);
                forged
            }
            Op::Header { file, field, value } => {
                let Some(name) = pick(files, *file) else {
                    return false;
                };
                let name_seq = parse_name(&name);
                let b = files.get_mut(&name).expect("picked");
                if b.len() < HDR {
                    return false;
                }
                let v = *value;
                let delta = i64::from(v as i8);
                match field % 8 {
                    // First sequence: the name's (+ delta).
                    0 => match name_seq {
                        Some(s) => put(b, 16, &s.wrapping_add_signed(delta).to_le_bytes()),
                        None => return false,
                    },
                    1 => put(b, 16, &u64::from(v).to_le_bytes()),
                    // Segment size: the file's (+ delta).
                    2 => {
                        let size = (b.len() as u64).wrapping_add_signed(delta);
                        put(b, 24, &size.to_le_bytes());
                    }
                    3 => put(b, 8, &u16::from(v).to_le_bytes()),
                    4 => put(b, 10, &u16::from(v).to_le_bytes()),
                    5 => put(b, 12, &u32::from(v).to_le_bytes()),
                    6 => b[32 + usize::from(v) % 28] = v | 1,
                    _ => b[usize::from(v) % 8] ^= 0x20,
                }
                let crc = crc32c(&b[..60]);
                put(b, 60, &crc.to_le_bytes());
                false
            }
        }
    }
}

/// A whole input: configuration and script.
pub(crate) fn encode(cfg: &Config, ops: &[Op]) -> Vec<u8> {
    let mut out = cfg.encode().to_vec();
    for op in ops {
        op.encode(&mut out);
    }
    out
}

fn pick(files: &Dir, i: u8) -> Option<String> {
    let n = files.len();
    (n > 0).then(|| files.keys().nth(usize::from(i) % n).cloned().expect("in range"))
}

fn pick_mut(files: &mut Dir, i: u8) -> Option<&mut Vec<u8>> {
    let n = files.len();
    (n > 0).then(|| files.values_mut().nth(usize::from(i) % n).expect("in range"))
}

/// Sequence codes: below 0x80 the value itself, from 0x80 down from
/// [`TOP_SEQ`].
fn coded_seq(c: u8) -> u64 {
    if c < 0x80 {
        u64::from(c)
    } else {
        TOP_SEQ - u64::from(c - 0x80)
    }
}

/// New name for a renamed file `cur`: below 0xc0 a segment name
/// ([`coded_seq`]), else a name recovery must reject or skip.
fn rename_target(cur: &str, to: u8) -> String {
    if to < 0xc0 {
        return seg_name(coded_seq(to));
    }
    match (to - 0xc0) % 5 {
        0 => "7.journal".to_string(),
        1 => "0000000000000000000x.journal".to_string(),
        2 => "99999999999999999999.journal".to_string(),
        3 => format!("{cur}.tmp"),
        _ => format!("{cur}.bak"),
    }
}

// ---- The layout of the module doc, encoded independently. ----

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), one table lookup
/// per byte.
fn crc32c(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !bytes.iter().fold(!0u32, |c, &b| {
        TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

fn seg_name(first_seq: u64) -> String {
    format!("{first_seq:020}.journal")
}

/// The first sequence a segment file name encodes: 20 digits, `.journal`,
/// within u64.
fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".journal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn header_bytes(first_seq: u64, size: u64) -> [u8; HDR] {
    let mut b = [0u8; HDR];
    put(&mut b, 0, b"PRGNJRNL");
    put(&mut b, 8, &1u16.to_le_bytes());
    put(&mut b, 10, &(HDR as u16).to_le_bytes());
    put(&mut b, 12, &(REC as u32).to_le_bytes());
    put(&mut b, 16, &first_seq.to_le_bytes());
    put(&mut b, 24, &size.to_le_bytes());
    let crc = crc32c(&b[..60]);
    put(&mut b, 60, &crc.to_le_bytes());
    b
}

/// `(first_seq, size)` of a header that passes every documented check
/// except the ones against the file (name, size).
fn header_fields(b: &[u8]) -> Option<(u64, u64)> {
    let h = b.get(..HDR)?;
    let ok = h[..8] == *b"PRGNJRNL"
        && le16(h, 8) == 1
        && le16(h, 10) == HDR as u16
        && le32(h, 12) == REC as u32
        && h[32..60].iter().all(|&x| x == 0)
        && le32(h, 60) == crc32c(&h[..60]);
    let (first, size) = (le64(h, 16), le64(h, 24));
    // Sequences start at 1; a segment holds at least one record.
    (ok && first >= 1 && size >= (HDR + REC) as u64).then_some((first, size))
}

fn record_bytes(r: &SequencedRecord, kind: u16) -> [u8; REC] {
    let mut b = [0u8; REC];
    put(&mut b, 0, &kind.to_le_bytes());
    put(&mut b, 2, &r.origin.gateway.to_le_bytes());
    put(&mut b, 4, &r.origin.index.to_le_bytes());
    put(&mut b, 8, &r.global_seq.to_le_bytes());
    put(&mut b, 16, &r.client_seq.to_le_bytes());
    put(&mut b, 24, &r.gateway_rx_ns.to_le_bytes());
    put(&mut b, 32, &r.sequencer_ns.to_le_bytes());
    put(&mut b, 40, &r.msg);
    let crc = crc32c(&b[..140]);
    put(&mut b, 140, &crc.to_le_bytes());
    b
}

enum Slot {
    /// All zeros.
    Empty,
    /// Non-zero, CRC does not match.
    Torn,
    /// CRC matches: kind and record.
    Valid(u16, SequencedRecord),
}

fn slot(b: &[u8]) -> Slot {
    if le32(b, 140) != crc32c(&b[..140]) {
        return if b.iter().all(|&x| x == 0) {
            Slot::Empty
        } else {
            Slot::Torn
        };
    }
    Slot::Valid(
        le16(b, 0),
        SequencedRecord {
            global_seq: le64(b, 8),
            origin: SessionRef::new(le16(b, 2), le32(b, 4)),
            client_seq: le64(b, 16),
            gateway_rx_ns: le64(b, 24),
            sequencer_ns: le64(b, 32),
            msg: b[40..140].try_into().expect("100 bytes"),
        },
    )
}

/// A segment file: header, `records` in its first slots, zeros after.
fn segment_image(first_seq: u64, size: u64, records: &[SequencedRecord]) -> Vec<u8> {
    let mut b = vec![0u8; size as usize];
    put(&mut b, 0, &header_bytes(first_seq, size));
    for (k, r) in records.iter().enumerate() {
        put(&mut b, HDR + k * REC, &record_bytes(r, KIND_MESSAGE));
    }
    b
}

/// No record data: too short for a body, or a body of zeros.
fn dataless(b: &[u8]) -> bool {
    b.len() <= HDR || b[HDR..].iter().all(|&x| x == 0)
}

/// The record the harness writes as sequence `seq`: every field depends on
/// `seq` and `salt`.
fn rec(seq: u64, salt: u8) -> SequencedRecord {
    let mut msg = [0u8; MESSAGE_LEN];
    for (i, m) in msg.iter_mut().enumerate() {
        *m = (seq
            .wrapping_mul(0x9E37_79B9)
            .wrapping_add(i as u64 * 29 + u64::from(salt) * 101)
            >> 3) as u8;
    }
    SequencedRecord {
        global_seq: seq,
        origin: SessionRef::new((seq % 3) as u16, (seq % 4) as u32 + u32::from(salt)),
        client_seq: seq.wrapping_mul(7).wrapping_add(u64::from(salt)),
        gateway_rx_ns: seq.wrapping_mul(1_000),
        sequencer_ns: seq.wrapping_mul(1_000).wrapping_add(u64::from(salt) + 1),
        msg,
    }
}

/// What the writer must leave for `cfg`.
fn image(cfg: &Config) -> Dir {
    let (n, per, size) = (u64::from(cfg.records), cfg.per(), cfg.segment_size());
    let segs = n.div_ceil(per).max(1);
    let mut d = Dir::new();
    for i in 0..segs {
        let first = 1 + i * per;
        let recs: Vec<SequencedRecord> = (first..(first + per).min(n + 1))
            .map(|s| rec(s, cfg.salt))
            .collect();
        d.insert(seg_name(first), segment_image(first, size, &recs));
    }
    if cfg.prepare_next {
        let first = 1 + segs * per;
        d.insert(seg_name(first), segment_image(first, size, &[]));
    }
    d
}

// ---- The recovery rules of the module doc, as a model. ----

/// A record, shown as its sequence and a checksum of its encoding.
#[derive(Clone, PartialEq, Eq)]
struct Rec(SequencedRecord);

impl fmt::Debug for Rec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let crc = crc32c(&record_bytes(&self.0, KIND_MESSAGE));
        write!(f, "#{}/{crc:08x}", self.0.global_seq)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Tail {
    file: String,
    offset: u64,
    first_dropped_seq: u64,
    dropped_records: u64,
    dropped_bytes: u64,
    truncated: bool,
}

/// A successful open.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Good {
    first_seq: u64,
    next_seq: u64,
    /// (file, first sequence, records, capacity, size).
    segments: Vec<(String, u64, u64, u64, u64)>,
    tail: Option<Tail>,
    /// Files `Journal::open` removes.
    removed: BTreeSet<String>,
    records: Vec<Rec>,
}

/// What an open gives, files named relative to the journal directory.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Ok(Good),
    /// `BadSegmentName` naming one of these.
    BadName(BTreeSet<String>),
    BadHeader(String),
    Corrupt {
        file: String,
        offset: u64,
        expected_seq: u64,
    },
    Gap {
        file: String,
        offset: u64,
        expected: u64,
        found: u64,
    },
    /// Any other error (never predicted).
    Other(String),
}

fn agree(got: &Outcome, want: &Outcome) -> bool {
    match (got, want) {
        (Outcome::BadName(g), Outcome::BadName(w)) => g.len() == 1 && g.is_subset(w),
        _ => got == want,
    }
}

fn slot_offset(k: u64) -> u64 {
    HDR as u64 + k * REC as u64
}

/// What opening a directory holding `files` must give by the recovery rules
/// of the module doc. `only`: a read-only open of that one file; `repair`:
/// `Journal::open` (else `open_read_only`).
fn expect(files: &Dir, only: Option<&str>, repair: bool) -> Outcome {
    let mut removed = BTreeSet::new();
    let mut bad_names = BTreeSet::new();
    let mut names: Vec<(u64, &str)> = Vec::new();
    let candidates: Vec<&str> = match only {
        Some(n) => vec![n],
        None => files.keys().map(String::as_str).collect(),
    };
    for name in candidates {
        assert_eq!(
            parse_name(name),
            parse_segment_name(name),
            "segment name {name:?}"
        );
        if only.is_none() && name.ends_with(".journal.tmp") {
            // Unfinished creation: removed by a repair, else ignored.
            removed.insert(name.to_string());
        } else if only.is_some() || name.ends_with(".journal") {
            match parse_name(name) {
                Some(s) => names.push((s, name)),
                None => {
                    bad_names.insert(name.to_string());
                }
            }
        }
    }
    if !bad_names.is_empty() {
        return Outcome::BadName(bad_names);
    }
    names.sort_unstable();

    // Headers, in name order.
    struct Seg<'a> {
        name: &'a str,
        bytes: &'a [u8],
        first: u64,
        size: u64,
    }
    let mut segs: Vec<Seg<'_>> = Vec::new();
    let n_files = names.len();
    for (i, &(seq, name)) in names.iter().enumerate() {
        let bytes = &files[name][..];
        let len = bytes.len() as u64;
        let good = header_fields(bytes).is_some_and(|(first, size)| first == seq && size == len);
        if !good {
            // Forgiven in a last file without data, whatever check failed.
            if i + 1 < n_files || !dataless(bytes) {
                return Outcome::BadHeader(name.to_string());
            }
            removed.insert(name.to_string());
            continue;
        }
        segs.push(Seg {
            name,
            bytes,
            first: seq,
            size: len,
        });
    }
    // Created ahead and never written (keep one).
    while segs.len() > 1 && dataless(segs[segs.len() - 1].bytes) {
        removed.insert(segs.pop().expect("non-empty").name.to_string());
    }

    // Records.
    let first_seq = segs.first().map_or(1, |s| s.first);
    let mut expected = first_seq;
    let mut records = Vec::new();
    let mut segments = Vec::new();
    let mut tail = None;
    let n = segs.len();
    for (i, s) in segs.iter().enumerate() {
        let file = s.name.to_string();
        if s.first != expected {
            return Outcome::Gap {
                file,
                offset: 16,
                expected,
                found: s.first,
            };
        }
        let cap = (s.size - HDR as u64) / REC as u64;
        let at = |k: u64| &s.bytes[slot_offset(k) as usize..slot_offset(k) as usize + REC];
        let mut k = 0;
        let mut stopped = false;
        while k < cap {
            match slot(at(k)) {
                Slot::Valid(kind, _) if kind != KIND_MESSAGE => {
                    return Outcome::Corrupt {
                        file,
                        offset: slot_offset(k),
                        expected_seq: expected,
                    }
                }
                Slot::Valid(_, r) if r.global_seq != expected => {
                    return Outcome::Gap {
                        file,
                        offset: slot_offset(k),
                        expected,
                        found: r.global_seq,
                    }
                }
                Slot::Valid(_, r) => {
                    // Sequence u64::MAX is never written: no next sequence.
                    let Some(next) = expected.checked_add(1) else {
                        return Outcome::Corrupt {
                            file,
                            offset: slot_offset(k),
                            expected_seq: expected,
                        };
                    };
                    records.push(Rec(r));
                    expected = next;
                    k += 1;
                }
                Slot::Empty | Slot::Torn => {
                    stopped = true;
                    break;
                }
            }
        }
        segments.push((file.clone(), s.first, k, cap, s.size));
        if !stopped {
            continue;
        }
        let corrupt = Outcome::Corrupt {
            file: file.clone(),
            offset: slot_offset(k),
            expected_seq: expected,
        };
        if i + 1 < n {
            // Every segment but the last must be full.
            return corrupt;
        }
        // The tail of the last segment: no slot with a matching CRC (of any
        // kind or sequence) may follow.
        for j in k + 1..cap {
            if let Slot::Valid(..) = slot(at(j)) {
                return corrupt;
            }
        }
        let rest = &s.bytes[slot_offset(k) as usize..];
        if let Some(last_nz) = rest.iter().rposition(|&b| b != 0) {
            tail = Some(Tail {
                file,
                offset: slot_offset(k),
                first_dropped_seq: expected,
                dropped_records: (k..cap).filter(|&j| at(j).iter().any(|&b| b != 0)).count() as u64,
                dropped_bytes: last_nz as u64 + 1,
                truncated: repair,
            });
        }
    }
    Outcome::Ok(Good {
        first_seq,
        next_seq: expected,
        segments,
        tail,
        removed: if repair { removed } else { BTreeSet::new() },
        records,
    })
}

/// The directory after a successful repair described by `g`.
fn repaired(pre: &Dir, g: &Good) -> Dir {
    let mut d = pre.clone();
    for n in &g.removed {
        d.remove(n);
    }
    if let Some(t) = &g.tail {
        let b = d.get_mut(&t.file).expect("tail file");
        b[t.offset as usize..(t.offset + t.dropped_bytes) as usize].fill(0);
    }
    d
}

// ---- Observing the implementation. ----

/// `p` as a name in `dir` (or a marker that matches no prediction).
fn name_in(dir: &Path, p: &Path) -> String {
    match (p.parent(), p.file_name()) {
        (Some(d), Some(n)) if d == dir => n.to_string_lossy().into_owned(),
        _ => format!("<not in the journal directory: {}>", p.display()),
    }
}

/// What an open gave, after the checks that need no model.
fn observe(res: &Result<Recovered, JournalError>, dir: &Path, repair: bool) -> Outcome {
    let j = match res {
        Ok(j) => j,
        Err(e) => {
            let text = e.to_string();
            if let Some(p) = e.path() {
                assert!(
                    text.contains(&p.display().to_string()),
                    "error text without its file: {text}"
                );
            }
            if let Some(off) = e.offset() {
                assert!(
                    text.contains(&format!("byte offset {off}")),
                    "error text without its offset: {text}"
                );
            }
            return match e {
                JournalError::BadSegmentName { path } => Outcome::BadName([name_in(dir, path)].into()),
                JournalError::BadHeader { path, .. } => {
                    assert_eq!(e.offset(), Some(0));
                    Outcome::BadHeader(name_in(dir, path))
                }
                JournalError::CorruptRecord {
                    path,
                    offset,
                    expected_seq,
                    ..
                } => Outcome::Corrupt {
                    file: name_in(dir, path),
                    offset: *offset,
                    expected_seq: *expected_seq,
                },
                JournalError::SequenceGap {
                    path,
                    offset,
                    expected,
                    found,
                } => Outcome::Gap {
                    file: name_in(dir, path),
                    offset: *offset,
                    expected: *expected,
                    found: *found,
                },
                other => Outcome::Other(format!("{other:?}")),
            };
        }
    };
    assert_eq!(j.dir(), dir);
    let records: Vec<SequencedRecord> = j.records().collect();
    let (first, next) = (j.first_seq(), j.next_seq());
    // Gap-free from first_seq; next_seq one past the last.
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.global_seq, first + i as u64, "records not consecutive");
    }
    assert_eq!(
        next,
        first + records.len() as u64,
        "next_seq is not one past the last record"
    );
    assert_eq!(j.len(), records.len() as u64);
    assert_eq!(j.is_empty(), records.is_empty());
    assert_eq!(j.last_seq(), records.last().map(|r| r.global_seq));
    let segments: Vec<(String, u64, u64, u64, u64)> = j
        .segments()
        .map(|s| {
            (
                name_in(dir, &s.path),
                s.first_seq,
                s.records,
                s.capacity,
                s.segment_size,
            )
        })
        .collect();
    assert_eq!(
        segments.iter().map(|s| s.2).sum::<u64>(),
        records.len() as u64,
        "segments' record counts"
    );
    let tail = j.tail().map(|t| {
        assert!(!t.reason.is_empty());
        assert_eq!(
            Some(&t.path),
            j.segments().last().map(|s| &s.path),
            "tail not in the last segment"
        );
        Tail {
            file: name_in(dir, &t.path),
            offset: t.offset,
            first_dropped_seq: t.first_dropped_seq,
            dropped_records: t.dropped_records,
            dropped_bytes: t.dropped_bytes,
            truncated: t.truncated,
        }
    });
    if !repair {
        assert!(j.removed().is_empty(), "a read-only open removed files");
    }
    Outcome::Ok(Good {
        first_seq: first,
        next_seq: next,
        segments,
        tail,
        removed: j.removed().iter().map(|p| name_in(dir, p)).collect(),
        records: records.into_iter().map(Rec).collect(),
    })
}

/// The regular files of `dir`.
fn snapshot(dir: &Path) -> Dir {
    let mut d = Dir::new();
    for e in fs::read_dir(dir).expect("read journal directory") {
        let e = e.expect("directory entry");
        assert!(
            e.file_type().expect("file type").is_file(),
            "{:?} is not a file",
            e.path()
        );
        let name = e.file_name().into_string().expect("UTF-8 name");
        d.insert(name, fs::read(e.path()).expect("read file"));
    }
    d
}

/// Makes `dir` hold `new` instead of `old`.
fn store(dir: &Path, old: &Dir, new: &Dir) {
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        fs::remove_file(dir.join(name)).expect("remove file");
    }
    for (name, bytes) in new {
        if old.get(name) != Some(bytes) {
            fs::write(dir.join(name), bytes).expect("write file");
        }
    }
}

/// File names and sizes, for messages.
fn listing(d: &Dir) -> Vec<(&str, usize)> {
    d.iter().map(|(n, b)| (n.as_str(), b.len())).collect()
}

#[derive(Clone, Copy)]
enum How<'a> {
    ReadOnly,
    ReadOnlyFile(&'a str),
    Repair,
}

/// Opens `dir` (holding `pre`) as `how` says, checks the result and the
/// files afterwards against the model, and returns the result.
fn open_checked(dir: &Path, pre: &Dir, how: How<'_>) -> Result<Recovered, JournalError> {
    let (res, only, repair) = match how {
        How::ReadOnly => (Journal::open_read_only(dir), None, false),
        How::ReadOnlyFile(n) => (Journal::open_read_only(dir.join(n)), Some(n), false),
        How::Repair => (Journal::open(dir), None, true),
    };
    let post = snapshot(dir);
    let got = observe(&res, dir, repair);
    let want = expect(pre, only, repair);
    assert!(
        agree(&got, &want),
        "{} of {:?}{}\ngot {got:#?}\nthe module doc's rules give {want:#?}",
        if repair {
            "Journal::open"
        } else {
            "Journal::open_read_only"
        },
        listing(pre),
        only.map(|n| format!(" (file {n} alone)")).unwrap_or_default(),
    );
    match (&want, repair) {
        (_, false) => assert!(post == *pre, "a read-only open changed the journal"),
        (Outcome::Ok(g), true) => assert!(
            post == repaired(pre, g),
            "Journal::open changed other bytes than predicted: {:?} -> {:?}",
            listing(pre),
            listing(&post)
        ),
        (_, true) => assert!(
            post == *pre,
            "a failed Journal::open changed the journal: {:?} -> {:?}",
            listing(pre),
            listing(&post)
        ),
    }
    res
}

/// `get`, `range` and `select` agree with the full record list.
fn check_queries(j: &Recovered) {
    let all: Vec<SequencedRecord> = j.records().collect();
    let (first, next) = (j.first_seq(), j.next_seq());
    let mut points = vec![
        0,
        1,
        first.saturating_sub(1),
        first,
        first.saturating_add(1),
        first.saturating_add(all.len() as u64 / 2),
        next.saturating_sub(1),
        next,
        next.saturating_add(1),
        u64::MAX,
    ];
    points.sort_unstable();
    points.dedup();
    let within = |lo: u64, hi: u64, hi_in: bool| -> Vec<SequencedRecord> {
        all.iter()
            .filter(|r| r.global_seq >= lo && (r.global_seq < hi || hi_in && r.global_seq == hi))
            .copied()
            .collect()
    };
    for &a in &points {
        assert_eq!(
            j.get(a),
            all.iter().find(|r| r.global_seq == a).copied(),
            "get({a})"
        );
        for &b in &points {
            let it = j.range(a..b);
            let want = within(a, b, false);
            assert_eq!(it.len(), want.len(), "range({a}..{b}).len()");
            assert_eq!(it.collect::<Vec<_>>(), want, "range({a}..{b})");
            let it = j.range(a..=b);
            let want = within(a, b, true);
            assert_eq!(it.len(), want.len(), "range({a}..={b}).len()");
            assert_eq!(it.collect::<Vec<_>>(), want, "range({a}..={b})");
        }
    }
    if let Some(r0) = all.first() {
        let (g, i) = (r0.origin.gateway, r0.origin.index);
        let got: Vec<SequencedRecord> = j
            .select(&RecordFilter::all().seqs(first.saturating_add(1)..).session(g, i))
            .collect();
        let want: Vec<SequencedRecord> = all
            .iter()
            .filter(|r| r.global_seq > first && r.origin.gateway == g && r.origin.index == i)
            .copied()
            .collect();
        assert_eq!(got, want, "select by session");
    }
}

/// Prefix of the temporary directories, followed by `<pid>-<n>`.
const TEMP_PREFIX: &str = "peregrine-fuzz-journal-";

/// A directory under /dev/shm (or the temp dir), removed on drop. A crash
/// aborts before the drop, so the first one a process makes also removes
/// those left by processes that are gone.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static BASE: OnceLock<PathBuf> = OnceLock::new();
        static N: AtomicU64 = AtomicU64::new(0);
        let base = BASE.get_or_init(|| {
            let shm = Path::new("/dev/shm");
            let base = if shm.is_dir() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            };
            remove_stale(&base);
            base
        });
        let p = base.join(format!(
            "{TEMP_PREFIX}{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Removes our directories in `base` whose process no longer runs (by
/// /proc; nothing is removed where there is no /proc).
fn remove_stale(base: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(base) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(TEMP_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Writes records `1..=n` into the new journal `dir` with the real writer.
fn write_journal(dir: &Path, cfg: &Config) {
    let j = Journal::open(dir).expect("open a new journal");
    assert!(j.is_empty() && j.tail().is_none() && j.removed().is_empty());
    assert_eq!((j.first_seq(), j.next_seq()), (1, 1));
    let mut w = j.into_writer(cfg.writer()).expect("writer for a new journal");
    let n = u64::from(cfg.records);
    for s in 1..=n {
        w.append(&rec(s, cfg.salt)).expect("append");
    }
    assert_eq!((w.written_seq(), w.next_seq()), (n, n + 1));
    if cfg.prepare_next {
        w.prepare_next_segment().expect("prepare the next segment");
    }
    match cfg.flush {
        1 => w.flush(FlushPolicy::Msync).expect("msync"),
        2 => w.flush(FlushPolicy::Fdatasync).expect("fdatasync"),
        3 => return w.close().expect("close"),
        _ => return,
    }
    assert_eq!(w.durable_seq(), n);
}

pub(crate) fn run(data: &[u8]) {
    let mut r = Bytes::new(data);
    let cfg = Config::decode(&mut r);
    let mut ops = Vec::new();
    while !r.is_empty() && ops.len() < MAX_OPS {
        ops.push(Op::decode(&mut r));
    }
    let tmp = TempDir::new();
    let dir = tmp.0.join("journal");
    write_journal(&dir, &cfg);
    let written = snapshot(&dir);
    let want = image(&cfg);
    assert!(
        written == want,
        "the writer's files differ from the documented layout: {:?}, expected {:?}",
        listing(&written),
        listing(&want)
    );
    let mut files = written.clone();
    let mut forged = false;
    for op in &ops {
        forged |= op.apply(&mut files, &cfg);
    }
    store(&dir, &written, &files);
    recover(&dir, &files, &cfg, forged);
}

/// Step 3 and 4 of the module doc on the damaged `dir` (holding `pre`).
fn recover(dir: &Path, pre: &Dir, cfg: &Config, forged: bool) {
    let segment_files: Vec<&str> = pre
        .keys()
        .map(String::as_str)
        .filter(|n| n.ends_with(".journal"))
        .collect();
    for name in &segment_files {
        let _ = open_checked(dir, pre, How::ReadOnlyFile(name));
    }
    if let Some(name) = segment_files.first() {
        let e = Journal::open(dir.join(name)).err();
        assert!(
            matches!(e, Some(JournalError::Config(_))),
            "Journal::open of a file: {e:?}"
        );
    }

    let ro = open_checked(dir, pre, How::ReadOnly)
        .map(|j| j.records().collect::<Vec<_>>())
        .map_err(|e| e.to_string());
    let j = match (ro, open_checked(dir, pre, How::Repair)) {
        (Ok(ro), Ok(j)) => {
            assert_eq!(
                ro,
                j.records().collect::<Vec<_>>(),
                "read-only and repair records differ"
            );
            j
        }
        (Err(ro), Err(e)) => {
            assert_eq!(ro, e.to_string(), "read-only and repair errors differ");
            return;
        }
        (ro, rw) => panic!("read-only open {ro:?}, repair {:?}", rw.map(|j| j.next_seq())),
    };
    if !forged {
        for r in j.records() {
            assert!(
                (1..=u64::from(cfg.records)).contains(&r.global_seq) && r == rec(r.global_seq, cfg.salt),
                "recovered a record the writer did not write: #{}",
                r.global_seq
            );
        }
    }
    check_queries(&j);
    let records: Vec<SequencedRecord> = j.records().collect();
    let next = j.next_seq();
    drop(j);

    // The repair is done: the next open finds no tail and the same records,
    // and the one after changes nothing at all.
    let mid = snapshot(dir);
    let j = open_checked(dir, &mid, How::Repair).expect("a repaired journal opens");
    assert!(
        j.tail().is_none(),
        "a tail again after the repair: {:?}",
        j.tail()
    );
    assert_eq!(j.next_seq(), next);
    assert!(
        j.records().eq(records.iter().copied()),
        "records changed by reopening"
    );
    drop(j);
    let settled = snapshot(dir);
    let j = open_checked(dir, &settled, How::Repair).expect("a repaired journal opens");
    assert!(j.removed().is_empty(), "third open removed {:?}", j.removed());

    // Writing resumes at next_seq, across a roll, except that sequence
    // u64::MAX is refused (nothing written).
    let mut w = j.into_writer(cfg.writer()).expect("writer after recovery");
    assert_eq!(w.next_seq(), next);
    if cfg.prepare_next {
        w.prepare_next_segment()
            .expect("prepare the next segment after recovery");
    }
    let more = w.remaining_in_segment() + 1;
    let mut appended = Vec::new();
    for s in (0..more).map_while(|i| next.checked_add(i)) {
        let r = rec(s, cfg.salt);
        if s == u64::MAX {
            let e = w.append(&r).expect_err("append of sequence u64::MAX");
            assert!(
                matches!(e, JournalError::SequenceExhausted { seq: u64::MAX }),
                "append of u64::MAX: {e}"
            );
            assert_eq!(w.next_seq(), s, "a refused append moved next_seq");
            break;
        }
        w.append(&r).expect("append after recovery");
        appended.push(r);
    }
    drop(w);
    let after = snapshot(dir);
    let j = open_checked(dir, &after, How::Repair).expect("reopen after resuming");
    assert!(j.tail().is_none(), "a tail after resuming: {:?}", j.tail());
    let want = records.into_iter().chain(appended);
    assert!(j.records().eq(want), "records after resuming");
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_journal::{segment_name, MAGIC};

    #[test]
    fn reference_layout_matches_the_crate() {
        // The CRC-32C check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(MAGIC, *b"PRGNJRNL");
        for s in [0, 1, 42, u64::MAX] {
            assert_eq!(seg_name(s), segment_name(s));
            assert_eq!(parse_name(&seg_name(s)), Some(s));
        }
        assert_eq!(parse_name("99999999999999999999.journal"), None);
        assert!(header_fields(&header_bytes(5, 208)).is_some());
        assert!(header_fields(&header_bytes(0, 208)).is_none());
        assert!(header_fields(&header_bytes(5, 207)).is_none());
        assert!(matches!(slot(&[0; REC]), Slot::Empty));
    }

    #[test]
    fn config_and_ops_round_trip_through_bytes() {
        let cfg = Config {
            per_seg: 3,
            slack: 5,
            prepare_next: true,
            flush: 2,
            records: 16,
            salt: 7,
        };
        let ops = vec![
            Op::Flip {
                file: 1,
                at: 300,
                bit: 7,
            },
            Op::Write {
                file: 15,
                at: 9,
                bytes: vec![1, 2, 3],
            },
            Op::Zero {
                file: 0,
                at: 64,
                len: 144,
            },
            Op::Truncate { file: 2, len: 100 },
            Op::Append {
                file: 3,
                zeros: true,
                bytes: vec![0; 9],
            },
            Op::Append {
                file: 3,
                zeros: false,
                bytes: vec![5; 9],
            },
            Op::Delete { file: 4 },
            Op::Rename { file: 5, to: 0xc3 },
            Op::Create { what: 6, seq: 0x81 },
            Op::Slot {
                file: 6,
                slot: 31,
                how: 5,
                p: 200,
            },
            Op::Header {
                file: 7,
                field: 2,
                value: 0xff,
            },
        ];
        let bytes = encode(&cfg, &ops);
        let mut r = Bytes::new(&bytes);
        assert_eq!(Config::decode(&mut r), cfg);
        let mut back = Vec::new();
        while !r.is_empty() {
            back.push(Op::decode(&mut r));
        }
        assert_eq!(back, ops);
        run(&bytes);
    }

    /// A torn last record is dropped, reported and zeroed, and writing
    /// resumes: the model and the implementation agree on a known case.
    #[test]
    fn torn_last_record_is_predicted() {
        let cfg = Config::default(); // 4 per segment, records 1..=6
        let mut files = image(&cfg);
        Op::Slot {
            file: 1,
            slot: 1,
            how: 0,
            p: 70,
        }
        .apply(&mut files, &cfg);
        let Outcome::Ok(g) = expect(&files, None, true) else {
            panic!("torn tail must recover");
        };
        assert_eq!(g.next_seq, 6);
        let t = g.tail.expect("a tail");
        assert_eq!(
            (t.file.as_str(), t.offset, t.dropped_records),
            (&seg_name(5)[..], 64 + 144, 1)
        );
        run(&encode(
            &cfg,
            &[Op::Slot {
                file: 1,
                slot: 1,
                how: 0,
                p: 70,
            }],
        ));
    }
}
