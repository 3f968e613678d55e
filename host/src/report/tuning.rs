//! The report's tuning section: per workload, each strategy's trials, the chosen settings and
//! their selection score, and one sensitivity plot (score against value) per tuned setting.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::Error;
use crate::report::plots::{self, Sensitivity};
use crate::report::{compared_metric, Report};
use crate::run::RunRecord;
use crate::suite::tuning::{self, Distribution, Setting, TrialBudget, TrialScore};
use crate::suite::{Plan, PlannedRun};

/// One strategy's tuning on one workload.
#[derive(Debug, Clone)]
pub struct Tuned {
    /// Workload label.
    pub workload: String,
    /// Strategy label.
    pub strategy: String,
    /// Its search space (empty: not tuned, its configured settings run as they are).
    pub space: Vec<Setting>,
    /// Trial runs planned (trials × trial seeds).
    pub runs: usize,
    /// Every trial's mean score, once every trial has a result.
    pub scores: Option<Vec<TrialScore>>,
    /// The chosen trial (the final runs' settings).
    pub chosen: Option<TrialScore>,
}

/// The tuning of every workload and strategy of `plan` (empty without `[tuning]`).
pub fn tuned(plan: &Plan, record: impl Fn(&PlannedRun) -> Option<RunRecord>) -> Vec<Tuned> {
    let Some(t) = &plan.tuning else {
        return vec![];
    };
    let mut out = vec![];
    for w in &plan.workloads {
        for s in &plan.strategies {
            let space = t.spaces.get(s).cloned().unwrap_or_default();
            let runs = plan
                .runs
                .iter()
                .filter(|r| r.workload == w.label && &r.strategy == s && r.trial.is_some())
                .count();
            let scores = (!space.is_empty())
                .then(|| tuning::scores(plan, &w.label, s, &record))
                .flatten();
            let chosen = scores
                .as_ref()
                .and_then(|sc| tuning::best(sc, compared_metric(w)).cloned());
            out.push(Tuned {
                workload: w.label.clone(),
                strategy: s.clone(),
                space,
                runs,
                scores,
                chosen,
            });
        }
    }
    out
}

/// A score as the tables write numbers; a failed trial's as "failed".
fn number(x: f64) -> String {
    match x.is_infinite() {
        true => "failed".into(),
        false => crate::report::render::sci(x),
    }
}

/// The plot file stem of one setting (dots and other marks become `_`).
fn stem(t: &Tuned, setting: &Setting) -> String {
    let key: String = setting
        .key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{}-{}-tuning-{key}", t.workload, t.strategy)
}

/// The tuning section of `report.md` (empty without `[tuning]`).
pub fn markdown(report: &Report) -> String {
    let Some(t) = &report.plan.tuning else {
        return String::new();
    };
    let seeds: Vec<String> = t.seeds.iter().map(|s| s.to_string()).collect();
    let mut out = format!(
        "\n## Tuning\n\nEvery strategy with a search space had the same budget: {} trials, \
         points of a scrambled Sobol sequence over its space, each trained at {} on trial \
         seed{} {} (never one of the seeds above) and scored by its mean {} \
         on the part of the held-out split kept for selection (`train.holdout`), never on the \
         part the tables report. The tables above use each strategy's best trial. A strategy \
         without a search space was not tuned: its configured settings ran as they are, with \
         no trials.\n",
        t.trials,
        match t.budget {
            TrialBudget::PerPhase => "the per-phase budget",
            TrialBudget::EqualSteps =>
                "its equal-step budget (the per-phase one where it has none)",
        },
        if seeds.len() > 1 { "s" } else { "" },
        seeds.join(", "),
        "selection loss (selection accuracy where the workload's target is valid accuracy)",
    );
    for w in &report.plan.workloads {
        let _ = writeln!(
            out,
            "\n### Tuning on {}\n\n| strategy | trial runs | chosen trial | settings | score | scores over trials |\n|---|---|---|---|---|---|",
            w.label
        );
        let rows: Vec<&Tuned> = report
            .tuning
            .iter()
            .filter(|r| r.workload == w.label)
            .collect();
        for r in &rows {
            let cells = match (&r.chosen, &r.scores, r.space.is_empty()) {
                (_, _, true) => [
                    "—".into(),
                    "configured settings (no search space)".into(),
                    "—".into(),
                    "—".into(),
                ],
                (Some(c), Some(all), false) => {
                    let finite: Vec<f64> = all
                        .iter()
                        .map(|s| s.score)
                        .filter(|s| s.is_finite())
                        .collect();
                    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let failed = all.len() - finite.len();
                    [
                        c.trial.index.to_string(),
                        format!("`{}`", tuning::describe(&c.trial)),
                        number(c.score),
                        format!(
                            "{} – {}{}",
                            number(lo),
                            number(hi),
                            if failed > 0 {
                                format!(" ({failed} failed)")
                            } else {
                                String::new()
                            }
                        ),
                    ]
                }
                _ => [
                    "—".into(),
                    "trials unfinished".into(),
                    "—".into(),
                    "—".into(),
                ],
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                r.strategy,
                r.runs,
                cells.join(" | ")
            );
        }
        for r in rows.iter().filter(|r| r.scores.is_some()) {
            for s in &r.space {
                let _ = writeln!(
                    out,
                    "\n![{} on {}: score against {}](plots/{}.png)",
                    r.strategy,
                    r.workload,
                    s.key,
                    stem(r, s)
                );
            }
        }
    }
    out
}

/// The chosen settings for the terminal, one line per tuned strategy and workload (empty
/// without tuning).
pub fn terminal(report: &Report) -> String {
    let mut out = String::new();
    for r in report.tuning.iter().filter(|r| !r.space.is_empty()) {
        let chosen = match (&r.chosen, &r.scores) {
            (Some(c), Some(all)) => format!(
                "trial {} of {}: {} (score {})",
                c.trial.index,
                all.len(),
                tuning::describe(&c.trial),
                number(c.score)
            ),
            _ => "trials unfinished".into(),
        };
        let _ = writeln!(out, "tuned {} on {}: {chosen}", r.strategy, r.workload);
    }
    out
}

/// `tuning.csv`: one row per trial (workload, strategy, trial, its settings as JSON, its score,
/// whether it was chosen); None without tuning.
pub fn csv(report: &Report) -> Result<Option<Vec<u8>>, Error> {
    if report.plan.tuning.is_none() {
        return Ok(None);
    }
    let mut w = csv::Writer::from_writer(vec![]);
    let e = |e: csv::Error| e.to_string();
    w.write_record([
        "workload", "strategy", "trial", "settings", "score", "chosen",
    ])
    .map_err(e)?;
    for r in &report.tuning {
        for t in r.scores.iter().flatten() {
            let chosen = r.chosen.as_ref().map(|c| c.trial.index) == Some(t.trial.index);
            let settings = serde_json::to_string(&t.trial.values).map_err(|e| e.to_string())?;
            let score = match t.score.is_finite() {
                true => format!("{:e}", t.score),
                false => String::new(),
            };
            w.write_record([
                r.workload.clone(),
                r.strategy.clone(),
                t.trial.index.to_string(),
                settings,
                score,
                chosen.to_string(),
            ])
            .map_err(e)?;
        }
    }
    w.into_inner().map(Some).map_err(|e| e.to_string().into())
}

/// Draws one sensitivity plot per tuned setting whose trials are all done, into `dir`.
pub fn draw(dir: &Path, report: &Report) -> Result<(), Error> {
    for r in &report.tuning {
        let (Some(scores), Some(w)) = (
            &r.scores,
            report.plan.workloads.iter().find(|w| w.label == r.workload),
        ) else {
            continue;
        };
        let metric = compared_metric(w);
        for s in &r.space {
            let choices: Vec<serde_json::Value> = match &s.distribution {
                Distribution::Choice(c) => c.clone(),
                _ => vec![],
            };
            let x_of = |t: &TrialScore| -> Option<f64> {
                let v = t.trial.values.get(&s.key)?;
                match choices.is_empty() {
                    true => v.as_f64(),
                    false => choices.iter().position(|c| c == v).map(|i| i as f64),
                }
            };
            let point = |t: &TrialScore| Some((x_of(t)?, t.score));
            let data = Sensitivity {
                points: scores.iter().filter_map(point).collect(),
                chosen: r.chosen.as_ref().and_then(point),
                log_x: s.log_scale(),
                log_y: !metric.higher_is_better(),
                choices: choices
                    .iter()
                    .map(|c| c.as_str().map_or_else(|| c.to_string(), String::from))
                    .collect(),
            };
            let label = match metric.higher_is_better() {
                true => "selection accuracy",
                false => "selection loss",
            };
            plots::sensitivity(
                &dir.join(stem(r, s)),
                &format!(
                    "{} on {}: {} trials (the chosen one ringed)",
                    r.strategy,
                    r.workload,
                    scores.len()
                ),
                &s.key,
                label,
                &data,
            )?;
        }
    }
    Ok(())
}
