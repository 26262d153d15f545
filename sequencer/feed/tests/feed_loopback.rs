//! The feed over real loopback sockets: a journal written with the real
//! writer, the feed thread publishing it, consumers recovering from loss,
//! late joins and silence through the re-request server.
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_feed::{
    BookSide, ConsumerConfig, FeedConfig, FeedConsumer, FeedRecord, FeedService, JournalSource, MarketBlock,
    MarketDataFeedConfig, PublicOutput, RerequestServer, RetransmitSource,
};
use peregrine_wire::moldudp64::{session_name, write_header_only, MoldPacket, HEADER_LEN};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A stand-in for the replica engine: a level update per record, a trade
/// every 10th.
struct Derive;

fn derived(seq: u64) -> Vec<MarketBlock> {
    let mut v = vec![MarketBlock::Level {
        instrument: (seq % 4) as u32,
        side: if seq % 2 == 0 {
            BookSide::Buy
        } else {
            BookSide::Sell
        },
        price: seq as i64,
        quantity: seq % 7,
        source_seq: seq,
    }];
    if seq % 10 == 0 {
        v.push(MarketBlock::Trade {
            instrument: 1,
            price: -(seq as i64),
            quantity: seq,
            aggressor: BookSide::Sell,
            trade_id: seq / 10,
            source_seq: seq,
        });
    }
    v
}

impl PublicOutput for Derive {
    fn on_record(&mut self, rec: &FeedRecord, emit: &mut dyn FnMut(&MarketBlock)) {
        for b in derived(rec.global_seq) {
            emit(&b);
        }
    }
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn hundred_thousand_records_end_to_end_with_market_data() {
    const N: u64 = 100_000;
    let t = TempDir::new("e2e");
    let mut w = writer(t.path(), 8192);
    let written = append(&mut w, 1, N);
    let mut c = consumer(1, None);
    let mut md_cfg = ConsumerConfig::new(localhost(), None);
    md_cfg.request_timeout = Duration::from_millis(20);
    let mut md = FeedConsumer::new_market_data(md_cfg).unwrap();
    let mut cfg = FeedConfig::new(vec![c.local_addr().unwrap()]);
    cfg.rerequest = Some(localhost());
    cfg.heartbeat_ms = 50;
    cfg.market_data = Some(MarketDataFeedConfig {
        session: "MD".into(),
        destinations: vec![md.local_addr().unwrap()],
        rerequest: Some(localhost()),
        retain: 1 << 20,
    });
    let watermark = Arc::new(AtomicU64::new(N));
    let stop = Arc::new(AtomicBool::new(false));
    let h = FeedService::spawn(
        cfg,
        t.path().to_path_buf(),
        1,
        watermark,
        Some(Box::new(Derive)),
        stop.clone(),
    )
    .unwrap();
    c.set_rerequest(h.rerequest_addr());
    md.set_rerequest(h.md_rerequest_addr());

    let got = drain_until(&mut c, N, Duration::from_secs(120), &|s| {
        written[(s - 1) as usize]
    });
    assert_eq!(got, (1..=N).collect::<Vec<_>>(), "every record once, in order");

    let want_md: Vec<MarketBlock> = (1..=N).flat_map(derived).collect();
    let mut got_md = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while got_md.len() < want_md.len() {
        assert!(
            Instant::now() < deadline,
            "md stuck at {}: {:?}",
            md.next_seq(),
            md.stats()
        );
        md.poll_market(&mut |seq, b| {
            assert_eq!(seq, got_md.len() as u64 + 1);
            got_md.push(*b);
        })
        .unwrap();
        md.wait(Duration::from_millis(2)).unwrap();
    }
    assert_eq!(got_md, want_md);

    stop.store(true, Ordering::Release);
    let counters = h.join().unwrap();
    assert_eq!(counters.records, N);
    assert_eq!(counters.next_seq, N + 1);
    assert_eq!(counters.lag, 0);
    assert_eq!(counters.md_blocks, want_md.len() as u64);
    assert_eq!(counters.lag_samples, N);
    assert!(counters.lag_p50_ns <= counters.lag_p99_ns && counters.lag_p99_ns <= counters.lag_max_ns);
    wait_for("end of session", Duration::from_secs(10), || {
        c.poll(&mut |r| panic!("nothing after {N}, got {}", r.global_seq))
            .unwrap();
        md.poll_blocks(&mut |_, _| panic!("no more market data")).unwrap();
        c.end_of_session() && md.end_of_session()
    });
    w.close().unwrap();
}

#[test]
fn a_lossy_path_is_repaired_by_re_requests() {
    const N: u64 = 20_000;
    let t = TempDir::new("lossy");
    let mut w = writer(t.path(), 1000);
    let written = append(&mut w, 1, N);
    let mut c = consumer(1, None);
    let fwd = Forwarder::start(
        vec![c.local_addr().unwrap()],
        Faults {
            drop_per_mille: 10,
            dup_per_mille: 10,
            reorder_per_mille: 20,
            ..Faults::default()
        },
        0x9e37_79b9,
    );
    let mut cfg = FeedConfig::new(vec![fwd.addr]);
    cfg.rerequest = Some(localhost());
    cfg.heartbeat_ms = 20;
    let stop = Arc::new(AtomicBool::new(false));
    let h = FeedService::spawn(
        cfg,
        t.path().to_path_buf(),
        1,
        Arc::new(AtomicU64::new(N)),
        None,
        stop.clone(),
    )
    .unwrap();
    c.set_rerequest(h.rerequest_addr());
    let got = drain_until(&mut c, N, Duration::from_secs(120), &|s| {
        written[(s - 1) as usize]
    });
    assert_eq!(got, (1..=N).collect::<Vec<_>>());
    let s = c.stats();
    assert!(
        s.gaps > 0 && s.requests > 0,
        "losses were seen and repaired: {s:?}"
    );
    assert!(s.duplicates > 0, "duplicates were dropped: {s:?}");
    stop.store(true, Ordering::Release);
    let counters = h.join().unwrap();
    assert!(counters.rerequest.served > 0, "{counters:?}");
}

#[test]
fn late_joiners_fetch_the_start_by_re_request() {
    let t = TempDir::new("late");
    let mut w = writer(t.path(), 700);
    let written = append(&mut w, 1, 5000);
    let mut all = consumer(1, None);
    let mut late = consumer(2500, None);
    let fwd = Forwarder::start(
        vec![all.local_addr().unwrap(), late.local_addr().unwrap()],
        Faults {
            blackhole: true,
            ..Faults::default()
        },
        1,
    );
    let mut cfg = FeedConfig::new(vec![fwd.addr]);
    cfg.rerequest = Some(localhost());
    cfg.heartbeat_ms = 20;
    let watermark = Arc::new(AtomicU64::new(3000));
    let stop = Arc::new(AtomicBool::new(false));
    let h = FeedService::spawn(
        cfg,
        t.path().to_path_buf(),
        1,
        watermark.clone(),
        None,
        stop.clone(),
    )
    .unwrap();
    all.set_rerequest(h.rerequest_addr());
    late.set_rerequest(h.rerequest_addr());
    wait_for("3000 published", Duration::from_secs(20), || {
        h.counters().next_seq == 3001
    });
    // The consumers join now: the stream is at 3001.
    fwd.set(Faults::default());
    watermark.store(5000, Ordering::Release);
    let want = |s: u64| written[(s - 1) as usize];
    let got = drain_until(&mut all, 5000, Duration::from_secs(60), &want);
    assert_eq!(got, (1..=5000).collect::<Vec<_>>());
    let got = drain_until(&mut late, 5000, Duration::from_secs(60), &want);
    assert_eq!(got, (2500..=5000).collect::<Vec<_>>());
    assert!(all.stats().requests > 0);
    stop.store(true, Ordering::Release);
    h.join().unwrap();
}

#[test]
fn silence_recovers_the_lost_tail_and_a_restarted_feed_continues() {
    let t = TempDir::new("silence");
    let mut w = writer(t.path(), 300);
    let written = append(&mut w, 1, 2000);
    let want = |s: u64| written[(s - 1) as usize];
    let mut c = consumer(1, None);
    let fwd = Forwarder::start(vec![c.local_addr().unwrap()], Faults::default(), 7);
    let mut cfg = FeedConfig::new(vec![fwd.addr]);
    cfg.rerequest = Some(localhost());
    cfg.heartbeat_ms = 50;
    let watermark = Arc::new(AtomicU64::new(1000));
    let stop = Arc::new(AtomicBool::new(false));
    let h = FeedService::spawn(
        cfg.clone(),
        t.path().to_path_buf(),
        1,
        watermark.clone(),
        None,
        stop.clone(),
    )
    .unwrap();
    let rr = h.rerequest_addr();
    c.set_rerequest(rr);
    drain_until(&mut c, 1000, Duration::from_secs(30), &want);
    // The path goes dark (no data, no heartbeats) while 1001..=1500 are
    // published: the consumer hears nothing and asks for the tail.
    fwd.set(Faults {
        blackhole: true,
        ..Faults::default()
    });
    watermark.store(1500, Ordering::Release);
    wait_for("1500 published", Duration::from_secs(20), || {
        h.counters().next_seq == 1501
    });
    let got = drain_until(&mut c, 1500, Duration::from_secs(30), &want);
    assert_eq!(got, (1001..=1500).collect::<Vec<_>>());
    // The publisher stops; its End of Session is lost in the dark.
    stop.store(true, Ordering::Release);
    h.join().unwrap();
    assert!(!c.end_of_session());
    // A new feed process continues at 1501 on the same addresses.
    fwd.set(Faults::default());
    cfg.rerequest = rr;
    watermark.store(2000, Ordering::Release);
    let stop2 = Arc::new(AtomicBool::new(false));
    let h2 = FeedService::spawn(cfg, t.path().to_path_buf(), 1501, watermark, None, stop2.clone()).unwrap();
    let got = drain_until(&mut c, 2000, Duration::from_secs(30), &want);
    assert_eq!(got, (1501..=2000).collect::<Vec<_>>());
    stop2.store(true, Ordering::Release);
    h2.join().unwrap();
    wait_for("end of session", Duration::from_secs(10), || {
        c.poll(&mut |_| panic!("nothing more")).unwrap();
        c.end_of_session()
    });
    assert!(c.stats().requests > 0);
}

/// Sends `req` (raw bytes) and returns the answer, if one comes.
fn ask(
    client: &UdpSocket,
    server: &mut RerequestServer,
    src: &mut dyn RetransmitSource,
    limit: u64,
    req: &[u8],
) -> Option<Vec<u8>> {
    client.send_to(req, server.local_addr()).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    server.poll(src, limit, Instant::now(), 16).unwrap();
    let mut buf = [0u8; 2048];
    match client.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

fn request(session: &str, seq: u64, count: u16) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    write_header_only(&mut h, &session_name(session), seq, count);
    h
}

#[test]
fn re_request_server_limits_and_counters() {
    let t = TempDir::new("rr");
    let mut w = writer(t.path(), 64);
    let written = append(&mut w, 1, 100);
    let mut src = JournalSource::open(t.path()).unwrap();
    let mut server = RerequestServer::bind(localhost(), session_name("FEED"), 5, 1472, 136, 10).unwrap();
    let client = UdpSocket::bind(localhost()).unwrap();
    client.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let limit = 51; // published: 1..=50

    // Clamped to max_count (5).
    let a = ask(&client, &mut server, &mut src, limit, &request("FEED", 3, 100)).expect("answered");
    let p = MoldPacket::new_checked(&a).unwrap();
    assert_eq!((p.sequence(), p.count()), (3, 5));
    for (i, b) in p.blocks().enumerate() {
        let r = FeedRecord::parse(3 + i as u64, b).unwrap();
        assert!(same(&r, &written[2 + i]));
    }
    // The bucket (burst 5, 10/s) is empty now.
    assert!(ask(&client, &mut server, &mut src, limit, &request("FEED", 8, 5)).is_none());
    assert_eq!(server.stats().rate_limited, 1);
    // Wrong session, future, malformed: ignored and counted, no answer.
    assert!(ask(&client, &mut server, &mut src, limit, &request("OTHER", 3, 1)).is_none());
    assert!(ask(&client, &mut server, &mut src, limit, &request("FEED", 51, 1)).is_none());
    assert!(ask(&client, &mut server, &mut src, limit, &request("FEED", 0, 1)).is_none());
    assert!(ask(&client, &mut server, &mut src, limit, &[1, 2, 3]).is_none());
    let s = server.stats();
    assert_eq!((s.ignored_session, s.ignored_future, s.malformed), (1, 2, 1));
    // After refilling (0.3 s = 3 tokens), a straddling request is answered
    // up to the limit and cut to the tokens held.
    std::thread::sleep(Duration::from_millis(300));
    let a = ask(&client, &mut server, &mut src, limit, &request("FEED", 49, 5)).expect("answered");
    let p = MoldPacket::new_checked(&a).unwrap();
    assert_eq!(
        (p.sequence(), p.count()),
        (49, 2),
        "only 49 and 50 exist below the limit"
    );
    assert_eq!(server.stats().served, 2);
    assert_eq!(server.stats().messages, 7);
    // Unlimited rate: back-to-back answers, each cut to one packet (10).
    let mut free = RerequestServer::bind(localhost(), session_name("FEED"), 1000, 1472, 136, 0).unwrap();
    for _ in 0..3 {
        let a = ask(&client, &mut free, &mut src, 101, &request("FEED", 1, 1000)).expect("answered");
        assert_eq!(MoldPacket::new_checked(&a).unwrap().count(), 10);
    }
    // Answers spanning packets: up to 4 full packets per request, the
    // last one cut at the count; every block in sequence.
    let mut multi = RerequestServer::bind(localhost(), session_name("FEED"), 1000, 1472, 136, 0)
        .unwrap()
        .with_max_packets(4);
    client
        .send_to(&request("FEED", 5, 35), multi.local_addr())
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while multi.stats().received == 0 && std::time::Instant::now() < deadline {
        multi.poll(&mut src, 101, std::time::Instant::now(), 8).unwrap();
    }
    let mut next = 5;
    for want in [10, 10, 10, 5] {
        let mut buf = [0u8; 2048];
        let (n, _) = client.recv_from(&mut buf).expect("an answer packet");
        let p = MoldPacket::new_checked(&buf[..n]).unwrap();
        assert_eq!((p.sequence(), p.count()), (next, want));
        for (i, b) in p.blocks().enumerate() {
            assert!(same(
                &FeedRecord::parse(next + i as u64, b).unwrap(),
                &written[(next - 1) as usize + i]
            ));
        }
        next += u64::from(want);
    }
    assert!(client.recv_from(&mut [0u8; 2048]).is_err(), "35 asked, 35 sent");
    let st = multi.stats();
    assert_eq!((st.served, st.packets, st.messages), (1, 4, 35));
    // A discarded segment (1..=64): requests for it are unavailable, later
    // ones still answered.
    assert_eq!(w.discard_before(65).unwrap(), 1);
    let mut src = JournalSource::open(t.path()).unwrap();
    assert!(ask(&client, &mut free, &mut src, 101, &request("FEED", 3, 5)).is_none());
    assert_eq!(free.stats().ignored_unavailable, 1);
    let a = ask(&client, &mut free, &mut src, 101, &request("FEED", 70, 2)).expect("answered");
    let p = MoldPacket::new_checked(&a).unwrap();
    assert_eq!((p.sequence(), p.count()), (70, 2));
    let r = FeedRecord::parse(70, p.blocks().next().unwrap()).unwrap();
    assert!(same(&r, &written[69]));
    w.close().unwrap();
}

#[test]
fn the_watermark_and_the_journal_bound_what_is_published() {
    let t = TempDir::new("bound");
    let mut w = writer(t.path(), 100);
    let mut written = append(&mut w, 1, 500);
    let mut c = consumer(1, None);
    let mut cfg = FeedConfig::new(vec![c.local_addr().unwrap()]);
    cfg.rerequest = Some(localhost());
    cfg.heartbeat_ms = 20;
    let watermark = Arc::new(AtomicU64::new(200));
    let stop = Arc::new(AtomicBool::new(false));
    let h = FeedService::spawn(
        cfg,
        t.path().to_path_buf(),
        1,
        watermark.clone(),
        None,
        stop.clone(),
    )
    .unwrap();
    c.set_rerequest(h.rerequest_addr());
    let want = |w: &Vec<peregrine_journal::SequencedRecord>| {
        let w = w.clone();
        move |s: u64| w[(s - 1) as usize]
    };
    drain_until(&mut c, 200, Duration::from_secs(30), &want(&written));
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(h.counters().next_seq, 201, "nothing past the watermark");
    assert_eq!(h.counters().lag, 0);
    c.poll(&mut |r| panic!("{} is past the watermark", r.global_seq))
        .unwrap();
    // A watermark beyond the journal: only what the journal holds.
    watermark.store(10_000, Ordering::Release);
    drain_until(&mut c, 500, Duration::from_secs(30), &want(&written));
    std::thread::sleep(Duration::from_millis(150));
    let k = h.counters();
    assert_eq!((k.next_seq, k.lag), (501, 9_500));
    // Idle: heartbeats (count 0, next sequence) every 20 ms.
    assert!(k.heartbeats > 0, "{k:?}");
    c.poll(&mut |r| panic!("{} does not exist yet", r.global_seq))
        .unwrap();
    assert!(c.stats().heartbeats > 0, "{:?}", c.stats());
    assert_eq!(
        c.stats().requests,
        0,
        "a heartbeat at the next sequence is no gap"
    );
    // The writer goes on (rolling segments): the feed follows.
    written.extend(append(&mut w, 501, 1_700));
    drain_until(&mut c, 1_700, Duration::from_secs(30), &want(&written));
    stop.store(true, Ordering::Release);
    assert_eq!(h.join().unwrap().records, 1_700);
    w.close().unwrap();
}

/// [`Derive`], able to jump: it knows the blocks every record derives, so
/// it can move to any later position the way a replica restored from a
/// snapshot does.
struct DeriveRebasing {
    /// Last record applied.
    last: u64,
}

/// Market-data blocks [`derived`] from records `1..=seq`.
fn blocks_through(seq: u64) -> u64 {
    (1..=seq).map(|s| derived(s).len() as u64).sum()
}

impl PublicOutput for DeriveRebasing {
    fn on_record(&mut self, rec: &FeedRecord, emit: &mut dyn FnMut(&MarketBlock)) {
        if rec.global_seq <= self.last {
            return;
        }
        self.last = rec.global_seq;
        for b in derived(rec.global_seq) {
            emit(&b);
        }
    }

    fn rebase(&mut self, held_first: u64) -> Result<u64, String> {
        self.last = held_first - 1;
        Ok(blocks_through(self.last) + 1)
    }
}

/// A journal restarted past the feed's position (what installing a
/// leader's snapshot does to a cluster node's log) while `output` derives
/// market data: the feed must not stop, the order stream goes on at the
/// journal's new start, and the market-data stream either goes on under
/// the numbers a derivation over every record gives or ends. Returns the
/// feed's final counters.
fn restart_journal_under_the_feed(output: Box<dyn PublicOutput>) -> peregrine_feed::FeedCounters {
    let t = TempDir::new("rebase");
    let mut w = writer(t.path(), 100);
    let before = append(&mut w, 1, 300);
    let mut early = consumer(1, None);
    let mut late = consumer(1001, None);
    let mut cfg = FeedConfig::new(vec![early.local_addr().unwrap(), late.local_addr().unwrap()]);
    cfg.heartbeat_ms = 20;
    cfg.rerequest = Some(localhost());
    let mut md_cfg = ConsumerConfig::new(localhost(), None);
    md_cfg.heartbeat_timeout = Duration::from_millis(300);
    let mut md = FeedConsumer::new_market_data(md_cfg.clone()).unwrap();
    md_cfg.from_seq = blocks_through(1000) + 1;
    let mut md_late = FeedConsumer::new_market_data(md_cfg).unwrap();
    cfg.market_data = Some(MarketDataFeedConfig {
        session: "MD".into(),
        destinations: vec![md.local_addr().unwrap(), md_late.local_addr().unwrap()],
        rerequest: None,
        retain: 1 << 12,
    });
    let watermark = Arc::new(AtomicU64::new(300));
    let stop = Arc::new(AtomicBool::new(false));
    let h = FeedService::spawn(
        cfg,
        t.path().to_path_buf(),
        1,
        watermark.clone(),
        Some(output),
        stop.clone(),
    )
    .unwrap();
    early.set_rerequest(h.rerequest_addr());
    let want_before = |s: u64| before[(s - 1) as usize];
    assert_eq!(
        drain_until(&mut early, 300, Duration::from_secs(30), &want_before),
        (1..=300).collect::<Vec<_>>()
    );
    let mut md_got = Vec::new();
    wait_for("market data of 1..=300", Duration::from_secs(30), || {
        md.poll_market(&mut |seq, b| md_got.push((seq, *b))).unwrap();
        md_got.len() as u64 == blocks_through(300)
    });
    let want_md: Vec<(u64, MarketBlock)> = (1..=300)
        .flat_map(derived)
        .zip(1..)
        .map(|(b, s)| (s, b))
        .collect();
    assert_eq!(md_got, want_md);
    // The log is replaced: 301..=1000 are gone, the journal restarts at 1001.
    w.reset_to(1001).unwrap();
    let after = append(&mut w, 1001, 1200);
    watermark.store(1200, Ordering::Release);
    let want_after = |s: u64| after[(s - 1001) as usize];
    assert_eq!(
        drain_until(&mut late, 1200, Duration::from_secs(30), &want_after),
        (1001..=1200).collect::<Vec<_>>(),
        "the order stream goes on at the journal's new start"
    );
    wait_for("counters refreshed", Duration::from_secs(10), || {
        h.counters().next_seq == 1201
    });
    let k = h.counters();
    assert_eq!(k.skipped, 700, "{k:?}");
    let mut late_md = Vec::new();
    if !k.md_ended {
        wait_for("market data after the jump", Duration::from_secs(30), || {
            md_late
                .poll_market(&mut |seq, b| late_md.push((seq, *b)))
                .unwrap();
            late_md.len() as u64 == blocks_through(1200) - blocks_through(1000)
        });
        let want: Vec<(u64, MarketBlock)> = (1001..=1200)
            .flat_map(derived)
            .zip(blocks_through(1000) + 1..)
            .map(|(b, s)| (s, b))
            .collect();
        assert_eq!(
            late_md, want,
            "numbered as a derivation over every record numbers them"
        );
    }
    stop.store(true, Ordering::Release);
    let end = h.join().expect("the feed ran to its stop");
    // End of Session reaches whichever consumer follows the stream's end:
    // the early one if it ended at the gap, else the late one.
    let follower = if end.md_ended { &mut md } else { &mut md_late };
    wait_for("market data end of session", Duration::from_secs(10), || {
        follower.poll_market(&mut |_, _| ()).unwrap();
        follower.end_of_session()
    });
    w.close().unwrap();
    end
}

#[test]
fn a_journal_restarted_past_the_feed_skips_both_streams_to_its_new_start() {
    let k = restart_journal_under_the_feed(Box::new(DeriveRebasing { last: 0 }));
    assert!(!k.md_ended);
    assert_eq!(k.md_next_seq, blocks_through(1200) + 1);
    assert_eq!(k.records, 500);
}

#[test]
fn a_derivation_that_cannot_skip_ends_the_market_data_stream_only() {
    let k = restart_journal_under_the_feed(Box::new(Derive));
    assert!(k.md_ended, "{k:?}");
    assert_eq!(
        k.md_next_seq,
        blocks_through(300) + 1,
        "nothing published after the gap"
    );
    assert_eq!(k.records, 500, "the order stream went on");
}
