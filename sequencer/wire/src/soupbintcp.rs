//! SoupBinTCP 3.00 packet framing.
//!
//! Every packet is a u16 big-endian length (counting the type byte and the
//! payload, not itself), a type byte, and a payload. Alpha fields are ASCII
//! left-justified and space padded; numeric fields ASCII right-justified and
//! space padded. [`parse_packet`] is incremental: it returns `Ok(None)` until
//! a whole packet is buffered, so a packet split across reads is reassembled
//! by the caller simply appending bytes and parsing again.

use crate::alpha::alpha_field;

/// Length of the 2-byte length prefix.
pub const LENGTH_PREFIX: usize = 2;
/// Largest length-field value we accept; anything larger is an oversize
/// frame and a protocol violation (our largest packet is 101).
pub const MAX_PACKET_LEN: usize = 1024;

/// Login Request payload length.
pub const LOGIN_REQUEST_LEN: usize = 6 + 10 + 10 + 20;
/// Login Accepted payload length.
pub const LOGIN_ACCEPTED_LEN: usize = 10 + 20;

/// Packet type codes.
pub mod kind {
    /// Server: debug text. Client: debug text.
    pub const DEBUG: u8 = b'+';
    /// Server: login accepted.
    pub const LOGIN_ACCEPTED: u8 = b'A';
    /// Server: login rejected.
    pub const LOGIN_REJECTED: u8 = b'J';
    /// Server: sequenced data.
    pub const SEQUENCED_DATA: u8 = b'S';
    /// Server: heartbeat.
    pub const SERVER_HEARTBEAT: u8 = b'H';
    /// Server: end of session.
    pub const END_OF_SESSION: u8 = b'Z';
    /// Client: login request.
    pub const LOGIN_REQUEST: u8 = b'L';
    /// Client: unsequenced data.
    pub const UNSEQUENCED_DATA: u8 = b'U';
    /// Client: heartbeat.
    pub const CLIENT_HEARTBEAT: u8 = b'R';
    /// Client: logout request.
    pub const LOGOUT_REQUEST: u8 = b'O';
}

/// Login Rejected reason codes (the packet's one payload byte).
pub mod reject_reason {
    /// Not authorised: unknown session or wrong password.
    pub const NOT_AUTHORISED: u8 = b'A';
    /// Session not available: live on another connection, held by another
    /// gateway, or the requested replay is gone.
    pub const SESSION_UNAVAILABLE: u8 = b'S';
    /// Not the leader: this cluster node does not serve clients now; the
    /// client tries the next node address it knows (SoupBinTCP has no room
    /// for a leader address).
    pub const NOT_LEADER: u8 = b'L';
}

/// A parsed packet borrowing from the input buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoupPacket<'a> {
    /// `+`: free text.
    Debug(&'a [u8]),
    /// `L`.
    LoginRequest {
        /// Username (alpha 6).
        username: [u8; 6],
        /// Password (alpha 10).
        password: [u8; 10],
        /// Requested session (alpha 10, blank = current).
        session: [u8; 10],
        /// Requested sequence number (0 = most recent).
        sequence: u64,
    },
    /// `A`.
    LoginAccepted {
        /// Session (alpha 10).
        session: [u8; 10],
        /// Sequence number of the next sequenced packet.
        sequence: u64,
    },
    /// `J`: 'A' not authorised, 'S' session not available, 'L' not the
    /// leader (see [`reject_reason`]).
    LoginRejected(u8),
    /// `S`.
    SequencedData(&'a [u8]),
    /// `U`.
    UnsequencedData(&'a [u8]),
    /// `H`.
    ServerHeartbeat,
    /// `R`.
    ClientHeartbeat,
    /// `O`.
    LogoutRequest,
    /// `Z`.
    EndOfSession,
}

/// Why bytes are not a valid SoupBinTCP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SoupError {
    /// Length field 0: no type byte.
    #[error("zero-length packet")]
    Empty,
    /// Length field above [`MAX_PACKET_LEN`].
    #[error("oversize packet of {0} bytes")]
    Oversize(usize),
    /// Unknown type byte.
    #[error("unknown packet type 0x{0:02x}")]
    UnknownType(u8),
    /// Payload length wrong for its type.
    #[error("packet type {0:?} with {1}-byte payload")]
    BadLength(char, usize),
    /// A numeric field is not ASCII digits (with space padding).
    #[error("bad numeric field")]
    BadNumber,
}

fn parse_numeric(field: &[u8]) -> Result<u64, SoupError> {
    let t = field
        .iter()
        .position(|&c| c != b' ')
        .map_or(&field[field.len()..], |s| &field[s..]);
    let t = &t[..t.iter().rposition(|&c| c != b' ').map_or(0, |e| e + 1)];
    if t.is_empty() {
        return Ok(0);
    }
    let mut v: u64 = 0;
    for &c in t {
        if !c.is_ascii_digit() {
            return Err(SoupError::BadNumber);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add((c - b'0') as u64))
            .ok_or(SoupError::BadNumber)?;
    }
    Ok(v)
}

fn write_numeric(out: &mut [u8], v: u64) {
    out.fill(b' ');
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut x = v;
    loop {
        digits[n] = b'0' + (x % 10) as u8;
        n += 1;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    let n = n.min(out.len());
    let len = out.len();
    for i in 0..n {
        out[len - 1 - i] = digits[i];
    }
}

/// Parses one packet from the front of `buf`.
///
/// `Ok(None)`: incomplete, append more bytes. `Ok(Some((packet, n)))`: the
/// first `n` bytes were one packet. `Err`: a protocol violation; `Oversize`
/// and `Empty` make the stream unrecoverable (the caller disconnects), the
/// others may be skipped with [`frame_len`].
pub fn parse_packet(buf: &[u8]) -> Result<Option<(SoupPacket<'_>, usize)>, SoupError> {
    let Some(n) = frame_len(buf)? else {
        return Ok(None);
    };
    let ty = buf[LENGTH_PREFIX];
    let p = &buf[LENGTH_PREFIX + 1..n];
    let exact = |want: usize| {
        if p.len() == want {
            Ok(())
        } else {
            Err(SoupError::BadLength(ty as char, p.len()))
        }
    };
    let pkt = match ty {
        kind::DEBUG => SoupPacket::Debug(p),
        kind::LOGIN_REQUEST => {
            exact(LOGIN_REQUEST_LEN)?;
            SoupPacket::LoginRequest {
                username: p[0..6].try_into().unwrap_or([b' '; 6]),
                password: p[6..16].try_into().unwrap_or([b' '; 10]),
                session: p[16..26].try_into().unwrap_or([b' '; 10]),
                sequence: parse_numeric(&p[26..46])?,
            }
        }
        kind::LOGIN_ACCEPTED => {
            exact(LOGIN_ACCEPTED_LEN)?;
            SoupPacket::LoginAccepted {
                session: p[0..10].try_into().unwrap_or([b' '; 10]),
                sequence: parse_numeric(&p[10..30])?,
            }
        }
        kind::LOGIN_REJECTED => {
            exact(1)?;
            SoupPacket::LoginRejected(p[0])
        }
        kind::SEQUENCED_DATA => SoupPacket::SequencedData(p),
        kind::UNSEQUENCED_DATA => SoupPacket::UnsequencedData(p),
        kind::SERVER_HEARTBEAT => {
            exact(0)?;
            SoupPacket::ServerHeartbeat
        }
        kind::CLIENT_HEARTBEAT => {
            exact(0)?;
            SoupPacket::ClientHeartbeat
        }
        kind::LOGOUT_REQUEST => {
            exact(0)?;
            SoupPacket::LogoutRequest
        }
        kind::END_OF_SESSION => {
            exact(0)?;
            SoupPacket::EndOfSession
        }
        other => return Err(SoupError::UnknownType(other)),
    };
    Ok(Some((pkt, n)))
}

/// Total length (prefix included) of the packet at the front of `buf`, once
/// it is wholly buffered; checks only the length field.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, SoupError> {
    if buf.len() < LENGTH_PREFIX {
        return Ok(None);
    }
    let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
    if len == 0 {
        return Err(SoupError::Empty);
    }
    if len > MAX_PACKET_LEN {
        return Err(SoupError::Oversize(len));
    }
    if buf.len() < LENGTH_PREFIX + len {
        return Ok(None);
    }
    Ok(Some(LENGTH_PREFIX + len))
}

/// Writes a packet of type `ty` with `payload`; returns its length, or
/// `None` if `out` is too small.
pub fn write_packet(out: &mut [u8], ty: u8, payload: &[u8]) -> Option<usize> {
    let n = LENGTH_PREFIX + 1 + payload.len();
    if out.len() < n || payload.len() + 1 > u16::MAX as usize {
        return None;
    }
    out[..2].copy_from_slice(&((payload.len() + 1) as u16).to_be_bytes());
    out[2] = ty;
    out[3..n].copy_from_slice(payload);
    Some(n)
}

/// Writes a Login Request; returns its length (2 + 1 + 46).
pub fn write_login_request(
    out: &mut [u8; 49],
    username: &str,
    password: &str,
    session: &str,
    sequence: u64,
) -> usize {
    let mut p = [b' '; LOGIN_REQUEST_LEN];
    p[0..6].copy_from_slice(&alpha_field::<6>(username.as_bytes()));
    p[6..16].copy_from_slice(&alpha_field::<10>(password.as_bytes()));
    p[16..26].copy_from_slice(&alpha_field::<10>(session.as_bytes()));
    write_numeric(&mut p[26..46], sequence);
    write_packet(out, kind::LOGIN_REQUEST, &p).unwrap_or(0)
}

/// Writes a Login Accepted; returns its length (2 + 1 + 30).
pub fn write_login_accepted(out: &mut [u8; 33], session: &[u8; 10], sequence: u64) -> usize {
    let mut p = [b' '; LOGIN_ACCEPTED_LEN];
    p[0..10].copy_from_slice(session);
    write_numeric(&mut p[10..30], sequence);
    write_packet(out, kind::LOGIN_ACCEPTED, &p).unwrap_or(0)
}

/// Writes a Login Rejected with `reason` (see [`reject_reason`]); returns
/// its length (2 + 1 + 1).
pub fn write_login_rejected(out: &mut [u8; 4], reason: u8) -> usize {
    write_packet(out, kind::LOGIN_REJECTED, &[reason]).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn alpha<const N: usize>(s: &str) -> [u8; N] {
        alpha_field(s.as_bytes())
    }

    #[test]
    fn login_round_trip() {
        let mut b = [0u8; 49];
        let n = write_login_request(&mut b, "alice", "pw", "SESS1", 42);
        assert_eq!(n, 49);
        let (p, used) = parse_packet(&b).unwrap().unwrap();
        assert_eq!(used, 49);
        assert_eq!(
            p,
            SoupPacket::LoginRequest {
                username: alpha("alice"),
                password: alpha("pw"),
                session: alpha("SESS1"),
                sequence: 42
            }
        );
        let mut a = [0u8; 33];
        write_login_accepted(&mut a, &alpha("SESS1"), 1);
        assert_eq!(
            parse_packet(&a).unwrap().unwrap().0,
            SoupPacket::LoginAccepted {
                session: alpha("SESS1"),
                sequence: 1
            }
        );
    }

    #[test]
    fn login_rejected_round_trips_every_reason() {
        for r in [
            reject_reason::NOT_AUTHORISED,
            reject_reason::SESSION_UNAVAILABLE,
            reject_reason::NOT_LEADER,
        ] {
            let mut b = [0u8; 4];
            assert_eq!(write_login_rejected(&mut b, r), 4);
            assert_eq!(parse_packet(&b), Ok(Some((SoupPacket::LoginRejected(r), 4))));
        }
    }

    #[test]
    fn incremental_and_split_frames() {
        let mut b = [0u8; 200];
        let n = write_packet(&mut b, kind::UNSEQUENCED_DATA, &[5u8; 100]).unwrap();
        for cut in 0..n {
            assert_eq!(parse_packet(&b[..cut]), Ok(None), "cut at {cut}");
        }
        let (p, used) = parse_packet(&b[..n]).unwrap().unwrap();
        assert_eq!(used, 103);
        assert_eq!(p, SoupPacket::UnsequencedData(&[5u8; 100]));
    }

    #[test]
    fn violations() {
        assert_eq!(parse_packet(&[0, 0, b'R']), Err(SoupError::Empty));
        assert_eq!(parse_packet(&[0xFF, 0xFF]), Err(SoupError::Oversize(0xFFFF)));
        assert_eq!(parse_packet(&[0, 1, b'?']), Err(SoupError::UnknownType(b'?')));
        assert_eq!(parse_packet(&[0, 2, b'R', 0]), Err(SoupError::BadLength('R', 1)));
        let mut b = [0u8; 49];
        write_login_request(&mut b, "u", "p", "", 0);
        b[48] = b'x';
        assert_eq!(parse_packet(&b), Err(SoupError::BadNumber));
    }

    #[test]
    fn numeric_fields() {
        let mut f = [0u8; 20];
        write_numeric(&mut f, 0);
        assert_eq!(parse_numeric(&f), Ok(0));
        write_numeric(&mut f, u64::MAX);
        assert_eq!(parse_numeric(&f), Ok(u64::MAX));
        assert_eq!(parse_numeric(b"                    "), Ok(0));
        assert_eq!(parse_numeric(b"99999999999999999999"), Err(SoupError::BadNumber));
    }

    proptest! {
        #[test]
        fn parser_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some((_, n))) = parse_packet(&bytes) {
                prop_assert!(n <= bytes.len() && n >= 3);
            }
        }
    }
}
