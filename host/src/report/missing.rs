//! The runs a report still lacks: which planned runs have no result yet, the shard of each when
//! the plan has been split into shards (`shards.json`), and the command that reruns that shard
//! (an array task of the Slurm job, or `suite run --shard I/N`) or the whole suite.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::results::{Sharding, Store};
use crate::suite::slurm::quote;
use crate::suite::{shard_of, Plan, PlannedRun};

/// Planned runs without a result.
#[derive(Debug, Clone)]
pub struct Missing {
    /// Run ids in plan order, each with its shard (from 1) when the plan is sharded.
    pub runs: Vec<(String, Option<usize>)>,
    /// How the plan is split into shards, if it is.
    pub sharding: Option<Sharding>,
    /// The suite directory (absolute where possible), for the commands.
    pub dir: PathBuf,
}

/// How [`Missing::text`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// For the terminal: a few run ids per shard, the rest counted.
    Terminal,
    /// For `report.md`: every run id.
    Markdown,
}

/// Run ids the terminal shows per shard.
const TERMINAL_IDS: usize = 6;

impl Missing {
    /// The runs of `plan` for which `has_result` is false.
    pub fn find(store: &Store, plan: &Plan, has_result: impl Fn(&PlannedRun) -> bool) -> Self {
        let sharding = store.sharding();
        let runs = plan
            .runs
            .iter()
            .enumerate()
            .filter(|(_, run)| !has_result(run))
            .map(|(k, run)| (run.id.clone(), sharding.map(|s| shard_of(k, s.shards))))
            .collect();
        Self {
            runs,
            sharding,
            dir: std::path::absolute(&store.dir).unwrap_or_else(|_| store.dir.clone()),
        }
    }

    /// How many runs are missing.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// Whether every planned run has a result.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The missing run ids per shard (one group, `None`, when the plan is not sharded).
    fn groups(&self) -> BTreeMap<Option<usize>, Vec<&str>> {
        let mut groups: BTreeMap<Option<usize>, Vec<&str>> = BTreeMap::new();
        for (id, shard) in &self.runs {
            groups.entry(*shard).or_default().push(id);
        }
        groups
    }

    /// The command that produces the missing runs of `shard` (of the whole suite for `None`).
    pub fn rerun(&self, shard: Option<usize>) -> String {
        let path = |name: &str| quote(&self.dir.join(name).display().to_string());
        let dir = quote(&self.dir.display().to_string());
        match (shard, self.sharding) {
            (Some(i), Some(Sharding { slurm: true, .. })) => {
                format!("sbatch --array={i} {}", path("slurm/array.sbatch"))
            }
            (Some(i), Some(s)) => format!(
                "pn-host suite run {} --out {dir} --shard {i}/{}",
                path("suite.toml"),
                s.shards
            ),
            _ => format!("pn-host suite run {} --out {dir}", path("suite.toml")),
        }
    }

    /// What is missing and how to get it: a count, then per shard its runs and the command that
    /// reruns it, then how to report again. Empty when nothing is missing.
    pub fn text(&self, style: Style) -> String {
        if self.is_empty() {
            return String::new();
        }
        let code = |s: &str| match style {
            Style::Terminal => s.to_string(),
            Style::Markdown => format!("`{s}`"),
        };
        let (item, indent) = match style {
            Style::Terminal => ("  ", "    "),
            Style::Markdown => ("- ", "  "),
        };
        let mut out = match self.len() {
            1 => "1 planned run has no result yet.\n".to_string(),
            n => format!("{n} planned runs have no result yet.\n"),
        };
        if style == Style::Markdown {
            out.push('\n');
        }
        for (shard, ids) in self.groups() {
            let shown = match style {
                Style::Terminal => ids.len().min(TERMINAL_IDS),
                Style::Markdown => ids.len(),
            };
            let mut names: Vec<String> = ids[..shown].iter().map(|id| code(id)).collect();
            if shown < ids.len() {
                names.push(format!(
                    "and {} more (report.md lists them all)",
                    ids.len() - shown
                ));
            }
            let (whose, rerun) = match (shard, self.sharding) {
                (Some(i), Some(s)) => (
                    format!(
                        "shard {i} of {} ({} run{})",
                        s.shards,
                        ids.len(),
                        if ids.len() == 1 { "" } else { "s" }
                    ),
                    "rerun the shard",
                ),
                _ => ("runs".into(), "rerun them"),
            };
            let _ = writeln!(
                out,
                "{item}{whose}: {}\n{indent}{rerun}: {}",
                names.join(", "),
                code(&self.rerun(shard))
            );
        }
        if style == Style::Markdown {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "Then report again: {}",
            code(&format!(
                "pn-host suite report {}",
                quote(&self.dir.display().to_string())
            ))
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(count: usize, sharding: Option<Sharding>) -> Missing {
        Missing {
            runs: (0..count)
                .map(|k| (format!("run{k}"), sharding.map(|s| shard_of(k, s.shards))))
                .collect(),
            sharding,
            dir: "/suites/my suite".into(),
        }
    }

    #[test]
    fn the_terminal_names_a_few_runs_per_shard_and_report_md_all() {
        let m = missing(
            20,
            Some(Sharding {
                shards: 2,
                slurm: true,
            }),
        );
        let terminal = m.text(Style::Terminal);
        assert!(
            terminal.starts_with("20 planned runs have no result yet.\n"),
            "{terminal}"
        );
        assert!(
            terminal.contains(
                "  shard 1 of 2 (10 runs): run0, run2, run4, run6, run8, run10, and 4 more"
            ),
            "{terminal}"
        );
        assert!(!terminal.contains("run12"), "{terminal}");
        assert!(
            terminal.contains(
                "    rerun the shard: sbatch --array=2 '/suites/my suite/slurm/array.sbatch'\n"
            ),
            "{terminal}"
        );
        assert!(
            terminal.ends_with("Then report again: pn-host suite report '/suites/my suite'\n"),
            "{terminal}"
        );
        let markdown = m.text(Style::Markdown);
        for k in 0..20 {
            assert!(markdown.contains(&format!("`run{k}`")), "{markdown}");
        }
        assert!(!markdown.contains("more"), "{markdown}");
    }

    #[test]
    fn without_shards_the_whole_suite_reruns() {
        let by_hand = missing(
            1,
            Some(Sharding {
                shards: 3,
                slurm: false,
            }),
        );
        assert_eq!(
            by_hand.rerun(Some(1)),
            "pn-host suite run '/suites/my suite/suite.toml' --out '/suites/my suite' --shard 1/3"
        );
        let whole = missing(1, None);
        let text = whole.text(Style::Terminal);
        assert!(text.starts_with("1 planned run has no result yet.\n  runs: run0\n    rerun them: pn-host suite run '/suites/my suite/suite.toml' --out '/suites/my suite'\n"), "{text}");
        assert_eq!(missing(0, None).text(Style::Terminal), "");
    }
}
