//! Rebuilding sessions after a restart from the journal replay.
//!
//! The journal holds every sequenced message with its session and client
//! sequence, and the application is deterministic, so replaying the journal
//! through it yields exactly the replies each session was sent, in order.
//! From those two streams each session gets back its next expected client
//! sequence (the dedup state), its next reply sequence and its reply log,
//! and the directory gets back which gateway holds it.
//!
//! Not restored: session-layer rejects (rate limit, malformed) are not
//! journaled, so client sequence numbers they used after a session's last
//! journaled message are expected again after a restart; LoginAccepted
//! tells the client where the server resumes. Journals written before ids
//! were configured positions (session 1's arrival order) must not be
//! restored into this layout.

use crate::counters::GatewayCounters;
use crate::directory::SessionDirectory;
use crate::session::SessionTable;
use crate::GatewayLoop;
use peregrine_sequencer::slot::{OutboundKind, OutboundSlot};
use peregrine_wire::message::MESSAGE_LEN;
use peregrine_wire::SessionRef;

/// A journal record or reply that names a session this configuration
/// cannot hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The session id is not configured (sessions are identified by their
    /// position in the configuration: never reorder or remove entries).
    #[error("the journal names session id {0}, but only {1} sessions are configured")]
    UnknownSession(u32, usize),
    /// The gateway id does not exist in this configuration.
    #[error("the journal names gateway {0}, but only {1} gateways are configured")]
    UnknownGateway(u16, usize),
    /// The session was journaled on two gateways.
    #[error("session id {0} appears on gateways {1} and {2}")]
    TwoGateways(u32, u16, u16),
}

/// Feeds replayed records and replies into the gateways' session tables.
pub struct SessionRestore<'a> {
    directory: &'a SessionDirectory,
    gateways: &'a mut [Box<dyn GatewayLoop>],
    /// Records restored.
    pub inputs: u64,
    /// Replies restored.
    pub replies: u64,
    error: Option<RestoreError>,
}

impl<'a> SessionRestore<'a> {
    /// Restores into `gateways` (indexed by gateway id) the sessions of
    /// `directory`.
    pub fn new(directory: &'a SessionDirectory, gateways: &'a mut [Box<dyn GatewayLoop>]) -> Self {
        SessionRestore {
            directory,
            gateways,
            inputs: 0,
            replies: 0,
            error: None,
        }
    }

    fn session(&mut self, at: SessionRef) -> Option<&mut crate::session::Session> {
        if self.error.is_some() {
            return None;
        }
        let n = self.gateways.len();
        let Some(name) = self.directory.name(at.index) else {
            self.error = Some(RestoreError::UnknownSession(at.index, self.directory.len()));
            return None;
        };
        if at.gateway as usize >= n {
            self.error = Some(RestoreError::UnknownGateway(at.gateway, n));
            return None;
        }
        if !self.directory.claim(at.index, at.gateway) {
            let other = self.directory.owner(at.index).unwrap_or(at.gateway);
            self.error = Some(RestoreError::TwoGateways(at.index, other, at.gateway));
            return None;
        }
        self.gateways[at.gateway as usize]
            .sessions_mut()?
            .open(at.index, name)
    }

    /// A journaled message of session `origin` with client sequence
    /// `client_seq`.
    pub fn input(&mut self, origin: SessionRef, client_seq: u64) {
        if let Some(s) = self.session(origin) {
            s.restore_input(client_seq);
            self.inputs += 1;
        }
    }

    /// A reply the application sent to `to` during replay.
    pub fn reply(&mut self, to: SessionRef, msg: &[u8; MESSAGE_LEN]) {
        if let Some(s) = self.session(to) {
            s.restore_reply(msg);
            self.replies += 1;
        }
    }

    /// The first inconsistency met, if any (the server must not start).
    pub fn finish(self) -> Result<(u64, u64), RestoreError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok((self.inputs, self.replies)),
        }
    }
}

/// A cluster follower's session-state notice from the sequencer (a record
/// or a reply of the replicated log, see [`OutboundKind`]): applied to
/// `sessions` of gateway `gateway` exactly as [`SessionRestore`] applies
/// the journal at start-up, opening the session (named by `directory`) on
/// first use. A notice this gateway cannot hold is counted and dropped.
pub(crate) fn apply_notice(
    sessions: &mut SessionTable,
    directory: &SessionDirectory,
    gateway: u16,
    slot: &OutboundSlot,
    counters: &mut GatewayCounters,
) {
    let id = slot.to.index;
    let session = match directory.name(id) {
        Some(name) if slot.to.gateway == gateway && directory.claim(id, gateway) => sessions.open(id, name),
        _ => None,
    };
    let Some(s) = session else {
        counters.restore_refused += 1;
        return;
    };
    match slot.kind {
        OutboundKind::RestoreInput => s.restore_input(slot.client_seq),
        OutboundKind::RestoreReply => s.restore_reply(&slot.msg),
        OutboundKind::Reply => return,
    }
    counters.restored_from_log += 1;
}
