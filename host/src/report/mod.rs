//! Suite reports: the summary over seeds ([`summary`]), every pair of strategies ([`pairs`]),
//! the statistics behind them ([`stats`]), the text ([`render`]: terminal table and CSV,
//! [`markdown`]), the figures ([`figures`], drawn by [`plots`]), the runs still missing
//! ([`missing`]), the page for a browser ([`html`]) and the tuning section ([`tuning`]), all
//! rendered from the runs' records read once ([`runs`]).

pub mod figures;
pub mod html;
pub mod markdown;
pub mod missing;
pub mod pairs;
pub mod plots;
pub mod render;
pub mod runs;
pub mod stats;
pub mod summary;
pub mod tuning;

pub use summary::*;

use std::path::Path;

use crate::error::Error;
use crate::results::Store;

/// Builds the report of `store` and writes `summary.csv`, the plots, `report.md` and
/// `report.html` (and `tuning.csv`, one row per trial, for a suite with tuning).
pub fn write(store: &Store) -> Result<Report, Error> {
    let report = Report::build(store)?;
    let meta = markdown::runs_meta(&report);
    crate::run::write_atomic(&store.dir.join("summary.csv"), &report.csv()?)?;
    figures::draw(&store.dir, &report)?;
    tuning::draw(&store.dir.join("plots"), &report)?;
    if let Some(trials) = tuning::csv(&report)? {
        crate::run::write_atomic(&store.dir.join("tuning.csv"), &trials)?;
    }
    let markdown = report.markdown(&meta);
    crate::run::write_atomic(&store.dir.join("report.md"), markdown.as_bytes())?;
    let suite_file = std::fs::read_to_string(store.dir.join("suite.toml")).ok();
    let page = html::render(
        &format!("Suite {}", report.plan.suite),
        &markdown,
        &store.dir.join("plots"),
        suite_file.as_deref(),
    );
    crate::run::write_atomic(&store.dir.join("report.html"), page.as_bytes())?;
    Ok(report)
}

/// The path of the report's markdown file.
pub fn markdown_path(dir: &Path) -> std::path::PathBuf {
    dir.join("report.md")
}
