//! The market-data stream: what the matching engine makes public, derived
//! from the sequenced stream by a replica engine on the feed's thread.
//!
//! Why a replica and not a tap on the sequencer's engine: the feed must
//! never slow sequencing, and the sequenced order stream determines the
//! engine's output exactly, so the feed thread can recompute it at its own
//! pace from the same journal it publishes. Because the derivation is a
//! pure function of the order stream, every node of a cluster (and every
//! restart) produces the same market-data blocks under the same sequence
//! numbers: [`MarketDataBuilder::catch_up`] replays the journal before the
//! feed's first record to recover both the book and the stream's position.
//!
//! A journal that no longer starts at 1 (a cluster node's log compacted
//! into a snapshot, or replaced by its leader's) cannot be replayed from
//! the start, so state snapshots carry the stream's position (blocks
//! emitted through their last sequence) beside the engine state, and
//! [`MarketDataBuilder::from_snapshot`] starts from there: the engine's
//! book gives back the last total published per level, because after
//! every record those totals are exactly the book's.
//!
//! Per order-stream record the builder emits, in this order:
//! * one [`MarketBlock::Trade`] per match (the aggressor's fill), in match
//!   order;
//! * one [`MarketBlock::Level`] per price level whose total open quantity
//!   changed (quantity 0: the level is gone), in the order the command
//!   first touched them. A level whose total ends where it started (an
//!   order that fully traded on arrival) is not reported.

use crate::config::AppKind;
use crate::engine_codec::decode;
use crate::match_app::engine_session;
use crate::snapshot::StateSnapshot;
use peregrine_engine::{Command, Engine, EngineConfig, Report, ReportKind, ReportSink, Side};
use peregrine_feed::{BookSide, MarketBlock};
use peregrine_wire::message::{parse_inbound, Inbound, MESSAGE_LEN};
use peregrine_wire::SessionRef;
use std::collections::HashMap;

/// Most distinct levels one command can touch before the builder stops
/// deduplicating them by scan (beyond it a level may be checked twice; the
/// second check finds it unchanged and emits nothing).
const TOUCHED_SCAN: usize = 64;

/// A price level: instrument, side, price.
type LevelKey = (u32, Side, i64);

/// Replica engine plus the last quantity published per level.
pub struct MarketDataBuilder {
    engine: Engine,
    /// Reports of the command being applied (reused; no allocation once
    /// grown to the largest command's report count).
    reports: Vec<(u32, Report)>,
    /// Levels the command touched, first touch first.
    touched: Vec<LevelKey>,
    /// Last total published per level (absent: 0).
    published: HashMap<LevelKey, u64>,
    /// Market-data blocks emitted since the stream began.
    blocks: u64,
    /// Last order-stream sequence applied (0: none); records at or below
    /// it are ignored.
    last_seq: u64,
    /// The engine configuration (to restore snapshots under).
    config: EngineConfig,
    /// Where the node's latest state snapshot is read when the journal
    /// drops records this builder has not seen.
    snapshots: Option<SnapshotReader>,
}

/// Reads the node's latest state snapshot (`Ok(None)`: there is none).
pub type SnapshotReader = Box<dyn FnMut() -> Result<Option<StateSnapshot>, String> + Send>;

/// Why a builder cannot start from a snapshot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MarketDataStartError {
    /// The snapshot does not say how many blocks the stream had emitted.
    #[error("the snapshot at sequence {0} does not carry the market-data position")]
    UnknownPosition(u64),
    /// Only the match application's state has a book to derive from.
    #[error("the snapshot holds {0:?} state, not the matching engine's")]
    NotMatch(AppKind),
    /// The engine state does not restore under this configuration.
    #[error(transparent)]
    Engine(#[from] peregrine_engine::SnapshotError),
}

impl MarketDataBuilder {
    /// A builder whose book is empty (the stream from sequence 1).
    pub fn new(cfg: &EngineConfig) -> Result<Self, peregrine_engine::ConfigError> {
        Ok(Self::over(
            cfg,
            Engine::new(cfg)?,
            HashMap::with_capacity(4096),
            0,
            0,
        ))
    }

    /// A builder over `engine` whose stream has emitted `blocks` through
    /// record `last_seq`, with `published` the totals it last sent.
    fn over(
        cfg: &EngineConfig,
        engine: Engine,
        published: HashMap<LevelKey, u64>,
        blocks: u64,
        last_seq: u64,
    ) -> Self {
        MarketDataBuilder {
            engine,
            reports: Vec::with_capacity(256),
            touched: Vec::with_capacity(TOUCHED_SCAN),
            published,
            blocks,
            last_seq,
            config: cfg.clone(),
            snapshots: None,
        }
    }

    /// A builder in the state `snap` describes: its engine state, and the
    /// stream position it carries (the next block gets that plus 1). It
    /// continues with record `snap.last_seq + 1`.
    pub fn from_snapshot(cfg: &EngineConfig, snap: &StateSnapshot) -> Result<Self, MarketDataStartError> {
        if snap.app_kind != AppKind::Match {
            return Err(MarketDataStartError::NotMatch(snap.app_kind));
        }
        let blocks = snap
            .market_data_blocks
            .ok_or(MarketDataStartError::UnknownPosition(snap.last_seq))?;
        let engine = Engine::restore(cfg, &snap.app)?;
        // After every record the published totals are the book's totals.
        let mut published = HashMap::with_capacity(4096);
        let instruments: Vec<u32> = engine.instruments().collect();
        for instrument in instruments {
            for side in [Side::Buy, Side::Sell] {
                for o in engine.resting_orders(instrument, side) {
                    *published.entry((instrument, side, o.price)).or_insert(0) += o.leaves;
                }
            }
        }
        Ok(Self::over(cfg, engine, published, blocks, snap.last_seq))
    }

    /// Lets the builder follow its node's journal past a gap (see
    /// [`PublicOutput::rebase`](peregrine_feed::PublicOutput::rebase)):
    /// `reader` gives the latest state snapshot, from which it restarts.
    pub fn with_snapshots(mut self, reader: SnapshotReader) -> Self {
        self.snapshots = Some(reader);
        self
    }

    /// The last order-stream sequence applied (0: none).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Feeds `records` (the order stream after [`last_seq`](Self::last_seq),
    /// in order) without emitting anything: afterwards the book and
    /// [`blocks_emitted`](Self::blocks_emitted) are where the live stream
    /// continues.
    pub fn catch_up(&mut self, records: impl Iterator<Item = peregrine_journal::SequencedRecord>) {
        for r in records {
            self.on_message(r.global_seq, r.origin, &r.msg, &mut |_| {});
        }
    }

    /// Market-data blocks produced so far (the next block's sequence is this
    /// plus 1).
    pub fn blocks_emitted(&self) -> u64 {
        self.blocks
    }

    /// The replica engine (its state hash equals the server's at the same
    /// sequence).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Applies one order-stream record and emits the blocks it causes.
    pub fn on_message(
        &mut self,
        global_seq: u64,
        origin: SessionRef,
        msg: &[u8; MESSAGE_LEN],
        emit: &mut dyn FnMut(&MarketBlock),
    ) {
        if global_seq <= self.last_seq {
            return;
        }
        self.last_seq = global_seq;
        let Ok(inbound) = parse_inbound(msg) else {
            return;
        };
        if let Inbound::Echo(_) = inbound {
            return;
        }
        let Ok(cmd) = decode(inbound, engine_session(origin)) else {
            return;
        };
        self.touched.clear();
        if let Command::Replace(r) = &cmd {
            // The order leaves its old level: note it before it moves.
            if let Some(o) = self.engine.order(r.session, r.order_id) {
                touch(&mut self.touched, (o.instrument, o.side, o.price));
            }
        }
        self.reports.clear();
        self.engine.apply(&cmd, &mut Collect(&mut self.reports));
        for (_, r) in &self.reports {
            match r.kind {
                ReportKind::Fill => {
                    if r.liquidity == peregrine_engine::Liquidity::Taker {
                        self.blocks += 1;
                        emit(&MarketBlock::Trade {
                            instrument: r.instrument,
                            price: r.price,
                            quantity: r.quantity,
                            aggressor: book_side(r.side),
                            trade_id: r.match_id,
                            source_seq: global_seq,
                        });
                    } else {
                        touch(&mut self.touched, (r.instrument, r.side, r.price));
                    }
                }
                ReportKind::Accepted | ReportKind::Cancelled | ReportKind::Replaced => {
                    touch(&mut self.touched, (r.instrument, r.side, r.price));
                }
                ReportKind::Rejected | ReportKind::Expired => {}
            }
        }
        for &(instrument, side, price) in &self.touched {
            let now = self.engine.depth_at(instrument, side, price);
            let key = (instrument, side, price);
            let before = self.published.get(&key).copied().unwrap_or(0);
            if now == before {
                continue;
            }
            if now == 0 {
                self.published.remove(&key);
            } else {
                self.published.insert(key, now);
            }
            self.blocks += 1;
            emit(&MarketBlock::Level {
                instrument,
                side: book_side(side),
                price,
                quantity: now,
                source_seq: global_seq,
            });
        }
    }
}

impl peregrine_feed::PublicOutput for MarketDataBuilder {
    fn on_record(&mut self, rec: &peregrine_feed::FeedRecord, emit: &mut dyn FnMut(&MarketBlock)) {
        self.on_message(rec.global_seq, rec.origin, &rec.msg, emit);
    }

    fn next_block_seq(&self) -> u64 {
        self.blocks + 1
    }

    fn rebase(&mut self, held_first: u64) -> Result<u64, String> {
        let Some(read) = self.snapshots.as_mut() else {
            return Err("no snapshot source".into());
        };
        let snap = read()?.ok_or_else(|| format!("no snapshot, yet the journal starts at {held_first}"))?;
        if snap.last_seq + 1 < held_first {
            return Err(format!(
                "the snapshot ends at sequence {}, the journal starts at {held_first}",
                snap.last_seq
            ));
        }
        let restored = MarketDataBuilder::from_snapshot(&self.config, &snap).map_err(|e| e.to_string())?;
        if restored.blocks < self.blocks {
            return Err(format!(
                "the snapshot's position ({} blocks) is behind this stream's ({})",
                restored.blocks, self.blocks
            ));
        }
        let snapshots = self.snapshots.take();
        *self = restored;
        self.snapshots = snapshots;
        Ok(self.blocks + 1)
    }
}

fn touch(touched: &mut Vec<LevelKey>, key: LevelKey) {
    if touched.len() >= TOUCHED_SCAN || !touched.contains(&key) {
        touched.push(key);
    }
}

fn book_side(s: Side) -> BookSide {
    match s {
        Side::Buy => BookSide::Buy,
        Side::Sell => BookSide::Sell,
    }
}

struct Collect<'a>(&'a mut Vec<(u32, Report)>);

impl ReportSink for Collect<'_> {
    #[inline]
    fn report(&mut self, session: u32, report: &Report) {
        self.0.push((session, *report));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine_codec::encode;
    use crate::match_app::session_ref;
    use peregrine_engine::flow::{FlowConfig, FlowGenerator};
    use std::collections::BTreeMap;

    /// The book as the market-data stream describes it, against the book
    /// the engine holds, level by level.
    fn book_from_engine(e: &Engine, instrument: u32) -> BTreeMap<(u8, i64), u64> {
        let mut book = BTreeMap::new();
        for side in [Side::Buy, Side::Sell] {
            for o in e.resting_orders(instrument, side) {
                *book.entry((side as u8, o.price)).or_insert(0) += o.leaves;
            }
        }
        book
    }

    #[test]
    fn the_level_stream_rebuilds_the_engines_book_and_trades_match_its_fills() {
        for seed in 1..=4u64 {
            let cfg = EngineConfig::sample();
            let flow = FlowConfig {
                seed,
                sessions: 8,
                resting_target: 200,
                max_lots: 20,
                depth_ticks: 10,
                ..FlowConfig::standard()
            };
            let mut gen = FlowGenerator::new(&cfg, &flow).unwrap();
            let mut b = MarketDataBuilder::new(&cfg).unwrap();
            let mut model: BTreeMap<(u8, i64), u64> = BTreeMap::new();
            let (mut trades, mut traded) = (0u64, 0u64);
            let mut emitted = 0u64;
            for seq in 1..=3_000u64 {
                let session = (seq % 8) as u32;
                let cmd = gen.next_for(session);
                let mut msg = [0u8; MESSAGE_LEN];
                encode(&cmd, seq, &mut msg);
                let mut fills_before = 0u64;
                b.on_message(seq, session_ref(cmd.session()), &msg, &mut |blk| {
                    emitted += 1;
                    match *blk {
                        MarketBlock::Trade {
                            quantity, source_seq, ..
                        } => {
                            assert_eq!(source_seq, seq);
                            trades += 1;
                            traded += quantity;
                            fills_before += 1;
                        }
                        MarketBlock::Level {
                            side,
                            price,
                            quantity,
                            source_seq,
                            ..
                        } => {
                            assert_eq!(source_seq, seq);
                            let key = (side.to_wire(), price);
                            assert_ne!(
                                model.get(&key).copied().unwrap_or(0),
                                quantity,
                                "an unchanged level was sent"
                            );
                            if quantity == 0 {
                                model.remove(&key);
                            } else {
                                model.insert(key, quantity);
                            }
                        }
                    }
                });
                assert_eq!(
                    model,
                    book_from_engine(b.engine(), flow.instrument),
                    "seed {seed}, after record {seq}"
                );
            }
            assert_eq!(b.blocks_emitted(), emitted);
            assert!(trades > 0 && traded > 0, "seed {seed}: the flow traded");
        }
    }

    #[test]
    fn catch_up_reaches_the_same_book_and_stream_position_as_live() {
        let cfg = EngineConfig::sample();
        let records = flow_records(1_000);
        let mut live = MarketDataBuilder::new(&cfg).unwrap();
        let mut n = 0;
        for r in &records {
            live.on_message(r.global_seq, r.origin, &r.msg, &mut |_| n += 1);
        }
        let mut late = MarketDataBuilder::new(&cfg).unwrap();
        late.catch_up(records.iter().copied());
        assert_eq!(late.blocks_emitted(), n);
        assert_eq!(late.engine().state_hash(), live.engine().state_hash());
    }

    /// Order-stream records 1..=n of a flow that trades.
    fn flow_records(n: u64) -> Vec<peregrine_journal::SequencedRecord> {
        let cfg = EngineConfig::sample();
        let flow = FlowConfig {
            seed: 9,
            sessions: 8,
            resting_target: 200,
            max_lots: 20,
            depth_ticks: 10,
            ..FlowConfig::standard()
        };
        let mut gen = FlowGenerator::new(&cfg, &flow).unwrap();
        (1..=n)
            .map(|seq| {
                let cmd = gen.next_for((seq % 8) as u32);
                let mut msg = [0u8; MESSAGE_LEN];
                encode(&cmd, seq, &mut msg);
                peregrine_journal::SequencedRecord {
                    global_seq: seq,
                    origin: session_ref(cmd.session()),
                    client_seq: seq,
                    gateway_rx_ns: 0,
                    sequencer_ns: 0,
                    msg,
                }
            })
            .collect()
    }

    /// Every block `b` emits for `records`, with its stream sequence.
    fn emitted(
        b: &mut MarketDataBuilder,
        records: &[peregrine_journal::SequencedRecord],
    ) -> Vec<(u64, MarketBlock)> {
        let mut out = Vec::new();
        for r in records {
            let mut blocks = Vec::new();
            b.on_message(r.global_seq, r.origin, &r.msg, &mut |blk| blocks.push(*blk));
            let first = b.blocks_emitted() + 1 - blocks.len() as u64;
            out.extend((first..).zip(blocks));
        }
        out
    }

    /// The state snapshot a node takes after `records` (engine state and
    /// stream position; no sessions).
    fn snapshot_after(records: &[peregrine_journal::SequencedRecord], position: bool) -> StateSnapshot {
        let mut b = MarketDataBuilder::new(&EngineConfig::sample()).unwrap();
        b.catch_up(records.iter().copied());
        StateSnapshot {
            last_seq: records.last().map_or(0, |r| r.global_seq),
            app_kind: AppKind::Match,
            app: b.engine().snapshot(),
            gateways: Vec::new(),
            market_data_blocks: position.then_some(b.blocks_emitted()),
        }
    }

    #[test]
    fn a_replica_started_from_a_snapshot_continues_the_stream_of_one_that_saw_everything() {
        let cfg = EngineConfig::sample();
        let records = flow_records(2_000);
        let mut whole = MarketDataBuilder::new(&cfg).unwrap();
        let all = emitted(&mut whole, &records);
        for k in [1usize, 500, 1_377, 2_000] {
            let snap = snapshot_after(&records[..k], true);
            let mut resumed = MarketDataBuilder::from_snapshot(&cfg, &snap).unwrap();
            assert_eq!(resumed.last_seq(), k as u64);
            let position = snap.market_data_blocks.unwrap();
            // Records the snapshot covers are ignored, the rest continue.
            let got = emitted(&mut resumed, &records);
            let want: Vec<_> = all.iter().filter(|(s, _)| *s > position).copied().collect();
            assert_eq!(got, want, "snapshot after record {k}");
            assert_eq!(resumed.engine().state_hash(), whole.engine().state_hash());
        }
        let unknown = snapshot_after(&records[..10], false);
        assert!(matches!(
            MarketDataBuilder::from_snapshot(&cfg, &unknown),
            Err(MarketDataStartError::UnknownPosition(10))
        ));
    }

    #[test]
    fn rebase_moves_a_lagging_replica_to_the_latest_snapshot_or_says_why_not() {
        use peregrine_feed::PublicOutput;
        let cfg = EngineConfig::sample();
        let records = flow_records(1_500);
        let mut whole = MarketDataBuilder::new(&cfg).unwrap();
        let all = emitted(&mut whole, &records);
        let snap = snapshot_after(&records[..1_000], true);
        let position = snap.market_data_blocks.unwrap();
        let served = snap.clone();
        let mut lagging = MarketDataBuilder::new(&cfg)
            .unwrap()
            .with_snapshots(Box::new(move || Ok(Some(served.clone()))));
        emitted(&mut lagging, &records[..100]);
        // The journal now starts at 1,001 (or anywhere up to it).
        assert_eq!(lagging.rebase(1_001), Ok(position + 1));
        assert_eq!(lagging.next_block_seq(), position + 1);
        let got = emitted(&mut lagging, &records[900..]);
        let want: Vec<_> = all.iter().filter(|(s, _)| *s > position).copied().collect();
        assert_eq!(got, want);
        // A snapshot that ends before the journal's start leaves a hole.
        let early = snapshot_after(&records[..1_000], true);
        let mut b = MarketDataBuilder::new(&cfg)
            .unwrap()
            .with_snapshots(Box::new(move || Ok(Some(early.clone()))));
        assert!(b.rebase(1_200).unwrap_err().contains("ends at sequence 1000"));
        // No position, no snapshot, or no source: each an error.
        let unknown = snapshot_after(&records[..1_000], false);
        let mut b = MarketDataBuilder::new(&cfg)
            .unwrap()
            .with_snapshots(Box::new(move || Ok(Some(unknown.clone()))));
        assert!(b.rebase(1_001).is_err());
        let mut b = MarketDataBuilder::new(&cfg)
            .unwrap()
            .with_snapshots(Box::new(|| Ok(None)));
        assert!(b.rebase(1_001).is_err());
        assert!(MarketDataBuilder::new(&cfg).unwrap().rebase(1_001).is_err());
    }
}
