//! Packs replies for the same session into as few packets as possible.
//!
//! Replies drained from the sequencer in one burst are staged per session;
//! a session's stage becomes one packet when it is full (14 messages for
//! MoldUDP64 within a 1,472-byte payload, 19 SoupBinTCP frames per 2 KiB
//! write) or when the burst ends. Sessions with staged replies are kept in a
//! dirty list so the end-of-burst flush touches only them.
//!
//! Staging costs a copy and a few checks per reply. The usual burst needs
//! neither: a client datagram's messages are sequenced together, so their
//! replies lie in the output ring as a run for one session. A run of a
//! full packet, for a session with nothing staged, is packed from the ring
//! slots directly: each reply is copied once into the packet and once into
//! the session's reply log, in the same order the stage would have given.

use crate::counters::GatewayCounters;
use crate::directory::SessionDirectory;
use crate::latency::ReplyLatency;
use crate::restore::apply_notice;
use crate::session::SessionTable;
use peregrine_netio::{clock, PacketBatch, Peer, Port, TxSlots, SLOT_BYTES};
use peregrine_ring::Consumer;
use peregrine_sequencer::slot::{OutboundKind, OutboundSlot};
use peregrine_wire::message::MESSAGE_LEN;
use peregrine_wire::moldudp64::{
    write_header_only, MoldBuilder, SessionName, HEADER_LEN, MAX_MESSAGES_PER_PACKET,
};
use peregrine_wire::soupbintcp::{kind, write_packet, LENGTH_PREFIX};

/// How replies are framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// One MoldUDP64 packet per batch, sequence = first reply's number.
    MoldUdp64,
    /// SoupBinTCP Sequenced Data packets, back to back.
    SoupBinTcp,
}

impl Framing {
    /// Replies per packet.
    pub fn per_packet(self) -> usize {
        match self {
            Framing::MoldUdp64 => MAX_MESSAGES_PER_PACKET,
            Framing::SoupBinTcp => SLOT_BYTES / (LENGTH_PREFIX + 1 + MESSAGE_LEN),
        }
    }
}

/// The tx batch is full: send it, then call again.
#[derive(Debug, PartialEq, Eq)]
pub struct TxFull;

/// Per-session reply staging.
pub struct ReplyBatcher {
    /// Coarse current time (ns), stamped into sessions as `last_tx_ns`.
    now_ns: u64,
    framing: Framing,
    per_packet: usize,
    staged: Vec<[u8; MESSAGE_LEN]>,
    counts: Vec<u16>,
    dirty: Vec<u32>,
}

impl ReplyBatcher {
    /// A batcher for up to `max_sessions` sessions; memory reserved now.
    pub fn new(framing: Framing, max_sessions: usize) -> Self {
        let per_packet = framing.per_packet();
        ReplyBatcher {
            now_ns: 0,
            framing,
            per_packet,
            staged: vec![[0u8; MESSAGE_LEN]; max_sessions * per_packet],
            counts: vec![0u16; max_sessions],
            dirty: Vec::with_capacity(max_sessions),
        }
    }

    /// Stages `msg` for session `idx`; packs the session's stage into `tx`
    /// first if it is full. `Err(TxFull)` (nothing staged) when that packing
    /// needs room `tx` does not have.
    pub fn stage(
        &mut self,
        sessions: &mut SessionTable,
        idx: u32,
        msg: &[u8; MESSAGE_LEN],
        tx: &mut (impl TxSlots + ?Sized),
        counters: &mut GatewayCounters,
    ) -> Result<(), TxFull> {
        let i = idx as usize;
        if i >= self.counts.len() || sessions.get(idx).is_none() {
            counters.replies_unroutable += 1;
            return Ok(());
        }
        if self.counts[i] as usize == self.per_packet && !self.pack(sessions, idx, tx, counters) {
            return Err(TxFull);
        }
        let c = self.counts[i] as usize;
        self.staged[i * self.per_packet + c] = *msg;
        if c == 0 {
            self.dirty.push(idx);
        }
        self.counts[i] += 1;
        Ok(())
    }

    /// Packs every dirty session into `tx`. `Err(TxFull)` when `tx` filled
    /// first; send it and call again.
    pub fn flush(
        &mut self,
        sessions: &mut SessionTable,
        tx: &mut (impl TxSlots + ?Sized),
        counters: &mut GatewayCounters,
    ) -> Result<(), TxFull> {
        while let Some(&idx) = self.dirty.last() {
            if self.counts[idx as usize] > 0 && !self.pack(sessions, idx, tx, counters) {
                return Err(TxFull);
            }
            self.dirty.pop();
        }
        Ok(())
    }

    /// True when nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.dirty.is_empty()
    }

    /// Builds one packet from session `idx`'s stage. False if `tx` is full.
    fn pack(
        &mut self,
        sessions: &mut SessionTable,
        idx: u32,
        tx: &mut (impl TxSlots + ?Sized),
        counters: &mut GatewayCounters,
    ) -> bool {
        let i = idx as usize;
        let count = self.counts[i] as usize;
        let base = i * self.per_packet;
        let staged = &self.staged[base..base + count];
        let built = self.build_packet(sessions, idx, count, |k| &staged[k], tx, counters);
        if built {
            self.counts[i] = 0;
        }
        built
    }

    /// Whether session `idx` has nothing staged, so that a run of its
    /// replies may be packed from where it lies ([`build_packet`](Self::build_packet)).
    #[inline]
    fn unstaged(&self, idx: u32) -> bool {
        self.counts.get(idx as usize) == Some(&0)
    }

    /// Builds one packet of `count` replies (at most a packet's worth) for
    /// session `idx`, reply `k` read from `msg(k)`; logs them, advances the
    /// session's reply sequence and counts them. A session that is gone or
    /// has no peer takes the replies into nothing (counted unroutable; a
    /// peerless session still logs them, for a client that comes back).
    /// False, with nothing changed, when `tx` has no room for a packet.
    ///
    /// Called with the session's stage ([`pack`](Self::pack)), or with a
    /// full packet's run found in the output ring of a session with nothing
    /// staged ([`unstaged`](Self::unstaged)), straight from the ring slots:
    /// either way the packet order stays the reply order.
    #[inline]
    fn build_packet<'m>(
        &self,
        sessions: &mut SessionTable,
        idx: u32,
        count: usize,
        msg: impl Fn(usize) -> &'m [u8; MESSAGE_LEN],
        tx: &mut (impl TxSlots + ?Sized),
        counters: &mut GatewayCounters,
    ) -> bool {
        let (framing, now_ns) = (self.framing, self.now_ns);
        let Some(session) = sessions.get_mut(idx) else {
            counters.replies_unroutable += count as u64;
            return true;
        };
        let first_seq = session.next_reply_seq;
        let Some(peer) = session.peer else {
            // The reply sequence advances whether or not a peer is connected,
            // so numbering stays consistent for a client that comes back.
            session.next_reply_seq += count as u64;
            session.last_tx_ns = now_ns;
            session.log_replies_with(first_seq, count, &msg, |_| {});
            counters.replies_unroutable += count as u64;
            return true;
        };
        let Some(slot) = tx.next_slot() else {
            return false;
        };
        session.next_reply_seq += count as u64;
        session.last_tx_ns = now_ns;
        // Each reply is read once, for the log and the packet together.
        let len = match framing {
            Framing::MoldUdp64 => {
                let Some(mut b) = MoldBuilder::new(slot, &session.name, first_seq) else {
                    // A transmit buffer too small for a header: the replies
                    // stay in the log, for the client to ask for.
                    session.log_replies_with(first_seq, count, &msg, |_| {});
                    return true;
                };
                session.log_replies_with(first_seq, count, &msg, |m| {
                    b.push_array(m);
                });
                b.finish()
            }
            Framing::SoupBinTcp => {
                let mut at = 0;
                session.log_replies_with(first_seq, count, &msg, |m| {
                    at += write_packet(&mut slot[at..], kind::SEQUENCED_DATA, m).unwrap_or(0);
                });
                at
            }
        };
        tx.commit(peer, len);
        counters.tx_replies += count as u64;
        counters.tx_packets += 1;
        true
    }
}

/// Replies per packet for any framing, at most: bounds the run
/// [`ReplyPath::drain`] packs from the ring slots.
const MAX_PER_PACKET: usize = 32;

const _: () = assert!(
    MAX_MESSAGES_PER_PACKET <= MAX_PER_PACKET
        && SLOT_BYTES / (LENGTH_PREFIX + 1 + MESSAGE_LEN) <= MAX_PER_PACKET
);

/// Placeholder for the unused places of a run.
static EMPTY_REPLY: [u8; MESSAGE_LEN] = [0; MESSAGE_LEN];

/// The replies one step of [`ReplyPath::drain`] took: ring slots where they
/// lie, or a run gathered across the ring's wrap (message, receive time).
enum Taken<'a> {
    Slots(&'a [OutboundSlot]),
    Gathered(&'a [(&'a [u8; MESSAGE_LEN], u64)]),
}

impl Taken<'_> {
    fn len(&self) -> usize {
        match self {
            Taken::Slots(s) => s.len(),
            Taken::Gathered(g) => g.len(),
        }
    }
}

/// Notes one reply's receive time in `pending` (nothing for 0, a reply
/// that answers no message): extends the last run when the time is the
/// same, never grows the vector past its capacity.
#[inline]
fn note_rx(pending: &mut Vec<(u64, u64)>, rx_ns: u64) {
    if rx_ns == 0 {
        return;
    }
    if let Some(last) = pending.last_mut() {
        if last.0 == rx_ns {
            last.1 += 1;
            return;
        }
    }
    if pending.len() < pending.capacity() {
        pending.push((rx_ns, 1));
    }
}

/// Where packets are built: in the port's own transmit buffers when it
/// lends them (the DPDK port's mbufs: each reply is written once, where it
/// leaves from), else in the path's batch, which [`Port::send`] takes.
fn slots<'a>(tx: &'a mut PacketBatch, port: &'a mut (impl Port + ?Sized)) -> &'a mut dyn TxSlots {
    match port.tx_slots() {
        Some(lent) => lent,
        None => tx,
    }
}

/// Sends `tx` and what the port built in place, if anything (see
/// [`ReplyPath::send`]).
fn send_batch(tx: &mut PacketBatch, port: &mut (impl Port + ?Sized)) {
    let built_in_port = port.tx_slots().is_some_and(|t| t.committed() > 0);
    if built_in_port || !tx.is_empty() {
        let _ = port.send(tx);
        tx.clear();
    }
}

/// A gateway's transmit side, the same for every transport: drains the
/// sequencer's output ring in bursts, stages replies per session, packs
/// them into packets and sends them in batches.
pub struct ReplyPath {
    from_sequencer: Consumer<OutboundSlot>,
    batcher: ReplyBatcher,
    tx: PacketBatch,
    reply_burst: usize,
    /// A session sent nothing this long gets a heartbeat, ns.
    heartbeat_ns: u64,
    /// A session whose client was silent longer than this gets none, ns.
    live_ns: u64,
    /// Receive timestamps of the replies staged in the current drain, to
    /// record once they are sent: `(time, replies)` per run of equal times
    /// (the replies to one datagram's messages share its receive time;
    /// capacity `reply_burst`, never grown).
    pending_rx: Vec<(u64, u64)>,
    /// Receive-to-transmit latency of every reply sent that answers a
    /// message.
    latency: ReplyLatency,
    /// Whether replies' latencies are recorded at all (see
    /// [`with_latency_recording`](Self::with_latency_recording)).
    record_latency: bool,
}

impl ReplyPath {
    /// A reply path reading `from_sequencer`, framing with `framing`, for
    /// up to `max_sessions` sessions, sending `tx_burst` packets per call and
    /// draining at most `reply_burst` replies per poll; heartbeats go to
    /// sessions sent nothing for `heartbeat_ns` whose client was heard from
    /// within `live_ns`.
    pub fn new(
        framing: Framing,
        from_sequencer: Consumer<OutboundSlot>,
        max_sessions: usize,
        tx_burst: usize,
        reply_burst: usize,
        heartbeat_ns: u64,
        live_ns: u64,
    ) -> Self {
        ReplyPath {
            from_sequencer,
            batcher: ReplyBatcher::new(framing, max_sessions),
            tx: PacketBatch::new(tx_burst.max(1)),
            reply_burst: reply_burst.max(1),
            heartbeat_ns,
            live_ns,
            pending_rx: Vec::with_capacity(reply_burst.max(1)),
            latency: ReplyLatency::new(),
            record_latency: true,
        }
    }

    /// Turns latency recording on (the default) or off. Off, [`drain`]
    /// neither reads the clock nor records: [`latency`](Self::latency)
    /// stays empty.
    ///
    /// [`drain`]: Self::drain
    pub fn with_latency_recording(mut self, on: bool) -> Self {
        self.record_latency = on;
        self
    }

    /// Receive-to-transmit latency of the replies sent so far.
    pub fn latency(&self) -> &ReplyLatency {
        &self.latency
    }

    /// The latency recorder, mutably (the publisher resets its interval).
    pub fn latency_mut(&mut self) -> &mut ReplyLatency {
        &mut self.latency
    }

    /// Updates the coarse clock stamped on sessions as they are sent to
    /// (called with each receive burst's timestamp and each timer tick).
    #[inline]
    pub fn set_now(&mut self, now_ns: u64) {
        self.batcher.now_ns = now_ns;
    }

    /// Stages one reply for session `idx` (sending a full transmit batch
    /// first when needed).
    pub fn stage(
        &mut self,
        sessions: &mut SessionTable,
        idx: u32,
        msg: &[u8; MESSAGE_LEN],
        port: &mut (impl Port + ?Sized),
        counters: &mut GatewayCounters,
    ) {
        while self
            .batcher
            .stage(sessions, idx, msg, slots(&mut self.tx, port), counters)
            .is_err()
        {
            self.send(port);
        }
    }

    /// Sends one unsequenced message to `peer` (session `name`): MoldUDP64
    /// sequence 0, or a SoupBinTCP Unsequenced Data packet.
    pub fn push_unsequenced(
        &mut self,
        peer: Peer,
        name: &SessionName,
        msg: &[u8; MESSAGE_LEN],
        port: &mut (impl Port + ?Sized),
    ) {
        let mut buf = [0u8; HEADER_LEN + 2 + MESSAGE_LEN];
        let n = match self.batcher.framing {
            Framing::MoldUdp64 => match MoldBuilder::new(&mut buf, name, 0) {
                Some(mut b) => {
                    b.push(msg);
                    b.finish()
                }
                None => 0,
            },
            Framing::SoupBinTcp => write_packet(&mut buf, kind::UNSEQUENCED_DATA, msg).unwrap_or(0),
        };
        self.push_control(peer, &buf[..n], port);
    }

    /// Queues a session-protocol packet (login accepted, rejected...) for
    /// `peer` ahead of replies staged later.
    pub fn push_control(&mut self, peer: Peer, bytes: &[u8], port: &mut (impl Port + ?Sized)) {
        if !slots(&mut self.tx, port).queue(peer, bytes) {
            self.send(port);
            slots(&mut self.tx, port).queue(peer, bytes);
        }
    }

    /// Sends what is in the transmit batch. A send error concerns one burst
    /// (the port counts what it could not send; datagram clients recover by
    /// re-request, stream ports close slow readers themselves) and is never
    /// fatal to the polling loop.
    pub fn send(&mut self, port: &mut (impl Port + ?Sized)) {
        send_batch(&mut self.tx, port);
    }

    /// Heartbeats: every session with a peer that has been sent nothing for
    /// the heartbeat interval, and that the client itself has not left
    /// silent for more than the live time, gets one: a MoldUDP64 packet with no messages
    /// whose sequence is the session's next reply sequence (so a client can
    /// tell it missed replies even when nothing else arrives), or a
    /// SoupBinTCP Server Heartbeat. `now_ns` also becomes the coarse clock
    /// stamped on sessions when replies are packed. Called from a timer,
    /// never per message.
    pub fn heartbeats(
        &mut self,
        sessions: &mut SessionTable,
        now_ns: u64,
        port: &mut (impl Port + ?Sized),
        counters: &mut GatewayCounters,
    ) {
        let (interval_ns, live_ns) = (self.heartbeat_ns, self.live_ns);
        self.batcher.now_ns = now_ns;
        for (_, s) in sessions.iter_mut() {
            let Some(peer) = s.peer else { continue };
            if now_ns.saturating_sub(s.last_tx_ns) < interval_ns
                || now_ns.saturating_sub(s.last_rx_ns) > live_ns
            {
                continue;
            }
            let mut hb = [0u8; HEADER_LEN];
            let n = match self.batcher.framing {
                Framing::MoldUdp64 => {
                    write_header_only(&mut hb, &s.name, s.next_reply_seq, 0);
                    HEADER_LEN
                }
                Framing::SoupBinTcp => write_packet(&mut hb, kind::SERVER_HEARTBEAT, &[]).unwrap_or(0),
            };
            if !slots(&mut self.tx, port).queue(peer, &hb[..n]) {
                self.send(port);
                slots(&mut self.tx, port).queue(peer, &hb[..n]);
            }
            s.last_tx_ns = now_ns;
            counters.heartbeats_sent += 1;
        }
        self.send(port);
    }

    /// One transmit round: drains up to `reply_burst` replies, packs every
    /// session's replies, sends. Session-state notices (a cluster
    /// follower's, see [`OutboundKind`]) are applied to `sessions` through
    /// `directory` as gateway `gateway` instead of being sent. Each reply
    /// sent that answers a message (non-zero [`OutboundSlot::rx_ns`]) has
    /// its latency recorded against one clock reading taken after the
    /// burst's last send (unless recording is off). Returns the slots
    /// drained.
    pub fn drain(
        &mut self,
        sessions: &mut SessionTable,
        directory: &SessionDirectory,
        gateway: u16,
        port: &mut (impl Port + ?Sized),
        counters: &mut GatewayCounters,
    ) -> usize {
        let avail = self.from_sequencer.available().min(self.reply_burst);
        let per_packet = self.batcher.per_packet;
        self.pending_rx.clear();
        // The replies as (at most) two contiguous runs of slots, before and
        // after the ring's wrap, cut to `avail`.
        let (first, second) = self.from_sequencer.readable();
        let first = &first[..first.len().min(avail)];
        let second = &second[..second.len().min(avail - first.len())];
        let mut run = [(&EMPTY_REPLY, 0u64); MAX_PER_PACKET];
        let mut j = 0;
        while j < avail {
            // The slots from `j` on in the run that holds `j`.
            let rest = match first.get(j..) {
                Some(rest) if !rest.is_empty() => rest,
                _ => &second[j - first.len()..],
            };
            let Some(slot) = rest.first() else {
                break;
            };
            if slot.kind != OutboundKind::Reply {
                apply_notice(sessions, directory, gateway, slot, counters);
                j += 1;
                continue;
            }
            let idx = slot.to.index;
            let unroutable = counters.replies_unroutable;
            let is_next = |s: &OutboundSlot| s.kind == OutboundKind::Reply && s.to.index == idx;
            // A full packet's run of one session's replies, when nothing of
            // that session is staged, is packed from the ring slots where
            // it lies (one copy into the packet, one into the reply log):
            // straight from the slots when the run lies before the wrap (or
            // after it), else through `run`, which gathers it across the
            // wrap. Anything else is staged and packed at the end of the
            // drain.
            let whole = self.batcher.unstaged(idx) && avail - j >= per_packet;
            let taken = if whole && rest.len() >= per_packet && rest[..per_packet].iter().all(is_next) {
                let packed = &rest[..per_packet];
                while !self.batcher.build_packet(
                    sessions,
                    idx,
                    per_packet,
                    |k| &packed[k].msg,
                    slots(&mut self.tx, port),
                    counters,
                ) {
                    send_batch(&mut self.tx, port);
                }
                Taken::Slots(packed)
            } else {
                let mut len = 0;
                if whole && rest.len() < per_packet && j < first.len() {
                    for s in rest.iter().chain(second).take(per_packet) {
                        if !is_next(s) {
                            break;
                        }
                        run[len] = (&s.msg, s.rx_ns);
                        len += 1;
                    }
                }
                if len == per_packet {
                    while !self.batcher.build_packet(
                        sessions,
                        idx,
                        len,
                        |k| run[k].0,
                        slots(&mut self.tx, port),
                        counters,
                    ) {
                        send_batch(&mut self.tx, port);
                    }
                    Taken::Gathered(&run[..len])
                } else {
                    // Staged straight from the ring slot (no copy on the way).
                    while self
                        .batcher
                        .stage(sessions, idx, &slot.msg, slots(&mut self.tx, port), counters)
                        .is_err()
                    {
                        send_batch(&mut self.tx, port);
                    }
                    Taken::Slots(std::slice::from_ref(slot))
                }
            };
            j += taken.len();
            // Only replies that will leave are measured: a staged reply
            // to a session without a peer is counted unroutable only when
            // its stage is packed.
            if self.record_latency
                && counters.replies_unroutable == unroutable
                && sessions.get(idx).is_some_and(|s| s.peer.is_some())
            {
                // One loop per kind: a match per reply costs 3 instructions
                // per message (callgrind).
                match taken {
                    Taken::Slots(packed) => {
                        for s in packed {
                            note_rx(&mut self.pending_rx, s.rx_ns);
                        }
                    }
                    Taken::Gathered(gathered) => {
                        for &(_, rx_ns) in gathered {
                            note_rx(&mut self.pending_rx, rx_ns);
                        }
                    }
                }
            }
        }
        self.from_sequencer.advance(avail);
        self.from_sequencer.release();
        while self
            .batcher
            .flush(sessions, slots(&mut self.tx, port), counters)
            .is_err()
        {
            self.send(port);
        }
        self.send(port);
        if !self.pending_rx.is_empty() {
            let now = clock::now_ns();
            for &(rx_ns, n) in &self.pending_rx {
                self.latency.record_n(now.saturating_sub(rx_ns), n);
            }
        }
        avail
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_netio::Peer;
    use peregrine_wire::moldudp64::{session_name, MoldPacket};

    #[test]
    fn packs_fourteen_per_datagram_with_running_sequence() {
        let mut sessions = SessionTable::new(4);
        let peer = Peer::Addr("127.0.0.1:1".parse().unwrap());
        let s = sessions.add(session_name("A"), Some(peer)).unwrap();
        let mut b = ReplyBatcher::new(Framing::MoldUdp64, 4);
        let mut tx = PacketBatch::new(8);
        let mut c = GatewayCounters::default();
        for k in 0..30u8 {
            b.stage(&mut sessions, s, &[k; 100], &mut tx, &mut c).unwrap();
        }
        b.flush(&mut sessions, &mut tx, &mut c).unwrap();
        assert_eq!(tx.len(), 3);
        let seqs: Vec<(u64, u16)> = (0..3)
            .map(|i| {
                let p = MoldPacket::new_checked(tx.get(i).2).unwrap();
                (p.sequence(), p.count())
            })
            .collect();
        assert_eq!(seqs, vec![(1, 14), (15, 14), (29, 2)]);
        assert_eq!(c.tx_replies, 30);
        assert_eq!(sessions.get(s).unwrap().next_reply_seq, 31);
    }

    /// A reply numbered `n` (its first eight bytes) answering client
    /// message `n` (the client-sequence field every reply layout has).
    fn numbered(n: u64) -> [u8; MESSAGE_LEN] {
        let mut m = [0u8; MESSAGE_LEN];
        m[..8].copy_from_slice(&n.to_le_bytes());
        peregrine_wire::message::set_reply_client_seq(&mut m, n);
        m
    }

    proptest::proptest! {
        /// `drain` against a model: whatever mix of sessions the output
        /// ring holds (runs long enough to be packed from the ring, short
        /// runs, interleavings, a session with no peer, an unknown
        /// session), however small the transmit batch and whichever
        /// framing and port, each session receives exactly its replies, in
        /// ring order, under consecutive reply sequences from 1, at most a
        /// packet's worth per packet, and its reply log holds the newest.
        #[test]
        fn drain_sends_each_session_its_replies_in_order(
            targets in proptest::collection::vec(
                proptest::prop_oneof![
                    (0u32..5, 1usize..40),
                    (0u32..3, 14usize..15),
                ],
                0..40,
            ),
            tx_burst in 1usize..4,
            reply_burst in 1usize..80,
            lending in proptest::bool::ANY,
            soup in proptest::bool::ANY,
            log_depth in proptest::prop_oneof![0usize..1, 4usize..5, 16usize..17],
            skew in proptest::prop_oneof![0usize..1, 2_600usize..4_096],
        ) {
            use peregrine_netio::memory::MemoryPort;
            use peregrine_wire::soupbintcp::kind;
            use peregrine_wire::SessionRef;
            let framing = if soup { Framing::SoupBinTcp } else { Framing::MoldUdp64 };
            let local: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
            let (mut port, handle) = if lending {
                MemoryPort::lending(local, tx_burst)
            } else {
                MemoryPort::new(local)
            };
            // Sessions 0..3 have peers, 3 has none, 4 does not exist.
            let mut sessions = SessionTable::with_reply_log(4, log_depth);
            let peers: Vec<std::net::SocketAddr> =
                (1..=3).map(|p| format!("127.0.0.1:{p}").parse().unwrap()).collect();
            for (i, name) in ["A", "B", "C"].iter().enumerate() {
                sessions.add(session_name(name), Some(Peer::Addr(peers[i]))).unwrap();
            }
            sessions.add(session_name("D"), None).unwrap();
            let directory = SessionDirectory::new(&[]).unwrap();
            let (mut to_gateway, mut from_sequencer) =
                peregrine_ring::ring::<OutboundSlot>(4096).unwrap();
            // `skew` slots used and freed first, so that the replies below
            // often straddle the ring's wrap.
            for _ in 0..skew {
                proptest::prop_assert!(to_gateway.stage(OutboundSlot::reply(SessionRef::new(0, 0), &numbered(0))));
            }
            to_gateway.publish();
            proptest::prop_assert_eq!(from_sequencer.available(), skew);
            from_sequencer.advance(skew);
            from_sequencer.release();
            let mut path = ReplyPath::new(
                framing, from_sequencer, 4, tx_burst, reply_burst, u64::MAX, 0,
            );
            let mut model: Vec<Vec<u64>> = vec![Vec::new(); 5];
            let mut n = 0u64;
            for &(to, len) in &targets {
                for _ in 0..len {
                    n += 1;
                    let mut slot = OutboundSlot::reply(SessionRef::new(0, to), &numbered(n));
                    slot.rx_ns = 1 + n / 3;
                    proptest::prop_assert!(to_gateway.stage(slot));
                    model[to as usize].push(n);
                }
            }
            to_gateway.publish();
            let mut counters = GatewayCounters::default();
            while path.drain(&mut sessions, &directory, 0, &mut port, &mut counters) > 0 {}

            let mut got: Vec<Vec<u64>> = vec![Vec::new(); 3];
            let mut next_seq = [1u64; 3];
            for (to, bytes) in handle.take_sent() {
                let s = peers.iter().position(|p| *p == to).unwrap();
                let msgs: Vec<u64> = if soup {
                    let mut at = 0;
                    let mut out = Vec::new();
                    while at < bytes.len() {
                        let len = u16::from_be_bytes([bytes[at], bytes[at + 1]]) as usize;
                        proptest::prop_assert_eq!(bytes[at + 2], kind::SEQUENCED_DATA);
                        let m = &bytes[at + 3..at + 2 + len];
                        out.push(u64::from_le_bytes(m[..8].try_into().unwrap()));
                        at += 2 + len;
                    }
                    out
                } else {
                    let p = MoldPacket::new_checked(&bytes).unwrap();
                    proptest::prop_assert_eq!(p.sequence(), next_seq[s]);
                    p.blocks()
                        .map(|b| u64::from_le_bytes(b[..8].try_into().unwrap()))
                        .collect()
                };
                proptest::prop_assert!(!msgs.is_empty() && msgs.len() <= framing.per_packet());
                next_seq[s] += msgs.len() as u64;
                got[s].extend(msgs);
            }
            for s in 0..3 {
                proptest::prop_assert_eq!(&got[s], &model[s], "session {}", s);
            }
            for s in 0..4u32 {
                let session = sessions.get(s).unwrap();
                let sent = &model[s as usize];
                proptest::prop_assert_eq!(session.next_reply_seq, sent.len() as u64 + 1);
                for (k, &reply) in sent.iter().enumerate().rev().take(log_depth) {
                    let logged = session.log.get(k as u64 + 1).map(|m| u64::from_le_bytes(m[..8].try_into().unwrap()));
                    proptest::prop_assert_eq!(logged, Some(reply));
                }
                proptest::prop_assert_eq!(session.replied_client_seq, sent.last().copied().unwrap_or(0));
            }
            let routable: usize = model[..3].iter().map(Vec::len).sum();
            proptest::prop_assert_eq!(counters.tx_replies, routable as u64);
            proptest::prop_assert_eq!(
                counters.replies_unroutable,
                (model[3].len() + model[4].len()) as u64
            );
            let recorded = path.latency().count();
            proptest::prop_assert_eq!(recorded, routable as u64);
        }
    }

    #[test]
    fn full_tx_batch_is_reported_not_lost() {
        let mut sessions = SessionTable::new(2);
        let peer = Peer::Addr("127.0.0.1:1".parse().unwrap());
        let s = sessions.add(session_name("A"), Some(peer)).unwrap();
        let mut b = ReplyBatcher::new(Framing::SoupBinTcp, 2);
        let mut tx = PacketBatch::new(1);
        let mut c = GatewayCounters::default();
        let per = Framing::SoupBinTcp.per_packet();
        for _ in 0..per * 2 {
            b.stage(&mut sessions, s, &[1; 100], &mut tx, &mut c).unwrap();
        }
        assert_eq!(b.stage(&mut sessions, s, &[1; 100], &mut tx, &mut c), Err(TxFull));
        assert_eq!(tx.len(), 1);
        tx.clear();
        b.stage(&mut sessions, s, &[1; 100], &mut tx, &mut c).unwrap();
        assert_eq!(tx.len(), 1, "the second full stage was packed");
        assert_eq!(b.flush(&mut sessions, &mut tx, &mut c), Err(TxFull));
        tx.clear();
        b.flush(&mut sessions, &mut tx, &mut c).unwrap();
        assert_eq!(
            c.tx_replies as usize,
            per * 2 + 1,
            "every reply packed exactly once"
        );
        assert_eq!(sessions.get(s).unwrap().next_reply_seq as usize, per * 2 + 2);
    }
}
