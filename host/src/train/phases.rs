//! The phase loop: one run = one strategy x model x data set x seed.
//!
//! For each phase the strategy chooses the start (θ0 again, a fresh draw, or continue) and
//! whether the optimizer keeps its state; `begin_phase` may write the starting parameters. The
//! host trains for the configured epochs, evaluates the held-out split every epoch, and asks
//! the strategy for the phase's result (the parameters as trained, an average, or an
//! ensemble). Every phase sees the same sequence of batches, so differences between phases
//! come from the start and the strategy only. The run's result is the phase the strategy
//! selects.

use std::time::Instant;

use abi_stable::std_types::RSlice;
use burn::tensor::backend::Backend;
use pn_plugin_api::abi::{ModelBox, OptimizerState, StrategyBox};
use pn_plugin_api::{PhaseStart, PhaseSummary, Progress};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::device::{Device, B};
use crate::error::Error;
use crate::plugin::registry::phases_of;
use crate::train::config::{TrainConfig, MAX_TRAJECTORY_PARAMS};
use crate::train::data::{Data, DeviceSplit};
use crate::train::optim::Optim;
use crate::train::params::{initial_values, ParamStore, Values};
use crate::train::record::{
    FinalMetrics, Observer, Outcome, PhaseRecord, State, Status, TrajectoryPoint,
};
use crate::train::seeds::mix;
use crate::train::session::{Callback, Position};
use crate::train::step::ModelRunner;

mod epoch;

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
    let mut outcome = Outcome::default();
    let mut phase_values: Vec<(Values, State)> = vec![];
    let result = PhaseLoop::new(model, data, cfg, seed, device, started).and_then(|mut run| {
        outcome.theta0 = Some(run.theta0.clone());
        let result = run.train(strategy, observer, &mut outcome, &mut phase_values);
        let passes = run.runner.session.passes();
        outcome.result.forward_passes = passes.forward;
        outcome.result.backward_passes = passes.backward;
        result
    });
    if let Err(stop) = result {
        let (status, message) = match stop {
            Error::Diverged(m) => (Status::Diverged, m),
            other => (Status::Failed, other.to_string()),
        };
        outcome.result.status = status;
        outcome.result.message = Some(message);
    }
    if let Some(p) = outcome.result.selected_phase {
        if let Some((values, state)) = phase_values.get(p as usize).cloned() {
            outcome.result_values = Some(values);
            outcome.result_state = state;
        }
    }
    let result = &mut outcome.result;
    result.final_metrics = result
        .selected_phase
        .and_then(|p| result.phases.get(p as usize))
        .map(|p| FinalMetrics {
            train_loss: p.final_train_loss,
            valid_loss: p.final_valid_loss,
            valid_accuracy: p.final_valid_accuracy,
        });
    result.wall_time_s = started.elapsed().as_secs_f64();
    outcome
}

/// The examples strategies select phases on and those the run reports: with a test split,
/// the held-out split and the test split; otherwise the held-out split divided as
/// `train.holdout` says (both the whole split without a holdout).
fn held_out(data: &Data, cfg: &TrainConfig) -> Result<(DeviceSplit, DeviceSplit), String> {
    if let Some(test) = &data.test {
        if cfg.holdout > 0.0 {
            return Err(format!(
                "train.holdout = {}: this data set has a test split, so runs select on its held-out split and report on the test split; remove train.holdout",
                cfg.holdout
            ));
        }
        return Ok((data.valid.clone(), test.clone()));
    }
    let n = data.valid.len;
    if cfg.holdout == 0.0 {
        return Ok((data.valid.clone(), data.valid.clone()));
    }
    let count = (n as f64 * cfg.holdout).round() as usize;
    if count == 0 || count >= n {
        return Err(format!(
            "train.holdout = {} keeps {count} of the {n} held-out examples for selection: both parts need at least one",
            cfg.holdout
        ));
    }
    Ok(data.valid.divide(count))
}

/// Everything the phase loop needs, fixed for the run.
struct PhaseLoop<'a> {
    runner: ModelRunner<'a>,
    data: &'a Data,
    /// The held-out examples strategies select phases on.
    select: DeviceSplit,
    /// The held-out examples the run reports (the same as `select` without `train.holdout`).
    report: DeviceSplit,
    cfg: &'a TrainConfig,
    seed: u64,
    device: &'a Device,
    started: Instant,
    theta0: Values,
    image_shape: Option<[usize; 3]>,
    steps_per_epoch: u64,
}

/// The parameters and optimizer of the phase in progress.
struct Training {
    module: ParamStore<B>,
    optim: Optim,
}

impl<'a> PhaseLoop<'a> {
    fn new(
        model: &'a ModelBox,
        data: &'a Data,
        cfg: &'a TrainConfig,
        seed: u64,
        device: &'a Device,
        started: Instant,
    ) -> Result<Self, Error> {
        cfg.validate()?;
        B::seed(device, seed);
        let runner = ModelRunner::new(model, data, device)?;
        let theta0 = initial_values(&runner.specs, seed)?;
        let image_shape = match (&cfg.augment, &data.input_shape[..]) {
            (None, _) => None,
            (Some(_), &[c, h, w]) => Some([c, h, w]),
            (Some(_), other) => {
                return Err(Error::Message(format!(
                    "train.augment needs image inputs [channels, height, width], got {other:?}"
                )))
            }
        };
        let numel: usize = runner.specs.iter().map(|s| s.numel()).sum();
        if cfg.record_every > 0 && numel > MAX_TRAJECTORY_PARAMS {
            return Err(Error::Message(format!(
                "train.record_every: the model has {numel} parameters; trajectories are recorded for at most {MAX_TRAJECTORY_PARAMS}"
            )));
        }
        let (select, report) = held_out(data, cfg)?;
        runner.session.set_position(Position {
            seed,
            phase: 0,
            step: 0,
            lr: f64::NAN,
        });
        Ok(Self {
            steps_per_epoch: match cfg.max_batches {
                0 => data.train.len.div_ceil(cfg.batch_size),
                m => data.train.len.div_ceil(cfg.batch_size).min(m),
            } as u64,
            runner,
            data,
            select,
            report,
            cfg,
            seed,
            device,
            started,
            theta0,
            image_shape,
        })
    }

    fn train(
        &mut self,
        strategy: &mut StrategyBox,
        observer: &mut dyn Observer,
        outcome: &mut Outcome,
        phase_values: &mut Vec<(Values, State)>,
    ) -> Result<(), Error> {
        let specs = &self.runner.specs;
        outcome.params = specs
            .iter()
            .map(|s| (s.name.to_string(), s.shape.to_vec()))
            .collect();
        let phases = phases_of(strategy)?;
        let steps_total = self.steps_in_phase() * u64::from(phases);
        let mut summaries: Vec<PhaseSummary> = vec![];
        let mut training: Option<Training> = None;
        for phase in 0..phases {
            let (start, mut t) = self.start_phase(strategy, phase, training.take())?;
            let mut record = PhaseRecord {
                start: start_name(start).into(),
                epochs: vec![],
                final_train_loss: f64::NAN,
                final_valid_loss: f64::NAN,
                final_valid_accuracy: None,
                final_select_loss: None,
                final_select_accuracy: None,
                steps: 0,
                members: 1,
            };
            self.record_point(outcome, phase, 0, &t.module);
            // The same batch order in every phase (see the module docs).
            let mut rng = StdRng::seed_from_u64(mix(self.seed, 0xBA7C4));
            let mut order: Vec<i64> = (0..self.data.train.len as i64).collect();
            for epoch in 0..self.cfg.epochs {
                order.shuffle(&mut rng);
                let progress = Progress {
                    phase,
                    step: u64::from(epoch) * self.steps_per_epoch,
                    steps_in_phase: self.steps_in_phase(),
                    epoch,
                };
                let metrics = self.train_epoch(
                    strategy,
                    &mut t,
                    &order,
                    progress,
                    outcome,
                    observer,
                    steps_total,
                )?;
                observer.epoch(phase, &metrics);
                record.epochs.push(metrics);
            }
            let steps = self.steps_in_phase();
            if self.cfg.record_every > 0 && !steps.is_multiple_of(self.cfg.record_every) {
                self.record_point(outcome, phase, steps, &t.module);
            }
            record.steps = steps;
            summaries.push(self.finish_phase(strategy, phase, &mut t, &mut record)?);
            phase_values.push((t.module.values(specs), self.runner.session.state()));
            outcome.result.phases.push(record);
            outcome.kept = self
                .runner
                .session
                .kept()
                .into_iter()
                .map(|(name, t)| (name, t.dims(), t.to_values()))
                .collect();
            training = Some(t);
        }
        let selected = strategy
            .select_result(RSlice::from_slice(&summaries))
            .into_result()
            .map_err(|e| e.to_string())?;
        if selected >= phases {
            return Err(Error::Message(format!(
                "strategy selected phase {selected} of {phases}"
            )));
        }
        outcome.result.selected_phase = Some(selected);
        Ok(())
    }

    fn steps_in_phase(&self) -> u64 {
        self.steps_per_epoch * u64::from(self.cfg.epochs)
    }

    /// Parameters and optimizer for phase `phase`, as the strategy asks, after its
    /// `begin_phase` (and the parameter writes it made there).
    fn start_phase(
        &self,
        strategy: &mut StrategyBox,
        phase: u32,
        previous: Option<Training>,
    ) -> Result<(PhaseStart, Training), Error> {
        let (specs, session) = (&self.runner.specs, &self.runner.session);
        let err = |e: abi_stable::std_types::RString| e.to_string();
        let (start, optimizer) = match phase {
            0 => (PhaseStart::FreshInit, OptimizerState::Reset),
            _ => (
                strategy.phase_start(phase).into_result().map_err(err)?,
                strategy
                    .optimizer_at_phase_start(phase)
                    .into_result()
                    .map_err(err)?,
            ),
        };
        let values = |previous: Option<&Training>| -> Result<Values, String> {
            Ok(match start {
                PhaseStart::SameInit => self.theta0.clone(),
                PhaseStart::FreshInit if phase == 0 => self.theta0.clone(),
                PhaseStart::FreshInit => initial_values(specs, mix(self.seed, u64::from(phase)))?,
                PhaseStart::Continue => previous
                    .map(|t| t.module.values(specs))
                    .unwrap_or_else(|| self.theta0.clone()),
            })
        };
        if start != PhaseStart::Continue {
            session.reset_state();
        }
        let mut t = match (previous, optimizer) {
            // Continuing with the optimizer's state: the parameters already are the start.
            (Some(t), OptimizerState::Keep) if start == PhaseStart::Continue => t,
            // Same parameter identities, so the optimizer's state carries over.
            (Some(mut t), OptimizerState::Keep) => {
                t.module.assign(specs, &values(None)?, self.device)?;
                t
            }
            (previous, _) => Training {
                module: ParamStore::new(specs, &values(previous.as_ref())?, self.device)?,
                optim: Optim::new(self.cfg),
            },
        };
        session.set_position(Position {
            phase,
            step: 0,
            lr: f64::NAN,
            ..session.position()
        });
        let params = t.module.tensors(specs, true);
        self.runner.callback(
            "strategy begin_phase",
            Callback::BeginPhase,
            params,
            |ops| strategy.begin_phase(ops, phase),
        )?;
        self.runner.apply_writes(&mut t.module, &mut t.optim)?;
        Ok((start, t))
    }

    fn eval_chunk(&self) -> usize {
        self.cfg.batch_size.max(1024)
    }

    /// The phase's result (the strategy's `phase_result`), its final metrics in `record`, and
    /// the strategy's `end_phase`. Parameters that are no longer finite end the run as diverged.
    fn finish_phase(
        &self,
        strategy: &mut StrategyBox,
        phase: u32,
        t: &mut Training,
        record: &mut PhaseRecord,
    ) -> Result<PhaseSummary, Error> {
        let (runner, specs, chunk) = (&self.runner, &self.runner.specs, self.eval_chunk());
        // Outside a step: no learning rate (the position keeps the phase's last step).
        let session = &runner.session;
        session.set_position(Position {
            lr: f64::NAN,
            ..session.position()
        });
        let params = t.module.tensors(specs, true);
        let kept = runner.callback(
            "strategy phase_result",
            Callback::PhaseResult,
            params,
            |ops| strategy.phase_result(ops, phase),
        )?;
        let trained = std::mem::replace(&mut t.module, ParamStore::empty());
        let mut members = runner.members(trained, &kept, self.cfg.batch_size)?;
        let (train_loss, _) = runner.evaluate_members(&members, &self.data.train, chunk)?;
        let (valid_loss, valid_accuracy) =
            runner.evaluate_members(&members, &self.report, chunk)?;
        let selection = if self.cfg.holdout > 0.0 || self.data.test.is_some() {
            let (loss, accuracy) = runner.evaluate_members(&members, &self.select, chunk)?;
            record.final_select_loss = Some(loss);
            record.final_select_accuracy = accuracy;
            (loss, accuracy)
        } else {
            (valid_loss, valid_accuracy)
        };
        // The last member stands for the phase (its parameters are saved as the run's model;
        // an ensemble's members are among the kept tensors).
        let last = members
            .pop()
            .ok_or("a phase without a result".to_string())?;
        runner.session.set_norm_stats(last.stats);
        t.module = last.module;
        if !t.module.all_finite() {
            return Err(Error::Diverged(format!(
                "parameters became NaN or infinite in phase {} (try a smaller learning rate or weight decay)",
                phase + 1
            )));
        }
        record.members = kept.len().max(1) as u32;
        record.final_train_loss = train_loss;
        record.final_valid_loss = valid_loss;
        record.final_valid_accuracy = valid_accuracy;
        let params = t.module.tensors(specs, true);
        runner.callback("strategy end_phase", Callback::EndPhase, params, |ops| {
            strategy.end_phase(ops, phase)
        })?;
        Ok(PhaseSummary {
            train_loss,
            valid_loss: selection.0,
            valid_accuracy: selection.1.unwrap_or(f64::NAN),
        })
    }

    /// Records the parameters into the trajectory, when asked for.
    fn record_point(&self, outcome: &mut Outcome, phase: u32, step: u64, module: &ParamStore<B>) {
        if self.cfg.record_every > 0 {
            outcome.trajectory.push(TrajectoryPoint {
                phase,
                step,
                values: module.values(&self.runner.specs).concat(),
            });
        }
    }
}
