//! 100-byte message decoding invariants.

use peregrine_wire::message::{
    classify_inbound, client_ts_of, parse_inbound, Ack, ExecReport, Inbound, MessageError, MessageType,
    Reject, LAYOUT_VERSION, MESSAGE_LEN,
};
use zerocopy::{FromBytes, IntoBytes};

pub(crate) fn run(data: &[u8]) {
    let class = classify_inbound(data);
    let parsed = parse_inbound(data);

    // classify and parse agree, and both follow the documented order of
    // checks: length, then type, then version.
    match (&class, &parsed) {
        (Ok(t), Ok(m)) => {
            assert_eq!(data.len(), MESSAGE_LEN);
            assert!(t.is_inbound());
            assert_eq!(data[0], *t as u8);
            assert_eq!(data[1], LAYOUT_VERSION);
            // The view aliases the input (zero copy) and has the right type.
            let (bytes, ty): (&[u8], MessageType) = match m {
                Inbound::Echo(e) => (e.as_bytes(), MessageType::Echo),
                Inbound::NewOrder(o) => (o.as_bytes(), MessageType::NewOrder),
                Inbound::Cancel(c) => (c.as_bytes(), MessageType::Cancel),
                Inbound::Replace(r) => (r.as_bytes(), MessageType::Replace),
            };
            assert_eq!(ty, *t);
            assert_eq!(bytes.as_ptr(), data.as_ptr());
            assert_eq!(bytes.len(), MESSAGE_LEN);
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            match *a {
                MessageError::WrongLength(n) => {
                    assert_eq!(n, data.len());
                    assert_ne!(n, MESSAGE_LEN);
                }
                MessageError::UnknownType(t) => {
                    assert_eq!(data.len(), MESSAGE_LEN);
                    assert_eq!(t, data[0]);
                    assert!(!MessageType::from_code(t).is_some_and(MessageType::is_inbound));
                }
                MessageError::UnsupportedVersion(v) => {
                    assert_eq!(data.len(), MESSAGE_LEN);
                    assert!(MessageType::from_code(data[0]).is_some_and(MessageType::is_inbound));
                    assert_eq!(v, data[1]);
                    assert_ne!(v, LAYOUT_VERSION);
                }
            }
            let _ = a.reason();
        }
        _ => panic!("classify {class:?} disagrees with parse {parsed:?}"),
    }

    // Type codes round-trip.
    if let Some(t) = data.first().and_then(|&c| MessageType::from_code(c)) {
        assert_eq!(t as u8, data[0]);
    }

    // The client timestamp sits at 8..16 whenever it is there.
    let ts = client_ts_of(data);
    match data.get(8..16) {
        Some(b) => assert_eq!(ts.to_le_bytes(), b),
        None => assert_eq!(ts, 0),
    }

    // A Reject for any block copies what is readable.
    let r = Reject::for_block(data, 7, 11, 13);
    assert_eq!(r.rejected_type, data.first().copied().unwrap_or(0));
    assert_eq!(r.client_ts_ns.get(), ts);
    assert_eq!(
        (r.reason.get(), r.client_seq.get(), r.gateway_rx_ns.get()),
        (7, 11, 13)
    );
    assert_eq!(r.msg_type, MessageType::Reject as u8);
    assert_eq!(r.as_bytes().len(), MESSAGE_LEN);

    // Outbound layouts read from any 100 bytes (a client decoding replies).
    if let Ok(a) = Ack::ref_from_bytes(data) {
        assert_eq!(a.as_bytes(), data);
    }
    if let Ok(x) = ExecReport::ref_from_bytes(data) {
        assert_eq!(x.as_bytes(), data);
    }
    assert_eq!(Ack::ref_from_bytes(data).is_ok(), data.len() == MESSAGE_LEN);
}
