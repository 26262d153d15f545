//! The pure-sequencing application: every message is answered with an Ack
//! carrying its global sequence number and timestamps.

use crate::app::{Application, ReplySink};
use peregrine_journal::Sequenced;
use peregrine_wire::message::{
    client_ts_of, msg_type_of, order_id_or_tag_of, Ack, MessageType, LAYOUT_VERSION,
};
use zerocopy::little_endian::U64;

/// Acknowledges every message to its sender.
#[derive(Debug, Default)]
pub struct EchoApp {
    acked: u64,
}

impl EchoApp {
    /// A new echo application.
    pub fn new() -> Self {
        EchoApp::default()
    }

    /// Messages acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked
    }
}

impl Application for EchoApp {
    // Always inlined: a few dozen instructions per message, where a call's
    // set-up is a visible share (behind the server's application enum the
    // compiler otherwise keeps it out of line).
    #[inline(always)]
    fn on_message(&mut self, m: &Sequenced<'_>, out: &mut ReplySink<'_>) {
        let acked_type = msg_type_of(m.msg);
        let client_tag = if acked_type == MessageType::Echo as u8 {
            order_id_or_tag_of(m.msg)
        } else {
            0
        };
        let client_ts_ns = client_ts_of(m.msg);
        // Built where it goes (see `ReplySink::send_with`).
        out.send_with(m.origin, |bytes| {
            let ack: &mut Ack = zerocopy::transmute_mut!(bytes);
            // Built whole, so each byte of the slot is stored once (zeroing
            // it first and then setting the fields stored most bytes twice).
            *ack = Ack {
                msg_type: MessageType::Ack as u8,
                version: LAYOUT_VERSION,
                acked_type,
                reserved: [0; 5],
                global_seq: U64::new(m.global_seq),
                client_seq: U64::new(m.client_seq),
                client_ts_ns: U64::new(client_ts_ns),
                gateway_rx_ns: U64::new(m.gateway_rx_ns),
                sequencer_ns: U64::new(m.sequencer_ns),
                client_tag: U64::new(client_tag),
                reserved2: [0; 44],
            };
        });
        self.acked += 1;
    }
}
