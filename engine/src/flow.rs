//! Synthetic, deterministic order flow for benchmarks and load generators.
//!
//! A realistic mix on one instrument: about 60% new GTC limit orders placed
//! near the touch (never crossing), 25% cancels of live orders, 10% replaces
//! of live orders (price moves that stay passive, or quantity changes), and
//! 5% marketable orders (market IOC). The generator drives a scratch
//! [`Engine`] while it generates, so cancels and replaces target orders that
//! are really live at that point, and the marketable orders are sized so the
//! book hovers around a target number of resting orders instead of growing
//! without bound. Replaying the flow into a fresh engine built from the same
//! config reproduces exactly the states the generator saw.
//!
//! Two ways to use it: [`generate`] prepares a whole flow up front (the
//! engine benchmarks, which must not pay for generation while they
//! measure), and [`FlowGenerator::next_for`] produces one command at a time
//! for a session the caller picks (the client simulator's `orders` flow,
//! which sends each session's own orders as their time comes). Both are the
//! same generator making the same decisions.
//!
//! Not used by the engine itself; it lives here so that every benchmark and
//! the client simulator share one definition of "the mixed flow", and one
//! seeded random generator ([`SplitMix64`]) for everything Peregrine's tools
//! randomise.

use crate::command::{Cancel, Command, NewOrder, OrderKind, Replace, SelfTradePrevention, Side, TimeInForce};
use crate::config::{ConfigError, EngineConfig};
use crate::engine::Engine;
use crate::report::{Report, ReportSink};

/// SplitMix64: a tiny, fast, well-distributed 64-bit generator with a fixed
/// seed, so flows are identical on every machine.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (`bound > 0`), by multiply-shift.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// True with probability `percent / 100`.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Parameters of the synthetic flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowConfig {
    /// Instrument the flow trades (must be in the engine config).
    pub instrument: u32,
    /// Number of sessions orders are spread over.
    pub sessions: u32,
    /// PRNG seed.
    pub seed: u64,
    /// Resting orders the setup phase builds and the flow hovers around.
    pub resting_target: usize,
    /// Largest order size, in lots (sizes are uniform in `1..=max_lots`).
    pub max_lots: u64,
    /// New orders are placed up to this many ticks behind the touch.
    pub depth_ticks: i64,
    /// Price around which the book is built when it is empty.
    pub start_price: i64,
}

impl FlowConfig {
    /// The flow used by Peregrine's benchmarks on [`EngineConfig::sample`]'s
    /// instrument 1: 64 sessions, 10,000 resting orders, sizes 1..=100 lots,
    /// orders up to 50 ticks behind the touch, around price 50,000.
    pub fn standard() -> FlowConfig {
        FlowConfig {
            instrument: 1,
            sessions: 64,
            seed: 0x5eed_f10e_0000_0001,
            resting_target: 10_000,
            max_lots: 100,
            depth_ticks: 50,
            start_price: 50_000,
        }
    }
}

/// A generated flow.
#[derive(Debug, Clone, Default)]
pub struct OrderFlow {
    /// Builds the initial book (new passive limit orders only); apply untimed.
    pub setup: Vec<Command>,
    /// The mixed flow to measure.
    pub commands: Vec<Command>,
    /// For each `Replace` in `commands`, in order, what the generator knew
    /// about it. Engines whose replace needs the side, or takes an open
    /// quantity rather than a total (most peers), use this.
    pub replace_details: Vec<ReplaceDetail>,
}

/// Facts about one generated replace that the command itself does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaceDetail {
    /// Side of the replaced order.
    pub side: Side,
    /// Whether the price changes.
    pub price_changed: bool,
    /// Open quantity of the order right after the replace.
    pub new_leaves: u64,
}

/// Counts of each operation in a flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowMix {
    /// New limit orders.
    pub limits: usize,
    /// Market orders.
    pub markets: usize,
    /// Cancels.
    pub cancels: usize,
    /// Replaces.
    pub replaces: usize,
}

impl OrderFlow {
    /// How many of each operation `commands` holds.
    pub fn mix(&self) -> FlowMix {
        let mut mix = FlowMix::default();
        for command in &self.commands {
            match command {
                Command::New(order) if order.kind == OrderKind::Market => mix.markets += 1,
                Command::New(_) => mix.limits += 1,
                Command::Cancel(_) => mix.cancels += 1,
                Command::Replace(_) => mix.replaces += 1,
            }
        }
        mix
    }
}

/// Ignores the scratch engine's reports.
struct Discard;

impl ReportSink for Discard {
    fn report(&mut self, _session: u32, _report: &Report) {}
}

/// The flow generator, one command at a time. It keeps a scratch [`Engine`]
/// that every command it produces is applied to, so it knows which orders
/// are live and where the touch is.
pub struct FlowGenerator {
    engine: Engine,
    rng: SplitMix64,
    flow: FlowConfig,
    tick: i64,
    lot: u64,
    band: (i64, i64),
    next_ids: Vec<u64>,
    /// Orders that may be live, any session ([`generate`]); filled ones are
    /// dropped lazily when picked.
    maybe_live: Vec<(u32, u64)>,
    /// The same per session, for [`FlowGenerator::next_for`].
    maybe_live_of: Vec<Vec<u64>>,
    /// The scratch engine's order pool size: no new limit orders once full.
    max_orders: usize,
}

impl FlowGenerator {
    /// A generator for `flow` against an engine built from
    /// `engine_config`, starting from an empty book (no setup phase). Fails
    /// if the config is invalid; an unknown instrument gives a flow of
    /// rejects, which is the caller's mistake to avoid.
    pub fn new(engine_config: &EngineConfig, flow: &FlowConfig) -> Result<FlowGenerator, ConfigError> {
        let engine = Engine::new(engine_config)?;
        let instrument = engine_config.instruments.iter().find(|i| i.id == flow.instrument);
        let (tick, lot, band) = instrument.map_or((1, 1, (1, i64::MAX)), |i| {
            (i.tick_size, i.lot_size, (i.price_min, i.price_max))
        });
        let sessions = flow.sessions.max(1) as usize;
        Ok(FlowGenerator {
            engine,
            rng: SplitMix64::new(flow.seed),
            flow: flow.clone(),
            tick,
            lot,
            band,
            next_ids: vec![1; sessions],
            maybe_live: Vec::new(),
            maybe_live_of: vec![Vec::new(); sessions],
            max_orders: engine_config.max_orders,
        })
    }

    /// The next command of the mixed flow for `session` (below the flow's
    /// `sessions`; others are taken modulo): a new order, or a cancel or
    /// replace of one of that session's own live orders. Applied to the
    /// generator's scratch engine before it is returned, so the next
    /// decision sees its effect; a server that receives the commands in
    /// the same order holds the same book.
    pub fn next_for(&mut self, session: u32) -> Command {
        let session = session % self.flow.sessions.max(1);
        self.step(Some(session), &mut |_| {})
    }

    fn apply(&mut self, command: Command, out: &mut Vec<Command>) {
        self.engine.apply(&command, &mut Discard);
        out.push(command);
    }

    /// One command of the mixed flow, applied to the scratch engine: for
    /// `session`, or (None) for a session the generator draws. A replace's
    /// details go to `details`.
    fn step(&mut self, session: Option<u32>, details: &mut dyn FnMut(ReplaceDetail)) -> Command {
        let roll = self.rng.below(100);
        let pool_full = self.engine.resting_count() >= self.max_orders;
        let command = if roll < 60 && !pool_full {
            self.new_limit(session)
        } else if roll < 85 {
            self.cancel(session)
        } else if roll < 95 {
            self.replace(session).map(|(command, detail)| {
                details(detail);
                command
            })
        } else {
            Some(self.marketable(session))
        };
        let command = match command {
            Some(command) => command,
            None => match self.new_limit(session) {
                Some(command) => command,
                None => self.marketable(session),
            },
        };
        self.engine.apply(&command, &mut Discard);
        command
    }

    /// The session of a new order: `session`, or one drawn.
    fn session(&mut self, session: Option<u32>) -> u32 {
        match session {
            Some(s) => s,
            None => self.rng.below(u64::from(self.flow.sessions)) as u32,
        }
    }

    fn lots(&mut self) -> u64 {
        (1 + self.rng.below(self.flow.max_lots)) * self.lot
    }

    /// Ticks behind the touch, skewed towards the touch.
    fn depth(&mut self) -> i64 {
        let span = self.flow.depth_ticks.max(1) as u64;
        let (a, b) = (self.rng.below(span), self.rng.below(span));
        (a * b / span) as i64
    }

    /// A passive price for `side`: up to `depth_ticks` behind the price just
    /// inside the opposite touch (skewed towards it), so the spread stays
    /// tight as market orders take liquidity away; never crossing, inside
    /// the band.
    fn passive_price(&mut self, side: Side) -> i64 {
        let instrument = self.flow.instrument;
        let (bid, ask) = (self.engine.best_bid(instrument), self.engine.best_ask(instrument));
        let tick = self.tick;
        let depth = self.depth() * tick;
        let price = match side {
            Side::Buy => {
                let anchor = ask.map(|a| a - tick).or(bid).unwrap_or(self.flow.start_price);
                anchor - depth
            }
            Side::Sell => {
                let anchor = bid.map(|b| b + tick).or(ask).unwrap_or(self.flow.start_price);
                anchor + depth
            }
        };
        price.clamp(self.band.0, self.band.1)
    }

    fn new_limit(&mut self, session: Option<u32>) -> Option<Command> {
        let side = if self.rng.percent(50) {
            Side::Buy
        } else {
            Side::Sell
        };
        let price = self.passive_price(side);
        if price < self.band.0 || price > self.band.1 {
            return None;
        }
        let directed = session.is_some();
        let session = self.session(session);
        let order_id = self.next_ids[session as usize];
        self.next_ids[session as usize] += 1;
        let quantity = self.lots();
        if directed {
            self.maybe_live_of[session as usize].push(order_id);
        } else {
            self.maybe_live.push((session, order_id));
        }
        Some(Command::New(NewOrder {
            session,
            order_id,
            instrument: self.flow.instrument,
            side,
            kind: OrderKind::Limit,
            tif: TimeInForce::Gtc,
            post_only: false,
            stp: SelfTradePrevention::None,
            price,
            quantity,
        }))
    }

    /// A uniformly chosen live order (of `session`, or of any), dropping
    /// stale entries on the way.
    fn pick_live(&mut self, session: Option<u32>) -> Option<(u32, u64)> {
        if let Some(session) = session {
            let live = &mut self.maybe_live_of[session as usize];
            while !live.is_empty() {
                let at = self.rng.below(live.len() as u64) as usize;
                let order_id = live[at];
                if self.engine.order(session, order_id).is_some() {
                    return Some((session, order_id));
                }
                live.swap_remove(at);
            }
            return None;
        }
        while !self.maybe_live.is_empty() {
            let at = self.rng.below(self.maybe_live.len() as u64) as usize;
            let (session, order_id) = self.maybe_live[at];
            if self.engine.order(session, order_id).is_some() {
                return Some((session, order_id));
            }
            self.maybe_live.swap_remove(at);
        }
        None
    }

    fn cancel(&mut self, session: Option<u32>) -> Option<Command> {
        let (session, order_id) = self.pick_live(session)?;
        Some(Command::Cancel(Cancel {
            session,
            order_id,
            instrument: self.flow.instrument,
        }))
    }

    /// A replace and what the peers need to know about it.
    fn replace(&mut self, session: Option<u32>) -> Option<(Command, ReplaceDetail)> {
        let (session, order_id) = self.pick_live(session)?;
        let order = self.engine.order(session, order_id)?;
        let filled = order.quantity - order.leaves;
        let (new_price, new_leaves) = if self.rng.percent(50) {
            let step = (1 + self.rng.below(3) as i64) * self.tick;
            let moved = match (order.side, self.rng.percent(50)) {
                (Side::Buy, true) | (Side::Sell, false) => order.price + step,
                _ => order.price - step,
            };
            let moved = moved.clamp(self.band.0, self.band.1);
            let passive = match order.side {
                Side::Buy => self
                    .engine
                    .best_ask(self.flow.instrument)
                    .map_or(moved, |a| moved.min(a - self.tick)),
                Side::Sell => self
                    .engine
                    .best_bid(self.flow.instrument)
                    .map_or(moved, |b| moved.max(b + self.tick)),
            };
            (passive, order.leaves)
        } else {
            (order.price, self.lots())
        };
        let command = Command::Replace(Replace {
            session,
            order_id,
            instrument: self.flow.instrument,
            new_price,
            new_quantity: filled + new_leaves,
        });
        let detail = ReplaceDetail {
            side: order.side,
            price_changed: new_price != order.price,
            new_leaves,
        };
        Some((command, detail))
    }

    /// A market order sized to pull the book back towards the target size.
    fn marketable(&mut self, session: Option<u32>) -> Command {
        let side = if self.rng.percent(50) {
            Side::Buy
        } else {
            Side::Sell
        };
        // About 35 of every 100 operations add a resting order net of
        // cancels, so each of the 5 marketable ones removes about 7 orders'
        // worth when the book is at its target size, more when it is above.
        let average_order = self.flow.max_lots.div_ceil(2);
        let pressure = (self.engine.resting_count() as u64 * 100) / (self.flow.resting_target.max(1) as u64);
        let mean_lots = (7 * average_order * pressure / 100).max(1);
        let quantity = (1 + self.rng.below(2 * mean_lots)) * self.lot;
        let session = self.session(session);
        let order_id = self.next_ids[session as usize];
        self.next_ids[session as usize] += 1;
        Command::New(NewOrder {
            session,
            order_id,
            instrument: self.flow.instrument,
            side,
            kind: OrderKind::Market,
            tif: TimeInForce::Ioc,
            post_only: false,
            stp: SelfTradePrevention::None,
            price: 0,
            quantity,
        })
    }
}

/// Generates `count` mixed commands (after a setup phase that builds the
/// book to `flow.resting_target` orders) against an engine built from
/// `engine_config`. Fails if the config is invalid; an unknown instrument
/// gives a flow of rejects, which is the caller's mistake to avoid.
pub fn generate(
    engine_config: &EngineConfig,
    flow: &FlowConfig,
    count: usize,
) -> Result<OrderFlow, ConfigError> {
    let mut generator = FlowGenerator::new(engine_config, flow)?;
    let target = flow.resting_target.min(engine_config.max_orders);
    let mut out = OrderFlow::default();
    let mut attempts = 0;
    while generator.engine.resting_count() < target && attempts < 4 * target + 16 {
        attempts += 1;
        if let Some(command) = generator.new_limit(None) {
            generator.apply(command, &mut out.setup);
        }
    }
    let mut details = Vec::new();
    while out.commands.len() < count {
        let command = generator.step(None, &mut |d| details.push(d));
        out.commands.push(command);
    }
    out.replace_details = details;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> (EngineConfig, FlowConfig) {
        let mut config = EngineConfig::sample();
        config.max_orders = 4096;
        let flow = FlowConfig {
            resting_target: 500,
            ..FlowConfig::standard()
        };
        (config, flow)
    }

    #[test]
    fn flow_is_deterministic_and_close_to_the_requested_mix() {
        let (config, flow) = small();
        let first = generate(&config, &flow, 20_000).unwrap();
        let second = generate(&config, &flow, 20_000).unwrap();
        assert_eq!(first.commands, second.commands);
        assert_eq!(first.setup.len(), 500);
        let mix = first.mix();
        let share = |n: usize| n * 100 / first.commands.len();
        assert!((57..=63).contains(&share(mix.limits)), "{mix:?}");
        assert!((22..=28).contains(&share(mix.cancels)), "{mix:?}");
        assert!((8..=12).contains(&share(mix.replaces)), "{mix:?}");
        assert!((3..=7).contains(&share(mix.markets)), "{mix:?}");
        assert_eq!(first.replace_details.len(), mix.replaces);
    }

    #[test]
    fn flow_replays_without_rejects_and_keeps_the_book_near_target() {
        let (config, flow) = small();
        let generated = generate(&config, &flow, 20_000).unwrap();
        let mut engine = Engine::new(&config).unwrap();
        let mut reports: Vec<(u32, Report)> = Vec::new();
        for command in generated.setup.iter().chain(&generated.commands) {
            engine.apply(command, &mut reports);
        }
        let rejects = reports
            .iter()
            .filter(|(_, r)| r.kind == crate::ReportKind::Rejected)
            .count();
        assert_eq!(rejects, 0);
        let resting = engine.resting_count();
        assert!((250..=1000).contains(&resting), "resting {resting}");
        engine.check_invariants().unwrap();
    }

    #[test]
    fn a_session_directed_flow_touches_only_that_sessions_orders_and_replays_cleanly() {
        let (config, flow) = small();
        let flow = FlowConfig { sessions: 4, ..flow };
        let run = || {
            let mut g = FlowGenerator::new(&config, &flow).unwrap();
            (0..20_000u32)
                .map(|i| (i % 4, g.next_for(i % 4)))
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run(), "deterministic");
        let mut engine = Engine::new(&config).unwrap();
        let mut reports: Vec<(u32, Report)> = Vec::new();
        let mut mix = FlowMix::default();
        for (session, command) in &first {
            let (on, order) = match command {
                Command::New(o) => {
                    if o.kind == OrderKind::Market {
                        mix.markets += 1
                    } else {
                        mix.limits += 1
                    }
                    (o.session, o.order_id)
                }
                Command::Cancel(c) => {
                    mix.cancels += 1;
                    (c.session, c.order_id)
                }
                Command::Replace(r) => {
                    mix.replaces += 1;
                    (r.session, r.order_id)
                }
            };
            assert_eq!(on, *session, "order {order} belongs to the session asked for");
            engine.apply(command, &mut reports);
        }
        let rejects = reports
            .iter()
            .filter(|(_, r)| r.kind == crate::ReportKind::Rejected)
            .count();
        assert_eq!(rejects, 0);
        let share = |n: usize| n * 100 / first.len();
        assert!((50..=70).contains(&share(mix.limits)), "{mix:?}");
        assert!((3..=7).contains(&share(mix.markets)), "{mix:?}");
        engine.check_invariants().unwrap();
    }
}
