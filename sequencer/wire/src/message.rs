// Over 600 lines: every message layout and its constructors stand together, as the byte tables PROTOCOL.md is checked against.
//! The fixed 100-byte application messages.
//!
//! Every message is exactly [`MESSAGE_LEN`] bytes, little-endian, with the
//! type byte at offset 0 and the layout version at offset 1. Structs are
//! `zerocopy` views: unaligned, no padding, checked in size at compile time,
//! so a received block is read in place and a reply is written in place.
//! `docs/PROTOCOL.md` documents every layout; a test compares that document
//! with [`FieldLayout`] tables generated from these definitions.
//!
//! Nothing outside this crate should need a byte offset: coded fields
//! (side, order kind, ...) are read and written through their enumerations
//! ([`NewOrder::side`], [`ExecReport::set_liquidity`], ...), and the fields
//! generic code takes from a block of unknown type have named accessors
//! ([`client_ts_of`], [`order_id_or_tag_of`], [`reply_client_seq`],
//! [`set_reply_client_seq`], [`msg_type_of`]).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use zerocopy::little_endian::{I64, U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

mod blocks;
mod codes;

pub use blocks::{client_ts_of, msg_type_of, order_id_or_tag_of, reply_client_seq, set_reply_client_seq};
pub use codes::{
    Liquidity, LoginRejectReason, OrderKind, RejectReason, SelfTrade, Side, TimeInForce, UnknownCode,
    FLAG_POST_ONLY,
};

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

    /// The code byte.
    #[inline]
    pub const fn code(self) -> u8 {
        self as u8
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

impl TryFrom<u8> for MessageType {
    type Error = UnknownCode;

    #[inline]
    fn try_from(code: u8) -> Result<Self, UnknownCode> {
        MessageType::from_code(code).ok_or(UnknownCode {
            field: "msg_type",
            value: code.into(),
        })
    }
}

impl From<MessageType> for u8 {
    #[inline]
    fn from(t: MessageType) -> u8 {
        t as u8
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
        /// `A` not authorised (unknown session or wrong secret), `S` session not available (logged in elsewhere, or owned by another gateway), `L` not the leader (this node does not serve clients now).
        reason: u8,
        /// Zero.
        reserved: [u8; 5],
        /// The login's client timestamp, echoed.
        client_ts_ns: U64,
        /// `L`: node id of the cluster's leader, 0 unknown (else zero).
        leader_id: U64,
        /// `L`: the leader's address for this same gateway, IPv6 (IPv4 as v4-mapped), all zero unknown.
        leader_addr: [u8; 16],
        /// `L`: the port of that address, 0 unknown.
        leader_port: U16,
        /// Zero.
        reserved2: [u8; 58],
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
        r.rejected_type = msg_type_of(refused);
        r.reason = U16::new(reason);
        r.client_seq = U64::new(client_seq);
        r.client_ts_ns = U64::new(client_ts_of(refused));
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
    /// A refusal with reason byte `reason` (`A`, `S` or `L`), without a
    /// leader hint.
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

impl NewOrder {
    /// A zeroed NewOrder with type and version set (every coded field 0,
    /// so `side`, `order_kind` and `time_in_force` must still be set).
    pub fn empty() -> NewOrder {
        let mut o = NewOrder::new_zeroed();
        o.msg_type = MessageType::NewOrder as u8;
        o.version = LAYOUT_VERSION;
        o
    }

    /// The side, if the byte is a defined one.
    #[inline]
    pub fn side(&self) -> Result<Side, UnknownCode> {
        Side::try_from(self.side)
    }

    /// The order kind, if the byte is a defined one.
    #[inline]
    pub fn order_kind(&self) -> Result<OrderKind, UnknownCode> {
        OrderKind::try_from(self.order_kind)
    }

    /// The time in force, if the byte is a defined one.
    #[inline]
    pub fn time_in_force(&self) -> Result<TimeInForce, UnknownCode> {
        TimeInForce::try_from(self.time_in_force)
    }

    /// The self-trade prevention mode, if the byte is a defined one.
    #[inline]
    pub fn self_trade(&self) -> Result<SelfTrade, UnknownCode> {
        SelfTrade::try_from(self.self_trade)
    }

    /// True when the post-only flag ([`FLAG_POST_ONLY`]) is set; other flag
    /// bits are ignored.
    #[inline]
    pub fn post_only(&self) -> bool {
        self.flags & FLAG_POST_ONLY != 0
    }

    /// Sets the side byte.
    #[inline]
    pub fn set_side(&mut self, side: Side) {
        self.side = side.code();
    }

    /// Sets the order kind byte.
    #[inline]
    pub fn set_order_kind(&mut self, kind: OrderKind) {
        self.order_kind = kind.code();
    }

    /// Sets the time in force byte.
    #[inline]
    pub fn set_time_in_force(&mut self, tif: TimeInForce) {
        self.time_in_force = tif.code();
    }

    /// Sets the self-trade prevention byte.
    #[inline]
    pub fn set_self_trade(&mut self, mode: SelfTrade) {
        self.self_trade = mode.code();
    }

    /// Sets or clears the post-only flag, leaving the other flag bits.
    #[inline]
    pub fn set_post_only(&mut self, post_only: bool) {
        if post_only {
            self.flags |= FLAG_POST_ONLY;
        } else {
            self.flags &= !FLAG_POST_ONLY;
        }
    }
}

impl Cancel {
    /// A zeroed Cancel with type and version set.
    pub fn empty() -> Cancel {
        let mut c = Cancel::new_zeroed();
        c.msg_type = MessageType::Cancel as u8;
        c.version = LAYOUT_VERSION;
        c
    }
}

impl Replace {
    /// A zeroed Replace with type and version set.
    pub fn empty() -> Replace {
        let mut r = Replace::new_zeroed();
        r.msg_type = MessageType::Replace as u8;
        r.version = LAYOUT_VERSION;
        r
    }
}

impl ExecReport {
    /// The side, if the byte is a defined one.
    #[inline]
    pub fn side(&self) -> Result<Side, UnknownCode> {
        Side::try_from(self.side)
    }

    /// Maker/taker (fills) or none, if the byte is a defined one.
    #[inline]
    pub fn liquidity(&self) -> Result<Liquidity, UnknownCode> {
        Liquidity::try_from(self.liquidity)
    }

    /// Sets the side byte.
    #[inline]
    pub fn set_side(&mut self, side: Side) {
        self.side = side.code();
    }

    /// Sets the liquidity byte.
    #[inline]
    pub fn set_liquidity(&mut self, liquidity: Liquidity) {
        self.liquidity = liquidity.code();
    }
}

impl Reject {
    /// True when the reason is the session-layer `reason` (engine codes,
    /// 100 and up, never match).
    #[inline]
    pub fn has_reason(&self, reason: RejectReason) -> bool {
        self.reason.get() == reason.code()
    }
}

impl LoginRejected {
    /// A refusal for `reason`, echoing `client_ts_ns`.
    pub fn refusing(reason: LoginRejectReason, client_ts_ns: u64) -> LoginRejected {
        LoginRejected::new(reason.code(), client_ts_ns)
    }

    /// Why the login was refused, if the byte is a defined reason.
    #[inline]
    pub fn reason(&self) -> Result<LoginRejectReason, UnknownCode> {
        LoginRejectReason::try_from(self.reason)
    }

    /// A follower's refusal (`L`, [`LoginRejectReason::NotLeader`]),
    /// echoing `client_ts_ns`, with the leader's node id and its address
    /// for the gateway the login came to when the node knows them (`None`:
    /// unknown, written as zeros).
    pub fn not_leader(
        client_ts_ns: u64,
        leader_id: Option<u64>,
        leader: Option<SocketAddr>,
    ) -> LoginRejected {
        let mut m = LoginRejected::refusing(LoginRejectReason::NotLeader, client_ts_ns);
        m.set_leader_hint(leader_id, leader);
        m
    }

    /// Writes the leader hint: `leader_id` (`None` or `Some(0)`: unknown)
    /// and `leader` (an IPv4 address is written v4-mapped; `None`: all
    /// zero, unknown).
    pub fn set_leader_hint(&mut self, leader_id: Option<u64>, leader: Option<SocketAddr>) {
        self.leader_id = U64::new(leader_id.unwrap_or(0));
        let (ip, port) = match leader {
            Some(SocketAddr::V4(a)) => (a.ip().to_ipv6_mapped().octets(), a.port()),
            Some(SocketAddr::V6(a)) => (a.ip().octets(), a.port()),
            None => ([0; 16], 0),
        };
        self.leader_addr = ip;
        self.leader_port = U16::new(port);
    }

    /// The leader's node id, if the refusal names one (0 on the wire:
    /// unknown).
    #[inline]
    pub fn leader_id(&self) -> Option<u64> {
        Some(self.leader_id.get()).filter(|&id| id != 0)
    }

    /// The leader's address for the gateway that refused the login, if the
    /// refusal carries one: `None` when address and port are all zero; a
    /// v4-mapped address comes back as IPv4.
    pub fn leader_hint(&self) -> Option<SocketAddr> {
        let port = self.leader_port.get();
        if port == 0 && self.leader_addr == [0; 16] {
            return None;
        }
        let v6 = Ipv6Addr::from(self.leader_addr);
        Some(match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
            None => SocketAddr::new(IpAddr::V6(v6), port),
        })
    }
}

impl Inbound<'_> {
    /// The message's type.
    #[inline]
    pub fn msg_type(&self) -> MessageType {
        match self {
            Inbound::Echo(_) => MessageType::Echo,
            Inbound::NewOrder(_) => MessageType::NewOrder,
            Inbound::Cancel(_) => MessageType::Cancel,
            Inbound::Replace(_) => MessageType::Replace,
        }
    }

    /// Echo's `client_tag`, or the order id of an order message.
    #[inline]
    pub fn order_id_or_tag(&self) -> u64 {
        match self {
            Inbound::Echo(e) => e.client_tag.get(),
            Inbound::NewOrder(o) => o.order_id.get(),
            Inbound::Cancel(c) => c.order_id.get(),
            Inbound::Replace(r) => r.order_id.get(),
        }
    }

    /// The client timestamp.
    #[inline]
    pub fn client_ts_ns(&self) -> u64 {
        match self {
            Inbound::Echo(e) => e.client_ts_ns.get(),
            Inbound::NewOrder(o) => o.client_ts_ns.get(),
            Inbound::Cancel(c) => c.client_ts_ns.get(),
            Inbound::Replace(r) => r.client_ts_ns.get(),
        }
    }
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

    #[test]
    fn coded_fields_read_and_write_through_their_enums() {
        let mut o = NewOrder::empty();
        assert_eq!(
            o.side(),
            Err(UnknownCode {
                field: "side",
                value: 0
            })
        );
        o.set_side(Side::Sell);
        o.set_order_kind(OrderKind::Market);
        o.set_time_in_force(TimeInForce::Fok);
        o.set_self_trade(SelfTrade::CancelIncoming);
        o.flags = 0x80;
        o.set_post_only(true);
        assert_eq!(
            (o.side, o.order_kind, o.time_in_force, o.self_trade, o.flags),
            (2, 2, 3, 2, 0x81)
        );
        assert_eq!(o.side(), Ok(Side::Sell));
        assert_eq!(o.order_kind(), Ok(OrderKind::Market));
        assert_eq!(o.time_in_force(), Ok(TimeInForce::Fok));
        assert_eq!(o.self_trade(), Ok(SelfTrade::CancelIncoming));
        assert!(o.post_only());
        o.set_post_only(false);
        assert_eq!((o.flags, o.post_only()), (0x80, false));
        match parse_inbound(o.as_bytes()) {
            Ok(i @ Inbound::NewOrder(_)) => assert_eq!(i.msg_type(), MessageType::NewOrder),
            other => panic!("{other:?}"),
        }

        let mut e = ExecReport::empty(MessageType::Fill);
        e.set_side(Side::Buy);
        e.set_liquidity(Liquidity::Taker);
        assert_eq!((e.side, e.liquidity), (1, 2));
        assert_eq!((e.side(), e.liquidity()), (Ok(Side::Buy), Ok(Liquidity::Taker)));

        let r = LoginRejected::refusing(LoginRejectReason::SessionUnavailable, 5);
        assert_eq!(
            (r.reason, r.reason()),
            (b'S', Ok(LoginRejectReason::SessionUnavailable))
        );

        let j = Reject::for_block(&[], RejectReason::Busy as u16, 1, 2);
        assert!(j.has_reason(RejectReason::Busy) && !j.has_reason(RejectReason::TooOld));
        assert_eq!(MessageType::try_from(b'K'), Ok(MessageType::Ack));
        assert!(MessageType::try_from(0xEE).is_err());
    }

    #[test]
    fn not_leader_refusals_carry_the_hint_and_others_none() {
        let v4: SocketAddr = "10.1.2.3:9001".parse().unwrap();
        let r = LoginRejected::not_leader(9, Some(3), Some(v4));
        assert_eq!(r.reason(), Ok(LoginRejectReason::NotLeader));
        assert_eq!(r.reason, b'L');
        assert_eq!((r.leader_id(), r.leader_hint()), (Some(3), Some(v4)));
        assert_eq!(r.client_ts_ns.get(), 9);
        // The address travels v4-mapped.
        assert_eq!(&r.leader_addr[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(r.leader_port.get(), 9001);
        let v6: SocketAddr = "[2001:db8::7]:4000".parse().unwrap();
        let r = LoginRejected::not_leader(0, None, Some(v6));
        assert_eq!((r.leader_id(), r.leader_hint()), (None, Some(v6)));
        let r = LoginRejected::not_leader(0, Some(0), None);
        assert_eq!((r.leader_id(), r.leader_hint()), (None, None));
        assert!(r.leader_addr.iter().all(|&b| b == 0) && r.leader_port.get() == 0);
        let a = LoginRejected::refusing(LoginRejectReason::NotAuthorized, 1);
        assert_eq!((a.leader_id(), a.leader_hint()), (None, None));
    }

    proptest! {
        #[test]
        fn leader_hint_round_trips(ip in any::<[u8; 16]>(), port in 1u16.., id in any::<u64>()) {
            let addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port);
            let r = LoginRejected::not_leader(1, Some(id), Some(addr));
            let back = r.leader_hint().expect("a port makes a hint");
            // A v4-mapped address comes back as the IPv4 one it maps.
            let want = match Ipv6Addr::from(ip).to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
                None => addr,
            };
            prop_assert_eq!(back, want);
            prop_assert_eq!(r.leader_id(), (id != 0).then_some(id));
        }

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
