//! What the simulator sends: Echo messages, or the engine's mixed order
//! flow ([`peregrine_engine::flow`], the same generator the engine
//! benchmarks use), one command at a time for the session whose turn it is,
//! written as wire messages.

use peregrine_engine::flow::{FlowConfig, FlowGenerator};
use peregrine_engine::EngineConfig;
use peregrine_server::engine_codec::encode;
use peregrine_wire::message::{Echo, MESSAGE_LEN};
use zerocopy::IntoBytes;

/// Which messages to send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlowKind {
    /// Echo messages (pure sequencing).
    #[default]
    Echo,
    /// Orders on instrument [`FLOW_INSTRUMENT`]: the engine's mixed flow
    /// (about 60% new limit orders near the touch, 25% cancels, 10%
    /// replaces, 5% market orders), each session trading its own orders.
    Orders,
}

impl std::str::FromStr for FlowKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "echo" => Ok(FlowKind::Echo),
            "orders" => Ok(FlowKind::Orders),
            o => Err(format!("unknown flow {o:?} (echo, orders)")),
        }
    }
}

/// The instrument the order flow trades: id 1 of the sample configuration
/// (tick 1, lot 1, band 1..=100,000).
pub const FLOW_INSTRUMENT: u32 = 1;

/// Produces each next message of a session.
pub struct Flow {
    kind: FlowKind,
    /// The order flow (None for Echo).
    orders: Option<Box<FlowGenerator>>,
}

impl Flow {
    /// A flow for `sessions` sessions, seeded with `seed`. The order flow
    /// plans against the sample engine configuration, the one a server
    /// without an `[engine]` section runs.
    pub fn new(kind: FlowKind, sessions: usize, seed: u64) -> Self {
        let orders = (kind == FlowKind::Orders).then(|| {
            let flow = FlowConfig {
                instrument: FLOW_INSTRUMENT,
                sessions: sessions.max(1) as u32,
                seed,
                ..FlowConfig::standard()
            };
            Box::new(
                FlowGenerator::new(&EngineConfig::sample(), &flow)
                    .expect("the sample engine configuration is valid"),
            )
        });
        Flow { kind, orders }
    }

    /// Writes session `s`'s next message, stamped `ts_ns`, tagged `tag`
    /// (Echo only; orders carry their own ids).
    pub fn next(&mut self, s: usize, ts_ns: u64, tag: u64, out: &mut [u8; MESSAGE_LEN]) {
        match (self.kind, self.orders.as_mut()) {
            (FlowKind::Orders, Some(g)) => encode(&g.next_for(s as u32), ts_ns, out),
            _ => out.copy_from_slice(Echo::new(ts_ns, tag).as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_wire::message::{parse_inbound, Inbound};

    #[test]
    fn order_flow_messages_parse_as_what_the_generator_meant() {
        let mut flow = Flow::new(FlowKind::Orders, 2, 1);
        let mut m = [0u8; MESSAGE_LEN];
        let mut kinds = [0usize; 3];
        for i in 0..2000 {
            flow.next(i % 2, 77, 0, &mut m);
            match parse_inbound(&m).expect("a valid message") {
                Inbound::NewOrder(o) => {
                    kinds[0] += 1;
                    assert_eq!((o.client_ts_ns.get(), o.instrument.get()), (77, FLOW_INSTRUMENT));
                    assert!(o.side().is_ok() && o.order_kind().is_ok() && o.time_in_force().is_ok());
                }
                Inbound::Cancel(_) => kinds[1] += 1,
                Inbound::Replace(_) => kinds[2] += 1,
                Inbound::Echo(_) => panic!("orders only"),
            }
        }
        assert!(kinds.iter().all(|&k| k > 0), "{kinds:?}");
    }

    #[test]
    fn the_echo_flow_stamps_and_tags() {
        let mut flow = Flow::new(FlowKind::Echo, 1, 1);
        let mut m = [0u8; MESSAGE_LEN];
        flow.next(0, 5, 6, &mut m);
        assert_eq!(m, *Echo::new(5, 6).as_bytes());
    }
}
