// Over 600 lines: one seed table per fuzz target, plain data builders kept side by side so every target's seeds are reviewed together.
//! Seed inputs for every target: valid packets of every kind plus edge
//! cases. `examples/gen_corpus.rs` writes them to `fuzz/corpus/<target>/`
//! as `seed-<name>`; the replay test also runs them straight from here.

use crate::journal_recovery::{self, Config as JournalConfig, Op as JournalOp};
use crate::session::{self, Config, Op};
use peregrine_netio::wire::{
    ArpOperation, ArpPacket, ArpRepr, ChecksumMode, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};
use peregrine_wire::message::{
    Ack, Cancel, Echo, ExecReport, MessageType, NewOrder, Reject, Replace, LAYOUT_VERSION,
};
use peregrine_wire::moldudp64::{
    session_name, write_header_only, MoldBuilder, END_OF_SESSION, HEADER_LEN, HEARTBEAT,
};
use peregrine_wire::soupbintcp::{kind, write_login_accepted, write_login_request, write_packet};
use std::net::Ipv4Addr;
use zerocopy::{FromZeros, IntoBytes};

/// One seed: target, file name (without the `seed-` prefix), bytes.
pub type Seed = (&'static str, String, Vec<u8>);

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut v = Vec::new();
    for (name, bytes) in moldudp64() {
        v.push(("moldudp64", name, bytes));
    }
    for (name, bytes) in soupbintcp() {
        v.push(("soupbintcp", name, bytes));
    }
    for (name, bytes) in message() {
        v.push(("message", name, bytes));
    }
    for (name, bytes) in netio_wire() {
        v.push(("netio_wire", name, bytes));
    }
    for (name, bytes) in session() {
        v.push(("session", name, bytes));
    }
    for (name, bytes) in journal_recovery() {
        v.push(("journal_recovery", name, bytes));
    }
    for (name, bytes) in engine_restore() {
        v.push(("engine_restore", name, bytes));
    }
    for (name, bytes) in feed() {
        v.push(("feed", name, bytes));
    }
    v
}

/// The sequenced feed: each block kind alone, and consumer scripts
/// (config bytes, then length-prefixed datagrams each followed by a
/// time step) with reordered, duplicated and foreign packets.
fn feed() -> Named {
    use peregrine_feed::{BookSide, FeedRecord, MarketBlock};
    let record = |seq: u64| {
        let mut msg = [0u8; 100];
        msg[0] = b'E';
        msg[1] = 1;
        msg[16] = seq as u8;
        let r = FeedRecord {
            global_seq: seq,
            origin: peregrine_wire::SessionRef::new(1, seq as u32),
            client_seq: seq,
            gateway_rx_ns: 10 * seq,
            sequencer_ns: 10 * seq + 1,
            msg,
        };
        let mut b = vec![0u8; 136];
        r.emit(&mut b);
        b
    };
    let market = |seq: u64| {
        let m = if seq % 2 == 0 {
            MarketBlock::Trade {
                instrument: 1,
                price: 100,
                quantity: seq,
                aggressor: BookSide::Buy,
                trade_id: seq,
                source_seq: seq,
            }
        } else {
            MarketBlock::Level {
                instrument: 1,
                side: BookSide::Sell,
                price: 101,
                quantity: seq,
                source_seq: seq,
            }
        };
        let mut b = vec![0u8; 40];
        let n = m.emit(&mut b);
        b.truncate(n);
        b
    };
    let packet = |session: &str, seq: u64, blocks: Vec<Vec<u8>>| {
        let mut buf = vec![0u8; 1472];
        let mut b = MoldBuilder::new(&mut buf, &session_name(session), seq).expect("header fits");
        for blk in &blocks {
            b.push(blk);
        }
        let n = b.finish();
        buf.truncate(n);
        buf
    };
    let header = |session: &str, seq: u64, count: u16| {
        let mut h = [0u8; HEADER_LEN];
        write_header_only(&mut h, &session_name(session), seq, count);
        h.to_vec()
    };
    let script = |cfg: [u8; 4], dgrams: Vec<Vec<u8>>| {
        let mut v = cfg.to_vec();
        for d in dgrams {
            v.extend_from_slice(&(d.len() as u16).to_le_bytes());
            v.extend_from_slice(&d);
            v.push(11);
        }
        v
    };
    let recs = |from: u64, to: u64| (from..to).map(record).collect::<Vec<_>>();
    let mds = |from: u64, to: u64| (from..to).map(market).collect::<Vec<_>>();
    vec![
        ("record-block".into(), record(5)),
        ("trade-block".into(), market(2)),
        ("level-block".into(), market(3)),
        (
            "records-reordered-duplicated".into(),
            script(
                [0, 7, 0, 4],
                vec![
                    packet("FEED", 4, recs(4, 7)),
                    packet("OTHER", 1, recs(1, 2)),
                    packet("FEED", 1, recs(1, 4)),
                    packet("FEED", 4, recs(4, 7)),
                    header("FEED", 12, HEARTBEAT),
                    packet("FEED", 7, recs(7, 12)),
                    header("FEED", 12, END_OF_SESSION),
                ],
            ),
        ),
        (
            "market-data-adopted-session".into(),
            script(
                [3, 3, 1, 2],
                vec![
                    packet("MD", 1, mds(1, 5)),
                    packet("MD", 9, mds(9, 12)),
                    b"garbage".to_vec(),
                    packet("MD", 5, mds(5, 9)),
                    header("MD", 12, END_OF_SESSION),
                ],
            ),
        ),
    ]
}

/// Engine snapshots: raw (mode 0) snapshots of an empty and a busy book,
/// and command scripts (mode 1) with and without damage.
fn engine_restore() -> Named {
    let config = crate::engine_restore::config();
    let script: Vec<u8> = (0u8..60)
        .flat_map(|i| [i.wrapping_mul(37), i, i / 2, i.wrapping_mul(11), i % 5])
        .collect();
    let mut busy = peregrine_engine::Engine::new(&config).expect("valid config");
    let mut sink: Vec<(u32, peregrine_engine::Report)> = Vec::new();
    let mut b = crate::Bytes::new(&script);
    for _ in 0..60 {
        busy.apply(&crate::engine_restore::command(&mut b), &mut sink);
    }
    let raw = |engine: &peregrine_engine::Engine| {
        let mut v = vec![0u8];
        v.extend(engine.snapshot());
        v
    };
    let empty = peregrine_engine::Engine::new(&config).expect("valid config");
    let scripted = |damage: &[u8]| {
        let mut v = vec![1u8, 60];
        v.extend(&script);
        v.extend(damage);
        v
    };
    vec![
        ("empty-input".into(), Vec::new()),
        ("raw-empty-book".into(), raw(&empty)),
        ("raw-busy-book".into(), raw(&busy)),
        ("script-undamaged".into(), scripted(&[0, 0, 0])),
        ("script-flip-count".into(), scripted(&[1, 68, 0, 0x80, 0, 0])),
        ("script-truncated".into(), scripted(&[0, 100, 0])),
    ]
}

type Named = Vec<(String, Vec<u8>)>;

fn echo(tag: u64) -> Vec<u8> {
    Echo::new(tag * 1_000, tag).as_bytes().to_vec()
}

fn inbound(t: MessageType) -> Vec<u8> {
    let mut m = match t {
        MessageType::NewOrder => {
            let mut o = NewOrder::new_zeroed();
            o.side = 1;
            o.order_kind = 1;
            o.time_in_force = 1;
            o.order_id.set(7);
            o.instrument.set(1);
            o.price.set(10_050);
            o.quantity.set(100);
            o.as_bytes().to_vec()
        }
        MessageType::Cancel => {
            let mut c = Cancel::new_zeroed();
            c.order_id.set(7);
            c.instrument.set(1);
            c.as_bytes().to_vec()
        }
        MessageType::Replace => {
            let mut r = Replace::new_zeroed();
            r.order_id.set(7);
            r.instrument.set(1);
            r.new_price.set(-5);
            r.new_quantity.set(u64::MAX);
            r.as_bytes().to_vec()
        }
        MessageType::Ack => Ack::empty().as_bytes().to_vec(),
        MessageType::Reject => Reject::for_block(&echo(1), 2, 3, 4).as_bytes().to_vec(),
        MessageType::Echo => echo(42),
        other => ExecReport::empty(other).as_bytes().to_vec(),
    };
    m[0] = t as u8;
    m[1] = LAYOUT_VERSION;
    m
}

fn mold(seq: u64, blocks: &[Vec<u8>], cap: usize) -> Vec<u8> {
    let mut buf = vec![0u8; cap];
    let mut b = MoldBuilder::new(&mut buf, &session_name("SEED1"), seq).expect("header fits");
    for blk in blocks {
        b.push(blk);
    }
    let n = b.finish();
    buf.truncate(n);
    buf
}

/// A MoldUDP64 packet built by hand (no size cap, any count).
fn mold_raw(count: u16, blocks: &[&[u8]]) -> Vec<u8> {
    let mut p = session_name("RAW").to_vec();
    p.extend_from_slice(&9u64.to_be_bytes());
    p.extend_from_slice(&count.to_be_bytes());
    for b in blocks {
        p.extend_from_slice(&(b.len() as u16).to_be_bytes());
        p.extend_from_slice(b);
    }
    p
}

/// The largest UDP datagram (65,507 bytes) as MoldUDP64: 642 Echo blocks
/// and a 1-byte block, session "S0" at client sequence 1.
fn largest_datagram() -> Vec<u8> {
    let echoes: Vec<Vec<u8>> = (0..642).map(echo).collect();
    let mut blocks: Vec<&[u8]> = echoes.iter().map(|b| &b[..]).collect();
    blocks.push(b"E");
    let mut h = [0u8; HEADER_LEN];
    write_header_only(&mut h, &session_name("S0"), 1, blocks.len() as u16);
    let mut p = h.to_vec();
    for b in blocks {
        p.extend_from_slice(&(b.len() as u16).to_be_bytes());
        p.extend_from_slice(b);
    }
    assert_eq!(p.len(), 65_507);
    p
}

fn moldudp64() -> Named {
    let mut v: Named = Vec::new();
    let mut h = [0u8; HEADER_LEN];
    write_header_only(&mut h, &session_name("HB"), 17, HEARTBEAT);
    v.push(("heartbeat".into(), h.to_vec()));
    write_header_only(&mut h, &session_name("EOS"), u64::MAX, END_OF_SESSION);
    v.push(("end-of-session".into(), h.to_vec()));
    write_header_only(&mut h, &session_name("RR"), 5, 3);
    v.push(("retransmit-request".into(), h.to_vec()));
    v.push(("one-echo".into(), mold(1, &[echo(1)], 2048)));
    let fourteen: Vec<Vec<u8>> = (0..14).map(echo).collect();
    v.push(("fourteen-echoes".into(), mold(100, &fourteen, 2048)));
    let kinds: Vec<Vec<u8>> = [
        MessageType::NewOrder,
        MessageType::Cancel,
        MessageType::Replace,
        MessageType::Echo,
    ]
    .into_iter()
    .map(inbound)
    .collect();
    v.push(("order-kinds".into(), mold(7, &kinds, 2048)));
    v.push((
        "odd-lengths".into(),
        mold(
            3,
            &[vec![], vec![1], vec![2; 99], vec![3; 101], vec![4; 255]],
            2048,
        ),
    ));
    v.push(("many-empty-blocks".into(), mold(0, &vec![vec![]; 200], 2048)));
    v.push(("one-big-block".into(), mold(0, &[vec![0x5a; 1450]], 2048)));
    v.push(("oversize-hand-built".into(), mold_raw(1, &[&[0x11; 2000]])));
    let full = mold(1, &[echo(1), echo(2)], 2048);
    v.push(("short-19".into(), full[..19].to_vec()));
    v.push(("block-header-cut".into(), full[..21].to_vec()));
    v.push(("block-body-cut".into(), full[..full.len() - 1].to_vec()));
    let mut trailing = full.clone();
    trailing.extend_from_slice(&[0, 0, 0]);
    v.push(("trailing-bytes".into(), trailing));
    let mut overcount = full.clone();
    overcount[19] = 3;
    v.push(("count-too-high".into(), overcount));
    let mut eos_trailing = h.to_vec();
    eos_trailing.extend_from_slice(&[0, 1, 9]);
    v.push(("end-of-session-with-block".into(), eos_trailing));
    v.push(("count-fffe".into(), mold_raw(0xfffe, &[&[]])));
    // Past one 1,472-byte frame: 20 messages (2,060 bytes), and the largest
    // datagram, 65,507 bytes: 642 messages and a 1-byte block, or one block.
    let twenty: Vec<Vec<u8>> = (0..20).map(echo).collect();
    let twenty: Vec<&[u8]> = twenty.iter().map(|b| &b[..]).collect();
    v.push(("twenty-echoes-2060-bytes".into(), mold_raw(20, &twenty)));
    v.push(("largest-datagram-642-echoes".into(), largest_datagram()));
    v.push((
        "largest-datagram-one-block".into(),
        mold_raw(1, &[&vec![b'E'; 65_507 - HEADER_LEN - 2]]),
    ));
    v.push(("empty".into(), vec![]));
    v.push((
        "block-len-ffff".into(),
        mold_raw(1, &[&[0u8; 0]]).into_iter().chain([0xff]).collect(),
    ));
    // Builder-script shaped inputs (first two bytes = buffer size).
    v.push(("builder-small-buffer".into(), vec![19, 0, 1, 2, 3, 4]));
    v.push((
        "builder-mixed".into(),
        [
            &[0xc0u8, 0x05][..],
            &[0; 14],
            &[0x40, 0x40, 0x3f, 0x81, 0xff, 0xff, 0x07],
        ]
        .concat(),
    ));
    v
}

fn soupbintcp() -> Named {
    let mut v: Named = Vec::new();
    let mut b = [0u8; 49];
    write_login_request(&mut b, "alice", "secret", "SESS1", 42);
    v.push(("login-request".into(), b.to_vec()));
    write_login_request(&mut b, "bob", "", "", 0);
    v.push(("login-request-blank".into(), b.to_vec()));
    write_login_request(&mut b, "max", "pw", "S", u64::MAX);
    v.push(("login-request-max-seq".into(), b.to_vec()));
    let mut a = [0u8; 33];
    write_login_accepted(&mut a, b"SESS1     ", 1);
    v.push(("login-accepted".into(), a.to_vec()));
    let pkt = |t: u8, p: &[u8]| {
        let mut out = vec![0u8; 3 + p.len()];
        let n = write_packet(&mut out, t, p).expect("fits");
        out.truncate(n);
        out
    };
    v.push(("login-rejected".into(), pkt(kind::LOGIN_REJECTED, b"A")));
    v.push((
        "sequenced-ack".into(),
        pkt(kind::SEQUENCED_DATA, Ack::empty().as_bytes()),
    ));
    v.push(("unsequenced-echo".into(), pkt(kind::UNSEQUENCED_DATA, &echo(5))));
    v.push((
        "unsequenced-short".into(),
        pkt(kind::UNSEQUENCED_DATA, &[1, 2, 3]),
    ));
    for (n, t) in [
        ("server-heartbeat", kind::SERVER_HEARTBEAT),
        ("client-heartbeat", kind::CLIENT_HEARTBEAT),
        ("logout", kind::LOGOUT_REQUEST),
        ("end-of-session", kind::END_OF_SESSION),
    ] {
        v.push((n.into(), pkt(t, &[])));
    }
    v.push(("debug".into(), pkt(kind::DEBUG, b"hello soup")));
    v.push(("max-len".into(), pkt(kind::DEBUG, &[b'x'; 1023])));
    let mut stream = b.to_vec();
    stream.extend(pkt(kind::UNSEQUENCED_DATA, &echo(1)));
    stream.extend(pkt(kind::CLIENT_HEARTBEAT, &[]));
    stream.extend(pkt(kind::UNSEQUENCED_DATA, &echo(2)));
    stream.extend(pkt(kind::LOGOUT_REQUEST, &[]));
    v.push(("stream".into(), stream.clone()));
    v.push(("stream-cut".into(), stream[..stream.len() - 50].to_vec()));
    let mut skip = pkt(b'?', &[1, 2]);
    skip.extend(pkt(kind::CLIENT_HEARTBEAT, &[9]));
    skip.extend(pkt(kind::CLIENT_HEARTBEAT, &[]));
    v.push(("skippable-errors".into(), skip));
    v.push(("zero-length".into(), vec![0, 0, b'R']));
    v.push(("oversize".into(), vec![0x04, 0x01, b'U']));
    v.push(("length-ffff".into(), vec![0xff, 0xff]));
    v.push(("one-byte".into(), vec![0]));
    v.push(("empty".into(), vec![]));
    let mut bad_num = b;
    bad_num[48] = b'x';
    v.push(("bad-number".into(), bad_num.to_vec()));
    let mut inner_space = b;
    inner_space[40] = b' ';
    v.push(("number-inner-space".into(), inner_space.to_vec()));
    let mut overflow = [0u8; 49];
    write_login_request(&mut overflow, "o", "p", "", 0);
    overflow[29..49].copy_from_slice(b"99999999999999999999");
    v.push(("number-overflow".into(), overflow.to_vec()));
    let mut non_utf8 = [0u8; 49];
    write_login_request(&mut non_utf8, "x", "y", "z", 1);
    non_utf8[3] = 0xff;
    v.push(("login-non-utf8".into(), non_utf8.to_vec()));
    v
}

fn message() -> Named {
    let mut v: Named = Vec::new();
    for t in MessageType::ALL {
        v.push((format!("type-{}", t as u8 as char), inbound(t)));
    }
    let mut bad_version = echo(1);
    bad_version[1] = 2;
    v.push(("bad-version".into(), bad_version));
    let mut zero_version = inbound(MessageType::NewOrder);
    zero_version[1] = 0;
    v.push(("zero-version".into(), zero_version));
    let mut unknown = echo(1);
    unknown[0] = 0xee;
    v.push(("unknown-type".into(), unknown));
    v.push(("short-99".into(), echo(3)[..99].to_vec()));
    let mut long = echo(3);
    long.push(0);
    v.push(("long-101".into(), long));
    v.push(("sixteen".into(), echo(9)[..16].to_vec()));
    v.push(("fifteen".into(), echo(9)[..15].to_vec()));
    v.push(("one".into(), vec![b'E']));
    v.push(("empty".into(), vec![]));
    v.push(("all-ff".into(), vec![0xff; 100]));
    v
}

const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SRC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const DST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

fn eth_header(ethertype: EtherType, out: &mut [u8]) {
    EthernetRepr {
        src_addr: EthernetAddress(SRC_MAC),
        dst_addr: EthernetAddress(DST_MAC),
        ethertype,
    }
    .emit(&mut EthernetFrame::new_unchecked(out));
}

fn udp_frame(payload: &[u8], cksum: ChecksumMode, pad: usize) -> Vec<u8> {
    let ends = peregrine_netio::wire::UdpEndpoints {
        src_mac: EthernetAddress(SRC_MAC),
        dst_mac: EthernetAddress(DST_MAC),
        src: std::net::SocketAddrV4::new(SRC, 40_000),
        dst: std::net::SocketAddrV4::new(DST, 9_000),
    };
    peregrine_netio::wire::udp_frame(&ends, payload, cksum, pad)
}

fn arp_frame(op: ArpOperation) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    eth_header(EtherType::Arp, &mut f);
    ArpRepr {
        operation: op,
        source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
        source_protocol_addr: SRC,
        target_hardware_addr: EthernetAddress::default(),
        target_protocol_addr: DST,
    }
    .emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
    f
}

fn netio_wire() -> Named {
    let mut v: Named = Vec::new();
    let payload = mold(1, &[echo(1)], 2048);
    v.push(("udp-mold".into(), udp_frame(&payload, ChecksumMode::Compute, 0)));
    v.push(("udp-no-checksum".into(), udp_frame(b"hi", ChecksumMode::Skip, 0)));
    v.push(("udp-offload".into(), udp_frame(b"hi", ChecksumMode::Offload, 0)));
    v.push((
        "udp-empty-padded".into(),
        udp_frame(&[], ChecksumMode::Compute, 18),
    ));
    v.push(("udp-odd".into(), udp_frame(b"odd", ChecksumMode::Compute, 1)));
    let big: Vec<u8> = (0..1472u32).map(|i| i as u8).collect();
    v.push(("udp-1472".into(), udp_frame(&big, ChecksumMode::Compute, 0)));
    // A payload whose checksum computes to 0 is sent as 0xffff: search a
    // two-byte tweak that gets there.
    let mut zero = None;
    'find: for a in 0..=255u8 {
        for b in 0..=255u8 {
            let f = udp_frame(&[a, b], ChecksumMode::Compute, 0);
            if f[40..42] == [0xff, 0xff] {
                zero = Some(f);
                break 'find;
            }
        }
    }
    if let Some(f) = zero {
        v.push(("udp-checksum-ffff".into(), f));
    }
    let mut bad_udp = udp_frame(b"hello", ChecksumMode::Compute, 0);
    bad_udp[45] ^= 1;
    v.push(("udp-bad-checksum".into(), bad_udp));
    let mut bad_ip = udp_frame(b"hello", ChecksumMode::Compute, 0);
    bad_ip[22] = 1; // TTL changed, checksum stale
    v.push(("ipv4-bad-checksum".into(), bad_ip));
    let mut frag = udp_frame(b"hello", ChecksumMode::Compute, 0);
    Ipv4Packet::new_unchecked(&mut frag[14..]).set_flags_and_offset(false, true, 0);
    Ipv4Packet::new_unchecked(&mut frag[14..]).fill_checksum();
    v.push(("ipv4-fragment".into(), frag));
    let mut frag_off = udp_frame(b"hello", ChecksumMode::Compute, 0);
    Ipv4Packet::new_unchecked(&mut frag_off[14..]).set_flags_and_offset(false, false, 0xfff8);
    v.push(("ipv4-fragment-offset".into(), frag_off));
    let mut v6 = udp_frame(b"hello", ChecksumMode::Compute, 0);
    v6[14] = 0x65;
    v.push(("ipv4-version-6".into(), v6));
    let mut ihl4 = udp_frame(b"hello", ChecksumMode::Compute, 0);
    ihl4[14] = 0x44;
    v.push(("ipv4-ihl-4".into(), ihl4));
    let mut ihl15 = udp_frame(b"hello", ChecksumMode::Compute, 0);
    ihl15[14] = 0x4f;
    v.push(("ipv4-ihl-15".into(), ihl15));
    // IHL 6 with a 4-byte option, UDP behind it.
    let mut opts = vec![0u8; 14 + 24 + 8 + 4];
    eth_header(EtherType::Ipv4, &mut opts);
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut opts[14..]);
        Ipv4Repr {
            src_addr: SRC,
            dst_addr: DST,
            protocol: IpProtocol::Udp,
            payload_len: 4 + 8 + 4,
            ttl: 1,
        }
        .emit(&mut ip, ChecksumMode::Compute);
        ip.set_version_and_header_len(4, 24);
        ip.fill_checksum();
    }
    UdpRepr {
        src_port: 1,
        dst_port: 2,
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut opts[38..]),
        SRC,
        DST,
        b"opts",
        ChecksumMode::Compute,
    );
    v.push(("ipv4-options".into(), opts));
    let mut tl_long = udp_frame(b"hello", ChecksumMode::Compute, 0);
    tl_long[17] = tl_long[17].wrapping_add(10);
    v.push(("ipv4-total-len-beyond".into(), tl_long));
    let mut udp_len_bad = udp_frame(b"hello", ChecksumMode::Compute, 0);
    udp_len_bad[39] = 200;
    v.push(("udp-len-beyond".into(), udp_len_bad));
    let mut udp_len7 = udp_frame(b"hello", ChecksumMode::Compute, 0);
    udp_len7[39] = 7;
    v.push(("udp-len-7".into(), udp_len7));
    v.push(("arp-request".into(), arp_frame(ArpOperation::Request)));
    v.push(("arp-reply".into(), arp_frame(ArpOperation::Reply)));
    let mut arp_other = arp_frame(ArpOperation::Unknown(9));
    arp_other[19] = 16; // protocol length 16
    v.push(("arp-unsupported".into(), arp_other));
    v.push((
        "arp-short".into(),
        arp_frame(ArpOperation::Request)[..40].to_vec(),
    ));
    let mut ipv6 = udp_frame(b"x", ChecksumMode::Compute, 0);
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    v.push(("ethertype-ipv6".into(), ipv6));
    let mut vlan = udp_frame(b"x", ChecksumMode::Compute, 0);
    vlan[12..14].copy_from_slice(&[0x81, 0x00]);
    v.push(("ethertype-vlan".into(), vlan));
    v.push((
        "eth-header-only".into(),
        udp_frame(&[], ChecksumMode::Compute, 0)[..14].to_vec(),
    ));
    v.push(("eth-13".into(), vec![0xff; 13]));
    v.push(("empty".into(), vec![]));
    // A bare IPv4 packet and a bare UDP datagram (layers fuzzed alone).
    v.push((
        "bare-ipv4".into(),
        udp_frame(b"bare", ChecksumMode::Compute, 0)[14..].to_vec(),
    ));
    v.push((
        "bare-udp".into(),
        udp_frame(b"bare", ChecksumMode::Skip, 0)[34..].to_vec(),
    ));
    v
}

fn cfg(ring_capacity: usize, max_sessions: usize) -> Config {
    Config {
        ring_capacity,
        max_sessions,
        ..Config::default()
    }
}

fn poll() -> Op {
    Op::Poll { skip: 0, rounds: 0 }
}

fn mold_op(from: u8, session: u8, seq: u8, blocks: &[u8]) -> Op {
    Op::UdpMold {
        from,
        session,
        seq,
        blocks: blocks.to_vec(),
        end_of_session: false,
    }
}

/// A UDP login of session `session` from source `from`.
fn udp_login(from: u8, session: u8) -> Op {
    mold_op(from, session, 0, &[session::LOGIN])
}

fn login(conn: u8, user: u8, session: u8) -> Op {
    Op::TcpLogin {
        conn,
        user,
        session,
        split: 0,
    }
}

fn data(conn: u8, blocks: &[u8], chunk: u16) -> Op {
    Op::TcpData {
        conn,
        blocks: blocks.to_vec(),
        chunk,
    }
}

fn session() -> Named {
    let d = Config::default();
    let scripts: Vec<(&str, Config, Vec<Op>)> = vec![
        ("empty-script", d, vec![]),
        (
            "udp-twenty-blocks",
            d,
            vec![udp_login(0, 0), mold_op(0, 0, 1, &[0; 20]), poll()],
        ),
        (
            "udp-largest-datagram",
            d,
            vec![
                udp_login(0, 0),
                Op::UdpRaw {
                    from: 0,
                    bytes: largest_datagram(),
                },
                poll(),
            ],
        ),
        (
            "udp-client-end-of-session-logs-out",
            d,
            vec![
                udp_login(0, 0),
                mold_op(0, 0, 1, &[0]),
                poll(),
                Op::UdpMold {
                    from: 0,
                    session: 0,
                    seq: 2,
                    blocks: vec![],
                    end_of_session: true,
                },
                mold_op(0, 0, 2, &[0]),
                poll(),
                udp_login(0, 0),
                mold_op(0, 0, 2, &[0]),
                poll(),
            ],
        ),
        (
            "udp-request-below-the-reply-log",
            d,
            vec![
                udp_login(0, 0),
                mold_op(0, 0, 1, &[0, 0]),
                poll(),
                Op::UdpRaw {
                    from: 0,
                    bytes: {
                        let mut h = [0u8; HEADER_LEN];
                        write_header_only(&mut h, &session_name("S0"), 0, 3);
                        h.to_vec()
                    },
                },
                poll(),
            ],
        ),
        (
            "udp-one-echo",
            d,
            vec![udp_login(0, 0), mold_op(0, 0, 1, &[0]), poll()],
        ),
        (
            "udp-fourteen",
            d,
            vec![udp_login(1, 1), mold_op(1, 1, 1, &[0; 14]), poll()],
        ),
        (
            "udp-mixed-blocks",
            d,
            vec![udp_login(0, 0), mold_op(0, 0, 1, &[0, 5, 6, 7, 4, 13, 0]), poll()],
        ),
        (
            "udp-login-spoof-logout",
            d,
            vec![
                mold_op(2, 2, 0, &[session::BAD_LOGIN]),
                udp_login(0, 2),
                mold_op(0, 2, 1, &[0, 1]),
                mold_op(1, 2, 3, &[2]),
                udp_login(1, 2),
                mold_op(0, 2, 0, &[session::LOGOUT]),
                udp_login(1, 2),
                mold_op(1, 2, 3, &[2]),
                poll(),
            ],
        ),
        (
            "udp-heartbeat-and-eos",
            d,
            vec![
                udp_login(0, 0),
                mold_op(0, 0, 0, &[]),
                Op::UdpMold {
                    from: 0,
                    session: 0,
                    seq: 0,
                    blocks: vec![],
                    end_of_session: true,
                },
                poll(),
            ],
        ),
        (
            "udp-malformed",
            d,
            vec![
                Op::UdpRaw {
                    from: 2,
                    bytes: vec![1, 2, 3],
                },
                Op::UdpRaw {
                    from: 4,
                    bytes: vec![0; 20],
                },
                poll(),
            ],
        ),
        (
            "udp-many-sessions",
            cfg(64, 2),
            (0..4)
                .flat_map(|i| [udp_login(i, i), mold_op(i, i, 1, &[0, 1])])
                .chain([poll()])
                .collect(),
        ),
        (
            "udp-weird-session-name",
            d,
            vec![mold_op(3, 3, 200, &[0, 1, 2]), poll()],
        ),
        (
            "udp-backpressure",
            Config {
                ring_capacity: 32,
                seq_batch: 1,
                reply_burst: 1,
                tx_burst: 1,
                ..d
            },
            vec![
                udp_login(0, 0),
                udp_login(1, 1),
                mold_op(0, 0, 1, &[0; 14]),
                mold_op(0, 0, 15, &[0; 14]),
                mold_op(1, 1, 1, &[0; 14]),
                Op::Poll { skip: 4, rounds: 3 },
                Op::Poll { skip: 8, rounds: 3 },
                poll(),
            ],
        ),
        (
            "tcp-login-echo-logout",
            d,
            vec![
                Op::TcpOpen { conn: 0 },
                login(0, 0, 0),
                data(0, &[0, 1, 2], 2048),
                poll(),
                Op::TcpRaw {
                    conn: 0,
                    bytes: vec![0, 1, b'O'],
                },
                poll(),
            ],
        ),
        (
            "tcp-split-chunks",
            d,
            vec![
                Op::TcpOpen { conn: 1 },
                Op::TcpLogin {
                    conn: 1,
                    user: 1,
                    session: 3,
                    split: 20,
                },
                data(1, &[0, 0, 5, 6, 7, 0], 7),
                poll(),
            ],
        ),
        (
            "tcp-data-before-login",
            d,
            vec![Op::TcpOpen { conn: 2 }, data(2, &[0], 2048), poll()],
        ),
        (
            "tcp-session-in-use",
            d,
            vec![
                Op::TcpOpen { conn: 0 },
                Op::TcpOpen { conn: 1 },
                login(0, 0, 1),
                login(1, 1, 1),
                data(0, &[0, 0], 2048),
                poll(),
            ],
        ),
        (
            "tcp-relogin-after-close",
            d,
            vec![
                Op::TcpOpen { conn: 0 },
                login(0, 0, 2),
                data(0, &[0; 20], 300),
                Op::Poll { skip: 8, rounds: 1 },
                Op::TcpClose { conn: 0 },
                poll(),
                Op::TcpOpen { conn: 0 },
                login(0, 0, 2),
                data(0, &[1; 3], 2048),
                poll(),
            ],
        ),
        (
            "tcp-table-full",
            cfg(64, 1),
            vec![
                Op::TcpOpen { conn: 0 },
                Op::TcpOpen { conn: 1 },
                login(0, 0, 0),
                login(1, 1, 1),
                poll(),
            ],
        ),
        (
            "tcp-oversize-and-garbage",
            d,
            vec![
                Op::TcpOpen { conn: 3 },
                login(3, 2, 0),
                Op::TcpRaw {
                    conn: 3,
                    bytes: vec![0, 2, b'?', 1, 0, 1, b'+', 0x04, 0x01],
                },
                poll(),
            ],
        ),
        (
            "tcp-double-login",
            d,
            vec![
                Op::TcpOpen { conn: 0 },
                login(0, 0, 0),
                login(0, 0, 1),
                data(0, &[0], 2048),
                poll(),
            ],
        ),
        (
            "tcp-ring-blocked",
            Config {
                ring_capacity: 2,
                seq_batch: 1,
                ..d
            },
            vec![
                Op::TcpOpen { conn: 0 },
                login(0, 0, 0),
                data(0, &[0; 20], 2048),
                Op::TcpOpen { conn: 1 },
                login(1, 1, 1),
                data(1, &[0; 5], 13),
                Op::Poll { skip: 4, rounds: 2 },
                poll(),
            ],
        ),
        (
            "both-transports",
            Config {
                rx_burst: 2,
                per_recv: 3,
                ..d
            },
            vec![
                udp_login(0, 0),
                udp_login(1, 1),
                mold_op(0, 0, 1, &[0, 1]),
                Op::TcpOpen { conn: 0 },
                login(0, 0, 3),
                data(0, &[0, 6], 2048),
                mold_op(1, 1, 1, &[7, 0]),
                Op::Poll { skip: 2, rounds: 1 },
                Op::TcpClose { conn: 0 },
                poll(),
            ],
        ),
    ];
    scripts
        .into_iter()
        .map(|(n, c, ops)| (n.to_string(), session::encode(&c, &ops)))
        .collect()
}

fn journal(per_seg: u8, records: u8) -> JournalConfig {
    JournalConfig {
        per_seg,
        records,
        ..JournalConfig::default()
    }
}

fn slot_op(file: u8, slot: u8, how: u8, p: u8) -> JournalOp {
    JournalOp::Slot { file, slot, how, p }
}

/// Damage scripts. Files are picked by index in name order, e.g. with 4
/// records per segment and 6 records: 0 = segment 1, 1 = segment 5.
fn journal_recovery() -> Named {
    use JournalOp as O;
    let d = JournalConfig::default(); // 4 per segment, 6 records
    let scripts: Vec<(&str, JournalConfig, Vec<JournalOp>)> = vec![
        ("empty-journal", journal(4, 0), vec![]),
        (
            "clean-one-segment",
            JournalConfig {
                flush: 1,
                ..journal(4, 3)
            },
            vec![],
        ),
        (
            "clean-one-per-segment-prepared",
            JournalConfig {
                prepare_next: true,
                flush: 2,
                ..journal(1, 6)
            },
            vec![],
        ),
        (
            "clean-slack-bytes",
            JournalConfig {
                slack: 6,
                flush: 3,
                ..journal(3, 7)
            },
            vec![],
        ),
        ("torn-last-record", d, vec![slot_op(1, 1, 0, 70)]),
        ("half-written-next-slot", d, vec![slot_op(1, 2, 6, 100)]),
        (
            "corrupt-middle-record",
            journal(4, 9),
            vec![O::Flip {
                file: 0,
                at: 218,
                bit: 3,
            }],
        ),
        (
            "lost-page-in-last-segment",
            journal(4, 8),
            vec![O::Zero {
                file: 1,
                at: 208,
                len: 144,
            }],
        ),
        ("garbage-after-end", journal(4, 5), vec![slot_op(1, 3, 1, 20)]),
        (
            "truncated-segment",
            journal(4, 7),
            vec![O::Truncate { file: 0, len: 300 }],
        ),
        (
            "appended-zeros",
            d,
            vec![O::Append {
                file: 1,
                zeros: true,
                bytes: vec![0; 16],
            }],
        ),
        (
            "grown-last-segment",
            d,
            vec![
                O::Append {
                    file: 1,
                    zeros: true,
                    bytes: vec![0; 127],
                },
                O::Append {
                    file: 1,
                    zeros: true,
                    bytes: vec![0; 17],
                },
                O::Header {
                    file: 1,
                    field: 2,
                    value: 0,
                },
            ],
        ),
        (
            "deleted-middle-segment",
            journal(2, 7),
            vec![O::Delete { file: 1 }],
        ),
        (
            "deleted-first-segment",
            journal(2, 7),
            vec![O::Delete { file: 0 }],
        ),
        (
            "headerless-last-file",
            journal(3, 6),
            vec![O::Create { what: 2, seq: 7 }],
        ),
        (
            "created-ahead-segment",
            journal(3, 6),
            vec![O::Create { what: 3, seq: 7 }],
        ),
        ("leftover-tmp", d, vec![O::Create { what: 0, seq: 9 }]),
        ("bad-segment-name", d, vec![O::Create { what: 4, seq: 0 }]),
        ("unrelated-file", d, vec![O::Create { what: 5, seq: 0 }]),
        (
            "forged-next-segment",
            journal(4, 8),
            vec![O::Create { what: 6, seq: 9 }],
        ),
        ("duplicate-record", journal(4, 7), vec![slot_op(1, 2, 3, 1)]),
        ("unknown-kind-at-tail", journal(4, 5), vec![slot_op(1, 1, 5, 9)]),
        (
            "unknown-kind-after-tail",
            journal(4, 5),
            vec![slot_op(1, 2, 5, 9)],
        ),
        ("renamed-segment", d, vec![O::Rename { file: 0, to: 2 }]),
        (
            "moved-and-resigned-segment",
            d,
            vec![
                O::Rename { file: 1, to: 9 },
                O::Header {
                    file: 1,
                    field: 0,
                    value: 0,
                },
            ],
        ),
        (
            "interrupted-copy-of-last",
            JournalConfig {
                prepare_next: true,
                ..journal(4, 4)
            },
            vec![O::Truncate { file: 1, len: 100 }],
        ),
        (
            "high-sequences",
            journal(2, 1),
            vec![
                O::Rename { file: 0, to: 0x90 },
                O::Header {
                    file: 0,
                    field: 0,
                    value: 0,
                },
                slot_op(0, 0, 4, 0),
                slot_op(0, 1, 4, 0),
            ],
        ),
        (
            "overwrite-bytes",
            d,
            vec![O::Write {
                file: 0,
                at: 70,
                bytes: vec![1, 2, 3],
            }],
        ),
        (
            "header-version-2",
            d,
            vec![O::Header {
                file: 0,
                field: 3,
                value: 2,
            }],
        ),
        (
            "reserved-header-byte-last",
            d,
            vec![O::Header {
                file: 1,
                field: 6,
                value: 3,
            }],
        ),
    ];
    scripts
        .into_iter()
        .map(|(n, c, ops)| (n.to_string(), journal_recovery::encode(&c, &ops)))
        .collect()
}
