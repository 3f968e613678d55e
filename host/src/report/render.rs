//! The report as text: the terminal table, `summary.csv` and `report.md`, with the sentence
//! that says how runs were made and how to read the numbers.

use std::fmt::Write as _;

use crate::report::missing::Style;
use crate::report::pairs::{self};
use crate::report::stats::{self, Summary};
use crate::results::{RunState, Store};
use crate::run::RunRecord;
use crate::suite::{Metric, Plan, PlannedWorkload};

use crate::report::summary::*;

/// A number as the tables write it: four decimals, or three significant digits in scientific
/// notation when small or large.
pub(super) fn sci(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x != 0.0 && (x.abs() < 1e-2 || x.abs() >= 1e4) {
        format!("{x:.2e}")
    } else {
        format!("{x:.4}")
    }
}

fn with_ci(s: &Summary) -> String {
    if s.n == 0 {
        return "-".into();
    }
    format!(
        "{} ± {} [{}, {}]",
        sci(s.mean),
        sci(s.std),
        sci(s.ci_low),
        sci(s.ci_high)
    )
}

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map_or("-".into(), f)
}

/// The cells of a row for the terminal and markdown tables.
fn cells(r: &Row) -> Vec<String> {
    let paired = r.paired.as_ref();
    vec![
        r.strategy.clone(),
        format!("{:.0}", r.steps),
        r.passes.map_or("-".into(), |p| format!("{p:.0}")),
        format!(
            "{}/{}{}",
            r.completed,
            r.runs,
            if r.diverged + r.failed + r.missing > 0 {
                format!(" ({}d {}f {}m)", r.diverged, r.failed, r.missing)
            } else {
                String::new()
            }
        ),
        with_ci(&r.train_loss),
        match &r.valid_accuracy {
            Some(a) => format!("{} (acc)", with_ci(a)),
            None => with_ci(&r.valid_loss),
        },
        match r.target {
            Some(_) => format!("{}/{}", r.reached, r.runs),
            None => "-".into(),
        },
        opt(r.steps_to_target, |s| format!("{s:.0}")),
        opt(paired.map(|p| p.win_rate), |w| format!("{:.0}%", 100.0 * w)),
        paired.map_or("-".into(), |p| with_ci(&p.diff)),
        opt(paired.and_then(|p| p.wilcoxon_p), |p| {
            if p < 1e-3 {
                format!("{p:.1e}")
            } else {
                format!("{p:.3}")
            }
        }),
    ]
}

const HEADERS: [&str; 11] = [
    "strategy",
    "steps",
    "passes",
    "completed",
    "final train loss: mean ± std [95% CI]",
    "final valid loss or accuracy",
    "reached target",
    "median steps to target",
    "wins vs ref",
    "Δ vs ref: mean ± std [95% CI]",
    "Wilcoxon p",
];

fn groups(rows: &[Row]) -> Vec<(&str, &str, Vec<&Row>)> {
    let mut out: Vec<(&str, &str, Vec<&Row>)> = vec![];
    for r in rows {
        match out
            .iter_mut()
            .find(|(w, b, _)| *w == r.workload && *b == r.budget)
        {
            Some(g) => g.2.push(r),
            None => out.push((&r.workload, &r.budget, vec![r])),
        }
    }
    out
}

impl Report {
    /// The title of a budget's tables: equal budgets are in passes where some strategy's step
    /// costs more than one forward and backward pass.
    fn view_title(&self, budget: &str) -> &'static str {
        match budget == View::EqualSteps.name() {
            true if !self.costly_steps().is_empty() => "at equal total passes",
            true => View::EqualSteps.title(),
            false => View::PerPhase.title(),
        }
    }

    /// `strategy` (passes per step) for every strategy whose step costs more than one pass.
    fn costly_steps(&self) -> Vec<String> {
        let mut costly: Vec<String> = vec![];
        for r in self.plan.runs.iter().filter(|r| r.passes_per_step != 1.0) {
            let item = format!("`{}` ({})", r.strategy, r.passes_per_step);
            if !costly.contains(&item) {
                costly.push(item);
            }
        }
        costly
    }

    fn heading(&self, workload: &str) -> String {
        let w = self.plan.workloads.iter().find(|w| w.label == workload);
        let metric = w.map(compared_metric).unwrap_or(Metric::TrainLoss);
        let target = w
            .and_then(|w| w.target)
            .map(|t| {
                let op = if t.metric.higher_is_better() {
                    "≥"
                } else {
                    "≤"
                };
                format!("target {} {op} {}", t.metric.name(), sci(t.value))
            })
            .unwrap_or_else(|| "no target".into());
        format!(
            "reference `{}`, compared on final {}, {target}",
            self.plan.reference,
            metric.name()
        )
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for (workload, budget, rows) in groups(&self.rows) {
            let _ = writeln!(
                out,
                "\n{workload} — {} ({})",
                self.view_title(budget),
                self.heading(workload)
            );
            let table: Vec<Vec<String>> = std::iter::once(HEADERS.map(String::from).to_vec())
                .chain(rows.iter().map(|r| cells(r)))
                .collect();
            let widths: Vec<usize> = (0..HEADERS.len())
                .map(|c| {
                    table
                        .iter()
                        .map(|r| r[c].chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for line in &table {
                let cells: Vec<String> = line
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                let _ = writeln!(out, "{}", cells.join("  ").trim_end());
            }
        }
        let tuned = crate::report::tuning::terminal(self);
        if !tuned.is_empty() {
            out.push('\n');
            out.push_str(&tuned);
        }
        if !self.missing.is_empty() {
            out.push('\n');
            out.push_str(&self.missing.text(Style::Terminal));
        }
        out
    }

    /// `summary.csv`: one row per workload, budget and strategy.
    pub fn csv(&self) -> Result<Vec<u8>, String> {
        let mut w = csv::Writer::from_writer(vec![]);
        let mut header: Vec<String> = [
            "workload",
            "budget",
            "strategy",
            "runs",
            "completed",
            "diverged",
            "failed",
            "missing",
            "steps",
            "passes",
        ]
        .map(String::from)
        .to_vec();
        for m in ["train_loss", "valid_loss", "valid_accuracy"] {
            for s in ["mean", "std", "ci_low", "ci_high"] {
                header.push(format!("{m}_{s}"));
            }
        }
        header.extend(
            [
                "metric",
                "target",
                "reached",
                "steps_to_target_median",
                "time_to_target_median_s",
                "wall_time_mean_s",
                "paired_n",
                "win_rate",
                "diff_mean",
                "diff_std",
                "diff_ci_low",
                "diff_ci_high",
                "wilcoxon_p",
                "t_test_p",
            ]
            .map(String::from),
        );
        w.write_record(&header).map_err(|e| e.to_string())?;
        let num = |x: f64| match x {
            x if !x.is_finite() => String::new(),
            x if x != 0.0 && !(1e-4..1e6).contains(&x.abs()) => format!("{x:e}"),
            x => format!("{x}"),
        };
        let some = |x: Option<f64>| x.map(num).unwrap_or_default();
        let summary = |s: Option<&Summary>| -> Vec<String> {
            match s {
                Some(s) => vec![num(s.mean), num(s.std), num(s.ci_low), num(s.ci_high)],
                None => vec![String::new(); 4],
            }
        };
        for r in &self.rows {
            let mut rec = vec![
                r.workload.clone(),
                r.budget.clone(),
                r.strategy.clone(),
                r.runs.to_string(),
                r.completed.to_string(),
                r.diverged.to_string(),
                r.failed.to_string(),
                r.missing.to_string(),
                num(r.steps),
                some(r.passes),
            ];
            rec.extend(summary(Some(&r.train_loss)));
            rec.extend(summary(Some(&r.valid_loss)));
            rec.extend(summary(r.valid_accuracy.as_ref()));
            let p = r.paired.as_ref();
            rec.extend([
                r.metric.clone(),
                some(r.target),
                r.reached.to_string(),
                some(r.steps_to_target),
                some(r.time_to_target_s),
                num(r.wall_time_s),
                p.map(|p| p.n.to_string()).unwrap_or_default(),
                some(p.map(|p| p.win_rate)),
            ]);
            rec.extend(summary(p.map(|p| &p.diff)));
            rec.extend([
                some(p.and_then(|p| p.wilcoxon_p)),
                some(p.and_then(|p| p.t_test_p)),
            ]);
            w.write_record(&rec).map_err(|e| e.to_string())?;
        }
        w.into_inner().map_err(|e| e.to_string())
    }

    /// `report.md`, embedding the plots.
    pub fn markdown(&self, runs_meta: &str) -> String {
        let mut out = format!("# Suite `{}`\n\n{runs_meta}\n", self.plan.suite);
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
        out.push_str(&format!(
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
        ));
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
            let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
            let _ = writeln!(out, "|{}", "---|".repeat(HEADERS.len()));
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
    let mut out = String::new();
    if !with_test.is_empty() {
        let names: Vec<String> = with_test.iter().map(|w| format!("`{}`", w.label)).collect();
        let _ = write!(
            out,
            " On {}, the data set has a test split: strategies chose their phase on its held-out split, and the tables' `valid` columns are test metrics.",
            names.join(", ")
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
        let names: Vec<String> = same.iter().map(|w| format!("`{}`", w.label)).collect();
        let _ = write!(
            out,
            " On {}, multi-phase strategies chose their phase on the held-out split the tables report (`train.holdout = 0`), which flatters them.",
            names.join(", ")
        );
    }
    out
}

pub(super) fn runs_meta(store: &Store, report: &Report) -> String {
    let plan = &report.plan;
    let (workloads, records): (Vec<&str>, Vec<RunRecord>) = plan
        .runs
        .iter()
        .filter_map(|r| match store.state(r, None) {
            RunState::Finished(record) | RunState::Failed(record) => {
                Some((r.workload.as_str(), *record))
            }
            _ => None,
        })
        .unzip();
    let mut tested: Vec<&str> = workloads
        .iter()
        .zip(&records)
        .filter(|(_, r)| r.test_split)
        .map(|(w, _)| *w)
        .collect();
    tested.sort_unstable();
    tested.dedup();
    let mut out = format!(
        "{} runs: {} strategies × {} workloads × {} seeds ({}), plus equal-step budgets.",
        plan.runs.len(),
        plan.strategies.len(),
        plan.workloads.len(),
        plan.seeds.len(),
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
