//! Suite reports: the summary over seeds ([`summary`]), the statistics behind it ([`stats`]) and
//! the figures ([`plots`]).

pub mod plots;
pub mod stats;
pub mod summary;

pub use summary::*;
