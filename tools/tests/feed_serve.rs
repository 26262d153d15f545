//! The sequenced feed of a real server on loopback: a consumer that joins
//! before the load and one that starts late from sequence 1 both receive
//! every journaled record, in order, byte for byte as the journal holds
//! it; the matching engine rebuilt from the feed ends in the server's
//! state; the market-data stream rebuilds the server's book; a restarted
//! server continues both streams where they were.
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_engine::{Engine, EngineConfig, Side};
use peregrine_feed::{
    ConsumerConfig, FeedConfig, FeedConsumer, FeedRecord, MarketBlock, MarketDataFeedConfig,
};
use peregrine_journal::{Journal, SequencedRecord};
use peregrine_server::config::{AppKind, ServeConfig};
use peregrine_server::match_app::MatchApp;
use peregrine_server::serve::{self as server, ServerApp};
use peregrine_tools::client::{self, flow::FlowKind, ClientConfig, Mode, TransportKind};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("peregrine-test-feed-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn consumer(from_seq: u64, rerequest: Option<SocketAddr>) -> FeedConsumer {
    consumer_on(lo(), from_seq, rerequest)
}

fn consumer_on(listen: SocketAddr, from_seq: u64, rerequest: Option<SocketAddr>) -> FeedConsumer {
    FeedConsumer::new(ConsumerConfig {
        from_seq,
        session: Some("PEREGRINE".into()),
        heartbeat_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(20),
        ..ConsumerConfig::new(listen, rerequest)
    })
    .unwrap()
}

/// A loopback address with a port free now (for a consumer that binds
/// later: the publisher's destination before the consumer exists).
fn free_port() -> SocketAddr {
    std::net::UdpSocket::bind(lo()).unwrap().local_addr().unwrap()
}

/// Polls `c` until it has seen End of Session, collecting records.
fn drain(c: &mut FeedConsumer, out: &mut Vec<FeedRecord>, within: Duration) {
    let end = Instant::now() + within;
    while !c.end_of_session() {
        assert!(
            Instant::now() < end,
            "no end of session within {within:?}: at {}",
            c.next_seq()
        );
        c.poll(&mut |r| out.push(*r)).unwrap();
        c.wait(Duration::from_millis(5)).unwrap();
    }
}

/// Runs the load on its own thread while polling the consumers (UDP
/// socket buffers would overflow otherwise), then polls 100 ms more.
fn load_while_consuming(
    udp: SocketAddr,
    first_session: usize,
    live: &mut FeedConsumer,
    got: &mut Vec<FeedRecord>,
    md: &mut FeedConsumer,
    md_blocks: &mut Vec<(u64, MarketBlock)>,
) {
    let t = std::thread::spawn(move || load(udp, first_session));
    let mut after: Option<Instant> = None;
    while after.is_none_or(|a| a.elapsed() < Duration::from_millis(100)) {
        live.poll(&mut |r| got.push(*r)).unwrap();
        md.poll_market(&mut |seq, b| md_blocks.push((seq, *b))).unwrap();
        if after.is_none() && t.is_finished() {
            after = Some(Instant::now());
        }
    }
    t.join().unwrap();
}

fn load(udp: SocketAddr, first_session: usize) {
    let r = client::run(&ClientConfig {
        secret: SECRET.into(),
        sessions: 2,
        first_session,
        mode: Mode::Rate(40_000.0),
        batch: 4,
        duration: Duration::from_millis(500),
        warmup: Duration::ZERO,
        flow: FlowKind::Orders,
        ..ClientConfig::new(TransportKind::Udp, udp)
    })
    .unwrap();
    assert_eq!(r.lost(), 0);
}

fn feed_config(dest: Vec<SocketAddr>, md_dest: SocketAddr) -> FeedConfig {
    FeedConfig {
        heartbeat_ms: 50,
        rerequest: Some(lo()),
        rerequest_rate: 0,
        market_data: Some(MarketDataFeedConfig {
            session: "PGMD".into(),
            destinations: vec![md_dest],
            rerequest: None,
            retain: 1 << 16,
        }),
        ..FeedConfig::new(dest)
    }
}

fn as_journal_record(r: &FeedRecord) -> SequencedRecord {
    r.to_sequenced_record()
}

#[test]
fn every_journaled_record_reaches_live_and_late_consumers_and_rebuilds_the_engine() {
    let dir = temp_dir("serve");
    let mut live = consumer(1, None);
    // Joins after the load: everything before its first packet comes by
    // re-request.
    let late_addr = free_port();
    let mut md = FeedConsumer::new_market_data(ConsumerConfig {
        heartbeat_timeout: Duration::from_millis(300),
        ..ConsumerConfig::new(lo(), None)
    })
    .unwrap();
    let cfg = ServeConfig {
        app: AppKind::Match,
        journal: Some(dir.join("journal")),
        journal_segment_size: 1 << 20,
        feed: Some(feed_config(
            vec![live.local_addr().unwrap(), late_addr],
            md.local_addr().unwrap(),
        )),
        ..server_config(1, 0)
    };
    let srv = server::start(&cfg).unwrap();
    let rerequest = srv.feed_rerequest.expect("a re-request server");
    let mut got = Vec::new();
    let mut md_blocks = Vec::new();
    load_while_consuming(srv.udp[0], 0, &mut live, &mut got, &mut md, &mut md_blocks);
    let mut late = consumer_on(late_addr, 1, Some(rerequest));
    let mut late_got = Vec::new();
    // Heartbeats tell the late joiner where the stream is: it asks for
    // the rest while the server still runs.
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        live.poll(&mut |r| got.push(*r)).unwrap();
        late.poll(&mut |r| late_got.push(*r)).unwrap();
    }
    // Stop on another thread: the feed ends its session and keeps
    // answering re-requests while the consumers still ask.
    let stopping = std::thread::spawn(move || srv.stop().unwrap());
    drain(&mut live, &mut got, Duration::from_secs(10));
    drain(&mut late, &mut late_got, Duration::from_secs(30));
    let (report, app) = stopping.join().unwrap();
    let ServerApp::Match(m) = app else {
        panic!("match app")
    };
    let last = report.next_seq - 1;
    assert!(last > 1_000, "the load sequenced {last}");
    let feed = report.feed.expect("feed counters");
    assert_eq!(
        feed.next_seq,
        last + 1,
        "the feed published through the last sequence"
    );
    assert_eq!(feed.records, last);
    assert!(feed.lag_samples > 0 && feed.lag_p999_ns >= feed.lag_p50_ns);

    assert!(late.stats().requests > 0, "the late joiner re-requested");

    let journal: Vec<SequencedRecord> = Journal::open_read_only(dir.join("journal"))
        .unwrap()
        .records()
        .collect();
    assert_eq!(journal.len() as u64, last);
    for (name, recs) in [("live", &got), ("late", &late_got)] {
        assert_eq!(recs.len() as u64, last, "{name}: every record once");
        for (r, j) in recs.iter().zip(&journal) {
            assert_eq!(as_journal_record(r), *j, "{name}: record {}", j.global_seq);
        }
    }
    // The engine rebuilt from the feed is the server's.
    let ecfg = EngineConfig::sample();
    let mut replica = MatchApp::new(&ecfg).unwrap();
    peregrine_sequencer::replay_journal(&mut replica, late_got.iter().map(as_journal_record));
    assert_eq!(replica.engine().state_hash(), m.engine().state_hash());

    // Market data: the level stream describes the server's final book.
    let (mut book, mut md_next, mut trades) = (BTreeMap::new(), 1, 0);
    apply_md(&md_blocks, &mut book, &mut md_next, &mut trades);
    drain_md(&mut md, &mut book, &mut md_next, &mut trades);
    assert!(trades > 0, "the order flow traded");
    assert_eq!(md_next, feed.md_next_seq);
    assert_eq!(book, resting_book(m.engine()));
    let _ = std::fs::remove_dir_all(&dir);
}

fn apply_md(
    blocks: &[(u64, MarketBlock)],
    book: &mut BTreeMap<(u8, i64), u64>,
    next: &mut u64,
    trades: &mut u64,
) {
    for (seq, b) in blocks {
        assert_eq!(*seq, *next);
        *next += 1;
        match *b {
            MarketBlock::Trade { .. } => *trades += 1,
            MarketBlock::Level {
                side,
                price,
                quantity,
                ..
            } => {
                if quantity == 0 {
                    book.remove(&(side.to_wire(), price));
                } else {
                    book.insert((side.to_wire(), price), quantity);
                }
            }
        }
    }
}

fn drain_md(md: &mut FeedConsumer, book: &mut BTreeMap<(u8, i64), u64>, next: &mut u64, trades: &mut u64) {
    let end = Instant::now() + Duration::from_secs(10);
    while !md.end_of_session() {
        assert!(Instant::now() < end, "market data: no end of session");
        let mut blocks = Vec::new();
        md.poll_market(&mut |seq, b| blocks.push((seq, *b))).unwrap();
        apply_md(&blocks, book, next, trades);
        md.wait(Duration::from_millis(5)).unwrap();
    }
}

fn resting_book(e: &Engine) -> BTreeMap<(u8, i64), u64> {
    let mut book = BTreeMap::new();
    for inst in e.instruments().collect::<Vec<_>>() {
        for side in [Side::Buy, Side::Sell] {
            for o in e.resting_orders(inst, side) {
                *book.entry((side as u8, o.price)).or_insert(0) += o.leaves;
            }
        }
    }
    book
}

#[test]
fn a_restarted_server_continues_both_streams_where_they_were() {
    let dir = temp_dir("restart");
    let mut seen_md = 0;
    let mut last_md_next = 1;
    let mut next_order = 1;
    for round in 0..2 {
        let mut live = consumer(next_order, None);
        let mut md = FeedConsumer::new_market_data(ConsumerConfig {
            from_seq: last_md_next,
            heartbeat_timeout: Duration::from_millis(300),
            ..ConsumerConfig::new(lo(), None)
        })
        .unwrap();
        let cfg = ServeConfig {
            app: AppKind::Match,
            journal: Some(dir.join("journal")),
            journal_segment_size: 1 << 20,
            feed: Some(feed_config(
                vec![live.local_addr().unwrap()],
                md.local_addr().unwrap(),
            )),
            ..server_config(1, 0)
        };
        let srv = server::start(&cfg).unwrap();
        assert_eq!(srv.first_seq, next_order, "round {round}");
        let mut got = Vec::new();
        let mut md_blocks = Vec::new();
        load_while_consuming(
            srv.udp[0],
            round * 2,
            &mut live,
            &mut got,
            &mut md,
            &mut md_blocks,
        );
        let (report, _) = srv.stop().unwrap();
        let feed = report.feed.unwrap();
        drain(&mut live, &mut got, Duration::from_secs(10));
        assert_eq!(
            got.first().map(|r| r.global_seq),
            Some(next_order),
            "round {round}"
        );
        assert_eq!(got.last().map(|r| r.global_seq), Some(report.next_seq - 1));
        let (mut book, mut trades) = (BTreeMap::new(), 0);
        let mut md_next = last_md_next;
        apply_md(&md_blocks, &mut book, &mut md_next, &mut trades);
        drain_md(&mut md, &mut book, &mut md_next, &mut trades);
        assert_eq!(
            md_next, feed.md_next_seq,
            "round {round}: the market-data stream is whole"
        );
        seen_md += md_next - last_md_next;
        last_md_next = md_next;
        next_order = report.next_seq;
    }
    // The second run's market data continued the first's numbering, and
    // both together are what one derivation over the whole journal emits.
    let mut b = peregrine_server::market_data::MarketDataBuilder::new(&EngineConfig::sample()).unwrap();
    b.catch_up(Journal::open_read_only(dir.join("journal")).unwrap().records());
    assert_eq!(b.blocks_emitted(), seen_md);
    let _ = std::fs::remove_dir_all(&dir);
}
