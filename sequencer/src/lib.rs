//! The sequencer: the one thread that totally orders every client message.
//!
//! It drains the gateways' input rings round-robin (a bounded batch from
//! each, so no gateway starves), gives every message the next global
//! sequence number (from 1, gap-free), journals it when a journal is
//! attached, hands it to the [`Application`] (the matching engine, or the
//! pure acknowledger [`EchoApp`]) and routes the application's replies into
//! the output ring of the gateway that owns each destination session.
//!
//! Its neighbours are crates of their own: the wire formats
//! (`peregrine-wire`), the SPSC rings (`peregrine-ring`) and the journal
//! (`peregrine-journal`). This crate holds only the loop, the application
//! contract and what travels on the rings ([`slot`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod echo;
pub mod sequencer;
pub mod slot;

pub use app::{Application, ReadyLatency, ReplySink};
pub use echo::EchoApp;
pub use peregrine_journal::Sequenced;
pub use sequencer::{
    replay_journal, replay_journal_with, ApplyError, AttachedJournal, JournalMode, RecordBatch, ReplyRelease,
    Sequencer, SequencerCounters,
};
pub use slot::{InboundSlot, OutboundKind, OutboundSlot, SessionRef};
