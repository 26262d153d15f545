//! Fuzz entry points for Peregrine's parsers and session layer (every
//! parser is total: framing, message decoding and the session layer), for
//! journal recovery, and for restoring an engine snapshot.
//!
//! Each `pub fn TARGET(data: &[u8])` takes arbitrary bytes and panics only
//! when an invariant breaks. The same functions are called from two places:
//! - the cargo-fuzz targets in `fuzz/fuzz_targets/` (libFuzzer, run by hand
//!   or by `scripts/fuzz.sh`), and
//! - `tests/corpus_replay.rs`, which replays every file under
//!   `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` in an ordinary
//!   `#[test]`, so `cargo test` covers them on stable with no extra tools.
//!
//! [`seeds`] builds the checked-in seed corpora (`cargo run -p
//! peregrine-fuzz-entries --example gen_corpus`).
#![forbid(unsafe_code)]

mod engine_restore;
mod feed;
mod journal_recovery;
mod message;
mod moldudp64;
mod netio_wire;
pub mod seeds;
mod session;
mod soupbintcp;

/// A fuzz entry point.
pub type Entry = fn(&[u8]);

/// Every target: its name (= its corpus directory and cargo-fuzz binary)
/// and its entry point.
pub const TARGETS: &[(&str, Entry)] = &[
    ("moldudp64", moldudp64),
    ("soupbintcp", soupbintcp),
    ("message", message),
    ("netio_wire", netio_wire),
    ("session", session),
    ("journal_recovery", journal_recovery),
    ("engine_restore", engine_restore),
    ("feed", feed),
];

/// MoldUDP64: `MoldPacket::new_checked`, `blocks()`, `MoldBuilder`,
/// `write_header_only`. Parse → rebuild must give the same bytes; the
/// builder driven by a byte script must accept exactly what fits and parse
/// back to what was pushed.
pub fn moldudp64(data: &[u8]) {
    moldudp64::run(data)
}

/// SoupBinTCP: `parse_packet` and `frame_len` agree; a stream of packets is
/// walked the way the TCP gateway walks it; every parsed packet re-encodes
/// to the same bytes (or, for logins, to the same values); prefixes of a
/// whole packet are "incomplete", never errors.
pub fn soupbintcp(data: &[u8]) {
    soupbintcp::run(data)
}

/// Messages: `classify_inbound` and `parse_inbound` agree with each other
/// and with the layout; the views alias the input; `Reject::for_block` and
/// `client_ts_of` read what is readable.
pub fn message(data: &[u8]) {
    message::run(data)
}

/// netio wire: Ethernet/ARP/IPv4/UDP views and `Repr::parse`, whole stack
/// and each layer alone; emit → parse round trips; checksums against a
/// plain 16-bit reference.
pub fn netio_wire(data: &[u8]) {
    netio_wire::run(data)
}

/// The gateway session layer: a `UdpGateway` and a `TcpGateway` over
/// in-memory ports fed by a script decoded from `data`, a real `Sequencer`
/// with `EchoApp`. Checks: no panic, accepted == sequenced, global sequence
/// gap-free from 1, per-session reply framing and numbering, and liveness
/// (both gateways still answer after the script).
pub fn session(data: &[u8]) {
    session::run(data)
}

/// Journal recovery: a journal written by the real writer into a fresh
/// directory, damaged by a script (bit flips, overwrites, truncation,
/// appended, deleted, renamed and created files, torn and forged record
/// slots, re-signed headers), then opened read-only and for repair. Both
/// must match a model of the documented recovery rules (same error, file
/// and offset, or same records, segments, tail report and removals) and
/// change no other byte than predicted; after a repair a reopen is clean
/// and the writer resumes gap-free.
pub fn journal_recovery(data: &[u8]) {
    journal_recovery::run(data)
}

/// Engine snapshots: `Engine::restore` on raw bytes, and on real
/// snapshots (of books built by a command script) damaged by xor masks and
/// truncation. Checks: no panic; whatever restores passes the engine's
/// invariants, re-encodes to the same bytes and keeps trading; an engine's
/// own snapshot always restores to the same state hash.
pub fn engine_restore(data: &[u8]) {
    engine_restore::run(data)
}

/// The sequenced feed: `FeedRecord::parse`/`emit`, `RecordBlock`,
/// `MarketBlock::parse`/`emit` on the whole input (parse → emit gives the
/// same bytes); then a `Reassembler` (the consumer's packet handling) fed
/// datagrams cut from the input: deliveries consecutive from its start
/// sequence, each once, each a valid block; requests from the next
/// sequence within the configured maximum.
pub fn feed(data: &[u8]) {
    feed::run(data)
}

/// Reads bytes off the front of a fuzz input; past the end it yields zeros,
/// so every input decodes to something.
#[derive(Clone, Debug)]
pub(crate) struct Bytes<'a> {
    rest: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Bytes { rest: data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(crate) fn u8(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = b;
        a
    }
}
