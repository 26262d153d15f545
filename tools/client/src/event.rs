//! Typed replies: what a 100-byte block from the server means to the
//! session that receives it.
//!
//! Decoding reads through the zerocopy layouts of
//! [`peregrine_wire::message`], copies the few fields an application acts on
//! into a small `Copy` value, and allocates nothing.

use peregrine_wire::message::{
    Ack, Echo, ExecReport, Liquidity, LoginAccepted, LoginRejected, MessageType, Reject, RejectReason, Side,
    MESSAGE_LEN,
};
use std::net::SocketAddr;
use zerocopy::FromBytes;

/// Why the server refused a login (the SoupBinTCP reject reason byte, which
/// UDP LoginRejected carries too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginRejection {
    /// `A`: not authorised (unknown session or wrong secret).
    NotAuthorised,
    /// `S`: session not available (logged in elsewhere).
    SessionUnavailable,
    /// `L`: the node is not the cluster's leader and serves no clients;
    /// UDP refusals name the leader when the node knows it (SoupBinTCP's
    /// carry no hint: both `None`).
    NotLeader {
        /// The leader's node id.
        leader_id: Option<u64>,
        /// The leader's address for the same gateway.
        leader: Option<SocketAddr>,
    },
    /// Any other byte.
    Other(u8),
}

impl LoginRejection {
    /// The reason for the wire's reason byte (no leader hint).
    pub fn from_code(code: u8) -> LoginRejection {
        match code {
            b'A' => LoginRejection::NotAuthorised,
            b'S' => LoginRejection::SessionUnavailable,
            b'L' => LoginRejection::NotLeader {
                leader_id: None,
                leader: None,
            },
            c => LoginRejection::Other(c),
        }
    }

    /// The reason a UDP LoginRejected carries, with its leader hint.
    pub fn of(r: &LoginRejected) -> LoginRejection {
        match LoginRejection::from_code(r.reason) {
            LoginRejection::NotLeader { .. } => LoginRejection::NotLeader {
                leader_id: r.leader_id(),
                leader: r.leader_hint(),
            },
            other => other,
        }
    }

    /// True for `L`: try another node.
    pub fn is_not_leader(&self) -> bool {
        matches!(self, LoginRejection::NotLeader { .. })
    }
}

impl std::fmt::Display for LoginRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginRejection::NotAuthorised => {
                f.write_str("A (not authorised: unknown session or wrong secret; check --secret)")
            }
            LoginRejection::SessionUnavailable => {
                f.write_str("S (session not available: logged in elsewhere)")
            }
            LoginRejection::NotLeader { leader_id, leader } => {
                f.write_str("L (not the cluster's leader")?;
                if let Some(id) = leader_id {
                    write!(f, "; leader is node {id}")?;
                }
                if let Some(a) = leader {
                    write!(f, " at {a}")?;
                }
                f.write_str(")")
            }
            LoginRejection::Other(_) => f.write_str("unknown reason"),
        }
    }
}

/// An execution report (Accepted, Fill, Cancelled, Replaced, Expired): the
/// engine's answer about an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecutionReport {
    /// Which report (one of the execution-report types).
    pub kind: MessageType,
    /// Global sequence number of the message it answers.
    pub global_seq: u64,
    /// Client sequence number of the message it answers (0: a report about
    /// this session's order caused by another session's message).
    pub client_seq: u64,
    /// The client timestamp of the message it answers, ns.
    pub client_ts_ns: u64,
    /// The order's id (the client's).
    pub order_id: u64,
    /// Instrument id.
    pub instrument: u32,
    /// The order's side (`None` if the server sent an undefined code).
    pub side: Option<Side>,
    /// Price, in ticks of the instrument's price unit.
    pub price: i64,
    /// Quantity of this report (filled quantity for a fill), in units.
    pub quantity: u64,
    /// Open quantity left on the order, in units.
    pub leaves: u64,
    /// Engine reason code (non-zero on engine rejects and expiries).
    pub reason: u16,
    /// Whether a fill added (maker) or removed (taker) liquidity;
    /// `Liquidity::None` on other reports (`None` if undefined).
    pub liquidity: Option<Liquidity>,
    /// The trade's id on fills (both sides of a trade share it).
    pub match_id: u64,
}

/// What the server said to one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The session is logged in; it continues at these sequences.
    LoginAccepted {
        /// Session index.
        session: usize,
        /// Client sequence number the server expects next.
        next_client_seq: u64,
        /// Reply sequence number the server sends next.
        next_reply_seq: u64,
        /// Messages the session may have unanswered (flow-control window).
        window: u32,
    },
    /// The server refused the session's login.
    LoginRejected {
        /// Session index.
        session: usize,
        /// Why.
        reason: LoginRejection,
    },
    /// A message was sequenced.
    Ack {
        /// Session index.
        session: usize,
        /// Client sequence number of the message.
        client_seq: u64,
        /// The message's client timestamp, echoed, ns.
        client_ts_ns: u64,
        /// The global sequence number it was given.
        global_seq: u64,
        /// The Echo's tag.
        tag: u64,
    },
    /// A message was refused (by the gateway or the engine).
    Reject {
        /// Session index.
        session: usize,
        /// Client sequence number of the message.
        client_seq: u64,
        /// The message's client timestamp, echoed, ns.
        client_ts_ns: u64,
        /// Global sequence number (0: refused before sequencing).
        global_seq: u64,
        /// The order id, when the message carried one.
        order_id: u64,
        /// Why, as the wire code: a [`RejectReason`], or an engine reason
        /// from [`peregrine_wire::message::ENGINE_REASON_BASE`] on.
        reason: u16,
    },
    /// The server did not take a message and it must be sent again: an
    /// earlier one is missing ([`RejectReason::SequenceGap`]) or the server
    /// is overloaded ([`RejectReason::Busy`]). Not an answer; a client with
    /// retransmission on resends by itself.
    NotTaken {
        /// Session index.
        session: usize,
        /// Client sequence number of the message.
        client_seq: u64,
        /// Why.
        reason: u16,
    },
    /// An execution report.
    Report {
        /// Session index.
        session: usize,
        /// The report.
        report: ExecutionReport,
    },
    /// One of our own messages came back untouched (a raw echo peer, used
    /// for baseline measurements).
    Echoed {
        /// Session index.
        session: usize,
        /// Client sequence the message was sent with, as far as the
        /// transport knows it.
        client_seq: u64,
        /// Its client timestamp, ns.
        client_ts_ns: u64,
        /// Its tag or order id.
        tag: u64,
    },
    /// The server ended the session (MoldUDP64 end of session).
    EndOfSession {
        /// Session index.
        session: usize,
    },
}

impl Event {
    /// The session the event is about.
    pub fn session(&self) -> usize {
        match *self {
            Event::LoginAccepted { session, .. }
            | Event::LoginRejected { session, .. }
            | Event::Ack { session, .. }
            | Event::Reject { session, .. }
            | Event::NotTaken { session, .. }
            | Event::Report { session, .. }
            | Event::Echoed { session, .. }
            | Event::EndOfSession { session } => session,
        }
    }
}

/// Decodes one 100-byte block received by session `session`. `echo_seq` is
/// the client sequence to report for one of our own messages echoed back
/// (baseline runs against a raw echo). None for blocks that are not
/// 100 bytes, of an unknown type, or session control a client never
/// receives (Login, Logout).
#[inline]
pub fn decode_block(session: usize, block: &[u8], echo_seq: u64) -> Option<Event> {
    if block.len() != MESSAGE_LEN {
        return None;
    }
    let t = MessageType::from_code(*block.first()?)?;
    Some(match t {
        MessageType::Ack => {
            let a = Ack::ref_from_bytes(block).ok()?;
            Event::Ack {
                session,
                client_seq: a.client_seq.get(),
                client_ts_ns: a.client_ts_ns.get(),
                global_seq: a.global_seq.get(),
                tag: a.client_tag.get(),
            }
        }
        MessageType::Reject => {
            let j = Reject::ref_from_bytes(block).ok()?;
            let reason = j.reason.get();
            if reason == RejectReason::SequenceGap as u16 || reason == RejectReason::Busy as u16 {
                Event::NotTaken {
                    session,
                    client_seq: j.client_seq.get(),
                    reason,
                }
            } else {
                Event::Reject {
                    session,
                    client_seq: j.client_seq.get(),
                    client_ts_ns: j.client_ts_ns.get(),
                    global_seq: j.global_seq.get(),
                    order_id: j.order_id.get(),
                    reason,
                }
            }
        }
        MessageType::Echo | MessageType::NewOrder | MessageType::Cancel | MessageType::Replace => {
            // Every client→server layout keeps its timestamp and its tag or
            // order id where the Echo does.
            let e = Echo::ref_from_bytes(block).ok()?;
            Event::Echoed {
                session,
                client_seq: echo_seq,
                client_ts_ns: e.client_ts_ns.get(),
                tag: e.client_tag.get(),
            }
        }
        MessageType::LoginAccepted => {
            let a = LoginAccepted::ref_from_bytes(block).ok()?;
            Event::LoginAccepted {
                session,
                next_client_seq: a.next_client_seq.get(),
                next_reply_seq: a.next_reply_seq.get(),
                window: a.window.get(),
            }
        }
        MessageType::LoginRejected => {
            let r = LoginRejected::ref_from_bytes(block).ok()?;
            Event::LoginRejected {
                session,
                reason: LoginRejection::of(r),
            }
        }
        MessageType::Login | MessageType::Logout => return None,
        MessageType::Accepted
        | MessageType::Fill
        | MessageType::Cancelled
        | MessageType::Replaced
        | MessageType::Expired => {
            let e = ExecReport::ref_from_bytes(block).ok()?;
            Event::Report {
                session,
                report: ExecutionReport {
                    kind: t,
                    global_seq: e.global_seq.get(),
                    client_seq: e.client_seq.get(),
                    client_ts_ns: e.client_ts_ns.get(),
                    order_id: e.order_id.get(),
                    instrument: e.instrument.get(),
                    side: e.side().ok(),
                    price: e.price.get(),
                    quantity: e.quantity.get(),
                    leaves: e.leaves.get(),
                    reason: e.reason.get(),
                    liquidity: e.liquidity().ok(),
                    match_id: e.match_id.get(),
                },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_wire::message::{Echo, LAYOUT_VERSION};
    use zerocopy::little_endian::{I64, U64};
    use zerocopy::{FromZeros, IntoBytes};

    #[test]
    fn acks_rejects_and_reports_decode_to_their_fields() {
        let mut a = Ack::empty();
        a.client_seq = U64::new(7);
        a.global_seq = U64::new(70);
        a.client_ts_ns = U64::new(5);
        a.client_tag = U64::new(9);
        assert_eq!(
            decode_block(2, a.as_bytes(), 0),
            Some(Event::Ack {
                session: 2,
                client_seq: 7,
                client_ts_ns: 5,
                global_seq: 70,
                tag: 9
            })
        );
        let mut j = Reject::for_block(&[], RejectReason::InvalidField as u16, 8, 0);
        j.order_id = U64::new(3);
        assert!(matches!(
            decode_block(0, j.as_bytes(), 0),
            Some(Event::Reject {
                client_seq: 8,
                order_id: 3,
                reason: 6,
                ..
            })
        ));
        let gap = Reject::for_block(&[], RejectReason::SequenceGap as u16, 4, 0);
        assert_eq!(
            decode_block(0, gap.as_bytes(), 0),
            Some(Event::NotTaken {
                session: 0,
                client_seq: 4,
                reason: RejectReason::SequenceGap as u16
            })
        );
        let mut f = ExecReport::empty(MessageType::Fill);
        f.client_seq = U64::new(11);
        f.price = I64::new(-5);
        f.quantity = U64::new(12);
        match decode_block(1, f.as_bytes(), 0) {
            Some(Event::Report { session: 1, report }) => {
                assert_eq!(
                    (report.kind, report.client_seq, report.price, report.quantity),
                    (MessageType::Fill, 11, -5, 12)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn session_control_and_echoes_decode_and_junk_does_not() {
        let w = LoginAccepted::new(1, 10, 20, 4096);
        assert_eq!(
            decode_block(0, w.as_bytes(), 0),
            Some(Event::LoginAccepted {
                session: 0,
                next_client_seq: 10,
                next_reply_seq: 20,
                window: 4096
            })
        );
        let v = LoginRejected::new(b'S', 1);
        assert_eq!(
            decode_block(0, v.as_bytes(), 0),
            Some(Event::LoginRejected {
                session: 0,
                reason: LoginRejection::SessionUnavailable
            })
        );
        let e = Echo::new(33, 44);
        assert_eq!(
            decode_block(0, e.as_bytes(), 5),
            Some(Event::Echoed {
                session: 0,
                client_seq: 5,
                client_ts_ns: 33,
                tag: 44
            })
        );
        assert_eq!(decode_block(0, &e.as_bytes()[..99], 5), None, "short");
        let mut junk = Echo::new_zeroed();
        junk.msg_type = b'?';
        junk.version = LAYOUT_VERSION;
        assert_eq!(decode_block(0, junk.as_bytes(), 0), None, "unknown type");
    }
}
