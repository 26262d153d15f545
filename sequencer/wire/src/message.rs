//! The fixed 100-byte application messages.
//!
//! Every message is exactly [`MESSAGE_LEN`] bytes, little-endian, with the
//! type byte at offset 0 and the layout version at offset 1. Structs are
//! `zerocopy` views: unaligned, no padding, checked in size at compile time,
//! so a received block is read in place and a reply is written in place.
//! `docs/PROTOCOL.md` documents every layout; a test compares that document
//! with [`FieldLayout`] tables generated from these definitions.

use zerocopy::little_endian::{I64, U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of every application message in bytes.
pub const MESSAGE_LEN: usize = 100;

/// The layout version this build speaks.
pub const LAYOUT_VERSION: u8 = 1;

/// One field of a message layout, generated from the struct definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldLayout {
    /// Field name as in the struct.
    pub name: &'static str,
    /// Byte offset from the start of the message.
    pub offset: usize,
    /// Size in bytes.
    pub len: usize,
}

/// Message type codes (byte 0). Distinct across both directions so a
/// capture is unambiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Client → server: pure sequencing, payload opaque.
    Echo = b'E',
    /// Client → server: new order.
    NewOrder = b'O',
    /// Client → server: cancel an order.
    Cancel = b'X',
    /// Client → server: cancel/replace an order.
    Replace = b'U',
    /// Server → client: sequenced acknowledgement.
    Ack = b'K',
    /// Server → client: rejection with a reason code.
    Reject = b'J',
    /// Server → client: order accepted (execution report).
    Accepted = b'A',
    /// Server → client: fill (execution report).
    Fill = b'F',
    /// Server → client: order cancelled (execution report).
    Cancelled = b'C',
    /// Server → client: order replaced (execution report).
    Replaced = b'R',
    /// Server → client: remainder expired (IOC/FOK/market).
    Expired = b'D',
    /// Client → server, UDP session control: log in (never sequenced).
    Login = b'L',
    /// Client → server, UDP session control: log out (never sequenced).
    Logout = b'Q',
    /// Server → client, UDP session control: login accepted.
    LoginAccepted = b'W',
    /// Server → client, UDP session control: login rejected.
    LoginRejected = b'V',
}

impl MessageType {
    /// Every type, for tables and tests.
    pub const ALL: [MessageType; 15] = [
        MessageType::Echo,
        MessageType::NewOrder,
        MessageType::Cancel,
        MessageType::Replace,
        MessageType::Ack,
        MessageType::Reject,
        MessageType::Accepted,
        MessageType::Fill,
        MessageType::Cancelled,
        MessageType::Replaced,
        MessageType::Expired,
        MessageType::Login,
        MessageType::Logout,
        MessageType::LoginAccepted,
        MessageType::LoginRejected,
    ];

    /// The type for a code byte, if known.
    pub fn from_code(code: u8) -> Option<MessageType> {
        MessageType::ALL.iter().copied().find(|t| *t as u8 == code)
    }

    /// True for messages clients may send.
    pub fn is_inbound(self) -> bool {
        matches!(
            self,
            MessageType::Echo | MessageType::NewOrder | MessageType::Cancel | MessageType::Replace
        )
    }

    /// True for the UDP session-control messages a client sends (Login,
    /// Logout): handled by the gateway, never sequenced.
    pub fn is_session_control(self) -> bool {
        matches!(self, MessageType::Login | MessageType::Logout)
    }
}

/// Why a message block was refused before sequencing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The block is not exactly [`MESSAGE_LEN`] bytes.
    #[error("message is {0} bytes, expected 100")]
    WrongLength(usize),
    /// Byte 0 is not a known client→server type.
    #[error("unknown message type 0x{0:02x}")]
    UnknownType(u8),
    /// Byte 1 is not [`LAYOUT_VERSION`].
    #[error("unsupported layout version {0}")]
    UnsupportedVersion(u8),
}

impl MessageError {
    /// The reject reason sent back for this error.
    pub fn reason(self) -> RejectReason {
        match self {
            MessageError::WrongLength(_) => RejectReason::WrongLength,
            MessageError::UnknownType(_) => RejectReason::UnknownType,
            MessageError::UnsupportedVersion(_) => RejectReason::UnsupportedVersion,
        }
    }
}

/// Reject reason codes (Reject.reason). 1–99 are the gateway's and the
/// sequencer's; 100 and up are the matching engine's (engine code + 100).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum RejectReason {
    /// The block was not 100 bytes.
    WrongLength = 1,
    /// Unknown or server→client message type.
    UnknownType = 2,
    /// Layout version not supported.
    UnsupportedVersion = 3,
    /// The server is applying back-pressure; retry later.
    Busy = 4,
    /// The application does not handle this message type.
    Unsupported = 5,
    /// A field holds a value outside its enumeration (side, order kind,
    /// time in force, self-trade mode).
    InvalidField = 6,
    /// The session exceeded its configured message rate.
    RateLimited = 7,
    /// The client sequence number skips ahead of the next expected one
    /// (an earlier message was lost or reordered): resend from the gap.
    SequenceGap = 8,
    /// A retransmitted message whose original reply is no longer kept.
    TooOld = 9,
}

/// Offset added to matching-engine reject codes.
pub const ENGINE_REASON_BASE: u16 = 100;

/// Checks length, version and type of a client→server block.
pub fn classify_inbound(bytes: &[u8]) -> Result<MessageType, MessageError> {
    if bytes.len() != MESSAGE_LEN {
        return Err(MessageError::WrongLength(bytes.len()));
    }
    let t = MessageType::from_code(bytes[0])
        .filter(|t| t.is_inbound())
        .ok_or(MessageError::UnknownType(bytes[0]))?;
    if bytes[1] != LAYOUT_VERSION {
        return Err(MessageError::UnsupportedVersion(bytes[1]));
    }
    Ok(t)
}

/// A decoded, borrowed client→server message.
#[derive(Clone, Copy, Debug)]
pub enum Inbound<'a> {
    /// Echo.
    Echo(&'a Echo),
    /// NewOrder.
    NewOrder(&'a NewOrder),
    /// Cancel.
    Cancel(&'a Cancel),
    /// Replace.
    Replace(&'a Replace),
}

/// Decodes a client→server block (total: any input gives a value or error).
pub fn parse_inbound(bytes: &[u8]) -> Result<Inbound<'_>, MessageError> {
    let t = classify_inbound(bytes)?;
    // The length was checked, so the casts cannot fail; map defensively.
    Ok(match t {
        MessageType::Echo => {
            Inbound::Echo(Echo::ref_from_bytes(bytes).map_err(|_| MessageError::WrongLength(bytes.len()))?)
        }
        MessageType::NewOrder => Inbound::NewOrder(
            NewOrder::ref_from_bytes(bytes).map_err(|_| MessageError::WrongLength(bytes.len()))?,
        ),
        MessageType::Cancel => Inbound::Cancel(
            Cancel::ref_from_bytes(bytes).map_err(|_| MessageError::WrongLength(bytes.len()))?,
        ),
        MessageType::Replace => Inbound::Replace(
            Replace::ref_from_bytes(bytes).map_err(|_| MessageError::WrongLength(bytes.len()))?,
        ),
        _ => return Err(MessageError::UnknownType(bytes[0])),
    })
}

macro_rules! message_layout {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
        #[repr(C)]
        pub struct $name {
            $($(#[$fm])* pub $field: $ty,)*
        }

        impl $name {
            /// Field offsets and sizes, generated from the definition.
            pub const FIELDS: &'static [FieldLayout] = &[$(FieldLayout {
                name: stringify!($field),
                offset: core::mem::offset_of!($name, $field),
                len: core::mem::size_of::<$ty>(),
            }),*];
        }

        const _: () = assert!(core::mem::size_of::<$name>() == MESSAGE_LEN);
    };
}

message_layout! {
    /// Client → server, type `E`: pure sequencing; acknowledged with an Ack
    /// carrying its global sequence. The seed's benchmark message.
    Echo {
        /// `E`.
        msg_type: u8,
        /// [`LAYOUT_VERSION`].
        version: u8,
        /// Zero.
        reserved: [u8; 6],
        /// Client's (intended) send time, ns; echoed in the Ack.
        client_ts_ns: U64,
        /// Opaque client value; echoed in the Ack.
        client_tag: U64,
        /// Opaque payload.
        payload: [u8; 76],
    }
}

message_layout! {
    /// Client → server, type `O`: a new order.
    NewOrder {
        /// `O`.
        msg_type: u8,
        /// [`LAYOUT_VERSION`].
        version: u8,
        /// 1 buy, 2 sell.
        side: u8,
        /// 1 limit, 2 market.
        order_kind: u8,
        /// 1 GTC, 2 IOC, 3 FOK.
        time_in_force: u8,
        /// Bit 0: post-only.
        flags: u8,
        /// Self-trade prevention: 0 none, 1 cancel resting, 2 cancel incoming.
        self_trade: u8,
        /// Zero.
        reserved: u8,
        /// Client send time, ns; echoed in replies to this order.
        client_ts_ns: U64,
        /// Client's order id, unique per session among live orders.
        order_id: U64,
        /// Instrument id (from the server's configuration).
        instrument: U32,
        /// Zero.
        reserved2: U32,
        /// Limit price in price units (ignored for market orders).
        price: I64,
        /// Quantity in units (multiple of the lot size).
        quantity: U64,
        /// Opaque client data.
        user_data: [u8; 52],
    }
}

message_layout! {
    /// Client → server, type `X`: cancel an order.
    Cancel {
        /// `X`.
        msg_type: u8,
        /// [`LAYOUT_VERSION`].
        version: u8,
        /// Zero.
        reserved: [u8; 6],
        /// Client send time, ns.
        client_ts_ns: U64,
        /// The order to cancel.
        order_id: U64,
        /// Its instrument.
        instrument: U32,
        /// Zero.
        reserved2: [u8; 72],
    }
}

message_layout! {
    /// Client → server, type `U`: cancel/replace. A price change or a quantity
    /// increase loses time priority; a decrease keeps it.
    Replace {
        /// `U`.
        msg_type: u8,
        /// [`LAYOUT_VERSION`].
        version: u8,
        /// Zero.
        reserved: [u8; 6],
        /// Client send time, ns.
        client_ts_ns: U64,
        /// The order to replace (keeps its id).
        order_id: U64,
        /// Its instrument.
        instrument: U32,
        /// Zero.
        reserved2: U32,
        /// New limit price.
        new_price: I64,
        /// New total open quantity.
        new_quantity: U64,
        /// Zero.
        reserved3: [u8; 52],
    }
}

message_layout! {
    /// Server → client, type `K`: the message was sequenced.
    Ack {
        /// `K`.
        msg_type: u8,
        /// [`LAYOUT_VERSION`].
        version: u8,
        /// Type code of the acknowledged message.
        acked_type: u8,
        /// Zero.
        reserved: [u8; 5],
        /// Global sequence number assigned (from 1, gap-free).
        global_seq: U64,
        /// The client's sequence number of the message.
        client_seq: U64,
        /// The client's send timestamp, echoed.
        client_ts_ns: U64,
        /// When the gateway received it, ns (server monotonic clock).
        gateway_rx_ns: U64,
        /// When the sequencer sequenced it, ns.
        sequencer_ns: U64,
        /// Echo's client_tag, echoed (0 for other types).
        client_tag: U64,
        /// Zero.
        reserved2: [u8; 44],
    }
}

message_layout! {
    /// Server → client, type `J`: the message was refused.
    Reject {
        /// `J`.
        msg_type: u8,
        /// [`LAYOUT_VERSION`].
        version: u8,
        /// Type code of the refused message (0 if unreadable).
        rejected_type: u8,
        /// Zero.
        reserved: u8,
        /// [`RejectReason`] or engine code + 100.
        reason: U16,
        /// Zero.
        reserved2: [u8; 2],
        /// Global sequence if the message was sequenced, else 0.
        global_seq: U64,
        /// The client's sequence number of the message.
        client_seq: U64,
        /// The client's send timestamp, echoed (0 if unreadable).
        client_ts_ns: U64,
        /// The order id, for order messages (else 0).
        order_id: U64,
        /// When the gateway received it, ns.
        gateway_rx_ns: U64,
        /// When it was sequenced, ns (0 if not sequenced).
        sequencer_ns: U64,
        /// Zero.
        reserved3: [u8; 44],
    }
}

message_layout! {
    /// Server → client execution report, types `A` Accepted, `F` Fill,
    /// `C` Cancelled, `R` Replaced, `D` Expired. One layout for all five.
    ExecReport {
        /// `A`, `F`, `C`, `R` or `D`.
        msg_type: u8,
        /// [`LAYOUT_VERSION`].
        version: u8,
        /// 1 buy, 2 sell.
        side: u8,
        /// Fill: 1 maker, 2 taker; else 0.
        liquidity: u8,
        /// Cancelled/Expired: reason code; else 0.
        reason: U16,
        /// Zero.
        reserved: [u8; 2],
        /// Global sequence of the input that caused this report.
        global_seq: U64,
        /// Client sequence of that input when it came from this session, else 0.
        client_seq: U64,
        /// Client timestamp of that input when it came from this session, else 0.
        client_ts_ns: U64,
        /// The order this report is about.
        order_id: U64,
        /// Its instrument.
        instrument: U32,
        /// Zero.
        reserved2: U32,
        /// Order price (Fill: execution price).
        price: I64,
        /// Order quantity (Fill: executed; Cancelled/Expired: removed).
        quantity: U64,
        /// Open quantity left after this event.
        leaves: U64,
        /// Fill: match id shared by both sides; else 0.
        match_id: U64,
        /// When the sequencer sequenced the input, ns.
        sequencer_ns: U64,
        /// Zero.
        reserved3: [u8; 12],
    }
}

message_layout! {
    /// Client → server, type `L`: UDP login. Alone in a MoldUDP64 packet
    /// whose session field names the session; the header sequence is
    /// ignored. Never sequenced.
    Login {
        /// `L`.
        msg_type: u8,
        /// [`LAYOUT_VERSION`].
        version: u8,
        /// Zero.
        reserved: [u8; 6],
        /// Client's send time, ns (echoed in the answer).
        client_ts_ns: U64,
        /// The session's secret, ASCII, space padded (as SoupBinTCP's password).
        secret: [u8; 10],
        /// Zero.
        reserved2: [u8; 6],
        /// Next reply sequence the client wants (0: none replayed); replies from it on are resent.
        reply_seq: U64,
        /// Zero.
        reserved3: [u8; 60],
    }
}

message_layout! {
    /// Client → server, type `Q`: UDP logout; unbinds the session from its
    /// address. Never sequenced.
    Logout {
        /// `Q`.
        msg_type: u8,
        /// [`LAYOUT_VERSION`].
        version: u8,
        /// Zero.
        reserved: [u8; 6],
        /// Client's send time, ns.
        client_ts_ns: U64,
        /// Zero.
        reserved2: [u8; 84],
    }
}

message_layout! {
    /// Server → client, type `W`: the UDP login was accepted and the
    /// session is bound to the address it came from.
    LoginAccepted {
        /// `W`.
        msg_type: u8,
        /// [`LAYOUT_VERSION`].
        version: u8,
        /// Zero.
        reserved: [u8; 6],
        /// The login's client timestamp, echoed.
        client_ts_ns: U64,
        /// Client sequence number the server expects next.
        next_client_seq: U64,
        /// Sequence number of the next new reply.
        next_reply_seq: U64,
        /// Flow-control window: the most messages the client should have unanswered at once (beyond it the server's reorder window or reply log no longer covers a loss).
        window: U32,
        /// Zero.
        reserved2: [u8; 64],
    }
}

message_layout! {
    /// Server → client, type `V`: the UDP login was refused; the session
    /// stays unbound (or bound to its previous address).
    LoginRejected {
        /// `V`.
        msg_type: u8,
        /// [`LAYOUT_VERSION`].
        version: u8,
        /// `A` not authorised (unknown session or wrong secret), `S` session not available (logged in elsewhere, or owned by another gateway).
        reason: u8,
        /// Zero.
        reserved: [u8; 5],
        /// The login's client timestamp, echoed.
        client_ts_ns: U64,
        /// Zero.
        reserved2: [u8; 84],
    }
}

/// Every layout, for the protocol document test.
pub const LAYOUTS: &[(&str, &[FieldLayout])] = &[
    ("Echo", Echo::FIELDS),
    ("NewOrder", NewOrder::FIELDS),
    ("Cancel", Cancel::FIELDS),
    ("Replace", Replace::FIELDS),
    ("Ack", Ack::FIELDS),
    ("Reject", Reject::FIELDS),
    ("ExecReport", ExecReport::FIELDS),
    ("Login", Login::FIELDS),
    ("Logout", Logout::FIELDS),
    ("LoginAccepted", LoginAccepted::FIELDS),
    ("LoginRejected", LoginRejected::FIELDS),
];

impl Echo {
    /// An Echo with the given timestamp and tag, zero payload.
    pub fn new(client_ts_ns: u64, client_tag: u64) -> Echo {
        Echo {
            msg_type: MessageType::Echo as u8,
            version: LAYOUT_VERSION,
            reserved: [0; 6],
            client_ts_ns: U64::new(client_ts_ns),
            client_tag: U64::new(client_tag),
            payload: [0; 76],
        }
    }
}

impl Ack {
    /// A zeroed Ack with type and version set.
    pub fn empty() -> Ack {
        let mut a = Ack::new_zeroed();
        a.msg_type = MessageType::Ack as u8;
        a.version = LAYOUT_VERSION;
        a
    }
}

impl Reject {
    /// A Reject for the raw block `refused` (whatever of it is readable).
    pub fn for_block(refused: &[u8], reason: u16, client_seq: u64, gateway_rx_ns: u64) -> Reject {
        let mut r = Reject::new_zeroed();
        r.msg_type = MessageType::Reject as u8;
        r.version = LAYOUT_VERSION;
        r.rejected_type = refused.first().copied().unwrap_or(0);
        r.reason = U16::new(reason);
        r.client_seq = U64::new(client_seq);
        if let Some(ts) = refused.get(8..16) {
            r.client_ts_ns = U64::new(u64::from_le_bytes(ts.try_into().unwrap_or([0; 8])));
        }
        r.gateway_rx_ns = U64::new(gateway_rx_ns);
        r
    }
}

impl Login {
    /// A login with `secret` (space padded), asking for replies from
    /// `reply_seq` on (0: none), sent at `client_ts_ns`.
    pub fn new(secret: [u8; 10], reply_seq: u64, client_ts_ns: u64) -> Login {
        let mut m = Login::new_zeroed();
        m.msg_type = MessageType::Login as u8;
        m.version = LAYOUT_VERSION;
        m.secret = secret;
        m.reply_seq = U64::new(reply_seq);
        m.client_ts_ns = U64::new(client_ts_ns);
        m
    }
}

impl Logout {
    /// A logout sent at `client_ts_ns`.
    pub fn new(client_ts_ns: u64) -> Logout {
        let mut m = Logout::new_zeroed();
        m.msg_type = MessageType::Logout as u8;
        m.version = LAYOUT_VERSION;
        m.client_ts_ns = U64::new(client_ts_ns);
        m
    }
}

impl LoginAccepted {
    /// An acceptance echoing `client_ts_ns`, with the session's next
    /// expected client sequence and next reply sequence, and the client's
    /// flow-control `window` (messages).
    pub fn new(client_ts_ns: u64, next_client_seq: u64, next_reply_seq: u64, window: u32) -> LoginAccepted {
        let mut m = LoginAccepted::new_zeroed();
        m.msg_type = MessageType::LoginAccepted as u8;
        m.version = LAYOUT_VERSION;
        m.client_ts_ns = U64::new(client_ts_ns);
        m.next_client_seq = U64::new(next_client_seq);
        m.next_reply_seq = U64::new(next_reply_seq);
        m.window = U32::new(window);
        m
    }
}

impl LoginRejected {
    /// A refusal with reason byte `reason` (`A` or `S`).
    pub fn new(reason: u8, client_ts_ns: u64) -> LoginRejected {
        let mut m = LoginRejected::new_zeroed();
        m.msg_type = MessageType::LoginRejected as u8;
        m.version = LAYOUT_VERSION;
        m.reason = reason;
        m.client_ts_ns = U64::new(client_ts_ns);
        m
    }
}

impl ExecReport {
    /// A zeroed report of type `t` with the version set.
    pub fn empty(t: MessageType) -> ExecReport {
        let mut r = ExecReport::new_zeroed();
        r.msg_type = t as u8;
        r.version = LAYOUT_VERSION;
        r
    }
}

/// The client timestamp at bytes 8..16, where every client→server layout
/// keeps it. Zero when the block is too short.
pub fn client_ts_of(block: &[u8]) -> u64 {
    block
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn client_timestamp_sits_at_8_in_every_inbound_layout() {
        for fields in [Echo::FIELDS, NewOrder::FIELDS, Cancel::FIELDS, Replace::FIELDS] {
            let f = fields.iter().find(|f| f.name == "client_ts_ns").unwrap();
            assert_eq!((f.offset, f.len), (8, 8));
        }
    }

    #[test]
    fn layouts_are_contiguous_and_cover_100_bytes() {
        for (name, fields) in LAYOUTS {
            let mut at = 0;
            for f in *fields {
                assert_eq!(f.offset, at, "{name}.{} not contiguous", f.name);
                at += f.len;
            }
            assert_eq!(at, MESSAGE_LEN, "{name}");
            assert_eq!(fields[0].name, "msg_type");
            assert_eq!(fields[1].name, "version");
        }
    }

    #[test]
    fn classify_rejects_each_failure() {
        let good = Echo::new(5, 6);
        assert_eq!(classify_inbound(good.as_bytes()), Ok(MessageType::Echo));
        assert_eq!(
            classify_inbound(&good.as_bytes()[..99]),
            Err(MessageError::WrongLength(99))
        );
        let mut b = *good.as_bytes().first_chunk::<100>().unwrap();
        b[1] = 2;
        assert_eq!(classify_inbound(&b), Err(MessageError::UnsupportedVersion(2)));
        b[0] = b'K'; // outbound type sent inbound
        assert_eq!(classify_inbound(&b), Err(MessageError::UnknownType(b'K')));
        b[0] = 0xEE;
        assert_eq!(classify_inbound(&b), Err(MessageError::UnknownType(0xEE)));
    }

    #[test]
    fn type_codes_are_unique() {
        for (i, a) in MessageType::ALL.iter().enumerate() {
            for b in &MessageType::ALL[i + 1..] {
                assert_ne!(*a as u8, *b as u8);
            }
            assert_eq!(MessageType::from_code(*a as u8), Some(*a));
        }
    }

    #[test]
    fn reject_copies_what_is_readable() {
        let e = Echo::new(77, 1);
        let r = Reject::for_block(e.as_bytes(), 2, 9, 10);
        assert_eq!(
            (
                r.rejected_type,
                r.reason.get(),
                r.client_seq.get(),
                r.client_ts_ns.get()
            ),
            (b'E', 2, 9, 77)
        );
        let r = Reject::for_block(&[], 1, 0, 0);
        assert_eq!(r.rejected_type, 0);
    }

    proptest! {
        #[test]
        fn parse_inbound_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let r = parse_inbound(&bytes);
            if bytes.len() != MESSAGE_LEN {
                prop_assert_eq!(r.err(), Some(MessageError::WrongLength(bytes.len())));
            }
        }

        #[test]
        fn echo_round_trips(ts in any::<u64>(), tag in any::<u64>()) {
            let e = Echo::new(ts, tag);
            match parse_inbound(e.as_bytes()) {
                Ok(Inbound::Echo(p)) => {
                    prop_assert_eq!(p.client_ts_ns.get(), ts);
                    prop_assert_eq!(p.client_tag.get(), tag);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
