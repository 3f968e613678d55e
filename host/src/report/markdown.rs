//! `report.md`: the sentence that says how runs were made, how to read the numbers, and per
//! workload its tables, pair tables and plots.

use std::fmt::Write as _;

use crate::report::missing::Style;
use crate::report::pairs;
use crate::report::render::{cells, groups, headers};
use crate::report::stats;
use crate::run::RunRecord;
use crate::suite::{Plan, PlannedWorkload};

use crate::report::summary::*;

impl Report {
    /// `report.md`, embedding the plots.
    pub fn markdown(&self, runs_meta: &str) -> String {
        let mut out = format!("# Suite `{}`\n\n{runs_meta}\n", self.plan.suite);
        out.push_str(&self.reading_guide());
        let mut last = "";
        for (workload, budget, rows) in groups(&self.rows) {
            if workload != last {
                if !last.is_empty() {
                    out.push_str(&plot_links(last));
                }
                let _ = writeln!(out, "\n## {workload}\n\n{}.", self.heading(workload));
                if let Some(w) = self.plan.workloads.iter().find(|w| w.label == workload) {
                    let _ = writeln!(
                        out,
                        "\nmodel `{}` {}, data set `{}` {}, {} epochs per phase.",
                        w.workload.model.name,
                        w.workload.model.config,
                        w.workload.dataset.name,
                        w.workload.dataset.config,
                        w.workload.train.epochs
                    );
                }
                last = workload;
            }
            let _ = writeln!(out, "\n### {}\n", capitalise(self.view_title(budget)));
            let headers = headers(self.test_split(workload));
            let _ = writeln!(out, "| {} |", headers.join(" | "));
            let _ = writeln!(out, "|{}", "---|".repeat(headers.len()));
            for r in rows {
                let _ = writeln!(out, "| {} |", cells(r).join(" | "));
            }
            if let Some(pairs) = self
                .pairs
                .iter()
                .find(|p| p.workload == workload && p.budget == budget && p.strategies.len() > 2)
            {
                out.push_str(&pairs::markdown(pairs));
            }
        }
        if !last.is_empty() {
            out.push_str(&plot_links(last));
        }
        out.push_str(&crate::report::tuning::markdown(self));
        if self.plan.workloads.iter().any(|w| w.target.is_some()) {
            out.push_str(
                "\n## Performance profile\n\nFor each strategy, the fraction of workloads on \
                 which its median steps to the target is within a factor τ of the best \
                 strategy's (AlgoPerf style; a strategy whose median seed never reaches the \
                 target counts as never).\n\n![performance profile](plots/performance-profile.png)\n",
            );
        }
        if !self.missing.is_empty() {
            out.push_str("\n## Missing runs\n\n");
            out.push_str(&self.missing.text(Style::Markdown));
        }
        out
    }

    /// The paragraph that says how to read the tables: intervals, wins, the Wilcoxon test's
    /// rule for zero differences, budgets and passes.
    fn reading_guide(&self) -> String {
        let zero_rule = match self.plan.zero_method {
            stats::ZeroMethod::Wilcox => {
                "seeds with a zero difference are left out, as scipy's \
                default `zero_method=\"wilcox\"` does; with many ties at zero this raises p; a \
                suite can choose `zero_method = \"pratt\"` or `\"zsplit\"`"
            }
            stats::ZeroMethod::Pratt => {
                "`zero_method = \"pratt\"`: seeds with a zero difference \
                are ranked with the others, then their ranks are dropped"
            }
            stats::ZeroMethod::Zsplit => {
                "`zero_method = \"zsplit\"`: seeds with a zero difference \
                are ranked with the others, their ranks split between both signs"
            }
        };
        let costly = self.costly_steps();
        let costs = match costly.is_empty() {
            true => String::new(),
            false => format!(
                " Here equal budgets are equal in passes, not steps: measured passes per step \
                 (forward and backward, halved) {}, every other strategy 1; tables *at equal \
                 total passes* give every strategy as many passes as the costliest run \
                 (phases × passes per step), so these strategies take fewer steps there.",
                costly.join(", ")
            ),
        };
        format!(
            "How to read it: each row summarises one strategy over the same seeds. \
             `mean ± std [95% CI]` gives the mean, the standard deviation over seeds and a 95% \
             confidence interval of the mean: for losses (positive, often spread over decades) \
             the percentile bootstrap (10,000 resamples, seeded), which stays within the \
             values' range; for accuracies and differences the t-based interval. `wins vs ref` is the fraction of seeds \
             on which the strategy ended better than the reference (ties count half); `Δ vs ref` \
             is the paired difference strategy − reference of the compared metric, and the \
             Wilcoxon signed-rank p-value tests whether it is centred on zero ({zero_rule}). \
             Below each table of three or more strategies, every \
             pair is compared the same way, with p Holm-adjusted over the table's pairs. Tables \
             *at equal total steps* give single-phase strategies as many optimizer steps as the \
             longest strategy; tables *at the per-phase budget* give every strategy the \
             workload's epochs per phase, so multi-phase strategies train longer there. \
             `passes` counts the forward and backward passes of the model per run: what the \
             steps cost (a SAM step costs two of each).{costs} \
             Learning curves show the mean over seeds (the geometric mean for losses, drawn on a \
             log axis) with a band from the 25th to the 75th percentile; steps count over all \
             phases, and each phase is drawn as its own line.\n",
        )
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn plot_links(workload: &str) -> String {
    format!(
        "\n![learning curves of {workload}](plots/{workload}-curves.png)\n\n\
         ![final values of {workload}](plots/{workload}-final.png)\n"
    )
}

/// Which examples multi-phase strategies chose their phase by, per workload; `tested` are the
/// workloads whose data set has a test split.
fn selection_text(plan: &Plan, tested: &[&str]) -> String {
    let (with_test, rest): (Vec<&PlannedWorkload>, Vec<&PlannedWorkload>) = plan
        .workloads
        .iter()
        .partition(|w| tested.contains(&w.label.as_str()));
    let (apart, same): (Vec<&PlannedWorkload>, Vec<&PlannedWorkload>) = rest
        .into_iter()
        .partition(|w| w.workload.train.holdout > 0.0);
    let labels = |ws: &[&PlannedWorkload]| {
        ws.iter()
            .map(|w| format!("`{}` ({})", w.label, w.workload.train.holdout))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let names = |ws: &[&PlannedWorkload]| {
        ws.iter()
            .map(|w| format!("`{}`", w.label))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::new();
    if !with_test.is_empty() {
        let _ = write!(
            out,
            " On {}, the data set has a test split: strategies chose their phase on its held-out split, and the tables' `test` columns (`valid_*` in `summary.csv`) are measured on the test split.",
            names(&with_test)
        );
    }
    if !apart.is_empty() {
        let _ = write!(
            out,
            " Strategies chose their phase on a part of the held-out split kept apart (`train.holdout`: {}); the tables report the rest.",
            labels(&apart)
        );
    }
    if !same.is_empty() {
        let _ = write!(
            out,
            " On {}, multi-phase strategies chose their phase on the held-out split the tables report (`train.holdout = 0`), which flatters them.",
            names(&same)
        );
    }
    out
}

/// The paragraph under the title: how many runs of what, how phases were selected, the
/// device, pn-host and the plugin files the runs used.
pub(super) fn runs_meta(report: &Report) -> String {
    let plan = &report.plan;
    let records: Vec<&RunRecord> = report
        .runs
        .in_plan(plan)
        .map(|(_, run)| &run.record)
        .collect();
    let tested: Vec<&str> = plan
        .workloads
        .iter()
        .map(|w| w.label.as_str())
        .filter(|w| report.test_split(w))
        .collect();
    let count =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut out = format!(
        "{} runs: {} × {} × {} ({}), plus equal-step budgets.",
        plan.runs.len(),
        count(plan.strategies.len(), "strategy", "strategies"),
        count(plan.workloads.len(), "workload", "workloads"),
        count(plan.seeds.len(), "seed", "seeds"),
        seeds_text(&plan.seeds)
    );
    if let Some(t) = &plan.tuning {
        let trials = plan.runs.iter().filter(|r| r.trial.is_some()).count();
        let _ = write!(
            out,
            " Of these, {trials} are tuning trials ({} per tuned strategy and workload, on {} trial seed{}).",
            t.trials,
            t.seeds.len(),
            if t.seeds.len() > 1 { "s" } else { "" }
        );
    }
    out.push_str(&selection_text(plan, &tested));
    if let Some(r) = records.first() {
        let _ = write!(
            out,
            " Device `{}`, pn-host {}. Plugins:",
            r.device, r.pn_host_version
        );
        // Every plugin file any run used, once (a file rebuilt mid-suite shows twice).
        let mut files: Vec<(String, &str)> = vec![];
        for p in records.iter().flat_map(|r| &r.plugins) {
            let name = p
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let sha = &p.sha256[..12.min(p.sha256.len())];
            if !files.iter().any(|(n, s)| *n == name && *s == sha) {
                files.push((name, sha));
            }
        }
        files.sort();
        for (name, sha) in files {
            let _ = write!(out, " `{name}` (sha256 {sha}…)");
        }
        out.push('.');
    }
    out.push_str(" Results per run: `runs/<id>/` beside this report.\n");
    out
}

fn seeds_text(seeds: &[u64]) -> String {
    let contiguous = seeds.windows(2).all(|w| w[1] == w[0] + 1);
    match (seeds.first(), seeds.last()) {
        (Some(a), Some(b)) if contiguous && seeds.len() > 2 => format!("{a}–{b}"),
        _ => seeds
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}
