//! Irregularities for auditors: the facts the domain accepted but flagged (concurrent offices
//! no adopted model covers, too many offices at once, long vacancies, missing legal basis,
//! unknown end dates).
//!
//! The flags are derived, never stored as events (their thresholds are policy), so this read
//! model keeps the domain's own current state and asks the domain's rules. A question as known
//! at an earlier instant folds a fresh model from the events recorded up to that instant (the
//! audit service reads them from the store): exact, and a pass over those events.

use registry_domain::state::SizedLike;
use registry_domain::{Date, Event, Irregularity, Policy, Registry};

/// The current state, for the domain's irregularity scan.
#[derive(Clone, Debug, Default)]
pub struct Irregularities {
    registry: Registry,
}

impl SizedLike for Irregularities {
    fn sized_like(other: &Self) -> Self {
        Self {
            registry: SizedLike::sized_like(&other.registry),
        }
    }
}

impl Irregularities {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one event, in feed order.
    pub fn apply(&mut self, event: &Event) {
        self.registry.apply(event);
    }

    /// Every irregularity, vacancies counted up to `as_of`, in a stable order.
    pub fn list(&self, policy: &Policy, as_of: Date) -> Vec<Irregularity> {
        let mut found = self.registry.irregularities(policy, as_of);
        found.sort_by_key(|i| format!("{i:?}"));
        found
    }
}
