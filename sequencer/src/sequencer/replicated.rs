//! The sequencer's side of a replicated cluster.
//!
//! On the leader, every poll's sequenced records are also encoded, exactly
//! as the journal stores them, into one [`RecordBatch`]; the node proposes
//! it as one log entry (consensus is paid per batch, not per message) and
//! tells the sequencer the entry's index with
//! [`Sequencer::seal_batch`]. With acknowledgement on commit the poll's
//! replies wait in a queue behind that index and leave only when
//! [`Sequencer::release_committed`] sees the index committed, so no client
//! ever hears of a message a majority does not hold.
//!
//! On a follower (and on a new leader catching up with entries of earlier
//! terms), [`Sequencer::apply_replicated`] feeds committed records to the
//! application in sequence order, the same way journal replay does after a
//! restart: the application reaches the leader's state, and each record and
//! reply becomes a session-state notice ([`OutboundKind::RestoreInput`],
//! [`OutboundKind::RestoreReply`]) on the owning gateway's ring, so the
//! gateways keep every session's sequences and reply log as the leader
//! does and can serve them after a failover.

use super::Sequencer;
use crate::app::{Application, ReplySink, SinkMode};
use crate::slot::{OutboundKind, OutboundSlot};
use peregrine_journal::{decode_record, decode_unchecked, encode, Sequenced, SlotError, RECORD_LEN};
use std::collections::VecDeque;

/// When a cluster leader's replies leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyRelease {
    /// When the poll's log entry is committed (on a majority).
    OnCommit,
    /// As soon as sequenced, like a single node (a failover can lose
    /// acknowledged messages that had not replicated).
    OnSequence,
}

/// The encoded records of the messages sequenced since the last
/// [`Sequencer::seal_batch`]: [`RECORD_LEN`] bytes each, consecutive
/// global sequences, the journal's record format.
#[derive(Debug, Default)]
pub struct RecordBatch {
    bytes: Vec<u8>,
}

impl RecordBatch {
    /// Appends one sequenced message (no allocation within the capacity
    /// reserved at start).
    #[inline]
    pub(crate) fn push(&mut self, m: &Sequenced<'_>) {
        let at = self.bytes.len();
        self.bytes.resize(at + RECORD_LEN, 0);
        encode(m, &mut self.bytes[at..]);
    }

    /// The encoded records.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.bytes.len() / RECORD_LEN
    }

    /// True when nothing was sequenced since the last seal.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Replies held until log entry `index` commits.
#[derive(Clone, Copy, Debug)]
struct Gate {
    index: u64,
    replies: usize,
}

/// Replication state inside the sequencer.
pub(crate) struct ReplicationTap {
    batch: RecordBatch,
    release: ReplyRelease,
    held: VecDeque<OutboundSlot>,
    gates: VecDeque<Gate>,
    /// Held replies not yet behind a gate (sequenced this poll).
    ungated: usize,
    /// Beyond this many held replies the sequencer takes no input.
    hold_limit: usize,
}

impl ReplicationTap {
    /// True when the held replies reached their limit: the sequencer takes
    /// no input until commits release some (back-pressure, not a drop).
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.held.len() >= self.hold_limit
    }

    /// What a poll writes into: the batch, and where replies go.
    #[inline]
    pub(crate) fn sequencing(&mut self) -> (&mut RecordBatch, SinkMode<'_>) {
        let mode = match self.release {
            ReplyRelease::OnCommit => SinkMode::Hold(&mut self.held),
            ReplyRelease::OnSequence => SinkMode::Send,
        };
        (&mut self.batch, mode)
    }
}

/// A committed log entry the sequencer could not apply: the log and this
/// node disagree, so the node must stop rather than diverge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The entry's length is not a whole number of records.
    #[error("entry of {0} bytes is not a whole number of {RECORD_LEN}-byte records")]
    Length(usize),
    /// A record failed its CRC or has an unknown kind.
    #[error("record {position} of the entry does not decode: {error:?}")]
    Record {
        /// Position of the record in the entry.
        position: usize,
        /// Why.
        error: SlotError,
    },
    /// The entry skips sequence numbers.
    #[error("entry continues at sequence {found}, expected {expected}")]
    Gap {
        /// The next sequence this node expected.
        expected: u64,
        /// The one the entry holds.
        found: u64,
    },
}

impl<A: Application> Sequencer<A> {
    /// Makes this sequencer a cluster node's: every poll's records are
    /// encoded into [`pending_batch`](Self::pending_batch) for the node to
    /// propose, and replies leave per `release`. At most `hold_limit`
    /// replies wait for commit before the sequencer stops taking input.
    pub fn with_replication(mut self, release: ReplyRelease, hold_limit: usize) -> Self {
        let inputs = self.inputs.len().max(1);
        let hold_limit = hold_limit.max(self.batch_limit * inputs);
        self.replication = Some(ReplicationTap {
            batch: RecordBatch {
                bytes: Vec::with_capacity(self.batch_limit * inputs * RECORD_LEN),
            },
            release,
            // Room for a full limit plus one poll beyond it.
            held: VecDeque::with_capacity(hold_limit + self.batch_limit * inputs),
            gates: VecDeque::with_capacity(1024),
            ungated: 0,
            hold_limit,
        });
        self
    }

    /// Records sequenced since the last [`seal_batch`](Self::seal_batch)
    /// (empty without replication).
    pub fn pending_batch(&self) -> &[u8] {
        self.replication.as_ref().map_or(&[], |r| r.batch.as_bytes())
    }

    /// The pending batch was proposed as log entry `index`: its replies
    /// (under [`ReplyRelease::OnCommit`]) leave once `index` commits.
    pub fn seal_batch(&mut self, index: u64) {
        if let Some(r) = self.replication.as_mut() {
            r.batch.bytes.clear();
            let replies = r.held.len() - r.ungated;
            r.ungated = r.held.len();
            if replies > 0 {
                r.gates.push_back(Gate { index, replies });
            }
        }
    }

    /// Releases to the gateways every held reply whose entry is at or below
    /// `commit`. Only a leader still in the term it proposed in may call
    /// this (a deposed leader's entries may have been overwritten). Returns
    /// how many replies left.
    pub fn release_committed(&mut self, commit: u64) -> usize {
        let Some(r) = self.replication.as_mut() else {
            return 0;
        };
        let mut released = 0;
        let mut sink = ReplySink::new(&mut self.outputs, &mut self.overflow, SinkMode::Send);
        while let Some(g) = r.gates.front().copied() {
            if g.index > commit {
                break;
            }
            r.gates.pop_front();
            for _ in 0..g.replies {
                if let Some(slot) = r.held.pop_front() {
                    sink.push(slot);
                }
            }
            r.ungated -= g.replies;
            released += g.replies;
        }
        if released > 0 {
            for out in sink.outputs.iter_mut() {
                out.publish();
            }
        }
        self.counters.replies_released += released as u64;
        self.counters.replies_overflowed += sink.overflowed;
        self.counters.replies_misrouted += sink.misrouted;
        released
    }

    /// Replies waiting for their entry to commit.
    pub fn held_for_commit(&self) -> usize {
        self.replication.as_ref().map_or(0, |r| r.held.len())
    }

    /// Applies one committed log entry's records (the leader's encoding,
    /// see [`RecordBatch`]) that this node has not applied yet: records
    /// below [`next_seq`](Self::next_seq) were sequenced here and are
    /// skipped; the rest must continue it exactly. Each applied record and
    /// each reply the application makes becomes a session-state notice for
    /// the owning gateway (nothing is sent to clients). Returns how many
    /// records were applied; on error nothing after the bad record is.
    pub fn apply_replicated(&mut self, entry: &[u8]) -> Result<usize, ApplyError> {
        self.apply_records(entry, true)
    }

    /// [`apply_replicated`](Self::apply_replicated) for an entry whose
    /// records the caller has verified already, each with
    /// [`decode_record`] (as a log store that checks every record it
    /// persists has, for every entry Raft hands back committed): the same,
    /// without computing each record's CRC a second time. A record that is
    /// not in fact intact is applied as it reads.
    pub fn apply_verified(&mut self, entry: &[u8]) -> Result<usize, ApplyError> {
        self.apply_records(entry, false)
    }

    fn apply_records(&mut self, entry: &[u8], verify: bool) -> Result<usize, ApplyError> {
        if entry.len() % RECORD_LEN != 0 {
            return Err(ApplyError::Length(entry.len()));
        }
        let mut sink = ReplySink::new(&mut self.outputs, &mut self.overflow, SinkMode::Restore);
        let mut applied = 0;
        let mut result = Ok(());
        for (position, chunk) in entry.chunks_exact(RECORD_LEN).enumerate() {
            let decoded = if verify {
                decode_record(chunk)
            } else {
                Ok(decode_unchecked(chunk))
            };
            let r = match decoded {
                Ok(r) => r,
                Err(error) => {
                    result = Err(ApplyError::Record { position, error });
                    break;
                }
            };
            if r.global_seq < self.next_seq {
                continue;
            }
            if r.global_seq > self.next_seq {
                result = Err(ApplyError::Gap {
                    expected: self.next_seq,
                    found: r.global_seq,
                });
                break;
            }
            sink.push(OutboundSlot {
                msg: r.msg,
                to: r.origin,
                kind: OutboundKind::RestoreInput,
                client_seq: r.client_seq,
                rx_ns: 0,
            });
            self.app.on_message(&r.as_sequenced(), &mut sink);
            self.next_seq += 1;
            applied += 1;
        }
        for out in sink.outputs.iter_mut() {
            out.publish();
        }
        self.counters.replicated_applied += applied as u64;
        self.counters.replies += sink.sent;
        self.counters.replies_overflowed += sink.overflowed;
        self.counters.replies_misrouted += sink.misrouted;
        result.map(|()| applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::EchoApp;
    use crate::slot::{InboundSlot, SessionRef};
    use peregrine_ring::{ring, Consumer, Producer};
    use peregrine_wire::message::{Ack, Echo};
    use zerocopy::{FromBytes, IntoBytes};

    fn node(release: ReplyRelease) -> (Producer<InboundSlot>, Consumer<OutboundSlot>, Sequencer<EchoApp>) {
        let (ip, ic) = ring::<InboundSlot>(64).unwrap();
        let (op, oc) = ring::<OutboundSlot>(64).unwrap();
        let seq = Sequencer::new(vec![(ic, op)], EchoApp::new(), 1, 16).with_replication(release, 64);
        (ip, oc, seq)
    }

    fn send(ins: &mut Producer<InboundSlot>, session: u32, client_seqs: std::ops::RangeInclusive<u64>) {
        for c in client_seqs {
            let mut s = InboundSlot::default();
            s.msg.copy_from_slice(Echo::new(c, c).as_bytes());
            s.origin = SessionRef::new(0, session);
            s.client_seq = c;
            assert!(ins.stage(s));
        }
        ins.publish();
    }

    fn drain(out: &mut Consumer<OutboundSlot>) -> Vec<OutboundSlot> {
        std::iter::from_fn(|| out.pop()).collect()
    }

    #[test]
    fn replies_wait_for_their_entry_to_commit() {
        let (mut ins, mut out, mut seq) = node(ReplyRelease::OnCommit);
        send(&mut ins, 3, 1..=4);
        assert_eq!(seq.poll(), 4);
        assert_eq!(seq.pending_batch().len(), 4 * RECORD_LEN);
        seq.seal_batch(7);
        assert!(seq.pending_batch().is_empty());
        send(&mut ins, 3, 5..=6);
        assert_eq!(seq.poll(), 2);
        seq.seal_batch(8);
        assert!(drain(&mut out).is_empty(), "nothing leaves before commit");
        assert_eq!(seq.held_for_commit(), 6);
        assert_eq!(seq.release_committed(6), 0);
        assert_eq!(seq.release_committed(7), 4);
        let first: Vec<u64> = drain(&mut out)
            .iter()
            .map(|s| Ack::read_from_bytes(&s.msg).unwrap().client_seq.get())
            .collect();
        assert_eq!(first, [1, 2, 3, 4]);
        assert_eq!(seq.release_committed(9), 2);
        assert_eq!(drain(&mut out).len(), 2);
        assert_eq!(seq.held_for_commit(), 0);
        assert_eq!(seq.counters().replies_released, 6);
    }

    #[test]
    fn local_acks_leave_at_once_and_the_batch_still_fills() {
        let (mut ins, mut out, mut seq) = node(ReplyRelease::OnSequence);
        send(&mut ins, 1, 1..=3);
        assert_eq!(seq.poll(), 3);
        assert_eq!(drain(&mut out).len(), 3);
        assert_eq!(seq.pending_batch().len(), 3 * RECORD_LEN);
        seq.seal_batch(2);
        assert_eq!(seq.release_committed(2), 0);
    }

    #[test]
    fn a_follower_applies_the_leaders_batches_as_session_state() {
        let (mut ins, mut out, mut leader) = node(ReplyRelease::OnCommit);
        send(&mut ins, 2, 1..=3);
        leader.poll();
        let entry = leader.pending_batch().to_vec();
        let (_fi, mut fout, mut follower) = node(ReplyRelease::OnCommit);
        assert_eq!(follower.apply_replicated(&entry), Ok(3));
        assert_eq!(follower.next_seq(), 4);
        let notices = drain(&mut fout);
        let kinds: Vec<(OutboundKind, u64)> = notices.iter().map(|s| (s.kind, s.client_seq)).collect();
        assert_eq!(
            kinds,
            [
                (OutboundKind::RestoreInput, 1),
                (OutboundKind::RestoreReply, 0),
                (OutboundKind::RestoreInput, 2),
                (OutboundKind::RestoreReply, 0),
                (OutboundKind::RestoreInput, 3),
                (OutboundKind::RestoreReply, 0),
            ]
        );
        assert!(notices.iter().all(|s| s.to == SessionRef::new(0, 2)));
        // The same entry again (the leader's own, or a duplicate) is skipped.
        assert_eq!(follower.apply_replicated(&entry), Ok(0));
        assert_eq!(
            leader.apply_replicated(&entry),
            Ok(0),
            "a leader skips what it sequenced"
        );
        assert!(drain(&mut out).is_empty());
    }

    #[test]
    fn bad_entries_are_typed_errors_and_apply_nothing_after() {
        let (mut ins, _out, mut leader) = node(ReplyRelease::OnCommit);
        send(&mut ins, 2, 1..=3);
        leader.poll();
        let entry = leader.pending_batch().to_vec();
        let (_fi, _fo, mut f) = node(ReplyRelease::OnCommit);
        assert_eq!(f.apply_replicated(&entry[..100]), Err(ApplyError::Length(100)));
        assert_eq!(
            f.apply_replicated(&entry[RECORD_LEN..]),
            Err(ApplyError::Gap {
                expected: 1,
                found: 2
            })
        );
        let mut torn = entry.clone();
        torn[RECORD_LEN + 40] ^= 1;
        assert!(matches!(
            f.apply_replicated(&torn),
            Err(ApplyError::Record { position: 1, .. })
        ));
        assert_eq!(f.next_seq(), 2, "the record before the torn one was applied");
        assert_eq!(f.apply_replicated(&entry), Ok(2));
    }

    #[test]
    fn verified_entries_apply_alike_without_a_crc_check() {
        let (mut ins, _out, mut leader) = node(ReplyRelease::OnCommit);
        send(&mut ins, 2, 1..=3);
        leader.poll();
        let entry = leader.pending_batch().to_vec();
        let (_ci, mut checked_out, mut checked) = node(ReplyRelease::OnCommit);
        let (_vi, mut verified_out, mut verified) = node(ReplyRelease::OnCommit);
        assert_eq!(checked.apply_replicated(&entry), Ok(3));
        assert_eq!(verified.apply_verified(&entry), Ok(3));
        let notices = |out: &mut Consumer<OutboundSlot>| {
            drain(out)
                .iter()
                .map(|s| (s.kind, s.to, s.client_seq, s.msg))
                .collect::<Vec<_>>()
        };
        assert_eq!(notices(&mut checked_out), notices(&mut verified_out));
        assert_eq!(verified.next_seq(), 4);
        // Sequences and lengths are still checked; the CRC is not.
        let (_fi, _fo, mut f) = node(ReplyRelease::OnCommit);
        assert_eq!(f.apply_verified(&entry[..100]), Err(ApplyError::Length(100)));
        assert!(matches!(
            f.apply_verified(&entry[RECORD_LEN..]),
            Err(ApplyError::Gap {
                expected: 1,
                found: 2
            })
        ));
        let mut torn = entry.clone();
        torn[RECORD_LEN + 40] ^= 1;
        assert!(f.apply_replicated(&torn).is_err());
        let (_ti, _to, mut t) = node(ReplyRelease::OnCommit);
        assert_eq!(t.apply_verified(&torn), Ok(3), "taken as it reads");
    }

    #[test]
    fn too_many_held_replies_stop_input_until_commits() {
        let (mut ins, mut out, mut seq) = node(ReplyRelease::OnCommit);
        // hold_limit is raised to one full poll (16) at least; 64 here.
        for round in 0..4u64 {
            send(&mut ins, 1, round * 16 + 1..=round * 16 + 16);
            assert_eq!(seq.poll(), 16);
            seq.seal_batch(round + 1);
        }
        send(&mut ins, 1, 65..=65);
        assert_eq!(seq.poll(), 0, "64 replies held: no input");
        assert_eq!(seq.release_committed(1), 16);
        assert_eq!(drain(&mut out).len(), 16);
        assert_eq!(seq.poll(), 1);
    }
}
