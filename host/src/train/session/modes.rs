//! What a session is doing, as the host sets it between plugin calls: the callback in
//! progress ([`Callback`]) and training's position ([`Position`]), how batch norm treats its
//! statistics ([`StatsMode`]), the parameter writes a callback asked for ([`ParamWrite`]), the
//! passes counted ([`Passes`]) and what `grad` does with its results ([`GradReplay`]).

use burn::tensor::Tensor;
use pn_plugin_api::abi::OptimizerState;

use crate::device::B;
use crate::train::dyn_tensor::DynTensor;

/// How training-mode forwards treat batch-norm running statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsMode {
    /// Moving averages with the layers' momentum (training).
    Moving,
    /// Plain averages over the batches seen since [`super::Session::reset_state`] (recomputing them
    /// for parameters that did not come out of training).
    Cumulative,
    /// Left alone (a strategy's second evaluation of the loss in a step).
    Frozen,
}

/// The plugin callback in progress, which decides what it may do. Its number salts the
/// callback's random stream, so each callback draws its own numbers at a step (`after_step` and
/// `end_phase` were added with numbers of their own, so that `begin_phase` and `phase_result`
/// draw what they always drew).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Callback {
    /// No strategy callback (model forwards, evaluation, tests).
    None = 0,
    /// `begin_phase`: parameters may be written.
    BeginPhase = 1,
    /// `prepare_batch`: the batch may be read and replaced.
    PrepareBatch = 2,
    /// `objective`: gradients and second evaluations of the loss.
    Objective = 3,
    /// `phase_result`: read only.
    PhaseResult = 4,
    /// `after_step`: parameters may be written.
    AfterStep = 5,
    /// `end_phase`: read only.
    EndPhase = 6,
}

/// Where training is, as strategies see it through the session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    /// The run's seed.
    pub seed: u64,
    /// Phase, from 0.
    pub phase: u32,
    /// Step within the phase (the step about to be taken, or just taken in `after_step`).
    pub step: u64,
    /// The step's learning rate (NaN outside a step).
    pub lr: f64,
}

/// A parameter write a strategy asked for, applied when its callback returns.
pub struct ParamWrite {
    /// Parameter indices, in spec order.
    pub indices: Vec<usize>,
    /// Their new values, flat, in the same order.
    pub values: Tensor<B, 1>,
    /// What happens to the optimizer's state.
    pub optimizer: OptimizerState,
}

/// Forward and backward passes a run's training steps took (evaluation not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Passes {
    /// Forward passes of the model.
    pub forward: u64,
    /// Backward passes.
    pub backward: u64,
}

/// What `Ops::grad` does with the gradients it computes. A gradient check holds them fixed: it
/// records them at θ and hands the same values back at θ ± εv, because `grad`'s results are
/// detached constants of the objective (SAM's ascent direction).
#[derive(Default)]
pub enum GradReplay {
    /// Compute every gradient (training).
    #[default]
    Off,
    /// Compute them and keep a copy, in call order.
    Record(Vec<DynTensor>),
    /// Return the recorded ones again, in call order.
    Replay(std::collections::VecDeque<DynTensor>),
}
