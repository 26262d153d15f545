//! SoupBinTCP framing invariants.

use peregrine_wire::soupbintcp::{
    frame_len, kind, parse_packet, write_login_accepted, write_login_request, write_packet, SoupError,
    SoupPacket, LENGTH_PREFIX, LOGIN_ACCEPTED_LEN, LOGIN_REQUEST_LEN, MAX_PACKET_LEN,
};

pub(crate) fn run(data: &[u8]) {
    agree(data);
    // Walk the input as a byte stream, the way the TCP gateway does:
    // complete packets are handled, other bad packets skipped by their
    // length, zero-length and oversize frames end the stream.
    let mut at = 0;
    while at < data.len() {
        let rest = &data[at..];
        agree(rest);
        match parse_packet(rest) {
            Ok(None) => break,
            Ok(Some((p, n))) => {
                check_packet(&rest[..n], p);
                at += n;
            }
            Err(SoupError::Empty) | Err(SoupError::Oversize(_)) => break,
            Err(_) => match frame_len(rest) {
                Ok(Some(n)) => at += n,
                other => panic!("skippable error but frame_len says {other:?}"),
            },
        }
    }
}

/// `parse_packet` and `frame_len` agree on the front of `buf`.
fn agree(buf: &[u8]) {
    let fl = frame_len(buf);
    let pp = parse_packet(buf);
    match (&pp, &fl) {
        (Ok(None), Ok(None)) => {
            // Incomplete: the length prefix (if present) is legal and the
            // buffer is shorter than the frame.
            if buf.len() >= LENGTH_PREFIX {
                let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
                assert!((1..=MAX_PACKET_LEN).contains(&len));
                assert!(buf.len() < LENGTH_PREFIX + len);
            }
        }
        (Ok(Some((_, n))), Ok(Some(m))) => {
            assert_eq!(n, m);
            assert!(*n > LENGTH_PREFIX && *n <= buf.len() && *n <= LENGTH_PREFIX + MAX_PACKET_LEN);
        }
        (Err(SoupError::Empty), Err(SoupError::Empty)) => assert_eq!(&buf[..2], &[0, 0]),
        (Err(SoupError::Oversize(a)), Err(SoupError::Oversize(b))) => {
            assert_eq!(a, b);
            assert!(*a > MAX_PACKET_LEN);
        }
        (Err(SoupError::UnknownType(t)), Ok(Some(_))) => assert_eq!(*t, buf[2]),
        (Err(SoupError::BadLength(t, _)), Ok(Some(_))) => assert_eq!(*t as u32, u32::from(buf[2])),
        (Err(SoupError::BadNumber), Ok(Some(_))) => {
            assert!(buf[2] == kind::LOGIN_REQUEST || buf[2] == kind::LOGIN_ACCEPTED)
        }
        _ => panic!("parse_packet {pp:?} disagrees with frame_len {fl:?}"),
    }
}

/// One whole, parsed frame: its type byte, its length, and a re-encoding.
fn check_packet(frame: &[u8], p: SoupPacket<'_>) {
    let ty = frame[LENGTH_PREFIX];
    let payload = &frame[LENGTH_PREFIX + 1..];
    // Prefixes of a whole packet are incomplete, never an error.
    for cut in [0, 1, 2, frame.len() / 2, frame.len() - 1] {
        assert_eq!(parse_packet(&frame[..cut]), Ok(None), "prefix of {cut} bytes");
    }
    let reencode = |t: u8, body: &[u8]| {
        let mut out = vec![0u8; LENGTH_PREFIX + 1 + body.len()];
        let n = write_packet(&mut out, t, body).expect("fits");
        assert_eq!(&out[..n], frame, "re-encoding differs");
    };
    match p {
        SoupPacket::Debug(b) => {
            assert_eq!(ty, kind::DEBUG);
            reencode(ty, b);
        }
        SoupPacket::SequencedData(b) => {
            assert_eq!(ty, kind::SEQUENCED_DATA);
            reencode(ty, b);
        }
        SoupPacket::UnsequencedData(b) => {
            assert_eq!(ty, kind::UNSEQUENCED_DATA);
            reencode(ty, b);
        }
        SoupPacket::LoginRequest {
            username,
            password,
            session,
            sequence,
        } => {
            assert_eq!(ty, kind::LOGIN_REQUEST);
            assert_eq!(payload.len(), LOGIN_REQUEST_LEN);
            assert_eq!((&username[..], &password[..]), (&payload[..6], &payload[6..16]));
            assert_eq!(&session[..], &payload[16..26]);
            // Alpha fields that are UTF-8 survive a write → parse cycle,
            // and so does the sequence (its padding is normalised).
            if let (Ok(u), Ok(pw), Ok(s)) = (
                std::str::from_utf8(&username),
                std::str::from_utf8(&password),
                std::str::from_utf8(&session),
            ) {
                let mut out = [0u8; 49];
                assert_eq!(write_login_request(&mut out, u, pw, s, sequence), 49);
                assert_eq!(parse_packet(&out), Ok(Some((p, 49))));
            }
        }
        SoupPacket::LoginAccepted { session, sequence } => {
            assert_eq!(ty, kind::LOGIN_ACCEPTED);
            assert_eq!(payload.len(), LOGIN_ACCEPTED_LEN);
            assert_eq!(&session[..], &payload[..10]);
            let mut out = [0u8; 33];
            assert_eq!(write_login_accepted(&mut out, &session, sequence), 33);
            assert_eq!(parse_packet(&out), Ok(Some((p, 33))));
        }
        SoupPacket::LoginRejected(reason) => {
            assert_eq!(ty, kind::LOGIN_REJECTED);
            assert_eq!(payload, &[reason]);
        }
        SoupPacket::ServerHeartbeat
        | SoupPacket::ClientHeartbeat
        | SoupPacket::LogoutRequest
        | SoupPacket::EndOfSession => {
            let want = match p {
                SoupPacket::ServerHeartbeat => kind::SERVER_HEARTBEAT,
                SoupPacket::ClientHeartbeat => kind::CLIENT_HEARTBEAT,
                SoupPacket::LogoutRequest => kind::LOGOUT_REQUEST,
                _ => kind::END_OF_SESSION,
            };
            assert_eq!(ty, want);
            assert!(payload.is_empty());
        }
    }
}
