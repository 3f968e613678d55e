//! Strategies whose result is not the trained parameters: `swa` returns the mean of the
//! parameters over its window, `snapshot` an ensemble whose prediction is the mean of its
//! members' probabilities; batch-norm statistics for such parameters are recomputed as plain
//! averages over the training split.
// The device type is `Copy` only in CPU-only builds (see pn_host::device).
#![allow(clippy::clone_on_copy)]

use burn::tensor::activation::softmax;
use burn::tensor::{Distribution, Tensor, TensorData, Tolerance};
use pn_host::device::{parse_device, Device, B};
use pn_host::plugin::registry::Registry;
use pn_host::train::data::{Data, Targets};
use pn_host::train::dyn_tensor::DynTensor;
use pn_host::train::params::{split_flat, ParamStore};
use pn_host::train::session::{Session, StatsMode};
use pn_host::train::{self, ModelRunner, Outcome, Silent, Status, TrainConfig};
use pn_plugin_api::{DataSplit, DataSplits, LossKind, Ops, Progress};
use serde_json::{json, Value};

/// Three Gaussian blobs in 2-D, 120 training and 60 held-out points.
fn blobs(device: &Device) -> Data {
    Data::upload(blobs_splits(), device).unwrap()
}

fn blobs_splits() -> DataSplits {
    let split = |n: usize, salt: usize| {
        let (mut inputs, mut targets) = (vec![], vec![]);
        for i in 0..n {
            let class = i % 3;
            let angle = class as f32 * 2.1;
            let jitter = |k: usize| (((i * 37 + k * 11 + salt * 7) % 17) as f32 / 17.0 - 0.5) * 1.6;
            inputs.push(angle.cos() + jitter(0));
            inputs.push(angle.sin() + jitter(1));
            targets.push(class as f32);
        }
        DataSplit {
            inputs: inputs.into(),
            targets: targets.into(),
            len: n,
        }
    };
    DataSplits {
        input_shape: vec![2].into(),
        outputs: 3,
        loss: LossKind::CrossEntropy,
        train: split(120, 0),
        valid: split(60, 1),
    }
}

fn run(
    registry: &Registry,
    strategy: &str,
    config: Value,
    data: &Data,
    cfg: &TrainConfig,
) -> Outcome {
    let device = parse_device("cpu").unwrap();
    let (model, _) = registry.model("mlp", &json!({"hidden": [16]})).unwrap();
    let (mut strategy, _) = registry.strategy(strategy, &config).unwrap();
    let outcome = train::run(&mut strategy, &model, data, cfg, 5, &device, &mut Silent);
    assert_eq!(
        outcome.result.status,
        Status::Completed,
        "{:?}",
        outcome.result.message
    );
    outcome
}

#[test]
fn swa_returns_the_mean_of_the_epoch_end_parameters_in_its_window() {
    let registry = pn_tests::registry(&["baseline", "swa", "mlp"]);
    let device = parse_device("cpu").unwrap();
    let data = blobs(&device);
    // 4 steps per epoch, 32 steps; averaging from step 16 at the ends of epochs 5 to 8.
    let cfg = TrainConfig {
        epochs: 8,
        batch_size: 30,
        lr: 0.02,
        record_every: 4,
        ..TrainConfig::default()
    };
    let swa = run(
        &registry,
        "swa",
        json!({"start": 0.5, "lr_factor": 0.5}),
        &data,
        &cfg,
    );
    let baseline = run(&registry, "baseline", json!({}), &data, &cfg);
    let at = |o: &Outcome, step: u64| {
        o.trajectory
            .iter()
            .find(|p| p.step == step)
            .unwrap()
            .values
            .clone()
    };
    // The learning rate is the configured one until the window, half of it inside.
    assert_eq!(at(&swa, 16), at(&baseline, 16));
    assert_ne!(at(&swa, 20), at(&baseline, 20));
    let window: Vec<Vec<f32>> = [20, 24, 28, 32].iter().map(|&s| at(&swa, s)).collect();
    let mean: Vec<f32> = (0..window[0].len())
        .map(|i| window.iter().map(|w| w[i]).sum::<f32>() / 4.0)
        .collect();
    let result = swa.result_values.clone().unwrap().concat();
    for (r, m) in result.iter().zip(&mean) {
        assert!((r - m).abs() < 1e-5, "{r} vs {m}");
    }
    assert_ne!(result, at(&swa, 32), "the average is not the last iterate");
    assert_eq!(
        swa.kept.iter().map(|k| k.0.as_str()).collect::<Vec<_>>(),
        ["swa.average"]
    );
    assert_eq!(swa.result.phases[0].members, 1);
}

#[test]
fn snapshot_restarts_a_cosine_each_cycle_and_evaluates_the_mean_probability() {
    let registry = pn_tests::registry(&["snapshot", "mlp"]);
    let (strategy, _) = registry
        .strategy("snapshot", &json!({"snapshots": 4}))
        .unwrap();
    let factor = |step| {
        let p = Progress {
            phase: 0,
            step,
            steps_in_phase: 32,
            epoch: 0,
        };
        strategy.lr_factor(p).unwrap()
    };
    assert_eq!(factor(0), 1.0);
    assert!((factor(4) - 0.5).abs() < 1e-12);
    assert!((factor(7) - 0.5 * (1.0 + (7.0 * std::f64::consts::PI / 8.0).cos())).abs() < 1e-12);
    assert_eq!(factor(8), 1.0, "a new cycle starts at the full rate");

    let device = parse_device("cpu").unwrap();
    let data = blobs(&device);
    let cfg = TrainConfig {
        epochs: 6,
        batch_size: 30,
        lr: 0.05,
        ..TrainConfig::default()
    };
    let outcome = run(&registry, "snapshot", json!({"snapshots": 3}), &data, &cfg);
    let names: Vec<&str> = outcome.kept.iter().map(|k| k.0.as_str()).collect();
    assert_eq!(names, ["snapshot.1", "snapshot.2", "snapshot.3"]);
    assert_eq!(outcome.result.phases[0].members, 3);

    // The ensemble's held-out loss and accuracy, from the snapshots by hand.
    let (model, _) = registry.model("mlp", &json!({"hidden": [16]})).unwrap();
    let trainer = ModelRunner::new(&model, &data, &device).unwrap();
    let (x, y) = data.valid.range(0, data.valid.len);
    let Targets::Classes(labels) = y else {
        panic!("classes expected")
    };
    let probabilities: Vec<Tensor<B, 2>> = outcome
        .kept
        .iter()
        .map(|(_, _, flat)| {
            let values = split_flat(&trainer.specs, flat).unwrap();
            let module = ParamStore::new(&trainer.specs, &values, &device).unwrap();
            let out = trainer.forward(module.tensors(&trainer.specs, true), x.clone(), false);
            softmax(out.unwrap(), 1)
        })
        .collect();
    let n = data.valid.len;
    let picked = |p: Tensor<B, 2>| -> Vec<f32> {
        p.gather(1, labels.clone().reshape([n, 1]))
            .reshape([n])
            .into_data()
            .to_vec()
            .unwrap()
    };
    let mean = probabilities.iter().cloned().reduce(|a, b| a + b).unwrap() / 3.0;
    let loss = |p: Vec<f32>| p.iter().map(|v| -(*v as f64).ln()).sum::<f64>() / n as f64;
    let expected = loss(picked(mean.clone()));
    let phase = &outcome.result.phases[0];
    assert!(
        (phase.final_valid_loss - expected).abs() < 1e-4,
        "{} vs {expected}",
        phase.final_valid_loss
    );
    let last = loss(picked(probabilities[2].clone()));
    assert!(
        (last - expected).abs() > 1e-4,
        "the ensemble differs from its last member"
    );
    let predicted: Vec<i64> = mean
        .argmax(1)
        .reshape([n])
        .into_data()
        .convert::<i64>()
        .to_vec()
        .unwrap();
    let truth: Vec<i64> = labels.into_data().convert::<i64>().to_vec().unwrap();
    let accuracy = predicted.iter().zip(&truth).filter(|(a, b)| a == b).count() as f64 / n as f64;
    assert_eq!(phase.final_valid_accuracy, Some(accuracy));
}

#[test]
fn recomputed_batch_norm_statistics_average_the_batches_equally() {
    let names = vec!["bn.weight".to_string(), "bn.bias".to_string()];
    let s = Session::new(parse_device("cpu").unwrap(), names);
    let device = s.device().clone();
    let (gamma, beta) = (
        Tensor::<B, 1>::ones([3], &device),
        Tensor::<B, 1>::zeros([3], &device),
    );
    let forward = |x: &Tensor<B, 2>| {
        s.reset(vec![], true);
        let raw = s.ops();
        let ops = Ops::new(&raw);
        let g = ops.tensor(s.insert(DynTensor::R1(gamma.clone())));
        let b = ops.tensor(s.insert(DynTensor::R1(beta.clone())));
        s.mark_params(2);
        let x = ops.tensor(s.insert(DynTensor::R2(x.clone())));
        let _ = ops.batch_norm(x, g, b, 0.1, 1e-5);
        assert_eq!(s.take_error(), None);
    };
    let batches: Vec<Tensor<B, 2>> = (0..3)
        .map(|k| {
            Tensor::random(
                [8, 3],
                Distribution::Normal(k as f64, 1.0 + k as f64),
                &device,
            )
        })
        .collect();
    forward(&batches[0]); // statistics from training, to be replaced
    s.reset_state();
    s.set_stats_mode(StatsMode::Cumulative);
    batches.iter().for_each(&forward);
    s.set_stats_mode(StatsMode::Moving);
    let all = Tensor::cat(batches.clone(), 0);
    let expected_mean = all.mean_dim(0).reshape([3]);
    let expected_var = batches
        .iter()
        .map(|b| b.clone().var(0).reshape([3])) // unbiased, per batch
        .reduce(|a, b| a + b)
        .unwrap()
        / 3.0;
    let state = s.state();
    let get = |i: usize| TensorData::new(state[i].2.clone(), [3]);
    get(0).assert_approx_eq::<f32>(&expected_mean.into_data(), Tolerance::absolute(1e-5));
    get(1).assert_approx_eq::<f32>(&expected_var.into_data(), Tolerance::absolute(1e-5));
}

#[test]
fn swa_on_a_batch_norm_model_recomputes_its_statistics_for_the_average() {
    let registry = pn_tests::registry(&["swa", "resnet"]);
    let device = parse_device("cpu").unwrap();
    let data = blobs_as_images(&device);
    let (model, _) = registry.model("resnet", &json!({})).unwrap();
    let (mut strategy, _) = registry.strategy("swa", &json!({"start": 0.0})).unwrap();
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 12,
        lr: 0.01,
        ..TrainConfig::default()
    };
    let outcome = train::run(&mut strategy, &model, &data, &cfg, 2, &device, &mut Silent);
    assert_eq!(
        outcome.result.status,
        Status::Completed,
        "{:?}",
        outcome.result.message
    );
    assert!(!outcome.result_state.is_empty());

    // The saved statistics are those of the averaged parameters, from one pass over the
    // training split (recomputed here on a fresh trainer, which needs one training pass to
    // learn which layers have statistics).
    let trainer = ModelRunner::new(&model, &data, &device).unwrap();
    let average = outcome.result_values.clone().unwrap();
    let module = ParamStore::new(&trainer.specs, &average, &device).unwrap();
    let (x, _) = data.train.range(0, 12);
    trainer
        .forward(module.tensors(&trainer.specs, true), x, true)
        .unwrap();
    trainer
        .recompute_norm_stats(&module, &data.train, 12)
        .unwrap();
    let expected = trainer.session.state();
    assert_eq!(expected.len(), outcome.result_state.len());
    for ((name, _, want), (got_name, _, got)) in expected.iter().zip(&outcome.result_state) {
        assert_eq!(name, got_name);
        for (a, b) in want.iter().zip(got) {
            assert!(
                (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                "{name}: {a} vs {b}"
            );
        }
    }
}

/// 3x8x8 images, each a blob's two coordinates painted on two channels.
fn blobs_as_images(device: &Device) -> Data {
    let mut splits = blobs_splits();
    for split in [&mut splits.train, &mut splits.valid] {
        let points = split.inputs.clone();
        split.inputs = points
            .chunks(2)
            .flat_map(|p| {
                (0..3 * 64).map(move |i| match i / 64 {
                    0 => p[0],
                    1 => p[1],
                    _ => 0.0,
                })
            })
            .collect::<Vec<f32>>()
            .into();
    }
    splits.input_shape = vec![3, 8, 8].into();
    Data::upload(splits, device).unwrap()
}
