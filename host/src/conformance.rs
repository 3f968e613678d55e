//! `pn-host plugins test FILE`: the checks a third party runs on a plugin before publishing it.
//!
//! Every component of the file builds with its defaults and its full config builds the same
//! component again (the config round-trips); every strategy trains a small teacher-student
//! workload ([`check_workload`]) to the end with finite losses, the gradient its steps apply
//! agrees with finite differences of its objective (at the second step of every phase, see
//! [`crate::train::gradient_check`]), and twice with one seed gives the same per-epoch losses.
//! Every model trains two steps on random inputs of the first shape and output it accepts
//! ([`MODEL_SHAPES`]) with finite losses, and the task loss's gradient through its forward pass
//! agrees with finite differences. Data sets are loaded with their defaults where their files
//! are there (a data set that needs files the user gives is skipped, with the reason).

use std::path::Path;

use abi_stable::std_types::{RSlice, RVec};
use pn_plugin_api::abi::ModelBox;
use pn_plugin_api::{Component, DataSplit, DataSplits, LossKind, Progress, Strategy};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::{json, Value};

use crate::device::Device;
use crate::plugin::registry::{Kind, Registry};
use crate::run::{self, ComponentRef, RunConfig, Workload};
use crate::train::data::Data;
use crate::train::{GradientCheck, Observer, PhaseRecord, Status, TrainConfig};

/// The input shapes a model is tried with, in order (a vector, MNIST's, CIFAR's), first with
/// ten classes, then with one regression output.
pub const MODEL_SHAPES: [&[usize]; 3] = [&[8], &[1, 28, 28], &[3, 32, 32]];

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
                Kind::Model => check_model(registry, name, &mut check),
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
        Err(e) => Verdict::Skip(e.to_string()),
    }
}

/// Asks for a gradient check at the second step of every phase and keeps the results.
#[derive(Default)]
struct GradientChecks(Vec<(Progress, Result<GradientCheck, String>)>);

impl Observer for GradientChecks {
    fn wants_gradient_check(&mut self, progress: Progress) -> bool {
        progress.step == 1
    }
    fn gradient_checked(&mut self, progress: Progress, check: Result<GradientCheck, String>) {
        self.0.push((progress, check));
    }
}

impl GradientChecks {
    /// Pass when every check agrees (and at least one ran), else the first that did not.
    fn verdict(&self) -> Verdict {
        if self.0.is_empty() {
            return Verdict::Fail("no step was checked".into());
        }
        for (progress, check) in &self.0 {
            let at = format!("phase {} step {}", progress.phase + 1, progress.step + 1);
            match check {
                Ok(check) if check.agrees() => {}
                Ok(check) => return Verdict::Fail(format!("{at}: {}", check.describe())),
                Err(e) => return Verdict::Fail(format!("{at}: {e}")),
            }
        }
        Verdict::Pass
    }
}

/// Pass when a run completed with finite losses, else why not.
fn trained(status: Status, message: &Option<String>, losses: &[f64]) -> Verdict {
    match (status, message) {
        (Status::Completed, _) if losses.iter().all(|x| x.is_finite()) => Verdict::Pass,
        (Status::Completed, _) => Verdict::Fail("a loss is not finite".into()),
        (_, message) => Verdict::Fail(message.clone().unwrap_or_default()),
    }
}

const GRADIENT: &str = "its objective's gradient agrees with finite differences";
const MODEL_GRADIENT: &str = "the task loss's gradient agrees with finite differences";

/// Trains the check workload twice with seed 0, checking gradients on the way.
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
        Err(e) => return check(what, Verdict::Skip(e.to_string())),
    };
    let train =
        |gradients: &mut GradientChecks| run::execute(registry, &config, &data, "cpu", gradients).0;
    let mut gradients = GradientChecks::default();
    let first = train(&mut gradients);
    let losses = epoch_losses(&first.result.phases);
    let verdict = trained(first.result.status, &first.result.message, &losses);
    let completed = verdict == Verdict::Pass;
    check(what, verdict);
    if !completed {
        return;
    }
    check(GRADIENT, gradients.verdict());
    // Checked again, so that both runs reseed the backend's generator at the same steps.
    let second = epoch_losses(&train(&mut GradientChecks::default()).result.phases);
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

/// Plain training: the task loss alone (the strategy models are checked with).
struct TaskLoss;

impl Component for TaskLoss {
    const NAME: &'static str = "task_loss";
    const DESCRIPTION: &'static str = "the task loss alone";
    type Config = ();
    fn new(_: ()) -> pn_plugin_api::Result<Self> {
        Ok(TaskLoss)
    }
}

impl Strategy for TaskLoss {}

/// Trains model `name` for two steps on random inputs of the first shape it accepts.
fn check_model(registry: &Registry, name: &str, check: &mut impl FnMut(&'static str, Verdict)) {
    let what = "trains two steps on random inputs with finite losses";
    let device = match crate::device::parse_device("cpu") {
        Ok(d) => d,
        Err(e) => return check(what, Verdict::Skip(e)),
    };
    let model = match registry.model(name, &Value::Null) {
        Ok((model, _)) => model,
        Err(e) => return check(what, Verdict::Fail(e)),
    };
    let data = match random_data(&model, &device) {
        Ok(data) => data,
        Err(e) => return check(what, Verdict::Skip(e)),
    };
    let cfg = TrainConfig {
        lr: 0.01,
        batch_size: 8,
        epochs: 1,
        ..TrainConfig::default()
    };
    let mut strategy = pn_plugin_api::component::strategy_box(TaskLoss);
    let mut gradients = GradientChecks::default();
    let outcome = crate::train::run(
        &mut strategy,
        &model,
        &data,
        &cfg,
        0,
        &device,
        &mut gradients,
    );
    let losses = epoch_losses(&outcome.result.phases);
    let verdict = trained(outcome.result.status, &outcome.result.message, &losses);
    let completed = verdict == Verdict::Pass;
    check(what, verdict);
    if completed {
        check(MODEL_GRADIENT, gradients.verdict());
    }
}

/// Sixteen training and eight held-out examples of normal noise in the first of
/// [`MODEL_SHAPES`] the model declares parameters for: ten classes (labelled 0 to 9 in turn),
/// or else one regression output (normal targets).
fn random_data(model: &ModelBox, device: &Device) -> Result<Data, String> {
    const CLASSES: usize = 10;
    let mut refusals = vec![];
    for (outputs, loss) in [
        (CLASSES, LossKind::CrossEntropy),
        (1, LossKind::MeanSquaredError),
    ] {
        for shape in MODEL_SHAPES {
            if let Err(e) = model
                .parameters(RSlice::from_slice(shape), outputs)
                .into_result()
            {
                refusals.push(format!("{shape:?} with {outputs} outputs: {e}"));
                continue;
            }
            let mut rng = StdRng::seed_from_u64(0);
            let per: usize = shape.iter().product();
            let mut normal = |n: usize| -> RVec<f32> {
                (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
            };
            let mut split = |len: usize| DataSplit {
                inputs: normal(len * per),
                targets: match loss {
                    LossKind::CrossEntropy => (0..len).map(|i| (i % CLASSES) as f32).collect(),
                    LossKind::MeanSquaredError => normal(len),
                },
                len,
            };
            let splits = DataSplits {
                input_shape: shape.iter().copied().collect(),
                outputs,
                loss,
                train: split(16),
                valid: split(8),
            };
            return Data::upload(splits, device);
        }
    }
    Err(format!(
        "it accepts none of the inputs tried ({})",
        refusals.join("; ")
    ))
}

/// Every epoch's train and held-out loss, phase by phase.
fn epoch_losses(phases: &[PhaseRecord]) -> Vec<f64> {
    phases
        .iter()
        .flat_map(|p| p.epochs.iter().flat_map(|e| [e.train_loss, e.valid_loss]))
        .collect()
}
