//! Read models (being written).
