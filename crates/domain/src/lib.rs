//! The registry's domain: who held which public office, where and when, as pure Rust.
//!
//! No I/O, no async, no protobuf: services translate at their edge, stores only see encoded
//! events. The flow is the classic event-sourced one:
//!
//! - a [`Command`] is checked by [`Registry::decide`] against the current [`Registry`] and
//!   becomes a [`Decision`]: events to record, and irregularities to flag; or a
//!   [`DomainError`] naming the broken rule;
//! - [`Registry::apply`] (evolve) folds each recorded [`Event`] into the state, never failing.
//!
//! # Layout
//!
//! - [`ids`]: typed UUID v7 identifiers.
//! - [`date`]: the one date type, dates known to a month or a year, half-open spans.
//! - [`model`]: the vocabulary (kinds, levels, capacities, beginnings and ends, legal bases).
//! - [`command`] and [`event`]: what is asked and what is recorded; the event catalogue with
//!   type names and schema versions.
//! - [`state`]: the registry as folded from events (evolve).
//! - `decide`: the hard rules.
//! - [`irregular`]: what is accepted but flagged.
//! - [`error`]: typed rejections.

pub mod command;
pub mod date;
mod decide;
pub mod error;
pub mod event;
pub mod ids;
pub mod irregular;
pub mod model;
pub mod reach;
pub mod state;

pub use command::{
    Command, HoldingPatch, NewUnit, OfficeFate, OfficePatch, PersonPatch, Reorganisation, Successor,
};
pub use date::{Date, DateError, PartialDate, Precision, Span};
pub use decide::{clean_text, Decision, MAX_NAME_CHARS};
pub use error::{quote, DomainError, ErrorKind};
pub use event::{DecodeError, Event};
pub use ids::{AdoptionId, EntityRef, HoldingId, ModelId, OfficeId, PersonId, TermId, UnitId};
pub use irregular::{office_irregularities, person_irregularities, Irregularity, Policy};
pub use model::*;
pub use reach::{Place, Reach};
pub use state::Registry;
