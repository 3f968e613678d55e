//! `pn-host bench`: milliseconds per training step through the plugin boundary (baseline and
//! full persistence) against the same model written directly in Burn.
//!
//! Each figure is the best of several timed blocks after a warm-up, on synthetic data of the
//! workload's shape. Only the step is timed: forward, loss, objective, backward, optimizer.
//! With `--pytorch PYTHON`, the PyTorch eager reference ([`pytorch`]) takes its turn after
//! pn's blocks in every round, and the report gives PyTorch's ms ÷ pn's ms per strategy.

mod direct;
pub mod pytorch;

use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use pn_plugin_api::abi::{ModelBox, StrategyBox};
use pn_plugin_api::{DataSplit, DataSplits, LossKind, Progress};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::device::{Device, B};
use crate::plugin::registry::{phases_of, Registry};
use crate::train::data::{Data, Targets};
use crate::train::dyn_tensor::read_backs;
use crate::train::optim::Optim;
use crate::train::params::{initial_values, ParamStore};
use crate::train::session::Callback;
use crate::train::{ModelRunner, StepAt, TrainConfig};

/// The network of a benchmarked workload.
pub enum Net {
    /// The `mlp` plugin: hidden widths and `sum` (student) or `linear` output.
    Mlp(Vec<usize>, &'static str),
    /// The `lenet5` plugin.
    Lenet5,
    /// The `resnet` plugin's ResNet-20 (batch norm).
    Resnet20,
}

/// One benchmarked workload.
pub struct Case {
    /// Label in the report.
    pub name: &'static str,
    /// The network.
    pub net: Net,
    /// Shape of one example.
    pub input_shape: Vec<usize>,
    /// Classes (cross-entropy) or 0 for one regression output.
    pub classes: usize,
    /// Examples per step.
    pub batch: usize,
    /// Timed steps per block are `--steps` divided by this (for slow models).
    pub slowness: usize,
}

/// The workloads: the teacher-student student, LeNet-300-100 (the fully connected MNIST
/// network, 266k parameters), the convolutional LeNet-5 (62k parameters) and ResNet-20 with
/// batch norm on CIFAR-sized inputs (272k parameters).
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "teacher-student mlp (d=k=10, batch 200)",
            net: Net::Mlp(vec![10], "sum"),
            input_shape: vec![10],
            classes: 0,
            batch: 200,
            slowness: 1,
        },
        Case {
            name: "lenet-300-100 mlp (28x28, batch 64)",
            net: Net::Mlp(vec![300, 100], "linear"),
            input_shape: vec![784],
            classes: 10,
            batch: 64,
            slowness: 1,
        },
        Case {
            name: "lenet-5 conv (28x28, batch 64)",
            net: Net::Lenet5,
            input_shape: vec![1, 28, 28],
            classes: 10,
            batch: 64,
            slowness: 10,
        },
        Case {
            name: "resnet-20 (3x32x32, batch 128)",
            net: Net::Resnet20,
            input_shape: vec![3, 32, 32],
            classes: 10,
            batch: 128,
            slowness: 100,
        },
    ]
}

/// Milliseconds per step of one case.
pub struct Figures {
    /// The same model written directly in Burn with the host's kernels (no plugin boundary).
    pub direct: f64,
    /// Through the plugin boundary, per strategy (in the order asked for).
    pub strategies: Vec<(String, f64)>,
    /// Reads from the device to the host per step, per strategy (in the same order).
    pub reads: Vec<f64>,
    /// The PyTorch reference's ms per step, per strategy (in the same order; `None` without a
    /// reference or for a strategy it does not implement).
    pub pytorch: Vec<Option<f64>>,
}

/// The strategies `pn-host bench` times by default: plain training and the persistence
/// penalty.
pub const DEFAULT_STRATEGIES: [&str; 2] = ["baseline", "full_persistent"];

fn synthetic(case: &Case, device: &Device) -> Result<Data, String> {
    let mut rng = StdRng::seed_from_u64(7);
    let n = case.batch * 4;
    let per: usize = case.input_shape.iter().product();
    let inputs: Vec<f32> = (0..n * per).map(|_| rng.random::<f32>() - 0.5).collect();
    let (targets, outputs, loss) = if case.classes > 0 {
        (
            (0..n)
                .map(|_| rng.random_range(0..case.classes) as f32)
                .collect::<Vec<f32>>(),
            case.classes,
            LossKind::CrossEntropy,
        )
    } else {
        (
            (0..n).map(|_| rng.random::<f32>()).collect(),
            1,
            LossKind::MeanSquaredError,
        )
    };
    let split = DataSplit {
        inputs: inputs.into(),
        targets: targets.into(),
        len: n,
    };
    Data::upload(
        DataSplits {
            input_shape: case.input_shape.clone().into(),
            outputs,
            loss,
            train: split.clone(),
            valid: split,
        },
        device,
    )
}

/// Learning rate of every stepper: small enough that repeated steps on one batch stay in the
/// normal floating-point range (denormals would slow the CPU kernels several-fold).
const LR: f64 = 1e-3;

/// A closure that takes one training step.
type Stepper<'a> = Box<dyn FnMut() -> Result<(), String> + 'a>;

/// A closure that takes a block of as many training steps as it is given.
type Block<'a> = Box<dyn FnMut(usize) -> Result<(), String> + 'a>;

/// Blocks of a stepper's steps.
fn blocks(mut step: Stepper<'_>) -> Block<'_> {
    Box::new(move |steps| (0..steps).try_for_each(|_| step()))
}

/// Milliseconds per step of each block, and the host's reads from the device per step:
/// blocks of `steps` steps, taken in turns over several rounds so that warm-up and machine
/// noise hit every one alike; the best block counts.
fn measure(
    runners: &mut [Block<'_>],
    steps: usize,
    device: &Device,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let mut best = vec![f64::INFINITY; runners.len()];
    let mut reads = vec![0.0; runners.len()];
    for round in 0..6 {
        for (i, block) in runners.iter_mut().enumerate() {
            let reads_before = read_backs();
            let start = Instant::now();
            block(steps)?;
            B::sync(device).map_err(|e| format!("{e:?}"))?;
            let ms = start.elapsed().as_secs_f64() * 1000.0 / steps as f64;
            reads[i] = (read_backs() - reads_before) as f64 / steps as f64;
            if round > 0 {
                best[i] = best[i].min(ms);
            }
        }
    }
    Ok((best, reads))
}

fn batch(
    data: &Data,
    size: usize,
    device: &Device,
) -> (crate::train::dyn_tensor::DynTensor, Targets) {
    let idx: Vec<i64> = (0..size as i64).collect();
    data.train.batch(Tensor::<B, 1, Int>::from_data(
        TensorData::new(idx, [size]),
        device,
    ))
}

fn plugin_model(registry: &Registry, case: &Case) -> Result<ModelBox, String> {
    let built = match &case.net {
        Net::Mlp(hidden, output) => registry.model(
            "mlp",
            &json!({ "hidden": hidden, "output": output, "bias": *output != "sum" }),
        ),
        Net::Lenet5 => registry.model("lenet5", &json!({})),
        Net::Resnet20 => registry.model("resnet", &json!({ "arch": "resnet20" })),
    };
    built.map(|(model, _)| model)
}

/// Steps through the plugin boundary with `strategy` (in its second phase when it has more
/// than one, so that a persistence penalty is active).
fn plugin_stepper<'a>(
    registry: &Registry,
    model: &'a ModelBox,
    case: &Case,
    data: &'a Data,
    strategy: &str,
    device: &Device,
) -> Result<Stepper<'a>, String> {
    // A fixed σ, so that the persistence penalty is active from the second phase's first step.
    let overrides = match strategy {
        "full_persistent" | "partial_persistent" => json!({ "sigma": 1.0 }),
        _ => json!({}),
    };
    let (mut strategy, _): (StrategyBox, _) = registry.strategy(strategy, &overrides)?;
    let trainer = ModelRunner::new(model, data, device)?;
    let mut module = Some(ParamStore::new(
        &trainer.specs,
        &initial_values(&trainer.specs, 0)?,
        device,
    )?);
    let cfg = TrainConfig {
        lr: LR,
        ..TrainConfig::default()
    };
    let mut optim = Optim::new(&cfg);
    let phases = phases_of(&strategy)?;
    let mut phase = 0;
    let params = || {
        module
            .as_ref()
            .map(|m| m.tensors(&trainer.specs, true))
            .unwrap_or_default()
    };
    let mut hook = |name: &str, phase: u32| {
        let kind = match name {
            "end_phase" => Callback::EndPhase,
            _ => Callback::BeginPhase,
        };
        trainer.callback(name, kind, params(), |ops| match name {
            "end_phase" => strategy.end_phase(ops, phase),
            _ => strategy.begin_phase(ops, phase),
        })
    };
    hook("begin_phase", 0)?;
    if phases > 1 {
        hook("end_phase", 0)?;
        hook("begin_phase", 1)?;
        phase = 1;
    }
    let (x, y) = batch(data, case.batch, device);
    Ok(Box::new(move || {
        let progress = Progress {
            phase,
            step: 0,
            steps_in_phase: 1 << 40,
            epoch: 0,
        };
        let m = module.take().ok_or("an earlier step failed")?;
        let at = StepAt {
            progress,
            lr: cfg.lr,
            end_of_epoch: false,
        };
        let step_out = trainer.strategy_step(m, &mut optim, &mut strategy, (x.clone(), &y), at)?;
        module = Some(step_out.params);
        Ok(())
    }))
}

/// Benchmarks every case with `steps` timed steps per block: the direct network and each of
/// `strategies` through the plugin boundary (a multi-phase strategy in its second phase), and
/// each strategy in the PyTorch `reference` when there is one, its blocks in turn with pn's.
pub fn run(
    registry: &Registry,
    device: &Device,
    steps: usize,
    only: Option<&str>,
    strategies: &[&str],
    mut reference: Option<&mut pytorch::Reference>,
) -> Result<Vec<(String, Figures)>, String> {
    let chosen: Vec<Case> = cases()
        .into_iter()
        .filter(|case| only.is_none_or(|o| case.name.contains(o)))
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = cases().iter().map(|c| c.name).collect();
        return Err(format!(
            "--only `{}` matches no workload: {}",
            only.unwrap_or_default(),
            names.join("; ")
        ));
    }
    chosen
        .into_iter()
        .map(|case| {
            let data = synthetic(&case, device)?;
            let models = strategies
                .iter()
                .map(|_| plugin_model(registry, &case))
                .collect::<Result<Vec<_>, _>>()?;
            let mut in_reference = vec![None; strategies.len()];
            if let Some(reference) = reference.as_deref_mut() {
                for (slot, strategy) in in_reference.iter_mut().zip(strategies) {
                    *slot = reference.setup(case.name, strategy)?;
                }
            }
            let cell = reference.as_deref_mut().map(std::cell::RefCell::new);
            let mut runners = vec![blocks(direct::direct_case(&case, &data, device))];
            for (strategy, model) in strategies.iter().zip(&models) {
                runners.push(blocks(plugin_stepper(
                    registry, model, &case, &data, strategy, device,
                )?));
            }
            let pn_runners = runners.len();
            if let Some(cell) = &cell {
                for index in in_reference.iter().flatten().copied() {
                    runners.push(Box::new(move |steps| cell.borrow_mut().time(index, steps)));
                }
            }
            let (ms, reads) = measure(&mut runners, (steps / case.slowness).max(1), device)?;
            let mut torch_ms = ms[pn_runners..].iter().copied();
            let pytorch = in_reference
                .iter()
                .map(|i| i.and_then(|_| torch_ms.next()))
                .collect();
            Ok((
                case.name.to_string(),
                Figures {
                    direct: ms[0],
                    strategies: strategies
                        .iter()
                        .map(|s| s.to_string())
                        .zip(ms[1..].iter().copied())
                        .collect(),
                    reads: reads[1..pn_runners].to_vec(),
                    pytorch,
                },
            ))
        })
        .collect()
}

/// The report printed by `pn-host bench`: ms per step, with a PyTorch reference its ms and
/// PyTorch's ms ÷ pn's (above 1: pn is faster), the first strategy's cost over the direct network (the
/// boundary, when it is `baseline`), and the host's reads from the device per step of each
/// strategy (on a GPU each waits for the device).
pub fn format(results: &[(String, Figures)]) -> String {
    let Some((_, first)) = results.first() else {
        return String::new();
    };
    let with_reference = results
        .iter()
        .any(|(_, f)| f.pytorch.iter().any(Option::is_some));
    let mut out = format!("{:<42} {:>12}", "workload (ms/step)", "direct");
    for (name, _) in &first.strategies {
        out += &format!(" {name:>15}");
        if with_reference {
            out += &format!(" {:>15} {:>10}", "PyTorch", "PyTorch/pn");
        }
    }
    out += &format!(" {:>10}\n", "vs direct");
    for (name, f) in results {
        out += &format!("{name:<42} {:>12.4}", f.direct);
        for ((_, ms), torch) in f.strategies.iter().zip(&f.pytorch) {
            out += &format!(" {ms:>15.4}");
            if with_reference {
                out += &match torch {
                    Some(t) => format!(" {t:>15.4} {:>10.2}", t / ms),
                    None => format!(" {:>15} {:>10}", "-", "-"),
                };
            }
        }
        let first = f.strategies.first().map_or(f64::NAN, |s| s.1);
        out += &format!(" {:>9.1}%\n", 100.0 * (first / f.direct - 1.0));
    }
    for (name, f) in results {
        let reads: Vec<String> = f
            .strategies
            .iter()
            .zip(&f.reads)
            .map(|((s, _), r)| format!("{s} {r}"))
            .collect();
        out += &format!(
            "{name}: reads from the device per step: {}\n",
            reads.join(", ")
        );
    }
    out
}
