//! Suite reports: the summary over seeds ([`summary`]), every pair of strategies ([`pairs`]),
//! the statistics behind them ([`stats`]), the figures ([`plots`]) and the runs still missing
//! ([`missing`]).

pub mod missing;
pub mod pairs;
pub mod plots;
pub mod stats;
pub mod summary;

pub use summary::*;
