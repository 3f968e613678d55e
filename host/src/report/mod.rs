//! Suite reports: the summary over seeds ([`summary`]), every pair of strategies ([`pairs`]),
//! the statistics behind them ([`stats`]), the figures ([`plots`]), the runs still missing
//! ([`missing`]) and the page for a browser ([`html`]).

pub mod html;
pub mod missing;
pub mod pairs;
pub mod plots;
pub mod stats;
pub mod summary;

pub use summary::*;
