// Over 600 lines: the decisions of the session layer (login, dedup, reorder, gaps, rate, back-pressure) share one per-session state and read best in one place.
//! The session layer both gateways share, as a state machine without I/O.
//!
//! A gateway hands the core what arrived (a login, one message with its
//! client sequence) and gets back what to do ([`LoginVerdict`],
//! [`Action`]); the gateway then does it with its own framing and port.
//! Everything that decides, and all the per-session state it decides on,
//! lives here: authentication and takeover, at-most-once dedup (answering a
//! copy with its original replies or reject), the reorder window, gap
//! reporting and its pacing, the rate limit, the reject log and the
//! input-ring back-pressure clock. Keeping the decisions free of sockets is
//! what lets them be unit-tested message by message, and keeps the UDP and
//! TCP gateways from drifting apart.
//!
//! The core never allocates after construction and never panics on input;
//! times are the caller's coarse receive-burst clock, in nanoseconds.

use crate::counters::GatewayCounters;
use crate::directory::{LoginError, LoginPolicy, SessionDirectory};
use crate::leadership::Leadership;
use crate::options::{nanos, GatewayOptions};
use crate::session::{RateLimit, Session, SessionTable};
use peregrine_netio::Peer;
use peregrine_wire::message::{classify_inbound, RejectReason, MESSAGE_LEN};
use peregrine_wire::moldudp64::SessionName;
use peregrine_wire::SessionRef;
use std::net::SocketAddr;
use std::sync::Arc;

/// What to do with one inbound message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Copy the message into the input ring with this client sequence
    /// (the core has consumed the sequence number and counted it accepted;
    /// the caller had said the ring has room).
    Stage {
        /// The message's client sequence.
        client_seq: u64,
    },
    /// The message took its client sequence number but is refused
    /// (malformed, over the rate limit): answer with the session-layer
    /// Reject built by [`SessionCore::reject_message`].
    Reject {
        /// Why.
        reason: RejectReason,
        /// The message's client sequence.
        client_seq: u64,
    },
    /// Refused without taking a sequence number (a gap, a copy too old to
    /// answer): answer with the session-layer Reject built by
    /// [`SessionCore::reject_message`] for this reason and client sequence.
    Refuse {
        /// Why.
        reason: RejectReason,
        /// The client sequence the reject names (for a gap: the missing
        /// message, not the one that revealed it).
        client_seq: u64,
    },
    /// A copy of a message already answered: send its original replies
    /// again, reply sequences `first..end`, from the session's reply log.
    ResendReplies {
        /// First reply sequence.
        first: u64,
        /// One past the last.
        end: u64,
    },
    /// A copy of a message refused at the session layer: send this same
    /// reject again (unsequenced).
    ResendReject([u8; MESSAGE_LEN]),
    /// Kept in the reorder window until the gap before it fills.
    Hold,
    /// Nothing to send (counted): a copy already held, a copy whose reply
    /// is still in flight, a gap already reported, a session without a
    /// peer.
    Ignore,
    /// The input ring is full: nothing was consumed; try this message
    /// again later (see [`SessionCore::ring_full`] for when to give up).
    RingFull,
}

/// What to do about a ring that stays full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Keep the message waiting (in the socket buffer, or the port).
    Wait,
    /// Full for longer than `busy_after`: refuse new messages with Busy.
    Busy,
}

/// A login attempt, as both protocols carry it.
#[derive(Clone, Copy, Debug)]
pub struct LoginRequest {
    /// The session asked for.
    pub name: SessionName,
    /// The secret offered.
    pub secret: [u8; crate::directory::SECRET_LEN],
    /// Where the client is: replies go there once accepted.
    pub peer: Peer,
}

/// The answer to a [`LoginRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginVerdict {
    /// Bound to `peer`; the gateway sends its protocol's acceptance.
    Accepted {
        /// The session id.
        session: u32,
        /// Next client sequence the session expects.
        next_client_seq: u64,
        /// Next reply sequence the session will be sent.
        next_reply_seq: u64,
        /// The peer the session was live on and was taken from (a TCP
        /// gateway closes that connection).
        taken_over: Option<Peer>,
    },
    /// Refused; the gateway sends its protocol's rejection.
    Rejected(LoginError),
    /// Refused because this node does not serve clients now (a cluster
    /// follower); the gateway sends its protocol's `L` refusal with what
    /// it can carry of the hint.
    NotLeader {
        /// The leader's node id, if known.
        leader_id: Option<u64>,
        /// The leader's address for this same gateway, if known.
        leader: Option<SocketAddr>,
    },
}

/// How a TCP login's requested sequence is honoured (SoupBinTCP replays
/// from a requested reply sequence and refuses the login when it cannot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Replay whatever the log still has from this reply sequence (0:
    /// nothing); never refuses.
    BestEffort(u64),
    /// Replay from this reply sequence (0 or past the end: from now on);
    /// refuse the login when the log no longer reaches back that far.
    Strict(u64),
}

/// Which of a session's replies a request for a range of them gets (see
/// [`SessionCore::reply_range`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyRange {
    /// First reply sequence to resend.
    pub first: u64,
    /// One past the last (`first == end`: none).
    pub end: u64,
    /// Some requested replies have left the reply log: the first reply
    /// sequence still kept, for the client to be told (`None`: nothing
    /// requested is gone).
    pub gone_before: Option<u64>,
}

/// One session layer: the sessions of one gateway and the rules they obey.
pub struct SessionCore {
    gateway: u16,
    pub(crate) sessions: SessionTable,
    directory: Arc<SessionDirectory>,
    policy: LoginPolicy,
    rate_limit: RateLimit,
    idle_ns: u64,
    busy_after_ns: u64,
    /// A gap still open this long after its report is reported again, ns.
    gap_repeat_ns: u64,
    /// When the input ring was first seen full in the current stretch (0:
    /// it has room).
    full_since_ns: u64,
    /// Flow-control window advertised at login: what the reorder window
    /// and the reply log both cover.
    window: u32,
    /// The coarse receive time of the burst being handled, ns.
    now_ns: u64,
    /// The node's leadership (`None`: always serving); read at login only.
    leadership: Option<Arc<Leadership>>,
    pub(crate) counters: GatewayCounters,
}

impl SessionCore {
    /// The session layer of gateway `gateway`, admitting the sessions of
    /// `directory`; each session gets a reply log of `reply_log_depth` and,
    /// when `reorder` is set, a reorder window of `opts.reorder_window`
    /// (stream transports deliver in order and hold nothing).
    pub fn new(gateway: u16, directory: Arc<SessionDirectory>, opts: &GatewayOptions, reorder: bool) -> Self {
        let n = directory.len();
        let sessions = if reorder {
            SessionTable::with_windows(n, opts.reply_log_depth, opts.reorder_window)
        } else {
            SessionTable::with_reply_log(n, opts.reply_log_depth)
        };
        SessionCore {
            gateway,
            sessions,
            directory,
            policy: opts.login_policy,
            rate_limit: opts.rate_limit,
            idle_ns: nanos(opts.idle_timeout),
            busy_after_ns: nanos(opts.busy_after),
            gap_repeat_ns: nanos(opts.gap_report_repeat),
            full_since_ns: 0,
            window: opts
                .reorder_window
                .min(opts.reply_log_depth)
                .min(u32::MAX as usize) as u32,
            now_ns: 0,
            leadership: opts.leadership.clone(),
            counters: GatewayCounters::default(),
        }
    }

    /// Sets the receive time of the burst about to be handled.
    #[inline]
    pub fn set_now(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
    }

    /// The receive time set last.
    #[inline]
    pub fn now(&self) -> u64 {
        self.now_ns
    }

    /// The gateway id stamped on staged messages.
    pub fn gateway(&self) -> u16 {
        self.gateway
    }

    /// The flow-control window advertised to UDP clients at login.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// The idle timeout, ns.
    pub fn idle_ns(&self) -> u64 {
        self.idle_ns
    }

    /// Counters so far.
    pub fn counters(&self) -> &GatewayCounters {
        &self.counters
    }

    /// Counters, for the transport-specific events the gateway counts.
    pub fn counters_mut(&mut self) -> &mut GatewayCounters {
        &mut self.counters
    }

    /// The sessions.
    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    /// The sessions, mutably (recovery).
    pub fn sessions_mut(&mut self) -> &mut SessionTable {
        &mut self.sessions
    }

    /// Session `id`.
    #[inline]
    pub fn session(&self, id: u32) -> Option<&Session> {
        self.sessions.get(id)
    }

    /// Where session `id`'s replies go and its name, if it has a peer.
    #[inline]
    pub fn route(&self, id: u32) -> Option<(Peer, SessionName)> {
        let s = self.sessions.get(id)?;
        Some((s.peer?, s.name))
    }

    /// The session `name` if it is logged in here and bound to `peer`.
    #[inline]
    pub fn bound_session(&self, peer: Peer, name: &SessionName) -> Option<u32> {
        let id = self.directory.id(name)?;
        let s = self.sessions.get(id)?;
        (s.peer == Some(peer)).then_some(id)
    }

    /// Notes that the client of session `id` was heard from now.
    #[inline]
    pub fn heard_from(&mut self, id: u32) {
        let now = self.now_ns;
        if let Some(s) = self.sessions.get_mut(id) {
            s.last_rx_ns = now;
        }
    }

    /// Unbinds session `id` from `peer` if it is bound there (logout, a
    /// closed connection); replies are then logged, not sent.
    pub fn unbind(&mut self, id: u32, peer: Peer) {
        if let Some(s) = self.sessions.get_mut(id) {
            if s.peer == Some(peer) {
                s.peer = None;
            }
        }
    }

    // ---- login -------------------------------------------------------

    /// Decides a login: the secret must be the session's, the session held
    /// by no other gateway and, under [`LoginPolicy::Reject`], not live on
    /// another peer (a connection is live until closed; a datagram address
    /// while its client was heard from within the idle timeout). `replay`
    /// is checked for [`Replay::Strict`]. Accepting binds the session to
    /// the peer, forgets messages held for the old one (a restarting client
    /// sends them again, and a stale copy must not stand in for a new
    /// message with the same number) and counts the login.
    ///
    /// While the node's [`Leadership`] says it does not serve, every login
    /// is refused first ([`LoginVerdict::NotLeader`], counted
    /// `logins_refused_not_leader`), whatever its credentials: only the
    /// leader's gateways admit sessions.
    pub fn login(&mut self, req: &LoginRequest, replay: Replay) -> LoginVerdict {
        if let Some(l) = self.leadership.as_deref().filter(|l| !l.serving()) {
            let (leader_id, leader) = l.leader_hint(self.gateway);
            self.counters.logins_refused_not_leader += 1;
            return LoginVerdict::NotLeader { leader_id, leader };
        }
        match self.try_login(req, replay) {
            Ok(v) => v,
            Err(e) => {
                self.counters.logins_rejected += 1;
                LoginVerdict::Rejected(e)
            }
        }
    }

    fn try_login(&mut self, req: &LoginRequest, replay: Replay) -> Result<LoginVerdict, LoginError> {
        let id = self
            .directory
            .authenticate(&req.name, &req.secret, self.gateway)?;
        let (now, idle, policy) = (self.now_ns, self.idle_ns, self.policy);
        let fresh = self.sessions.get(id).is_none();
        let s = self.sessions.open(id, req.name).ok_or(LoginError::Unavailable)?;
        if let Replay::Strict(from) = replay {
            let next = s.next_reply_seq;
            if from != 0 && from < next && s.log.get(from).is_none() {
                return Err(LoginError::Unavailable);
            }
        }
        let live = match s.peer {
            Some(old @ Peer::Conn(_)) => Some(old),
            Some(old @ Peer::Addr(_)) if old != req.peer && now.saturating_sub(s.last_rx_ns) <= idle => {
                Some(old)
            }
            _ => None,
        };
        if live.is_some() && policy == LoginPolicy::Reject {
            return Err(LoginError::Unavailable);
        }
        s.peer = Some(req.peer);
        s.last_rx_ns = now;
        s.last_tx_ns = now;
        s.window.clear();
        s.gap_reported_for = 0;
        let verdict = LoginVerdict::Accepted {
            session: id,
            next_client_seq: s.next_client_seq,
            next_reply_seq: s.next_reply_seq,
            taken_over: live,
        };
        self.counters.logins += 1;
        self.counters.sessions += fresh as u64;
        self.counters.logins_taken_over += live.is_some() as u64;
        Ok(verdict)
    }

    // ---- inbound messages ----------------------------------------------

    /// Decides message `client_seq` (bytes `block`) of session `id` on a
    /// transport that numbers messages itself (MoldUDP64): a copy of one
    /// seen before is answered from the logs, one ahead of a gap is held
    /// or refused, the expected one is taken when `ring_has_room`.
    /// Staging held messages that now follow on is
    /// [`SessionCore::take_held`]'s job.
    pub fn inbound(&mut self, id: u32, client_seq: u64, block: &[u8], ring_has_room: bool) -> Action {
        let Some(expected) = self.sessions.get(id).map(|s| s.next_client_seq) else {
            return Action::Ignore;
        };
        if client_seq < expected {
            // Seen before: never sequenced twice; answer with the original
            // reply (at-most-once + client retransmission = exactly-once).
            self.counters.rx_messages += 1;
            return self.answer_copy(id, client_seq);
        }
        if client_seq > expected {
            return self.ahead_of_gap(id, expected, client_seq, block);
        }
        self.in_order(id, client_seq, block, ring_has_room)
    }

    /// The common case of a datagram decided in one pass: session `id`
    /// expects client sequence `first` and holds nothing behind a gap.
    /// Takes `blocks` in order, numbering them from `first`, while each is
    /// a well-formed message within the rate limit and fewer than `room`
    /// were taken; `stage(client_seq, block)` copies each taken one into
    /// the input ring, which must have room for `room` more. Returns how
    /// many were taken, with `blocks` left at the first one not taken
    /// (untouched when the case does not apply).
    ///
    /// Every taken block gets exactly what [`SessionCore::inbound`] would
    /// have decided for it (consumed number, counted accepted,
    /// [`Action::Stage`]) without the per-message lookups. The block it
    /// stops at is left to `inbound`, which decides it the same way it
    /// would have: the stop changed nothing (a rate-limit check refused at
    /// the burst's time refuses again at that time, refilling nothing).
    pub fn take_in_order_run<'a, I, B>(
        &mut self,
        id: u32,
        first: u64,
        blocks: &mut I,
        room: usize,
        mut stage: impl FnMut(u64, &'a B),
    ) -> usize
    where
        I: Iterator<Item = &'a B> + Clone,
        B: AsRef<[u8]> + ?Sized + 'a,
    {
        let (now, limit) = (self.now_ns, self.rate_limit);
        let Some(s) = self.sessions.get_mut(id) else {
            return 0;
        };
        if s.next_client_seq != first || !s.window.is_empty() {
            return 0;
        }
        let mut taken = 0usize;
        // The session's sequence is kept here and stored once for the run.
        let mut next = first;
        while taken < room {
            let mut rest = blocks.clone();
            let Some(block) = rest.next() else { break };
            if classify_inbound(block.as_ref()).is_err() || !s.admit(now, limit) {
                break;
            }
            stage(next, block);
            next += 1;
            *blocks = rest;
            taken += 1;
        }
        if taken > 0 {
            s.next_client_seq = next;
            s.last_staged = next - 1;
            self.full_since_ns = 0;
            self.counters.rx_messages += taken as u64;
            self.counters.accepted += taken as u64;
        }
        taken
    }

    /// Decides the next message of session `id` on a transport whose
    /// sequence is implicit (SoupBinTCP: 1, 2, ... in arrival order).
    pub fn inbound_next(&mut self, id: u32, block: &[u8], ring_has_room: bool) -> Action {
        match self.sessions.get(id).map(|s| s.next_client_seq) {
            Some(seq) => self.in_order(id, seq, block, ring_has_room),
            None if !ring_has_room => {
                self.counters.ring_full += 1;
                Action::RingFull
            }
            None => Action::Ignore,
        }
    }

    /// The expected message: taken if the ring has room.
    fn in_order(&mut self, id: u32, client_seq: u64, block: &[u8], ring_has_room: bool) -> Action {
        if !ring_has_room {
            self.counters.ring_full += 1;
            return Action::RingFull;
        }
        self.full_since_ns = 0;
        if let Some(s) = self.sessions.get_mut(id) {
            // A copy held earlier (the ring was full) is this message.
            s.window.take(client_seq);
        }
        self.take(id, client_seq, block)
    }

    /// Message `client_seq` > `expected`: held within the reorder window,
    /// refused past it (with the gap reported, paced).
    fn ahead_of_gap(&mut self, id: u32, expected: u64, client_seq: u64, block: &[u8]) -> Action {
        let held = match self.sessions.get_mut(id) {
            Some(s) if s.window.holds(expected, client_seq) => Some(s.window.insert(client_seq, block)),
            _ => None,
        };
        match held {
            Some(true) => {
                self.counters.reordered_held += 1;
                Action::Hold
            }
            Some(false) => {
                // A copy already kept.
                self.counters.rx_messages += 1;
                self.counters.dedup_hits += 1;
                Action::Ignore
            }
            None => {
                // Beyond the reorder window: refused (the client sends it
                // again once the gap has filled), and the gap reported.
                self.counters.rx_messages += 1;
                self.counters.rejected_gap += 1;
                let action = self.report_gap(id, expected);
                if action == Action::Ignore {
                    self.counters.dropped_gap += 1;
                }
                action
            }
        }
    }

    /// Takes session `id`'s next expected message (the caller checked ring
    /// room): validated and rate-limited; either way it consumes the
    /// client sequence number.
    fn take(&mut self, id: u32, client_seq: u64, block: &[u8]) -> Action {
        self.counters.rx_messages += 1;
        let (now, limit) = (self.now_ns, self.rate_limit);
        let Some(s) = self.sessions.get_mut(id) else {
            return Action::Ignore;
        };
        s.next_client_seq += 1;
        if let Err(e) = classify_inbound(block) {
            self.counters.count_malformed(e);
            return Action::Reject {
                reason: e.reason(),
                client_seq,
            };
        }
        if !s.admit(now, limit) {
            self.counters.rejected_rate_limited += 1;
            return Action::Reject {
                reason: RejectReason::RateLimited,
                client_seq,
            };
        }
        s.last_staged = client_seq;
        self.counters.accepted += 1;
        Action::Stage { client_seq }
    }

    /// The next held message of session `id` if it now follows on and the
    /// ring has room: taken (as [`SessionCore::inbound`] takes the
    /// expected message) and returned with its bytes (a held block longer
    /// than a message keeps its first 100 bytes and its real length).
    pub fn take_held(&mut self, id: u32, ring_has_room: bool) -> Option<(Action, [u8; MESSAGE_LEN], usize)> {
        if !ring_has_room {
            return None;
        }
        let s = self.sessions.get_mut(id)?;
        let seq = s.next_client_seq;
        let (msg, len) = s.window.take(seq)?;
        let len = len.min(MESSAGE_LEN);
        Some((self.take(id, seq, &msg[..len]), msg, len))
    }

    /// After a datagram: if session `id` still holds messages behind a
    /// gap, names the missing one (a SequenceGap refusal, paced as
    /// [`SessionCore::report_gap`] says); else [`Action::Ignore`].
    pub fn gap_after_datagram(&mut self, id: u32) -> Action {
        match self.sessions.get(id).filter(|s| !s.window.is_empty()) {
            Some(s) => {
                let expected = s.next_client_seq;
                self.report_gap(id, expected)
            }
            None => Action::Ignore,
        }
    }

    /// Tells the client which message is missing: a SequenceGap refusal
    /// whose client sequence is `expected`, the one the session waits for;
    /// due for a new gap at once, for the same gap again only after
    /// [`GatewayOptions::gap_report_repeat`] (the resend may have been lost too). The
    /// client resends exactly that message instead of guessing from
    /// timeouts, which at high rates would resend every message held
    /// behind the gap. [`Action::Ignore`] when not due.
    fn report_gap(&mut self, id: u32, expected: u64) -> Action {
        let now = self.now_ns;
        let due = self.sessions.get_mut(id).is_some_and(|s| {
            let due =
                s.gap_reported_for != expected || now.saturating_sub(s.gap_reported_ns) >= self.gap_repeat_ns;
            if due {
                s.gap_reported_for = expected;
                s.gap_reported_ns = now;
            }
            due
        });
        if !due {
            return Action::Ignore;
        }
        self.counters.gap_notices += 1;
        Action::Refuse {
            reason: RejectReason::SequenceGap,
            client_seq: expected,
        }
    }

    /// A copy of message `client_seq`: its reject again, its original
    /// replies again, nothing while its reply is still in flight, or
    /// TooOld when the logs no longer have its answer.
    fn answer_copy(&mut self, id: u32, client_seq: u64) -> Action {
        self.counters.dedup_hits += 1;
        let Some(s) = self.sessions.get(id).filter(|s| s.peer.is_some()) else {
            return Action::Ignore;
        };
        if let Some(r) = s.rejects.find(client_seq) {
            // Refused at the session layer: the same answer again.
            return Action::ResendReject(*r);
        }
        if client_seq <= s.replied_client_seq {
            if let Some((first, n)) = s.log.find(client_seq) {
                return Action::ResendReplies {
                    first,
                    end: first + n as u64,
                };
            }
        }
        if client_seq <= s.replied_client_seq || client_seq > s.last_staged {
            // Neither in flight (taken, reply not yet sent) nor kept: its
            // answer (a reply, or a reject whose log entry was
            // overwritten) is gone.
            self.counters.rejected_too_old += 1;
            return Action::Refuse {
                reason: RejectReason::TooOld,
                client_seq,
            };
        }
        // The original is still being sequenced: its reply will answer
        // this copy too.
        Action::Ignore
    }

    // ---- reply requests -------------------------------------------------

    /// Which replies answer a request for `count` replies of session `id`
    /// from reply sequence `from` on (a retransmission request, a login's
    /// replay): exactly the requested ones the reply log still keeps, at
    /// most `max` counted from `from`, none at or past the next reply
    /// sequence; never later replies in place of gone ones. When the
    /// request reaches below the oldest reply kept, `gone_before` names
    /// that oldest one (counted `replies_gone`) so the client learns that
    /// the replies before it are gone instead of seeing a silent hole.
    /// `None` for an unknown session.
    pub fn reply_range(&mut self, id: u32, from: u64, count: u64, max: u64) -> Option<ReplyRange> {
        let s = self.sessions.get(id)?;
        let next = s.next_reply_seq;
        let oldest = s.log.oldest().unwrap_or(next);
        let requested_end = from.saturating_add(count.min(max)).min(next);
        let first = from.max(oldest);
        let gone_before = (count > 0 && from < oldest && from < next).then_some(oldest);
        self.counters.replies_gone += gone_before.is_some() as u64;
        Some(ReplyRange {
            first,
            end: requested_end.max(first),
            gone_before,
        })
    }

    // ---- back-pressure -------------------------------------------------

    /// The ring was found full at `now_ns` (a fresh clock reading, not the
    /// burst time): [`Backpressure::Wait`] until it has been full for
    /// `busy_after`, then [`Backpressure::Busy`]. The stretch ends when a
    /// message is next taken.
    pub fn ring_full(&mut self, now_ns: u64) -> Backpressure {
        if self.full_since_ns == 0 {
            self.full_since_ns = now_ns;
        }
        if now_ns.saturating_sub(self.full_since_ns) < self.busy_after_ns {
            Backpressure::Wait
        } else {
            Backpressure::Busy
        }
    }

    /// Counts `untaken` messages refused Busy (the gateway answers Busy for
    /// the first, and the client resends from it).
    pub fn refused_busy(&mut self, untaken: u64) {
        self.counters.rx_messages += untaken;
        self.counters.rejected_busy += untaken;
    }

    // ---- answers -------------------------------------------------------

    /// Builds the session-layer Reject (`reason`) answering client message
    /// `client_seq` of session `id`, whose bytes were `block`, stamped with
    /// the burst's receive time; returns it with where to send it, or
    /// `None` (counted unroutable) when the session has no peer.
    ///
    /// Session-layer rejects are *unsequenced*: they do not take a reply
    /// sequence number. The reply sequence then numbers exactly the
    /// application's output, which the journal reproduces on restart. A
    /// reject other than SequenceGap, Busy and TooOld is kept in the
    /// session's reject log so a retransmission of the refused message
    /// gets the same answer: Gap and Busy refuse a message without taking
    /// its sequence number (the client sends it again and it is then
    /// taken), and TooOld answers a copy, not a message, so it must not
    /// push out the rejects that do answer messages.
    pub fn reject_message(
        &mut self,
        id: u32,
        block: &[u8],
        reason: RejectReason,
        client_seq: u64,
    ) -> Option<(Peer, SessionName, [u8; MESSAGE_LEN])> {
        let r = peregrine_wire::message::Reject::for_block(block, reason as u16, client_seq, self.now_ns);
        let bytes: [u8; MESSAGE_LEN] = zerocopy::transmute!(r);
        let Some(s) = self.sessions.get_mut(id) else {
            self.counters.replies_unroutable += 1;
            return None;
        };
        if !matches!(
            reason,
            RejectReason::SequenceGap | RejectReason::Busy | RejectReason::TooOld
        ) {
            s.rejects.push(&bytes);
        }
        let Some(peer) = s.peer else {
            self.counters.replies_unroutable += 1;
            return None;
        };
        self.counters.tx_replies += 1;
        self.counters.tx_packets += 1;
        Some((peer, s.name, bytes))
    }

    /// Where staged messages of session `id` come from.
    #[inline]
    pub fn origin(&self, id: u32) -> SessionRef {
        SessionRef::new(self.gateway, id)
    }
}

#[cfg(test)]
mod tests;
