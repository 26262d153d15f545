//! Counters every gateway keeps: plain integers owned by its thread.

/// What a gateway saw and did. Drops and rejects are counted by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayCounters {
    /// Datagrams (UDP) or stream chunks (TCP) processed.
    pub rx_packets: u64,
    /// Message blocks seen in well-formed packets.
    pub rx_messages: u64,
    /// Messages handed to the sequencer.
    pub accepted: u64,
    /// Messages rejected: not 100 bytes.
    pub rejected_wrong_length: u64,
    /// Messages rejected: unknown or server→client type.
    pub rejected_unknown_type: u64,
    /// Messages rejected: unsupported layout version.
    pub rejected_bad_version: u64,
    /// Messages rejected: the session is over its rate limit.
    pub rejected_rate_limited: u64,
    /// UDP messages past a client sequence gap (each gap's first one gets a
    /// SequenceGap reject, the others are `dropped_gap`).
    pub rejected_gap: u64,
    /// Of `rejected_gap`, those dropped without a gap report of their own.
    pub dropped_gap: u64,
    /// SequenceGap rejects sent (naming the missing client sequence), for
    /// messages held ahead of a gap or refused past the window.
    pub gap_notices: u64,
    /// Messages held in a session's reorder window, ahead of a gap.
    pub reordered_held: u64,
    /// Retransmitted messages recognised (never sequenced twice).
    pub dedup_hits: u64,
    /// Original replies sent again for retransmitted messages.
    pub replies_retransmitted: u64,
    /// Retransmitted messages answered TooOld (their reply left the log);
    /// counted in `dedup_hits`, not in `rejected()`.
    pub rejected_too_old: u64,
    /// Packets dropped: malformed framing (MoldUDP64 header/blocks, or a bad
    /// SoupBinTCP packet).
    pub dropped_malformed: u64,
    /// UDP packets dropped, never answered: unknown session, a session not
    /// logged in, or a source address the session is not bound to (spoofed).
    pub dropped_unauthenticated: u64,
    /// TCP: data before login, or a second login on one connection.
    pub dropped_not_logged_in: u64,
    /// TCP: connections closed for an oversize or zero-length frame.
    pub closed_oversize_frame: u64,
    /// Heartbeats received.
    pub heartbeats: u64,
    /// Times the input ring had no room (the packet waited; nothing lost).
    pub ring_full: u64,
    /// Replies sent (acks, rejects, execution reports).
    pub tx_replies: u64,
    /// Reply packets built.
    pub tx_packets: u64,
    /// Replies for a session that no longer has a live peer (dropped).
    pub replies_unroutable: u64,
    /// Sessions created.
    pub sessions: u64,
    /// Logins accepted (UDP and TCP).
    pub logins: u64,
    /// Logins rejected: bad credentials or session not available.
    pub logins_rejected: u64,
    /// Logins that took a live session over from another address or
    /// connection (`login_policy = "takeover"`).
    pub logins_taken_over: u64,
    /// UDP retransmission requests (MoldUDP64 header-only packets) served.
    pub rerequests: u64,
    /// UDP messages answered Busy (input ring full for too long); not
    /// sequenced, the client resends.
    pub rejected_busy: u64,
    /// Heartbeats we sent to idle sessions.
    pub heartbeats_sent: u64,
    /// TCP connections closed because the client sent nothing for the idle
    /// timeout.
    pub closed_idle: u64,
}

impl GatewayCounters {
    /// Messages rejected for any reason.
    pub fn rejected(&self) -> u64 {
        self.rejected_wrong_length
            + self.rejected_unknown_type
            + self.rejected_bad_version
            + self.rejected_rate_limited
            + self.rejected_gap
            + self.rejected_busy
    }

    /// Counts a message refused for its own bytes, by reason.
    #[inline]
    pub fn count_malformed(&mut self, e: peregrine_wire::message::MessageError) {
        use peregrine_wire::message::MessageError;
        match e {
            MessageError::WrongLength(_) => self.rejected_wrong_length += 1,
            MessageError::UnknownType(_) => self.rejected_unknown_type += 1,
            MessageError::UnsupportedVersion(_) => self.rejected_bad_version += 1,
        }
    }

    /// Counter names, in [`GatewayCounters::values`] order.
    pub const NAMES: [&'static str; 31] = [
        "rx_packets",
        "rx_messages",
        "accepted",
        "rejected_wrong_length",
        "rejected_unknown_type",
        "rejected_bad_version",
        "dropped_malformed",
        "dropped_unauthenticated",
        "dropped_not_logged_in",
        "closed_oversize_frame",
        "heartbeats",
        "ring_full",
        "tx_replies",
        "tx_packets",
        "replies_unroutable",
        "sessions",
        "logins",
        "logins_rejected",
        "heartbeats_sent",
        "closed_idle",
        "rejected_rate_limited",
        "rejected_gap",
        "dedup_hits",
        "replies_retransmitted",
        "rejected_too_old",
        "dropped_gap",
        "reordered_held",
        "logins_taken_over",
        "rerequests",
        "rejected_busy",
        "gap_notices",
    ];

    /// Counter values, in [`GatewayCounters::NAMES`] order.
    pub fn values(&self) -> [u64; 31] {
        [
            self.rx_packets,
            self.rx_messages,
            self.accepted,
            self.rejected_wrong_length,
            self.rejected_unknown_type,
            self.rejected_bad_version,
            self.dropped_malformed,
            self.dropped_unauthenticated,
            self.dropped_not_logged_in,
            self.closed_oversize_frame,
            self.heartbeats,
            self.ring_full,
            self.tx_replies,
            self.tx_packets,
            self.replies_unroutable,
            self.sessions,
            self.logins,
            self.logins_rejected,
            self.heartbeats_sent,
            self.closed_idle,
            self.rejected_rate_limited,
            self.rejected_gap,
            self.dedup_hits,
            self.replies_retransmitted,
            self.rejected_too_old,
            self.dropped_gap,
            self.reordered_held,
            self.logins_taken_over,
            self.rerequests,
            self.rejected_busy,
            self.gap_notices,
        ]
    }

    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &GatewayCounters) {
        macro_rules! sum { ($($f:ident),*) => { $(self.$f += o.$f;)* } }
        sum!(
            rx_packets,
            rx_messages,
            accepted,
            rejected_wrong_length,
            rejected_unknown_type,
            rejected_bad_version,
            dropped_malformed,
            dropped_unauthenticated,
            dropped_not_logged_in,
            closed_oversize_frame,
            heartbeats,
            ring_full,
            tx_replies,
            tx_packets,
            replies_unroutable,
            sessions,
            logins,
            logins_rejected,
            heartbeats_sent,
            closed_idle,
            rejected_rate_limited,
            rejected_gap,
            dedup_hits,
            replies_retransmitted,
            rejected_too_old,
            dropped_gap,
            reordered_held,
            logins_taken_over,
            rerequests,
            rejected_busy,
            gap_notices
        );
    }
}
