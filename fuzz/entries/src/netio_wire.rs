//! Ethernet / ARP / IPv4 / UDP header invariants.

use peregrine_netio::wire::{
    checksum, ArpPacket, ArpRepr, ChecksumMode, EtherType, EthernetFrame, EthernetRepr, Ipv4Packet, Ipv4Repr,
    UdpPacket, UdpRepr, WireError,
};
use std::net::Ipv4Addr;

pub(crate) fn run(data: &[u8]) {
    checksums(data);
    // The whole stack, as the DPDK port walks a received frame.
    if let Ok(eth) = EthernetFrame::new_checked(data) {
        ethernet(&eth, data);
        match eth.ethertype() {
            EtherType::Arp => arp(eth.payload()),
            EtherType::Ipv4 => ipv4(eth.payload()),
            EtherType::Unknown(_) => {}
        }
    } else {
        assert!(data.len() < 14);
    }
    // Each layer alone, so the fuzzer need not find the layers below.
    arp(data);
    ipv4(data);
    udp(data, Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 1));
}

/// Plain 16-bit ones'-complement sum, the definition `checksum::data`
/// optimises (32-bit words into a 64-bit accumulator).
fn reference_sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    for c in data.chunks(2) {
        acc += u64::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn checksums(data: &[u8]) {
    let s = checksum::data(data);
    assert_eq!(
        s,
        reference_sum(data),
        "checksum::data differs from the reference"
    );
    // Sums of even-length pieces combine into the sum of the whole.
    let cut = (data.first().copied().unwrap_or(0) as usize * 2).min(data.len() & !1);
    let (a, b) = data.split_at(cut);
    assert_eq!(checksum::combine(&[checksum::data(a), checksum::data(b)]), s);
}

fn ethernet(eth: &EthernetFrame<&[u8]>, data: &[u8]) {
    let r = EthernetRepr::parse(eth).expect("checked frame parses");
    assert_eq!(eth.payload(), &data[14..]);
    assert_eq!(&r.dst_addr.0[..], &data[..6]);
    assert_eq!(&r.src_addr.0[..], &data[6..12]);
    let et = u16::from_be_bytes([data[12], data[13]]);
    assert_eq!(u16::from(r.ethertype), et);
    assert_eq!(EtherType::from(et), r.ethertype);
    let _ = (
        r.src_addr.to_string(),
        r.dst_addr.is_broadcast(),
        r.dst_addr.is_unicast(),
    );
    let mut out = [0u8; 14];
    r.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
    assert_eq!(&out[..], &data[..14]);
}

fn arp(data: &[u8]) {
    let Ok(p) = ArpPacket::new_checked(data) else {
        assert!(data.len() < 28);
        return;
    };
    let _ = (
        p.hardware_type(),
        p.protocol_type(),
        p.hardware_len(),
        p.protocol_len(),
        p.operation(),
    );
    match ArpRepr::parse(&p) {
        Ok(r) => {
            let mut out = [0u8; 28];
            r.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
            assert_eq!(&out[..], &data[..28], "ARP emit differs");
            assert_eq!(ArpRepr::parse(&ArpPacket::new_unchecked(&out[..])), Ok(r));
        }
        Err(e) => assert_eq!(e, WireError::Unsupported),
    }
}

fn ipv4(data: &[u8]) {
    let p = match Ipv4Packet::new_checked(data) {
        Ok(p) => p,
        Err(e) => {
            assert!(matches!(
                e,
                WireError::Truncated | WireError::BadHeaderLen | WireError::BadTotalLen
            ));
            return;
        }
    };
    let hl = usize::from(p.header_len());
    let tl = usize::from(p.total_len());
    assert!(hl >= 20 && hl <= tl && tl <= data.len());
    assert_eq!(p.payload(), &data[hl..tl]);
    let _ = (p.dscp_ecn(), p.ident(), p.dont_frag(), p.checksum());
    let verified = p.verify_checksum();
    assert_eq!(verified, checksum::data(&data[..hl]) == 0xffff);

    // Refilling the checksum of a copy always verifies.
    let mut copy = data[..tl].to_vec();
    let mut c = Ipv4Packet::new_unchecked(&mut copy[..]);
    c.fill_checksum();
    assert!(c.verify_checksum(), "fill_checksum result does not verify");

    let unchecked = Ipv4Repr::parse(&p, false);
    let checked = Ipv4Repr::parse(&p, true);
    match unchecked {
        Ok(r) => {
            assert_eq!(p.version(), 4);
            assert!(!p.more_frags() && p.frag_offset() == 0);
            assert_eq!(r.payload_len, tl - hl);
            assert_eq!(
                (r.src_addr, r.dst_addr, r.ttl),
                (p.src_addr(), p.dst_addr(), p.ttl())
            );
            assert_eq!(
                checked,
                if verified {
                    Ok(r)
                } else {
                    Err(WireError::BadChecksum)
                }
            );
            // emit → parse gives the same meaning back.
            let mut out = vec![0u8; Ipv4Repr::HEADER_LEN + r.payload_len];
            r.emit(
                &mut Ipv4Packet::new_unchecked(&mut out[..]),
                ChecksumMode::Compute,
            );
            let q = Ipv4Packet::new_checked(&out[..]).expect("emitted header checks");
            assert_eq!(Ipv4Repr::parse(&q, true), Ok(r));
            udp(p.payload(), r.src_addr, r.dst_addr);
        }
        Err(e) => {
            assert!(matches!(e, WireError::BadVersion | WireError::Fragment), "{e:?}");
            assert_eq!(checked, Err(e));
        }
    }
}

fn udp(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let p = match UdpPacket::new_checked(data) {
        Ok(p) => p,
        Err(e) => {
            assert!(matches!(e, WireError::Truncated | WireError::BadUdpLen));
            return;
        }
    };
    let l = usize::from(p.len());
    assert!(l >= 8 && l <= data.len());
    assert_eq!(p.payload(), &data[8..l]);
    assert_eq!(p.is_empty(), l == 8);
    let verified = p.verify_checksum(src, dst);
    let r = match UdpRepr::parse(&p, src, dst, true) {
        Ok(r) => {
            assert!(verified);
            r
        }
        Err(e) => {
            assert!(!verified);
            assert_eq!(e, WireError::BadChecksum);
            UdpRepr::parse(&p, src, dst, false).expect("only the checksum failed")
        }
    };
    assert_eq!((r.src_port, r.dst_port), (p.src_port(), p.dst_port()));

    // emit → parse, in every checksum mode.
    let payload = p.payload();
    for mode in [ChecksumMode::Compute, ChecksumMode::Skip, ChecksumMode::Offload] {
        let mut out = vec![0u8; 8 + payload.len()];
        r.emit(
            &mut UdpPacket::new_unchecked(&mut out[..]),
            src,
            dst,
            payload,
            mode,
        );
        let q = UdpPacket::new_checked(&out[..]).expect("emitted datagram checks");
        assert_eq!(q.payload(), payload);
        match mode {
            ChecksumMode::Compute => {
                assert_ne!(q.checksum(), 0, "a computed checksum is never sent as 0");
                assert_eq!(
                    UdpRepr::parse(&q, src, dst, true),
                    Ok(r),
                    "computed checksum fails"
                );
            }
            ChecksumMode::Skip => assert_eq!(UdpRepr::parse(&q, src, dst, true), Ok(r)),
            ChecksumMode::Offload => assert_eq!(UdpRepr::parse(&q, src, dst, false), Ok(r)),
        }
    }
}
