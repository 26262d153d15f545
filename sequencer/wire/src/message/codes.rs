//! The enumerated byte (and `u16`) fields of the messages: side, order kind,
//! time in force, self-trade mode, liquidity, UDP login refusals and the
//! session-layer reject reasons.
//!
//! Each table is written once, in [`wire_code!`]: the macro generates the
//! `#[repr]` enum, its list of values and the checked conversion from the
//! raw field, so the code that decodes a field and the code that writes it
//! cannot disagree. Decoding is total: an undefined value is an
//! [`UnknownCode`] naming the field, never a panic.

/// A field holds a value its enumeration does not define.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value} is not a defined value")]
pub struct UnknownCode {
    /// The field, as named in the message layouts (`side`, `order_kind`, ...).
    pub field: &'static str,
    /// The value found.
    pub value: u16,
}

/// Declares a wire enumeration: the enum with its discriminants, `ALL`,
/// `code()`, `TryFrom<raw>` (with [`UnknownCode`]) and `From<enum> for raw`.
macro_rules! wire_code {
    (
        $(#[$m:meta])*
        $name:ident: $raw:ident, field $field:literal {
            $($(#[$vm:meta])* $var:ident = $val:expr,)+
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr($raw)]
        pub enum $name {
            $($(#[$vm])* $var = $val,)+
        }

        impl $name {
            /// Every defined value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var,)+];

            /// The value as carried on the wire.
            #[inline]
            pub const fn code(self) -> $raw {
                self as $raw
            }
        }

        impl TryFrom<$raw> for $name {
            type Error = UnknownCode;

            #[inline]
            fn try_from(raw: $raw) -> Result<Self, UnknownCode> {
                $(if raw == $name::$var as $raw {
                    return Ok($name::$var);
                })+
                Err(UnknownCode { field: $field, value: raw.into() })
            }
        }

        impl From<$name> for $raw {
            #[inline]
            fn from(v: $name) -> $raw {
                v as $raw
            }
        }
    };
}

wire_code! {
    /// Side of an order (NewOrder.side, ExecReport.side).
    Side: u8, field "side" {
        /// Buy.
        Buy = 1,
        /// Sell.
        Sell = 2,
    }
}

wire_code! {
    /// Whether an order carries a limit price (NewOrder.order_kind).
    OrderKind: u8, field "order_kind" {
        /// Limit order.
        Limit = 1,
        /// Market order (its price is ignored).
        Market = 2,
    }
}

wire_code! {
    /// How long an order's remainder lives (NewOrder.time_in_force).
    TimeInForce: u8, field "time_in_force" {
        /// Good till cancelled.
        Gtc = 1,
        /// Immediate or cancel.
        Ioc = 2,
        /// Fill or kill.
        Fok = 3,
    }
}

wire_code! {
    /// Self-trade prevention mode (NewOrder.self_trade).
    SelfTrade: u8, field "self_trade" {
        /// Self-trades allowed.
        None = 0,
        /// Cancel the resting order of the same session.
        CancelResting = 1,
        /// Cancel the rest of the incoming order.
        CancelIncoming = 2,
    }
}

wire_code! {
    /// Whether a fill added or removed liquidity (ExecReport.liquidity).
    Liquidity: u8, field "liquidity" {
        /// Not a fill.
        None = 0,
        /// The resting order of the match.
        Maker = 1,
        /// The incoming order of the match.
        Taker = 2,
    }
}

wire_code! {
    /// Why a UDP login was refused (LoginRejected.reason); the same letters
    /// as SoupBinTCP's Login Rejected.
    LoginRejectReason: u8, field "login reject reason" {
        /// `A`: unknown session or wrong secret.
        NotAuthorized = b'A',
        /// `S`: the session is live elsewhere or held by another gateway.
        SessionUnavailable = b'S',
        /// `L`: this node does not serve clients now (a cluster follower);
        /// the refusal names the leader when the node knows it.
        NotLeader = b'L',
    }
}

wire_code! {
    /// Reject reason codes (Reject.reason). 1–99 are the gateway's and the
    /// sequencer's; 100 and up are the matching engine's (engine code + 100,
    /// see [`ENGINE_REASON_BASE`](super::ENGINE_REASON_BASE)), which this
    /// enumeration does not list.
    RejectReason: u16, field "reject reason" {
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
}

/// NewOrder.flags bit: the order may only add liquidity.
pub const FLAG_POST_ONLY: u8 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T, R>(all: &[T])
    where
        T: Copy + PartialEq + core::fmt::Debug + TryFrom<R, Error = UnknownCode>,
        R: From<T> + Copy,
    {
        for &v in all {
            assert_eq!(T::try_from(R::from(v)), Ok(v));
        }
    }

    #[test]
    fn every_code_round_trips() {
        round_trips::<Side, u8>(Side::ALL);
        round_trips::<OrderKind, u8>(OrderKind::ALL);
        round_trips::<TimeInForce, u8>(TimeInForce::ALL);
        round_trips::<SelfTrade, u8>(SelfTrade::ALL);
        round_trips::<Liquidity, u8>(Liquidity::ALL);
        round_trips::<LoginRejectReason, u8>(LoginRejectReason::ALL);
        round_trips::<RejectReason, u16>(RejectReason::ALL);
    }

    #[test]
    fn undefined_values_are_typed_errors() {
        let defined = |raw: u8| {
            [
                Side::try_from(raw).is_ok(),
                OrderKind::try_from(raw).is_ok(),
                TimeInForce::try_from(raw).is_ok(),
                SelfTrade::try_from(raw).is_ok(),
                Liquidity::try_from(raw).is_ok(),
            ]
        };
        for raw in 0..=u8::MAX {
            let expect = [
                (1..=2).contains(&raw),
                (1..=2).contains(&raw),
                (1..=3).contains(&raw),
                raw <= 2,
                raw <= 2,
            ];
            assert_eq!(defined(raw), expect, "raw {raw}");
        }
        assert_eq!(
            Side::try_from(0),
            Err(UnknownCode {
                field: "side",
                value: 0
            })
        );
        assert_eq!(
            RejectReason::try_from(10).unwrap_err().to_string(),
            "reject reason 10 is not a defined value"
        );
        assert_eq!(
            LoginRejectReason::try_from(b'A'),
            Ok(LoginRejectReason::NotAuthorized)
        );
        assert!(LoginRejectReason::try_from(b'B').is_err());
        assert_eq!(
            LoginRejectReason::try_from(b'L'),
            Ok(LoginRejectReason::NotLeader)
        );
    }

    #[test]
    fn reject_reason_codes_are_the_documented_ones() {
        let codes: Vec<u16> = RejectReason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes, (1..=9).collect::<Vec<u16>>());
        assert_eq!(RejectReason::Busy as u16, 4);
    }
}
