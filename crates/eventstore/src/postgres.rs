//! PostgreSQL backend (being written).
#![allow(missing_docs)]
