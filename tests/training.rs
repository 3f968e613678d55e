//! Training through the plugin boundary: the loss falls, phases start where the strategy says,
//! runs are deterministic, and plugin failures end the run with a message.

use std::sync::{Arc, Mutex};

use pn_host::device::{parse_device, Device};
use pn_host::plugin::registry::Registry;
use pn_host::run::{load_data, ComponentRef};
use pn_host::train::data::Data;
use pn_host::train::{self, Outcome, Silent, Status, TrainConfig};
use pn_plugin_api::abi::StrategyBox;
use pn_plugin_api::component::strategy_box;
use pn_plugin_api::{Component, Ops, PhaseStart, Result, Strategy};
use serde_json::json;

fn setup() -> (Registry, Device, Data) {
    let registry = pn_tests::registry(&[
        "baseline",
        "reinit",
        "full_persistent",
        "mlp",
        "teacher_student",
    ]);
    let device = parse_device("cpu").unwrap();
    let dataset = ComponentRef {
        name: "teacher_student".into(),
        config: json!({"d": 6, "k": 6, "train": 400, "valid": 100}),
    };
    let data = load_data(&registry, &dataset, &device).unwrap();
    (registry, device, data)
}

fn train(
    registry: &Registry,
    strategy: &mut StrategyBox,
    data: &Data,
    device: &Device,
    epochs: u32,
) -> Outcome {
    let (model, _) = registry
        .model(
            "mlp",
            &json!({"hidden": [6], "output": "sum", "bias": false}),
        )
        .unwrap();
    let cfg = TrainConfig {
        epochs,
        batch_size: 100,
        ..TrainConfig::default()
    };
    train::run(strategy, &model, data, &cfg, 3, device, &mut Silent)
}

#[test]
fn a_few_epochs_reduce_the_loss() {
    let (registry, device, data) = setup();
    let (mut strategy, _) = registry.strategy("baseline", &json!({})).unwrap();
    let outcome = train(&registry, &mut strategy, &data, &device, 5);
    assert_eq!(
        outcome.result.status,
        Status::Completed,
        "{:?}",
        outcome.result.message
    );
    let epochs = &outcome.result.phases[0].epochs;
    assert!(
        epochs.last().unwrap().train_loss < 0.8 * epochs[0].train_loss,
        "{epochs:?}"
    );
    assert_eq!(outcome.result.steps, 20);
    assert_eq!(outcome.result.examples, 2000);
    // Every epoch records the saturation of the student's one ReLU layer on the held-out split.
    for e in epochs {
        assert_eq!(e.saturation.len(), 1, "{e:?}");
        assert_eq!(e.saturation[0].layer, "act1.relu");
        assert!((0.0..=1.0).contains(&e.saturation[0].fraction));
    }
}

#[test]
fn runs_are_deterministic_for_a_seed() {
    let (registry, device, data) = setup();
    let run = || {
        let (mut strategy, _) = registry
            .strategy("full_persistent", &json!({"phases": 2}))
            .unwrap();
        train(&registry, &mut strategy, &data, &device, 3)
    };
    let (a, b) = (run(), run());
    let losses = |o: &Outcome| -> Vec<(f64, f64)> {
        o.result
            .phases
            .iter()
            .flat_map(|p| p.epochs.iter().map(|e| (e.train_loss, e.valid_loss)))
            .collect()
    };
    assert_eq!(losses(&a), losses(&b));
    assert_eq!(a.result_values, b.result_values);
}

/// Records the parameters at the start of every phase.
struct Recorder {
    start: PhaseStart,
    seen: Arc<Mutex<Vec<Vec<f32>>>>,
}

impl Component for Recorder {
    const NAME: &'static str = "recorder";
    const DESCRIPTION: &'static str = "records phase starts";
    type Config = ();
    fn new(_: ()) -> Result<Self> {
        unreachable!("built directly by the test")
    }
}

impl Strategy for Recorder {
    fn phases(&self) -> u32 {
        3
    }
    fn phase_start(&self, _phase: u32) -> PhaseStart {
        self.start
    }
    fn begin_phase(&mut self, ops: Ops<'_>, _phase: u32) -> Result<()> {
        self.seen
            .lock()
            .unwrap()
            .push(ops.param_group(&["*"]).to_vec());
        Ok(())
    }
}

fn phase_starts(start: PhaseStart) -> Vec<Vec<f32>> {
    let (registry, device, data) = setup();
    let seen = Arc::new(Mutex::new(vec![]));
    let mut strategy = strategy_box(Recorder {
        start,
        seen: seen.clone(),
    });
    let outcome = train(&registry, &mut strategy, &data, &device, 2);
    assert_eq!(
        outcome.result.status,
        Status::Completed,
        "{:?}",
        outcome.result.message
    );
    let seen = seen.lock().unwrap().clone();
    // The outcome's θ0 (written to init.safetensors) is where phase 0 started.
    assert_eq!(
        outcome.theta0.as_ref().map(|t| t.concat()).as_ref(),
        seen.first()
    );
    seen
}

#[test]
fn same_init_phases_start_from_exactly_theta0() {
    let starts = phase_starts(PhaseStart::SameInit);
    assert_eq!(starts.len(), 3);
    assert_eq!(starts[1], starts[0]);
    assert_eq!(starts[2], starts[0]);
}

#[test]
fn fresh_and_continued_phases_do_not() {
    let fresh = phase_starts(PhaseStart::FreshInit);
    assert_ne!(fresh[1], fresh[0]);
    assert_ne!(fresh[2], fresh[1]);
    let continued = phase_starts(PhaseStart::Continue);
    assert_ne!(continued[1], continued[0]);
}

#[test]
fn full_persistent_restarts_from_theta0_and_keeps_its_anchors() {
    let (registry, device, data) = setup();
    let (mut strategy, _) = registry.strategy("full_persistent", &json!({})).unwrap();
    assert_eq!(strategy.phase_start(1).unwrap(), PhaseStart::SameInit);
    assert_eq!(strategy.phase_start(2).unwrap(), PhaseStart::SameInit);
    let outcome = train(&registry, &mut strategy, &data, &device, 2);
    assert_eq!(
        outcome.result.status,
        Status::Completed,
        "{:?}",
        outcome.result.message
    );
    let kept: Vec<&str> = outcome.kept.iter().map(|(n, _, _)| n.as_str()).collect();
    for name in ["theta0", "anchor1", "anchor2", "anchor3"] {
        assert!(kept.contains(&name), "{kept:?}");
    }
    let theta0 = &outcome
        .kept
        .iter()
        .find(|(n, _, _)| n == "theta0")
        .unwrap()
        .2;
    let fresh = pn_host::train::params::initial_values(
        &registry
            .model(
                "mlp",
                &json!({"hidden": [6], "output": "sum", "bias": false}),
            )
            .unwrap()
            .0
            .parameters(abi_stable::std_types::RSlice::from_slice(&[6]), 1)
            .unwrap(),
        3,
    )
    .unwrap();
    assert_eq!(theta0, &fresh.concat(), "θ0 is the seed's initialisation");
    // Phase 2 left the first solution: its anchor differs from anchor 1.
    let anchor = |name: &str| &outcome.kept.iter().find(|(n, _, _)| n == name).unwrap().2;
    assert_ne!(anchor("anchor1"), anchor("anchor2"));
}

#[test]
fn persistence_on_a_layer_that_never_moved_completes_and_repeats_phase_one() {
    // On the kink problem a 1-2-2-1 ReLU net often starts with dead first-layer units, which
    // training never moves: the anchor is θ0, where the penalty has no gradient.
    let registry = pn_tests::registry(&["partial_persistent", "mlp", "kink"]);
    let device = parse_device("cpu").unwrap();
    let kink = ComponentRef {
        name: "kink".into(),
        config: json!({"train": 200, "valid": 50}),
    };
    let data = load_data(&registry, &kink, &device).unwrap();
    let (model, _) = registry
        .model("mlp", &json!({"hidden": [2, 2], "init": "kaiming_normal"}))
        .unwrap();
    let cfg = TrainConfig {
        epochs: 20,
        batch_size: 50,
        record_every: 1000,
        ..TrainConfig::default()
    };
    let mut stuck = 0;
    for seed in 0..20 {
        let (mut strategy, _) = registry.strategy("partial_persistent", &json!({})).unwrap();
        let outcome = train::run(
            &mut strategy,
            &model,
            &data,
            &cfg,
            seed,
            &device,
            &mut Silent,
        );
        assert_eq!(
            outcome.result.status,
            Status::Completed,
            "seed {seed}: {:?}",
            outcome.result.message
        );
        let layer0 = |i: usize| outcome.trajectory[i].values[..4].to_vec(); // weight [1, 2], bias [2]
        if layer0(0) == layer0(1) {
            stuck += 1;
            let loss = |p: usize| outcome.result.phases[p].final_train_loss;
            assert_eq!((loss(1), loss(2)), (loss(0), loss(0)), "seed {seed}");
        }
    }
    assert!(stuck > 0, "no seed started with a dead first layer");
}

#[test]
fn reinit_selects_the_phase_with_the_lowest_validation_loss() {
    let (registry, device, data) = setup();
    let (mut strategy, _) = registry.strategy("reinit", &json!({"phases": 3})).unwrap();
    let outcome = train(&registry, &mut strategy, &data, &device, 2);
    let best = (0..3)
        .min_by(|&a, &b| {
            outcome.result.phases[a]
                .final_valid_loss
                .total_cmp(&outcome.result.phases[b].final_valid_loss)
        })
        .unwrap();
    assert_eq!(outcome.result.selected_phase, Some(best as u32));
}

/// 3x32x32 images whose class (of 4) is the brightest quadrant: learnable in a few steps.
fn quadrant_images(device: &Device) -> Data {
    use pn_plugin_api::{DataSplit, DataSplits, LossKind};
    let split = |n: usize, salt: usize| {
        let mut inputs = vec![];
        let mut targets = vec![];
        for i in 0..n {
            let class = (i * 7 + salt) % 4;
            for c in 0..3 {
                for y in 0..32 {
                    for x in 0..32 {
                        let q = (y / 16) * 2 + x / 16;
                        let noise = ((i * 31 + c * 17 + y * 5 + x * 3) % 13) as f32 / 13.0;
                        inputs.push(if q == class { 1.0 } else { 0.0 } + 0.3 * noise);
                    }
                }
            }
            targets.push(class as f32);
        }
        DataSplit {
            inputs: inputs.into(),
            targets: targets.into(),
            len: n,
        }
    };
    let splits = DataSplits {
        input_shape: vec![3, 32, 32].into(),
        outputs: 4,
        loss: LossKind::CrossEntropy,
        train: split(48, 0),
        valid: split(16, 1),
    };
    Data::upload(splits, device).unwrap()
}

#[test]
fn alexnet_and_resnet_learn_on_cpu_and_resnet_saves_its_running_statistics() {
    let registry = pn_tests::registry(&["baseline", "alexnet", "resnet"]);
    let device = parse_device("cpu").unwrap();
    let data = quadrant_images(&device);
    for (name, lr) in [("alexnet", 1e-3), ("resnet", 1e-2)] {
        let (model, _) = registry.model(name, &json!({})).unwrap();
        let (mut strategy, _) = registry.strategy("baseline", &json!({})).unwrap();
        let cfg = TrainConfig {
            epochs: 4,
            batch_size: 16,
            lr,
            ..TrainConfig::default()
        };
        let outcome = train::run(&mut strategy, &model, &data, &cfg, 1, &device, &mut Silent);
        assert_eq!(
            outcome.result.status,
            Status::Completed,
            "{name}: {:?}",
            outcome.result.message
        );
        let epochs = &outcome.result.phases[0].epochs;
        let (first, last) = (epochs[0].train_loss, epochs[epochs.len() - 1].train_loss);
        assert!(last < 0.7 * first, "{name}: train loss {first} -> {last}");
        let state: Vec<&str> = outcome
            .result_state
            .iter()
            .map(|(n, _, _)| n.as_str())
            .collect();
        if name == "resnet" {
            assert!(state.contains(&"stem.bn.running_mean"), "{state:?}");
            assert!(
                state.contains(&"stage3.block0.shortcut.bn.running_var"),
                "{state:?}"
            );
            let (_, shape, mean) = &outcome.result_state[0];
            assert_eq!(shape, &[16]);
            assert!(mean.iter().any(|v| *v != 0.0), "running mean was updated");
        } else {
            assert!(state.is_empty());
        }
    }
}

#[test]
fn augmentation_changes_the_batches_deterministically_and_needs_images() {
    let registry = pn_tests::registry(&["baseline", "lenet5", "mlp", "teacher_student"]);
    let device = parse_device("cpu").unwrap();
    let data = quadrant_images(&device);
    let (model, _) = registry.model("lenet5", &json!({})).unwrap();
    let run = |augment: Option<pn_host::train::augment::Augment>| {
        let (mut strategy, _) = registry.strategy("baseline", &json!({})).unwrap();
        let cfg = TrainConfig {
            epochs: 2,
            batch_size: 16,
            lr: 1e-3,
            augment,
            ..TrainConfig::default()
        };
        let outcome = train::run(&mut strategy, &model, &data, &cfg, 2, &device, &mut Silent);
        assert_eq!(
            outcome.result.status,
            Status::Completed,
            "{:?}",
            outcome.result.message
        );
        outcome.result.phases[0].epochs[0].train_loss
    };
    let augmented = run(Some(Default::default()));
    assert_eq!(
        augmented,
        run(Some(Default::default())),
        "same seed, same batches"
    );
    assert_ne!(
        augmented,
        run(None),
        "augmented batches differ from the raw ones"
    );

    let (_, device, tabular) = setup();
    let (mut strategy, _) = registry.strategy("baseline", &json!({})).unwrap();
    let (mlp, _) = registry.model("mlp", &json!({"hidden": [4]})).unwrap();
    let cfg = TrainConfig {
        augment: Some(Default::default()),
        ..TrainConfig::default()
    };
    let outcome = train::run(&mut strategy, &mlp, &tabular, &cfg, 0, &device, &mut Silent);
    assert_eq!(outcome.result.status, Status::Failed);
    assert!(outcome
        .result
        .message
        .unwrap()
        .contains("train.augment needs image inputs"));
}

#[test]
fn with_a_holdout_phases_are_chosen_on_examples_the_run_does_not_report() {
    let (registry, device, data) = setup();
    let (model, _) = registry
        .model(
            "mlp",
            &json!({"hidden": [6], "output": "sum", "bias": false}),
        )
        .unwrap();
    let run = |holdout: f64| {
        let cfg = TrainConfig {
            epochs: 4,
            batch_size: 100,
            holdout,
            ..TrainConfig::default()
        };
        let (mut reinit, _) = registry.strategy("reinit", &json!({})).unwrap();
        let o = train::run(&mut reinit, &model, &data, &cfg, 3, &device, &mut Silent);
        assert_eq!(o.result.status, Status::Completed, "{:?}", o.result.message);
        o
    };
    let apart = run(0.5);
    let select: Vec<f64> = apart
        .result
        .phases
        .iter()
        .map(|p| p.final_select_loss.unwrap())
        .collect();
    let best = (0..select.len())
        .min_by(|&a, &b| select[a].total_cmp(&select[b]))
        .unwrap();
    assert_eq!(
        apart.result.selected_phase,
        Some(best as u32),
        "chosen by the selection part"
    );
    for p in &apart.result.phases {
        // Curves and final metrics are on the reported part; selection saw other examples.
        assert_eq!(p.epochs.last().unwrap().valid_loss, p.final_valid_loss);
        assert_ne!(p.final_select_loss, Some(p.final_valid_loss));
    }
    // The same phases trained: only what is measured on the held-out split differs.
    let same = run(0.0);
    for (a, s) in apart.result.phases.iter().zip(&same.result.phases) {
        assert_eq!(a.final_train_loss, s.final_train_loss);
        assert_eq!(s.final_select_loss, None);
        assert_ne!(a.final_valid_loss, s.final_valid_loss);
    }
    let cfg = TrainConfig {
        holdout: 0.001,
        ..TrainConfig::default()
    };
    let (mut baseline, _) = registry.strategy("baseline", &json!({})).unwrap();
    let o = train::run(&mut baseline, &model, &data, &cfg, 3, &device, &mut Silent);
    let message = o.result.message.unwrap();
    assert!(
        message.contains("keeps 0 of the 100 held-out examples"),
        "{message}"
    );
}

/// Plain training `phases` times from the same θ0: every phase is the same.
struct Repeat(u32);

impl Component for Repeat {
    const NAME: &'static str = "repeat";
    const DESCRIPTION: &'static str = "identical phases";
    type Config = ();
    fn new(_: ()) -> Result<Self> {
        unreachable!("built directly by the test")
    }
}

impl Strategy for Repeat {
    fn phases(&self) -> u32 {
        self.0
    }
}

#[test]
fn with_a_test_split_runs_select_on_valid_and_report_test_and_selection_alone_gains_nothing() {
    let (registry, device, data) = setup();
    // Another draw of the same teacher's inputs: the test split.
    let other = ComponentRef {
        name: "teacher_student".into(),
        config: json!({"d": 6, "k": 6, "train": 400, "valid": 100, "data_seed": 99}),
    };
    let test = pn_host::run::load_splits(&registry, &other).unwrap().valid;
    let data = data.with_test(test, &device).unwrap();
    let run = |phases: u32| {
        let o = train(
            &registry,
            &mut strategy_box(Repeat(phases)),
            &data,
            &device,
            3,
        );
        assert_eq!(o.result.status, Status::Completed, "{:?}", o.result.message);
        o
    };
    let (one, three) = (run(1), run(3));
    // Best of three identical phases on valid reports what one phase reports on test.
    let selected = &three.result.phases[three.result.selected_phase.unwrap() as usize];
    assert_eq!(
        selected.final_valid_loss,
        one.result.phases[0].final_valid_loss
    );
    for p in &three.result.phases {
        assert_eq!(p.final_select_loss, one.result.phases[0].final_select_loss);
        // selection saw valid, the reported metric is on other examples
        assert_ne!(p.final_select_loss, Some(p.final_valid_loss));
        assert_eq!(p.epochs.last().unwrap().valid_loss, p.final_valid_loss);
    }
    // A holdout on top of a test split is refused: selection already has its own split.
    let (model, _) = registry
        .model(
            "mlp",
            &json!({"hidden": [6], "output": "sum", "bias": false}),
        )
        .unwrap();
    let cfg = TrainConfig {
        holdout: 0.5,
        ..TrainConfig::default()
    };
    let o = train::run(
        &mut strategy_box(Repeat(1)),
        &model,
        &data,
        &cfg,
        3,
        &device,
        &mut Silent,
    );
    assert!(o.result.message.unwrap().contains("has a test split"));
}
