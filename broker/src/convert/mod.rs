//! The only place that maps wire types (`paxlog.v1`) to the broker's domain types and back.

pub mod records;
