//! Session snapshots: one gateway's restorable session state as bytes, and
//! back into a [`SessionTable`] and the [`SessionDirectory`] claim.
//!
//! Why: journal recovery rebuilds each session from every journaled input
//! and every reply the application sends during replay (see
//! [`crate::restore`]); once the journal is compacted those inputs are
//! gone, so the same state must be saved alongside the application's
//! snapshot at the same global sequence number. The state is exactly what
//! recovery rebuilds: next client sequence, next reply sequence, last
//! staged and highest replied client sequence, and the reply log. What
//! recovery does not rebuild (peer, timers, reorder window, reject log,
//! rate-limit tokens) is not saved either: a restored session looks like
//! one recovered from the journal, disconnected.
//!
//! Layout (integers little-endian):
//!
//! | field | bytes |
//! |---|---|
//! | magic [`SESSIONS_MAGIC`] | 8 |
//! | version ([`SESSIONS_VERSION`]) | u32 |
//! | gateway id | u16 |
//! | session count | u32 |
//! | per session, ids increasing: id u32, name 10, next client seq u64, next reply seq u64, last staged u64, replied client seq u64, oldest logged reply seq u64, logged reply count u32, the replies (100 bytes each, oldest first) | 56 + 100 per reply |
//!
//! A reply log restored into a table with a shallower log keeps the newest
//! replies, as replay would; into a deeper one it holds only what was
//! saved.

use crate::directory::SessionDirectory;
use crate::session::{Session, SessionTable};
use peregrine_wire::message::MESSAGE_LEN;
use peregrine_wire::moldudp64::{SessionName, SESSION_LEN};

/// First bytes of every session snapshot.
pub const SESSIONS_MAGIC: [u8; 8] = *b"PGNSESSN";

/// The layout version this build writes and reads.
pub const SESSIONS_VERSION: u32 = 1;

/// Bytes of one session before its replies.
const SESSION_FIXED_LEN: usize = 4 + SESSION_LEN + 8 * 5 + 4;

/// Why bytes could not be decoded or restored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionSnapshotError {
    /// The bytes do not start with [`SESSIONS_MAGIC`].
    #[error("not a session snapshot (bad magic)")]
    BadMagic,
    /// A layout version this build does not read.
    #[error("session snapshot version {0} is not supported (this build reads {SESSIONS_VERSION})")]
    UnsupportedVersion(u32),
    /// The bytes end before the snapshot does.
    #[error("session snapshot truncated at byte {at}: {needed} more bytes needed")]
    Truncated {
        /// Offset where the missing field starts.
        at: usize,
        /// Bytes that field needs.
        needed: usize,
    },
    /// Bytes follow the end of the snapshot.
    #[error("{0} unexpected bytes after the session snapshot")]
    TrailingBytes(usize),
    /// Session ids not strictly increasing.
    #[error("session snapshot lists session {0} out of order or twice")]
    OutOfOrder(u32),
    /// Sequence numbers no session could have.
    #[error("session snapshot: session {id} is inconsistent: {why}")]
    Inconsistent {
        /// The session id.
        id: u32,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// Restoring a snapshot of another gateway.
    #[error("session snapshot of gateway {found} restored into gateway {expected}")]
    WrongGateway {
        /// The gateway restored into.
        expected: u16,
        /// The gateway the snapshot was taken of.
        found: u16,
    },
    /// The session id is not configured (or beyond the table).
    #[error("session snapshot names session id {0}, which this configuration does not hold")]
    UnknownSession(u32),
    /// The configured session at that id has another name (the session
    /// list was reordered or edited since the snapshot).
    #[error("session id {0} is named differently in the configuration than in the snapshot")]
    NameMismatch(u32),
    /// Another gateway already holds the session.
    #[error("session id {0} is held by gateway {1}, not {2}")]
    TwoGateways(u32, u16, u16),
    /// The table already holds the session (snapshots restore into fresh tables).
    #[error("session id {0} is already open in the table restored into")]
    AlreadyOpen(u32),
}

/// One session's restorable state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionState {
    /// Session id (position in the configuration).
    pub id: u32,
    /// Session name, checked against the configuration on restore.
    pub name: SessionName,
    /// Next expected client sequence.
    pub next_client_seq: u64,
    /// Sequence number of the next reply.
    pub next_reply_seq: u64,
    /// Client sequence of the last message handed to the sequencer.
    pub last_staged: u64,
    /// Highest client sequence any reply has answered.
    pub replied_client_seq: u64,
    /// Reply sequence of `replies[0]` (meaningless when there are none).
    pub first_reply_seq: u64,
    /// The replies the log keeps, oldest first, contiguous up to
    /// `next_reply_seq - 1`.
    pub replies: Vec<[u8; MESSAGE_LEN]>,
}

impl SessionState {
    /// The restorable state of `session` (id `id`). Allocates the reply copy.
    pub fn of(id: u32, session: &Session) -> SessionState {
        let mut replies = Vec::new();
        let first_reply_seq = session.log.oldest().unwrap_or(session.next_reply_seq);
        let mut seq = first_reply_seq;
        while let Some(m) = session.log.get(seq) {
            replies.push(*m);
            seq += 1;
        }
        SessionState {
            id,
            name: session.name,
            next_client_seq: session.next_client_seq,
            next_reply_seq: session.next_reply_seq,
            last_staged: session.last_staged,
            replied_client_seq: session.replied_client_seq,
            first_reply_seq,
            replies,
        }
    }

    fn check(&self) -> Result<(), SessionSnapshotError> {
        let bad = |why| SessionSnapshotError::Inconsistent { id: self.id, why };
        if self.next_client_seq == 0 || self.next_reply_seq == 0 {
            return Err(bad("a next sequence number is 0"));
        }
        if self.last_staged >= self.next_client_seq {
            return Err(bad("last staged client sequence not below the next expected"));
        }
        if !self.replies.is_empty() {
            let end = self.first_reply_seq.checked_add(self.replies.len() as u64);
            if self.first_reply_seq == 0 || end != Some(self.next_reply_seq) {
                return Err(bad(
                    "logged replies do not end just before the next reply sequence",
                ));
            }
        }
        Ok(())
    }
}

/// One gateway's sessions at a sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionsSnapshot {
    /// The gateway id they belong to.
    pub gateway: u16,
    /// Every session the gateway holds, by increasing id.
    pub sessions: Vec<SessionState>,
}

/// Reads little-endian fields off the front of the snapshot.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SessionSnapshotError> {
        let rest = &self.bytes[self.at..];
        if rest.len() < n {
            return Err(SessionSnapshotError::Truncated {
                at: self.at,
                needed: n - rest.len(),
            });
        }
        self.at += n;
        Ok(&rest[..n])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SessionSnapshotError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, SessionSnapshotError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, SessionSnapshotError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, SessionSnapshotError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// Fails now if `count` items of at least `each` bytes cannot fit, so
    /// a corrupt count never drives a large allocation.
    fn expect_room(&self, count: u64, each: usize) -> Result<(), SessionSnapshotError> {
        let need = count.saturating_mul(each as u64);
        if need > self.remaining() as u64 {
            return Err(SessionSnapshotError::Truncated {
                at: self.at,
                needed: usize::try_from(need).unwrap_or(usize::MAX) - self.remaining(),
            });
        }
        Ok(())
    }
}

impl SessionsSnapshot {
    /// The restorable state of every session `table` holds, for gateway
    /// `gateway`. O(sessions + logged replies); allocates.
    pub fn capture(gateway: u16, table: &SessionTable) -> SessionsSnapshot {
        let sessions = (0..table.capacity() as u32)
            .filter_map(|id| table.get(id).map(|s| SessionState::of(id, s)))
            .collect();
        SessionsSnapshot { gateway, sessions }
    }

    /// The snapshot as bytes (see the module docs for the layout).
    pub fn encode(&self) -> Vec<u8> {
        let replies: usize = self.sessions.iter().map(|s| s.replies.len()).sum();
        let mut out =
            Vec::with_capacity(18 + self.sessions.len() * SESSION_FIXED_LEN + replies * MESSAGE_LEN);
        out.extend_from_slice(&SESSIONS_MAGIC);
        out.extend_from_slice(&SESSIONS_VERSION.to_le_bytes());
        out.extend_from_slice(&self.gateway.to_le_bytes());
        out.extend_from_slice(&(self.sessions.len() as u32).to_le_bytes());
        for s in &self.sessions {
            out.extend_from_slice(&s.id.to_le_bytes());
            out.extend_from_slice(&s.name);
            for v in [
                s.next_client_seq,
                s.next_reply_seq,
                s.last_staged,
                s.replied_client_seq,
                s.first_reply_seq,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&(s.replies.len() as u32).to_le_bytes());
            for m in &s.replies {
                out.extend_from_slice(m);
            }
        }
        out
    }

    /// Decodes and checks bytes written by [`SessionsSnapshot::encode`]:
    /// any other input is an error, never a panic or an allocation larger
    /// than the input.
    pub fn decode(bytes: &[u8]) -> Result<SessionsSnapshot, SessionSnapshotError> {
        let mut r = Reader { bytes, at: 0 };
        if r.array::<8>()? != SESSIONS_MAGIC {
            return Err(SessionSnapshotError::BadMagic);
        }
        let version = r.u32()?;
        if version != SESSIONS_VERSION {
            return Err(SessionSnapshotError::UnsupportedVersion(version));
        }
        let gateway = r.u16()?;
        let count = r.u32()?;
        r.expect_room(u64::from(count), SESSION_FIXED_LEN)?;
        let mut sessions: Vec<SessionState> = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let id = r.u32()?;
            if sessions.last().is_some_and(|p| p.id >= id) {
                return Err(SessionSnapshotError::OutOfOrder(id));
            }
            let name = r.array::<SESSION_LEN>()?;
            let next_client_seq = r.u64()?;
            let next_reply_seq = r.u64()?;
            let last_staged = r.u64()?;
            let replied_client_seq = r.u64()?;
            let first_reply_seq = r.u64()?;
            let logged = r.u32()?;
            r.expect_room(u64::from(logged), MESSAGE_LEN)?;
            let mut replies = Vec::with_capacity(logged as usize);
            for _ in 0..logged {
                replies.push(r.array::<MESSAGE_LEN>()?);
            }
            let state = SessionState {
                id,
                name,
                next_client_seq,
                next_reply_seq,
                last_staged,
                replied_client_seq,
                first_reply_seq,
                replies,
            };
            state.check()?;
            sessions.push(state);
        }
        if r.remaining() > 0 {
            return Err(SessionSnapshotError::TrailingBytes(r.remaining()));
        }
        Ok(SessionsSnapshot { gateway, sessions })
    }

    /// Puts every session into `table` (of gateway `gateway`, which must
    /// be the one snapshotted and must not hold these sessions yet) and
    /// claims each for `gateway` in `directory`, as journal recovery
    /// would. Returns the number of sessions restored. On error the
    /// sessions before the failing one stay restored: the caller must not
    /// start serving.
    pub fn restore_into(
        &self,
        gateway: u16,
        table: &mut SessionTable,
        directory: &SessionDirectory,
    ) -> Result<usize, SessionSnapshotError> {
        if self.gateway != gateway {
            return Err(SessionSnapshotError::WrongGateway {
                expected: gateway,
                found: self.gateway,
            });
        }
        for s in &self.sessions {
            match directory.name(s.id) {
                None => return Err(SessionSnapshotError::UnknownSession(s.id)),
                Some(name) if name != s.name => return Err(SessionSnapshotError::NameMismatch(s.id)),
                Some(_) => {}
            }
            if table.get(s.id).is_some() {
                return Err(SessionSnapshotError::AlreadyOpen(s.id));
            }
            if !directory.claim(s.id, gateway) {
                let other = directory.owner(s.id).unwrap_or(gateway);
                return Err(SessionSnapshotError::TwoGateways(s.id, other, gateway));
            }
            let session = table
                .open(s.id, s.name)
                .ok_or(SessionSnapshotError::UnknownSession(s.id))?;
            session.next_client_seq = s.next_client_seq;
            session.next_reply_seq = s.next_reply_seq;
            session.last_staged = s.last_staged;
            session.replied_client_seq = s.replied_client_seq;
            for (seq, m) in (s.first_reply_seq..).zip(&s.replies) {
                session.log.push(seq, m);
            }
        }
        Ok(self.sessions.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::SessionCredential;
    use peregrine_wire::message::set_reply_client_seq;
    use peregrine_wire::moldudp64::session_name;
    use proptest::prelude::*;

    const SESSIONS: usize = 4;

    fn directory() -> SessionDirectory {
        let creds: Vec<SessionCredential> = (0..SESSIONS)
            .map(|i| SessionCredential {
                name: session_name(&format!("S{i}")),
                secret: [b' '; 10],
            })
            .collect();
        SessionDirectory::new(&creds).unwrap()
    }

    /// A replay step: session `id` either had input `client seq` journaled
    /// or was sent a reply answering it.
    #[derive(Clone, Debug)]
    enum Step {
        Input(u32),
        Reply(u32, u64, u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..SESSIONS as u32).prop_map(Step::Input),
            (0..SESSIONS as u32, 0u64..40, any::<u8>()).prop_map(|(s, c, t)| Step::Reply(s, c, t)),
        ]
    }

    /// Applies steps as journal recovery does (client sequences of a
    /// session's inputs increase by one).
    fn replay(table: &mut SessionTable, directory: &SessionDirectory, gateway: u16, steps: &[Step]) {
        for st in steps {
            let id = match st {
                Step::Input(id) | Step::Reply(id, _, _) => *id,
            };
            assert!(directory.claim(id, gateway));
            let s = table.open(id, directory.name(id).unwrap()).unwrap();
            match *st {
                Step::Input(_) => {
                    let next = s.next_client_seq;
                    s.restore_input(next);
                }
                Step::Reply(_, client_seq, tag) => {
                    let mut m = [tag; MESSAGE_LEN];
                    set_reply_client_seq(&mut m, client_seq);
                    s.restore_reply(&m);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        #[test]
        fn snapshot_then_replay_the_rest_equals_replaying_everything(
            steps in prop::collection::vec(step(), 0..120),
            cut in 0usize..120,
            depth in 0usize..12,
        ) {
            let cut = cut.min(steps.len());
            let gateway = 3;
            let full_dir = directory();
            let mut full = SessionTable::with_reply_log(SESSIONS, depth);
            replay(&mut full, &full_dir, gateway, &steps);

            let first_dir = directory();
            let mut first = SessionTable::with_reply_log(SESSIONS, depth);
            replay(&mut first, &first_dir, gateway, &steps[..cut]);
            let bytes = SessionsSnapshot::capture(gateway, &first).encode();
            let decoded = SessionsSnapshot::decode(&bytes).unwrap();
            prop_assert_eq!(&decoded, &SessionsSnapshot::capture(gateway, &first));

            let dir = directory();
            let mut restored = SessionTable::with_windows(SESSIONS, depth, 4);
            prop_assert_eq!(decoded.restore_into(gateway, &mut restored, &dir).unwrap(), first.len());
            for id in 0..SESSIONS as u32 {
                prop_assert_eq!(dir.owner(id), first_dir.owner(id));
            }
            replay(&mut restored, &dir, gateway, &steps[cut..]);
            prop_assert_eq!(
                SessionsSnapshot::capture(gateway, &restored),
                SessionsSnapshot::capture(gateway, &full)
            );
            for id in 0..SESSIONS as u32 {
                prop_assert_eq!(dir.owner(id), full_dir.owner(id));
                if let (Some(a), Some(b)) = (restored.get(id), full.get(id)) {
                    for c in 0..40 {
                        prop_assert_eq!(a.log.find(c), b.log.find(c));
                    }
                }
            }
        }

        #[test]
        fn damaged_snapshots_are_errors_or_consistent(
            steps in prop::collection::vec(step(), 0..60),
            flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
            truncate in any::<prop::sample::Index>(),
        ) {
            let dir = directory();
            let mut table = SessionTable::with_reply_log(SESSIONS, 8);
            replay(&mut table, &dir, 0, &steps);
            let bytes = SessionsSnapshot::capture(0, &table).encode();
            let mut damaged = bytes.clone();
            for (at, mask) in &flips {
                let i = at.index(damaged.len());
                damaged[i] ^= mask;
            }
            if let Ok(s) = SessionsSnapshot::decode(&damaged) {
                prop_assert_eq!(s.encode(), damaged);
                let mut t = SessionTable::with_reply_log(SESSIONS, 8);
                let _ = s.restore_into(s.gateway, &mut t, &directory());
            }
            let cut = truncate.index(bytes.len());
            prop_assert!(
                matches!(SessionsSnapshot::decode(&bytes[..cut]), Err(SessionSnapshotError::Truncated { .. })),
                "cut at {}", cut
            );
        }
    }

    #[test]
    fn restore_checks_gateway_names_claims_and_freshness() {
        let dir = directory();
        let mut table = SessionTable::with_reply_log(SESSIONS, 4);
        replay(&mut table, &dir, 1, &[Step::Input(2), Step::Reply(2, 1, 9)]);
        let snap = SessionsSnapshot::capture(1, &table);
        let fresh = || SessionTable::with_reply_log(SESSIONS, 4);
        assert_eq!(
            snap.restore_into(0, &mut fresh(), &directory()),
            Err(SessionSnapshotError::WrongGateway {
                expected: 0,
                found: 1
            })
        );
        let other = directory();
        assert!(other.claim(2, 5));
        assert_eq!(
            snap.restore_into(1, &mut fresh(), &other),
            Err(SessionSnapshotError::TwoGateways(2, 5, 1))
        );
        assert_eq!(
            snap.restore_into(1, &mut table, &dir),
            Err(SessionSnapshotError::AlreadyOpen(2))
        );
        let mut renamed = snap.clone();
        renamed.sessions[0].name = session_name("ZZ");
        assert_eq!(
            renamed.restore_into(1, &mut fresh(), &directory()),
            Err(SessionSnapshotError::NameMismatch(2))
        );
        let mut far = snap.clone();
        far.sessions[0].id = 99;
        assert_eq!(
            far.restore_into(1, &mut fresh(), &directory()),
            Err(SessionSnapshotError::UnknownSession(99))
        );
        let mut bytes = snap.encode();
        bytes[8] = 2;
        assert_eq!(
            SessionsSnapshot::decode(&bytes),
            Err(SessionSnapshotError::UnsupportedVersion(2))
        );
        let mut bytes = snap.encode();
        bytes.push(0);
        assert_eq!(
            SessionsSnapshot::decode(&bytes),
            Err(SessionSnapshotError::TrailingBytes(1))
        );
        assert_eq!(
            SessionsSnapshot::decode(b"nope"),
            Err(SessionSnapshotError::Truncated { at: 0, needed: 4 })
        );
    }
}
