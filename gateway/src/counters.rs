//! Counters every gateway keeps: plain integers owned by its thread.
//!
//! The list is declared once, with [`peregrine_sequencer::counter_set!`]: the
//! field order is the order of [`GatewayCounters::NAMES`] and
//! [`GatewayCounters::values`], which the counters file and `peregrine stat`
//! show (new counters go at the end).

peregrine_sequencer::counter_set! {
    /// What a gateway saw and did. Drops and rejects are counted by reason.
    pub struct GatewayCounters {
        /// Datagrams (UDP) or stream chunks (TCP) processed.
        rx_packets,
        /// Message blocks seen in well-formed packets.
        rx_messages,
        /// Messages handed to the sequencer.
        accepted,
        /// Messages rejected: not 100 bytes.
        rejected_wrong_length,
        /// Messages rejected: unknown or server→client type.
        rejected_unknown_type,
        /// Messages rejected: unsupported layout version.
        rejected_bad_version,
        /// Packets dropped: malformed framing (MoldUDP64 header/blocks, or a bad
        /// SoupBinTCP packet).
        dropped_malformed,
        /// UDP packets dropped, never answered: unknown session, a session not
        /// logged in, or a source address the session is not bound to (spoofed).
        dropped_unauthenticated,
        /// TCP: data before login, or a second login on one connection.
        dropped_not_logged_in,
        /// TCP: connections closed for an oversize or zero-length frame.
        closed_oversize_frame,
        /// Heartbeats received.
        heartbeats,
        /// Times the input ring had no room (the packet waited; nothing lost).
        ring_full,
        /// Replies sent (acks, rejects, execution reports).
        tx_replies,
        /// Reply packets built.
        tx_packets,
        /// Replies for a session that no longer has a live peer (dropped).
        replies_unroutable,
        /// Sessions created.
        sessions,
        /// Logins accepted (UDP and TCP).
        logins,
        /// Logins rejected: bad credentials or session not available.
        logins_rejected,
        /// Heartbeats we sent to idle sessions.
        heartbeats_sent,
        /// TCP connections closed because the client sent nothing for the idle
        /// timeout.
        closed_idle,
        /// Messages rejected: the session is over its rate limit.
        rejected_rate_limited,
        /// UDP messages past a client sequence gap (each gap's first one gets a
        /// SequenceGap reject, the others are `dropped_gap`).
        rejected_gap,
        /// Retransmitted messages recognised (never sequenced twice).
        dedup_hits,
        /// Original replies sent again for retransmitted messages.
        replies_retransmitted,
        /// Retransmitted messages answered TooOld (their reply left the log);
        /// counted in `dedup_hits`, not in `rejected()`.
        rejected_too_old,
        /// Of `rejected_gap`, those dropped without a gap report of their own.
        dropped_gap,
        /// Messages held in a session's reorder window, ahead of a gap.
        reordered_held,
        /// Logins that took a live session over from another address or
        /// connection (`login_policy = "takeover"`).
        logins_taken_over,
        /// UDP retransmission requests (MoldUDP64 header-only packets) served.
        rerequests,
        /// UDP messages answered Busy (input ring full for too long); not
        /// sequenced, the client resends.
        rejected_busy,
        /// SequenceGap rejects sent (naming the missing client sequence), for
        /// messages held ahead of a gap or refused past the window.
        gap_notices,
        /// UDP sessions ended by their client: a Logout, or a header with
        /// count 0xFFFF (End of Session) from the bound address.
        logouts,
        /// UDP requests for replies (retransmission requests, Login replays)
        /// that reached below the reply log: answered with a TooOld notice
        /// naming the first reply still kept.
        replies_gone,
        /// Cluster follower: messages and replies of the replicated log
        /// applied to this gateway's sessions (their dedup state and reply
        /// log follow the leader's).
        restored_from_log,
        /// Session-state notices naming a session this gateway cannot hold
        /// (the nodes' session configurations differ): dropped.
        restore_refused,
        /// Logins refused because this node does not serve clients now (a
        /// cluster follower): answered `L` with a hint naming the leader;
        /// not counted in `logins_rejected`.
        logins_refused_not_leader,
    }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names and their order are what the counters file and
    /// `peregrine stat` show: changing one is a visible change.
    #[test]
    fn names_are_the_published_ones_in_order() {
        assert_eq!(
            GatewayCounters::NAMES,
            [
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
                "logouts",
                "replies_gone",
                "restored_from_log",
                "restore_refused",
                "logins_refused_not_leader",
            ]
        );
    }

    #[test]
    fn values_and_add_follow_the_names() {
        let c = GatewayCounters {
            rx_packets: 1,
            gap_notices: 31,
            rejected_busy: 30,
            ..GatewayCounters::default()
        };
        let v = c.values();
        assert_eq!((v[0], v[29], v[30]), (1, 30, 31));
        let mut sum = c;
        sum.add(&c);
        assert_eq!(sum.values().iter().sum::<u64>(), 2 * (1 + 30 + 31));
        assert_eq!(sum.rejected(), 60);
    }
}
