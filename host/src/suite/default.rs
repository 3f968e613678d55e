//! The default comparison (`pn-host` with no subcommand): the embedded default suite, or, with
//! `--plugin FILE`, every strategy those files provide against the suite's reference on its
//! workload, under the same budget rules.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::error::Error;
use crate::plugin::registry::{Kind, Registry};
use crate::run::{ComponentRef, DEFAULT_SUITE};
use crate::suite::Suite;

/// The default suite with `seeds` seeds (its own 20 when None). With `plugin_files`, only
/// the reference and every strategy those files provide (with its default configuration); a
/// set of files that provides no strategy is an error naming what it does provide.
pub fn default_comparison(
    registry: &Registry,
    plugin_files: &[PathBuf],
    seeds: Option<u64>,
) -> Result<Suite, Error> {
    let mut suite = Suite::parse_available(DEFAULT_SUITE, "suites/default.toml", registry)?;
    if let Some(n) = seeds {
        if n == 0 {
            return Err("--seeds must be at least 1".into());
        }
        suite.seeds = (0..n).collect();
    }
    if plugin_files.is_empty() {
        return Ok(suite);
    }
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let files: Vec<PathBuf> = plugin_files.iter().map(|p| canonical(p)).collect();
    let from_files = |kind: Kind| -> Vec<String> {
        registry
            .names(kind)
            .into_iter()
            .filter(|(_, plugin)| files.contains(&canonical(&registry.plugins[*plugin].path)))
            .map(|(name, _)| name.to_string())
            .collect()
    };
    let strategies = from_files(Kind::Strategy);
    if strategies.is_empty() {
        let provided: Vec<String> = [Kind::Model, Kind::Dataset]
            .into_iter()
            .flat_map(|kind| {
                from_files(kind)
                    .into_iter()
                    .map(move |name| format!("{} `{name}`", kind.label()))
            })
            .collect();
        let names: Vec<String> = plugin_files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        return Err(format!(
            "{} provide{} no strategy to compare (only {}); use `pn-host run` or a suite file for models and data sets",
            names.join(", "),
            if names.len() == 1 { "s" } else { "" },
            if provided.is_empty() { "nothing".to_string() } else { provided.join(", ") }
        ).into());
    }
    suite.retain_strategies(|_, _| false);
    for name in strategies {
        if name != suite.reference {
            let component = ComponentRef {
                name: name.clone(),
                config: json!({}),
            };
            suite.add_strategy(registry, &name, component)?;
        }
    }
    Ok(suite)
}
