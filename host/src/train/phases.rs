//! The phase loop: one run = one strategy x model x data set x seed.
//!
//! For each phase the strategy chooses the start (θ0 again, a fresh draw, or continue), the
//! host trains with a fresh optimizer for the configured epochs, evaluates the held-out split
//! every epoch, and the strategy may record anchors at the phase's end. Every phase sees the
//! same sequence of batches, so differences between phases come from the start and the
//! objective only. The result is the phase the strategy selects.

use std::time::Instant;

use abi_stable::std_types::RSlice;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use pn_plugin_api::abi::{ModelBox, StrategyBox};
use pn_plugin_api::{PhaseStart, PhaseSummary, Progress};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::device::{Device, B};
use crate::train::augment::Prefetch;
use crate::train::config::{TrainConfig, MAX_TRAJECTORY_PARAMS};
use crate::train::data::{Data, Targets};
use crate::train::dyn_tensor::DynTensor;
use crate::train::optim::Optim;
use crate::train::params::{initial_values, ParamStore, Values};
use crate::train::record::*;
use crate::train::seeds::mix;
use crate::train::step::*;

fn start_name(start: PhaseStart) -> &'static str {
    match start {
        PhaseStart::SameInit => "same_init",
        PhaseStart::FreshInit => "fresh_init",
        PhaseStart::Continue => "continue",
    }
}

/// Trains `model` on `data` with `strategy` from `seed`.
pub fn run(
    strategy: &mut StrategyBox,
    model: &ModelBox,
    data: &Data,
    cfg: &TrainConfig,
    seed: u64,
    device: &Device,
    observer: &mut dyn Observer,
) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome {
        status: Status::Completed,
        message: None,
        phases: vec![],
        selected_phase: None,
        steps: 0,
        examples: 0,
        wall_time_s: 0.0,
        result_values: None,
        result_state: vec![],
        kept: vec![],
        params: vec![],
        trajectory: vec![],
    };
    let mut phase_values: Vec<(Values, State)> = vec![];
    let result = train_phases(
        strategy,
        model,
        data,
        cfg,
        seed,
        device,
        observer,
        &mut outcome,
        &mut phase_values,
        started,
    );
    match result {
        Ok(()) => {}
        Err(Stop::Diverged(m)) => {
            outcome.status = Status::Diverged;
            outcome.message = Some(m);
        }
        Err(Stop::Failed(m)) => {
            outcome.status = Status::Failed;
            outcome.message = Some(m);
        }
    }
    if let Some(p) = outcome.selected_phase {
        if let Some((values, state)) = phase_values.get(p as usize).cloned() {
            outcome.result_values = Some(values);
            outcome.result_state = state;
        }
    }
    outcome.wall_time_s = started.elapsed().as_secs_f64();
    outcome
}

enum Stop {
    Diverged(String),
    Failed(String),
}

impl From<String> for Stop {
    fn from(m: String) -> Self {
        Stop::Failed(m)
    }
}

#[allow(clippy::too_many_arguments)]
fn train_phases(
    strategy: &mut StrategyBox,
    model: &ModelBox,
    data: &Data,
    cfg: &TrainConfig,
    seed: u64,
    device: &Device,
    observer: &mut dyn Observer,
    outcome: &mut Outcome,
    phase_values: &mut Vec<(Values, State)>,
    started: Instant,
) -> Result<(), Stop> {
    cfg.validate()?;
    B::seed(device, seed);
    let trainer = ModelRunner::new(model, data, device)?;
    let specs = &trainer.specs;
    outcome.params = specs
        .iter()
        .map(|s| (s.name.to_string(), s.shape.to_vec()))
        .collect();
    let session = &trainer.session;
    let phases = strategy.phases().into_result().map_err(|e| e.to_string())?;
    if phases == 0 {
        return Err(Stop::Failed("strategy declares 0 phases".into()));
    }
    let theta0 = initial_values(specs, seed)?;
    let image_shape = match (&cfg.augment, &data.input_shape[..]) {
        (None, _) => None,
        (Some(_), &[c, h, w]) => Some([c, h, w]),
        (Some(_), other) => {
            return Err(Stop::Failed(format!(
                "train.augment needs image inputs [channels, height, width], got {other:?}"
            )))
        }
    };
    let numel: usize = specs.iter().map(|s| s.numel()).sum();
    if cfg.record_every > 0 && numel > MAX_TRAJECTORY_PARAMS {
        return Err(Stop::Failed(format!(
            "train.record_every: the model has {numel} parameters; trajectories are recorded for at most {MAX_TRAJECTORY_PARAMS}"
        )));
    }
    let snapshot = |outcome: &mut Outcome, phase: u32, step: u64, module: &ParamStore<B>| {
        if cfg.record_every > 0 {
            let values = module.values(specs).concat();
            outcome.trajectory.push(TrajectoryPoint {
                phase,
                step,
                values,
            });
        }
    };
    let n = data.train.len;
    let steps_per_epoch = n.div_ceil(cfg.batch_size) as u64;
    let steps_in_phase = steps_per_epoch * u64::from(cfg.epochs);
    let steps_total = steps_in_phase * u64::from(phases);
    let chunk = cfg.batch_size.max(1024);
    let mut current = theta0.clone();
    let mut summaries: Vec<PhaseSummary> = vec![];

    for phase in 0..phases {
        let start = if phase == 0 {
            PhaseStart::FreshInit
        } else {
            strategy
                .phase_start(phase)
                .into_result()
                .map_err(|e| e.to_string())?
        };
        let values = match start {
            PhaseStart::SameInit => theta0.clone(),
            PhaseStart::FreshInit if phase == 0 => theta0.clone(),
            PhaseStart::FreshInit => initial_values(specs, mix(seed, u64::from(phase)))?,
            PhaseStart::Continue => current.clone(),
        };
        if start != PhaseStart::Continue {
            session.reset_state();
        }
        let mut module = ParamStore::new(specs, &values, device)?;
        let mut optim = Optim::new(cfg);
        session.reset(module.tensors(specs, true), false);
        checked(
            "strategy begin_phase",
            strategy.begin_phase(session.ops(), phase),
            session,
        )?;

        // The same batch order in every phase (see the module docs).
        let mut rng = StdRng::seed_from_u64(mix(seed, 0xBA7C4));
        let mut order: Vec<i64> = (0..n as i64).collect();
        let mut record = PhaseRecord {
            start: start_name(start).into(),
            epochs: vec![],
            final_train_loss: f64::NAN,
            final_valid_loss: f64::NAN,
            final_valid_accuracy: None,
            steps: 0,
            members: 1,
        };
        let mut step = 0u64;
        snapshot(outcome, phase, step, &module);
        for epoch in 0..cfg.epochs {
            order.shuffle(&mut rng);
            let prefetch = cfg
                .augment
                .clone()
                .zip(image_shape)
                .map(|(augment, shape)| {
                    let batches = order.chunks(cfg.batch_size).map(<[i64]>::to_vec).collect();
                    let seed = mix(seed, 0xA06 + u64::from(epoch));
                    Prefetch::start(data.train_host(), shape, batches, augment, seed)
                });
            let mut loss_sum: Option<Tensor<B, 1>> = None;
            let mut correct: Option<Tensor<B, 1, Int>> = None;
            for (b, batch) in order.chunks(cfg.batch_size).enumerate() {
                let indices = Tensor::<B, 1, Int>::from_data(
                    TensorData::new(batch.to_vec(), [batch.len()]),
                    device,
                );
                let (x, y) = match (&prefetch, image_shape) {
                    (Some(p), Some([c, h, w])) => {
                        let values = p
                            .next_batch()
                            .ok_or_else(|| "the augmentation thread stopped".to_string())?;
                        let x = DynTensor::from_values(values, &[batch.len(), c, h, w], device)?;
                        (x, data.train.targets_at(indices))
                    }
                    _ => data.train.batch(indices),
                };
                let progress = Progress {
                    phase,
                    step,
                    steps_in_phase,
                    epoch,
                };
                let end_of_epoch = b as u64 + 1 == steps_per_epoch;
                let step_out = trainer.strategy_step(
                    module,
                    &mut optim,
                    strategy,
                    (x, &y),
                    progress,
                    cfg.lr,
                    end_of_epoch,
                )?;
                module = step_out.params;
                let weighted = step_out.loss * (batch.len() as f32);
                loss_sum = Some(match loss_sum {
                    Some(s) => s + weighted,
                    None => weighted,
                });
                if let Targets::Classes(labels) = &y {
                    let c = count_correct(step_out.output, labels);
                    correct = Some(match correct {
                        Some(s) => s + c,
                        None => c,
                    });
                }
                step += 1;
                if cfg.record_every > 0 && step.is_multiple_of(cfg.record_every) {
                    snapshot(outcome, phase, step, &module);
                }
                outcome.steps += 1;
                outcome.examples += batch.len() as u64;
                observer.step(phase, outcome.steps, steps_total);
            }
            let train_loss = loss_sum.map(scalar).unwrap_or(f64::NAN) / n as f64;
            if !train_loss.is_finite() {
                return Err(Stop::Diverged(format!(
                    "training loss became {train_loss} in phase {} epoch {} (try a smaller learning rate)",
                    phase + 1,
                    epoch + 1
                )));
            }
            session.track_saturation();
            let (valid_loss, valid_accuracy) = trainer.evaluate(&module, &data.valid, chunk)?;
            let saturation = session.take_saturation();
            let metrics = EpochMetrics {
                epoch: epoch + 1,
                train_loss,
                train_accuracy: correct.map(|c| int_scalar(c) / n as f64),
                valid_loss,
                valid_accuracy,
                elapsed_s: started.elapsed().as_secs_f64(),
                saturation,
            };
            observer.epoch(phase, &metrics);
            record.epochs.push(metrics);
        }
        if cfg.record_every > 0 && !step.is_multiple_of(cfg.record_every) {
            snapshot(outcome, phase, step, &module);
        }
        session.reset(module.tensors(specs, true), false);
        let kept = checked(
            "strategy phase_result",
            strategy.phase_result(session.ops(), phase),
            session,
        )?;
        let mut members = trainer.members(module, &kept, cfg.batch_size)?;
        let (train_loss, _) = trainer.evaluate_members(&members, &data.train, chunk)?;
        let (valid_loss, valid_accuracy) =
            trainer.evaluate_members(&members, &data.valid, chunk)?;
        // The last member stands for the phase (its parameters are saved as the run's model;
        // an ensemble's members are among the kept tensors).
        let last = members
            .pop()
            .ok_or("a phase without a result".to_string())?;
        session.set_norm_stats(last.stats);
        module = last.module;
        record.members = kept.len().max(1) as u32;
        record.final_train_loss = train_loss;
        record.final_valid_loss = valid_loss;
        record.final_valid_accuracy = valid_accuracy;
        record.steps = step;
        session.reset(module.tensors(specs, true), false);
        checked(
            "strategy end_phase",
            strategy.end_phase(session.ops(), phase),
            session,
        )?;
        summaries.push(PhaseSummary {
            train_loss,
            valid_loss,
            valid_accuracy: valid_accuracy.unwrap_or(f64::NAN),
        });
        current = module.values(specs);
        phase_values.push((current.clone(), session.state()));
        outcome.phases.push(record);
        outcome.kept = session
            .kept()
            .into_iter()
            .map(|(name, t)| (name, t.dims(), t.to_values()))
            .collect();
    }
    let selected = strategy
        .select_result(RSlice::from_slice(&summaries))
        .into_result()
        .map_err(|e| e.to_string())?;
    if selected >= phases {
        return Err(Stop::Failed(format!(
            "strategy selected phase {selected} of {phases}"
        )));
    }
    outcome.selected_phase = Some(selected);
    Ok(())
}
