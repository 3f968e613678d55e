//! `pn-host plugins test FILE`: the checks a third party runs on a plugin before publishing it.
//!
//! Every component of the file builds with its defaults and its full config builds the same
//! component again (the config round-trips); every strategy trains a small teacher-student
//! workload ([`check_workload`]) to the end with finite losses, and twice with one seed gives
//! the same per-epoch losses. Data sets are loaded with their defaults where their files are
//! there (a data set that needs files the user gives is skipped, with the reason).

use std::path::Path;

use serde_json::{json, Value};

use crate::plugin::registry::{Kind, Registry};
use crate::run::{self, ComponentRef, RunConfig, RunRecord, Workload};
use crate::train::{Silent, Status, TrainConfig};

/// What a check found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// It holds.
    Pass,
    /// It does not: why.
    Fail(String),
    /// It could not run here: why.
    Skip(String),
}

/// One check of one component.
#[derive(Debug, Clone)]
pub struct Check {
    /// `strategy sam`, `model mlp`, ...
    pub component: String,
    /// What was checked.
    pub what: &'static str,
    /// What it found.
    pub verdict: Verdict,
}

impl Check {
    /// One line: `ok`, `FAIL` or `skip`, the component, the check and the reason.
    pub fn line(&self) -> String {
        let (tag, why) = match &self.verdict {
            Verdict::Pass => ("ok  ", String::new()),
            Verdict::Fail(e) => ("FAIL", format!(": {e}")),
            Verdict::Skip(e) => ("skip", format!(" (skipped: {e})")),
        };
        format!("{tag} {}: {}{why}", self.component, self.what)
    }
}

/// The small workload strategies are checked on: a 5-unit teacher-student problem, a few epochs
/// per phase, half of the held-out split kept for phase selection.
pub fn check_workload() -> Workload {
    Workload {
        model: ComponentRef {
            name: "mlp".into(),
            config: json!({ "hidden": [5], "output": "sum", "bias": false }),
        },
        dataset: ComponentRef {
            name: "teacher_student".into(),
            config: json!({ "d": 5, "k": 5, "train": 200, "valid": 100 }),
        },
        train: TrainConfig {
            lr: 0.01,
            batch_size: 50,
            epochs: 3,
            holdout: 0.5,
            ..TrainConfig::default()
        },
    }
}

/// Runs every check on the components that `file` provides; `registry` has `file` loaded, and
/// the plugins of the check workload (`mlp`, `teacher_student`) for strategies.
pub fn test_plugin(registry: &Registry, file: &Path) -> Result<Vec<Check>, String> {
    let canonical = file
        .canonicalize()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let index = registry
        .plugins
        .iter()
        .position(|p| p.path.canonicalize().is_ok_and(|p| p == canonical))
        .ok_or_else(|| format!("{} is not loaded", file.display()))?;
    let mut checks = vec![];
    for kind in [Kind::Strategy, Kind::Model, Kind::Dataset] {
        for (name, _) in registry
            .names(kind)
            .into_iter()
            .filter(|&(_, p)| p == index)
        {
            let component = format!("{} {name}", kind.label());
            let mut check = |what, verdict| {
                checks.push(Check {
                    component: component.clone(),
                    what,
                    verdict,
                })
            };
            let Some(config) = builds_and_round_trips(registry, kind, name, &mut check) else {
                continue;
            };
            match kind {
                Kind::Strategy => check_training(registry, name, &mut check),
                Kind::Dataset => check("loads with its defaults", loads(registry, name, config)),
                Kind::Model => {}
            }
        }
    }
    Ok(checks)
}

fn build(registry: &Registry, kind: Kind, name: &str, config: &Value) -> Result<Value, String> {
    match kind {
        Kind::Strategy => registry.strategy(name, config).map(|(_, c)| c),
        Kind::Model => registry.model(name, config).map(|(_, c)| c),
        Kind::Dataset => registry.dataset(name, config).map(|(_, c)| c),
    }
}

/// The two config checks; returns the full default config when the component builds.
fn builds_and_round_trips(
    registry: &Registry,
    kind: Kind,
    name: &str,
    check: &mut impl FnMut(&'static str, Verdict),
) -> Option<Value> {
    let full = match build(registry, kind, name, &Value::Null) {
        Ok(full) => full,
        Err(e) => {
            check("builds with its defaults", Verdict::Fail(e));
            return None;
        }
    };
    check("builds with its defaults", Verdict::Pass);
    let verdict = match build(registry, kind, name, &full) {
        Ok(again) if again == full => Verdict::Pass,
        Ok(again) => Verdict::Fail(format!("{full} came back as {again}")),
        Err(e) => Verdict::Fail(format!("its own full config {full} is refused: {e}")),
    };
    check("its full config builds it again unchanged", verdict);
    Some(full)
}

fn loads(registry: &Registry, name: &str, config: Value) -> Verdict {
    match run::load_splits(
        registry,
        &ComponentRef {
            name: name.into(),
            config,
        },
    ) {
        Ok(_) => Verdict::Pass,
        Err(e) => Verdict::Skip(e),
    }
}

/// Trains the check workload twice with seed 0.
fn check_training(registry: &Registry, name: &str, check: &mut impl FnMut(&'static str, Verdict)) {
    let what = "trains the check workload with finite losses";
    let strategy = ComponentRef {
        name: name.into(),
        config: Value::Null,
    };
    let config = RunConfig::new(strategy, &check_workload(), 0);
    let device = match crate::device::parse_device("cpu") {
        Ok(d) => d,
        Err(e) => return check(what, Verdict::Skip(e)),
    };
    let data = match run::load_data(registry, &config.dataset, &device) {
        Ok(data) => data,
        Err(e) => return check(what, Verdict::Skip(e)),
    };
    let train = || run::execute(registry, &config, &data, "cpu", &mut Silent).0;
    let first = train();
    let losses = epoch_losses(&first);
    let verdict = match (first.status, &first.message) {
        (Status::Completed, _) if losses.iter().all(|x| x.is_finite()) => Verdict::Pass,
        (Status::Completed, _) => Verdict::Fail("a loss is not finite".into()),
        (_, message) => Verdict::Fail(message.clone().unwrap_or_default()),
    };
    let trained = verdict == Verdict::Pass;
    check(what, verdict);
    if !trained {
        return;
    }
    let second = epoch_losses(&train());
    let verdict = match second.iter().zip(&losses).position(|(a, b)| a.to_bits() != b.to_bits()) {
        None if second.len() == losses.len() => Verdict::Pass,
        None => Verdict::Fail(format!("{} epochs, then {}", losses.len(), second.len())),
        Some(i) => Verdict::Fail(format!(
            "epoch {} train loss {} then {} (draw random numbers from the host's `random`, seeded by the run)",
            i + 1,
            losses[i],
            second[i]
        )),
    };
    check("the same seed gives the same losses", verdict);
}

/// Every epoch's train and held-out loss, phase by phase.
fn epoch_losses(record: &RunRecord) -> Vec<f64> {
    record
        .phases
        .iter()
        .flat_map(|p| p.epochs.iter().flat_map(|e| [e.train_loss, e.valid_loss]))
        .collect()
}
