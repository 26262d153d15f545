//! How one feed record looks in Kafka: key, headers, payload.
//!
//! Every number is big-endian binary, like the key, so a consumer decodes all
//! of them the same way and they sort bytewise as numbers:
//!
//! | part | bytes | content |
//! |---|---|---|
//! | key | 8 | global sequence, u64 |
//! | header `seq` | 8 | global sequence, u64 (the key again, for tools that only show headers) |
//! | header `session` | 6 | gateway u16, then the gateway's session index u32 |
//! | header `client_seq` | 8 | the session's client sequence, u64 |
//! | header `gateway_rx_ns` | 8 | gateway receive time, ns, u64 |
//! | header `sequencer_ns` | 8 | sequencing time, ns, u64 |
//! | payload | 100 | the sequenced message, raw (the wire format of `peregrine_wire::message`) |
//!
//! The two timestamps are the sequencer host's monotonic clock: compare them
//! with each other, not with wall time. The Kafka timestamp is the
//! producer's create time.

use rdkafka::message::{Header, OwnedHeaders};

/// Header carrying the global sequence (u64 BE).
pub const HEADER_SEQ: &str = "seq";
/// Header carrying the origin session (gateway u16 BE, index u32 BE).
pub const HEADER_SESSION: &str = "session";
/// Header carrying the client sequence (u64 BE).
pub const HEADER_CLIENT_SEQ: &str = "client_seq";
/// Header carrying the gateway receive time (ns, u64 BE).
pub const HEADER_GATEWAY_RX_NS: &str = "gateway_rx_ns";
/// Header carrying the sequencing time (ns, u64 BE).
pub const HEADER_SEQUENCER_NS: &str = "sequencer_ns";

/// The record key for global sequence `seq`.
pub fn encode_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The global sequence a record key holds, or `None` when the key is absent
/// or not 8 bytes.
pub fn decode_key(key: Option<&[u8]>) -> Option<u64> {
    let k: [u8; 8] = key?.try_into().ok()?;
    Some(u64::from_be_bytes(k))
}

/// Everything of a feed record except its message: what goes in the key and
/// headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordFields {
    /// Global sequence number.
    pub global_seq: u64,
    /// Gateway id of the origin session.
    pub gateway: u16,
    /// Session index within that gateway.
    pub session_index: u32,
    /// Client sequence number within the session.
    pub client_seq: u64,
    /// Gateway receive time, ns.
    pub gateway_rx_ns: u64,
    /// Sequencing time, ns.
    pub sequencer_ns: u64,
}

impl RecordFields {
    /// The `session` header's 6 bytes.
    pub fn session_bytes(&self) -> [u8; 6] {
        let mut b = [0u8; 6];
        b[..2].copy_from_slice(&self.gateway.to_be_bytes());
        b[2..].copy_from_slice(&self.session_index.to_be_bytes());
        b
    }

    /// The record's headers, in the order of the table above.
    pub fn headers(&self) -> OwnedHeaders {
        let seq = self.global_seq.to_be_bytes();
        let session = self.session_bytes();
        let client_seq = self.client_seq.to_be_bytes();
        let rx = self.gateway_rx_ns.to_be_bytes();
        let sq = self.sequencer_ns.to_be_bytes();
        OwnedHeaders::new_with_capacity(5)
            .insert(Header {
                key: HEADER_SEQ,
                value: Some(&seq),
            })
            .insert(Header {
                key: HEADER_SESSION,
                value: Some(&session),
            })
            .insert(Header {
                key: HEADER_CLIENT_SEQ,
                value: Some(&client_seq),
            })
            .insert(Header {
                key: HEADER_GATEWAY_RX_NS,
                value: Some(&rx),
            })
            .insert(Header {
                key: HEADER_SEQUENCER_NS,
                value: Some(&sq),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;

    #[test]
    fn key_round_trips_and_sorts_as_numbers() {
        for s in [0, 1, 255, 256, 1_000_000, u64::MAX] {
            assert_eq!(decode_key(Some(&encode_key(s))), Some(s));
        }
        assert!(encode_key(255) < encode_key(256));
        assert_eq!(decode_key(None), None);
        assert_eq!(decode_key(Some(&[1, 2, 3])), None);
        assert_eq!(decode_key(Some(&[0; 9])), None);
    }

    #[test]
    fn headers_carry_the_fields_big_endian() {
        let f = RecordFields {
            global_seq: 7,
            gateway: 2,
            session_index: 0x0102_0304,
            client_seq: 9,
            gateway_rx_ns: 11,
            sequencer_ns: 13,
        };
        let h = f.headers();
        let names: Vec<&str> = h.iter().map(|h| h.key).collect();
        assert_eq!(
            names,
            [
                HEADER_SEQ,
                HEADER_SESSION,
                HEADER_CLIENT_SEQ,
                HEADER_GATEWAY_RX_NS,
                HEADER_SEQUENCER_NS
            ]
        );
        assert_eq!(h.get(0).value, Some(&7u64.to_be_bytes()[..]));
        assert_eq!(h.get(1).value, Some(&[0, 2, 1, 2, 3, 4][..]));
        assert_eq!(h.get(2).value, Some(&9u64.to_be_bytes()[..]));
        assert_eq!(h.get(3).value, Some(&11u64.to_be_bytes()[..]));
        assert_eq!(h.get(4).value, Some(&13u64.to_be_bytes()[..]));
    }
}
