//! Suite reports: the summary over seeds ([`summary`]), every pair of strategies ([`pairs`]),
//! the statistics behind them ([`stats`]) and the figures ([`plots`]).

pub mod pairs;
pub mod plots;
pub mod stats;
pub mod summary;

pub use summary::*;
