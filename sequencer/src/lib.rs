//! Peregrine's core: the wire protocol, the SPSC rings between gateways and
//! the sequencer, the sequencer loop itself, the [`Application`] trait the
//! matching engine implements, and idle strategies.
//!
//! Unsafe code is denied crate-wide and allowed only in [`ring`], where slot
//! access across threads needs it, and in `journal::map`, which maps segment
//! files; every block there carries its proof.
#![deny(unsafe_code)]

pub mod app;
pub mod counters_file;
pub mod echo;
pub mod idle;
pub mod journal;
pub mod ring;
pub mod sequencer;
pub mod slot;
pub mod wire;

pub use app::{Application, ReplySink, Sequenced};
pub use echo::EchoApp;
pub use idle::{IdleKind, IdleStrategy, Idler};
pub use ring::{ring, Consumer, Producer};
pub use sequencer::{
    replay_journal, replay_journal_with, AttachedJournal, JournalMode, Sequencer, SequencerCounters,
};
pub use slot::{InboundSlot, OutboundSlot, SessionRef};
