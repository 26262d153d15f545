//! What the simulator sends: Echo messages, or a realistic order flow.

use peregrine_wire::message::{Cancel, Echo, MessageType, NewOrder, Replace, LAYOUT_VERSION, MESSAGE_LEN};
use zerocopy::little_endian::{I64, U32, U64};
use zerocopy::{FromZeros, IntoBytes};

/// Which messages to send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlowKind {
    /// Echo messages (pure sequencing).
    #[default]
    Echo,
    /// Orders: 60% new limit near the touch, 25% cancel, 10% replace,
    /// 5% marketable.
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

/// A small deterministic PRNG (xorshift64*), so runs are repeatable.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (seed 0 is replaced by a constant).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The instrument the order flow trades: id 1 of the sample configuration
/// (tick 1, lot 1, band 1..=100,000).
pub const FLOW_INSTRUMENT: u32 = 1;
const MID: i64 = 50_000;
const MAX_LIVE: usize = 256;

/// Per-session order state for the order flow.
#[derive(Clone, Debug)]
struct SessionOrders {
    next_id: u64,
    live: Vec<u64>,
}

/// Produces each next message of a session.
pub struct Flow {
    kind: FlowKind,
    rng: Rng,
    sessions: Vec<SessionOrders>,
}

impl Flow {
    /// A flow for `sessions` sessions.
    pub fn new(kind: FlowKind, sessions: usize, seed: u64) -> Self {
        Flow {
            kind,
            rng: Rng::new(seed),
            sessions: (0..sessions)
                .map(|_| SessionOrders {
                    next_id: 1,
                    live: Vec::with_capacity(MAX_LIVE),
                })
                .collect(),
        }
    }

    /// Writes session `s`'s next message, stamped `ts_ns`, tagged `tag`.
    pub fn next(&mut self, s: usize, ts_ns: u64, tag: u64, out: &mut [u8; MESSAGE_LEN]) {
        match self.kind {
            FlowKind::Echo => out.copy_from_slice(Echo::new(ts_ns, tag).as_bytes()),
            FlowKind::Orders => self.next_order(s, ts_ns, out),
        }
    }

    fn next_order(&mut self, s: usize, ts_ns: u64, out: &mut [u8; MESSAGE_LEN]) {
        let roll = self.rng.below(100);
        let st = &mut self.sessions[s];
        let pick = |rng: &mut Rng, live: &[u64]| live[rng.below(live.len() as u64) as usize];
        if (60..85).contains(&roll) && !st.live.is_empty() {
            let i = self.rng.below(st.live.len() as u64) as usize;
            let id = st.live.swap_remove(i);
            let mut c = Cancel::new_zeroed();
            c.msg_type = MessageType::Cancel as u8;
            c.version = LAYOUT_VERSION;
            c.client_ts_ns = U64::new(ts_ns);
            c.order_id = U64::new(id);
            c.instrument = U32::new(FLOW_INSTRUMENT);
            out.copy_from_slice(c.as_bytes());
            return;
        }
        if (85..95).contains(&roll) && !st.live.is_empty() {
            let id = pick(&mut self.rng, &st.live);
            let mut r = Replace::new_zeroed();
            r.msg_type = MessageType::Replace as u8;
            r.version = LAYOUT_VERSION;
            r.client_ts_ns = U64::new(ts_ns);
            r.order_id = U64::new(id);
            r.instrument = U32::new(FLOW_INSTRUMENT);
            let buy = self.rng.below(2) == 0;
            let off = 1 + self.rng.below(20) as i64;
            r.new_price = I64::new(if buy { MID - off } else { MID + off });
            r.new_quantity = U64::new(1 + self.rng.below(100));
            out.copy_from_slice(r.as_bytes());
            return;
        }
        let marketable = roll >= 95;
        let buy = self.rng.below(2) == 0;
        let id = st.next_id;
        st.next_id += 1;
        let mut o = NewOrder::new_zeroed();
        o.msg_type = MessageType::NewOrder as u8;
        o.version = LAYOUT_VERSION;
        o.side = if buy { 1 } else { 2 };
        o.order_kind = 1;
        o.client_ts_ns = U64::new(ts_ns);
        o.order_id = U64::new(id);
        o.instrument = U32::new(FLOW_INSTRUMENT);
        o.quantity = U64::new(1 + self.rng.below(100));
        if marketable {
            o.time_in_force = 2; // IOC through the touch
            o.price = I64::new(if buy { MID + 50 } else { MID - 50 });
        } else {
            o.time_in_force = 1; // GTC near the touch, never crossing
            let off = 1 + self.rng.below(20) as i64;
            o.price = I64::new(if buy { MID - off } else { MID + off });
            if st.live.len() >= MAX_LIVE {
                st.live.swap_remove(0);
            }
            st.live.push(id);
        }
        out.copy_from_slice(o.as_bytes());
    }
}
