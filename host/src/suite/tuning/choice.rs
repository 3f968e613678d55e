//! Choosing a trial: each trial's score on the selection split, the best trial per workload
//! and strategy, and the final runs that take its settings once every trial has a result.
//! Pure functions of the plan and the run records, so `suite run`, its shards and `suite
//! report` (which has no plugins) all make the same choice.

use indexmap::IndexMap;

use crate::run::RunRecord;
use crate::suite::tuning::{apply, Trial};
use crate::suite::{Metric, Plan, PlannedRun};
use crate::train::Status;

/// A trial's score on the selection split: its selection loss, or its selection accuracy when
/// the workload compares accuracy (then higher is better). A run that failed or diverged, or
/// that has no selection metrics (no `train.holdout`), scores as the worst.
pub fn score(record: &RunRecord, metric: Metric) -> f64 {
    let worst = if metric.higher_is_better() {
        f64::NEG_INFINITY
    } else {
        f64::INFINITY
    };
    if record.result.status != Status::Completed {
        return worst;
    }
    let Some(phase) = record
        .result
        .selected_phase
        .and_then(|p| record.result.phases.get(p as usize))
    else {
        return worst;
    };
    let value = if metric.higher_is_better() {
        phase.final_select_accuracy
    } else {
        phase.final_select_loss
    };
    value.filter(|v| v.is_finite()).unwrap_or(worst)
}

/// One trial's result: its mean score over the trial seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialScore {
    /// The trial.
    pub trial: Trial,
    /// Mean score over the seeds (the worst value when a seed failed).
    pub score: f64,
}

/// The scored trials of one workload and strategy, or None while some trial has no result.
pub fn scores(
    plan: &Plan,
    workload: &str,
    strategy: &str,
    record: impl Fn(&PlannedRun) -> Option<RunRecord>,
) -> Option<Vec<TrialScore>> {
    let w = plan.workloads.iter().find(|w| w.label == workload)?;
    let metric = crate::report::compared_metric(w);
    let mut by_trial: IndexMap<u32, (Trial, Vec<f64>)> = IndexMap::new();
    for run in plan
        .runs
        .iter()
        .filter(|r| r.workload == workload && r.strategy == strategy)
    {
        let Some(trial) = &run.trial else { continue };
        let score = score(&record(run)?, metric);
        by_trial
            .entry(trial.index)
            .or_insert_with(|| (trial.clone(), vec![]))
            .1
            .push(score);
    }
    by_trial.sort_keys();
    Some(
        by_trial
            .into_values()
            .map(|(trial, s)| TrialScore {
                trial,
                score: s.iter().sum::<f64>() / s.len().max(1) as f64,
            })
            .collect(),
    )
}

/// The best of `scores` (lowest loss or highest accuracy; the earliest trial on a tie).
pub fn best(scores: &[TrialScore], metric: Metric) -> Option<&TrialScore> {
    let better = |a: f64, b: f64| {
        if metric.higher_is_better() {
            a > b
        } else {
            a < b
        }
    };
    scores
        .iter()
        .fold(None, |best: Option<&TrialScore>, s| match best {
            Some(b) if !better(s.score, b.score) => Some(b),
            _ => Some(s),
        })
}

/// Gives the final runs of every tuned strategy whose trials all have a result the best
/// trial's settings (`chosen_trial`). Returns how many final runs still wait for trials.
pub fn resolve(plan: &mut Plan, record: impl Fn(&PlannedRun) -> Option<RunRecord>) -> usize {
    let Some(tuning) = plan.tuning.clone() else {
        return 0;
    };
    let mut waiting = 0;
    for w in plan.workloads.clone() {
        let metric = crate::report::compared_metric(&w);
        for (strategy, space) in &tuning.spaces {
            let chosen = scores(plan, &w.label, strategy, &record)
                .and_then(|s| best(&s, metric).map(|b| b.trial.clone()));
            for run in plan
                .runs
                .iter_mut()
                .filter(|r| r.workload == w.label && &r.strategy == strategy && r.trial.is_none())
            {
                match &chosen {
                    Some(trial) => {
                        // Checked at parse time: every trial's settings apply.
                        if let Ok(config) = apply(&run.config, space, trial) {
                            run.config = config;
                            run.chosen_trial = Some(trial.index);
                        }
                    }
                    None => waiting += 1,
                }
            }
        }
    }
    waiting
}

/// Whether `run` is a final run still waiting for the trials of its strategy.
pub fn waits(plan: &Plan, run: &PlannedRun) -> bool {
    run.trial.is_none()
        && run.chosen_trial.is_none()
        && plan
            .tuning
            .as_ref()
            .is_some_and(|t| t.spaces.contains_key(&run.strategy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::tuning::{parse_entry, trials, Space};

    /// A synthetic objective with a known best region: (log10 x + 2)² + (y − 0.7)², best at
    /// x = 0.01, y = 0.7. Sixteen trials land the best near it.
    #[test]
    fn the_search_finds_the_known_best_region_of_a_synthetic_objective() {
        let s: Space = [
            ("x", "{ log_uniform = [1e-5, 1.0] }"),
            ("y", "{ uniform = [0.0, 1.0] }"),
        ]
        .iter()
        .flat_map(|(key, form)| {
            let value: toml::Value =
                toml::from_str::<toml::Table>(&format!("v = {form}")).unwrap()["v"].clone();
            parse_entry(key, &value).unwrap()
        })
        .collect();
        let objective = |t: &Trial| {
            let x = t.values["x"].as_f64().unwrap();
            let y = t.values["y"].as_f64().unwrap();
            (x.log10() + 2.0).powi(2) + (y - 0.7).powi(2)
        };
        let scored: Vec<TrialScore> = trials(&s, 16)
            .into_iter()
            .map(|trial| TrialScore {
                score: objective(&trial),
                trial,
            })
            .collect();
        let b = best(&scored, Metric::ValidLoss).unwrap();
        let x = b.trial.values["x"].as_f64().unwrap();
        let y = b.trial.values["y"].as_f64().unwrap();
        assert!((10f64.powf(-2.8)..10f64.powf(-1.2)).contains(&x), "x = {x}");
        assert!((0.45..0.95).contains(&y), "y = {y}");
        // Higher is better for accuracy: the same trials, the other way round.
        let worst = best(&scored, Metric::ValidAccuracy).unwrap();
        assert!(scored.iter().all(|s| s.score <= worst.score));
    }
}
