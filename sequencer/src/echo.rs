//! The pure-sequencing application: every message is answered with an Ack
//! carrying its global sequence number and timestamps.

use crate::app::{Application, ReplySink};
use peregrine_journal::Sequenced;
use peregrine_wire::message::{client_ts_of, msg_type_of, order_id_or_tag_of, Ack, MessageType, MESSAGE_LEN};
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
    #[inline]
    fn on_message(&mut self, m: &Sequenced<'_>, out: &mut ReplySink<'_>) {
        let mut ack = Ack::empty();
        ack.acked_type = msg_type_of(m.msg);
        ack.global_seq = U64::new(m.global_seq);
        ack.client_seq = U64::new(m.client_seq);
        ack.client_ts_ns = U64::new(client_ts_of(m.msg));
        ack.gateway_rx_ns = U64::new(m.gateway_rx_ns);
        ack.sequencer_ns = U64::new(m.sequencer_ns);
        if ack.acked_type == MessageType::Echo as u8 {
            ack.client_tag = U64::new(order_id_or_tag_of(m.msg));
        }
        let bytes: [u8; MESSAGE_LEN] = zerocopy::transmute!(ack);
        out.send(m.origin, &bytes);
        self.acked += 1;
    }
}
