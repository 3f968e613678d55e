//! The host side of [`pn_plugin_api::abi::HostOps`]: plugin tensor operations recorded in
//! Burn's autodiff graph on the run's device.
//!
//! A [`Session`] owns an arena of tensors. Handles carry the arena's generation, so a handle a
//! plugin kept from an earlier step is refused with a clear message instead of silently
//! reading a reused slot. Each operation runs under `catch_unwind`: a Burn panic (e.g. a shape
//! mismatch) becomes the session's error and a poisoned handle, never an abort.
//!
//! What a callback may do depends on which callback is running ([`Callback`]): parameters
//! are written only in hooks between steps, gradients and second loss evaluations happen only
//! inside a step's objective. Files: [`host_ops`] (the operations), [`layers`] (layer
//! operations and batch-norm state), [`strategy_ops`] (writes, gradients, second passes,
//! batches, random numbers), [`modes`] (the callback in progress, the position, the
//! statistics mode and what the host reads back: writes, passes).

mod host_ops;
mod layers;
mod modes;
mod strategy_ops;

pub use modes::{Callback, GradReplay, ParamWrite, Passes, Position, StatsMode};

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RSlice, RString};
use burn::tensor::Tensor;
use pn_plugin_api::abi::{HostOpsRef, HostOps_TO, ModelBox, TensorId, POISON};

use crate::device::{Device, B};
use crate::train::data::Targets;
use crate::train::dyn_tensor::DynTensor;
use crate::train::saturation::{LayerSaturation, Tracker};

type OpResult = Result<DynTensor, String>;

/// Running statistics of one batch-norm layer: index of its gamma, mean, variance, and the
/// number of batches they have seen.
#[derive(Clone)]
pub struct NormStats {
    key: usize,
    mean: Tensor<B, 1>,
    var: Tensor<B, 1>,
    batches: usize,
}

/// An arena slot: a tensor, or a parameter group that `param_group` has not concatenated
/// (its members, in order): it is concatenated when an operation first reads it as a tensor,
/// while `squared_distances` reads the members themselves. GPU builds' tensors are large
/// (`dispatch`); boxing them would cost an allocation per tensor of every step.
#[allow(clippy::large_enum_variant)]
enum Slot {
    Tensor(DynTensor),
    Group(Vec<DynTensor>),
}

/// The model plugin a session runs forwards of, and its number of outputs.
struct ModelRef<'m> {
    model: &'m ModelBox,
    outputs: usize,
}

/// Tensor operations for one run: the arena, the current parameters and the kept tensors.
pub struct Session<'m> {
    device: Device,
    arena: RefCell<Vec<Slot>>,
    generation: Cell<u32>,
    error: RefCell<Option<String>>,
    train: Cell<bool>,
    param_names: Vec<String>,
    params: RefCell<Vec<DynTensor>>,
    /// Parameter groups already resolved: globs -> parameter indices (looked up every step).
    groups: RefCell<Vec<(Vec<String>, Vec<usize>)>>,
    kept: RefCell<Vec<(String, DynTensor)>>,
    /// Arena slots `start..start + len` hold the parameters (in spec order) of the forward
    /// pass in progress.
    param_range: Cell<(usize, usize)>,
    /// Running statistics of batch-norm layers.
    norm_stats: RefCell<Vec<NormStats>>,
    stats_mode: Cell<StatsMode>,
    /// Activation saturation, while an evaluation measures it.
    saturation: RefCell<Option<Tracker>>,
    model: Option<ModelRef<'m>>,
    callback: Cell<Callback>,
    position: Cell<Position>,
    /// Random draws so far in this scope.
    draws: Cell<u64>,
    batch: RefCell<Option<(DynTensor, Targets)>>,
    writes: RefCell<Vec<ParamWrite>>,
    /// Arena slots below this (and above the parameters) were used up by a backward pass.
    spent_below: Cell<usize>,
    passes: Cell<Passes>,
    /// What `grad` does with its results (see [`GradReplay`]).
    grad_replay: RefCell<GradReplay>,
}

impl Session<'static> {
    /// A session on `device` for a model whose parameters have `param_names` (no model
    /// plugin: forwards are driven by the caller).
    pub fn new(device: Device, param_names: Vec<String>) -> Self {
        Session::build(device, param_names, None)
    }
}

impl<'m> Session<'m> {
    /// A session that runs forward passes of `model` (with `outputs` outputs).
    pub fn with_model(
        device: Device,
        param_names: Vec<String>,
        model: &'m ModelBox,
        outputs: usize,
    ) -> Self {
        Session::build(device, param_names, Some(ModelRef { model, outputs }))
    }

    fn build(device: Device, param_names: Vec<String>, model: Option<ModelRef<'m>>) -> Self {
        Self {
            device,
            arena: RefCell::new(Vec::new()),
            generation: Cell::new(0),
            error: RefCell::new(None),
            train: Cell::new(true),
            param_names,
            params: RefCell::new(Vec::new()),
            groups: RefCell::new(Vec::new()),
            kept: RefCell::new(Vec::new()),
            param_range: Cell::new((0, 0)),
            norm_stats: RefCell::new(Vec::new()),
            stats_mode: Cell::new(StatsMode::Moving),
            saturation: RefCell::new(None),
            model,
            callback: Cell::new(Callback::None),
            position: Cell::new(Position {
                seed: 0,
                phase: 0,
                step: 0,
                lr: f64::NAN,
            }),
            draws: Cell::new(0),
            batch: RefCell::new(None),
            writes: RefCell::new(Vec::new()),
            spent_below: Cell::new(0),
            passes: Cell::new(Passes::default()),
            grad_replay: RefCell::new(GradReplay::Off),
        }
    }

    /// Starts measuring the saturation of activations (see [`crate::train::saturation`]).
    pub fn track_saturation(&self) {
        *self.saturation.borrow_mut() = Some(Tracker::default());
    }

    /// Stops measuring and returns the saturation per activation layer.
    pub fn take_saturation(&self) -> Vec<LayerSaturation> {
        self.saturation
            .borrow_mut()
            .take()
            .map(Tracker::finish)
            .unwrap_or_default()
    }

    /// Declares that the first `n` handles of this scope are the parameters, in spec order
    /// (layers with state, such as batch norm, find theirs by parameter).
    pub fn mark_params(&self, n: usize) {
        self.param_range.set((0, n));
    }

    /// Forgets the layers' running statistics (a phase that starts from an initialisation).
    pub fn reset_state(&self) {
        self.norm_stats.borrow_mut().clear();
    }

    /// Whether the model has layers with running statistics (seen in a training pass).
    pub fn has_state(&self) -> bool {
        !self.norm_stats.borrow().is_empty()
    }

    /// The layers' running statistics, to restore later with [`Session::set_norm_stats`].
    pub fn norm_stats(&self) -> Vec<NormStats> {
        self.norm_stats.borrow().clone()
    }

    /// Restores running statistics taken with [`Session::norm_stats`].
    pub fn set_norm_stats(&self, stats: Vec<NormStats>) {
        *self.norm_stats.borrow_mut() = stats;
    }

    /// How training-mode forwards update running statistics from now on; returns the mode
    /// before.
    pub fn set_stats_mode(&self, mode: StatsMode) -> StatsMode {
        self.stats_mode.replace(mode)
    }

    /// Declares which callback runs next (see [`Callback`]).
    pub fn set_callback(&self, callback: Callback) {
        self.callback.set(callback);
    }

    /// Where training is.
    pub fn position(&self) -> Position {
        self.position.get()
    }

    /// Sets where training is, for the strategy callbacks that follow.
    pub fn set_position(&self, position: Position) {
        self.position.set(position);
    }

    /// The batch the current step trains on (read by strategies and second loss evaluations).
    pub fn set_batch(&self, batch: Option<(DynTensor, Targets)>) {
        *self.batch.borrow_mut() = batch;
    }

    /// The batch the current step trains on.
    pub fn batch(&self) -> Option<(DynTensor, Targets)> {
        self.batch.borrow().clone()
    }

    /// The parameter writes strategies asked for since the last call.
    pub fn take_writes(&self) -> Vec<ParamWrite> {
        std::mem::take(&mut *self.writes.borrow_mut())
    }

    /// Counts passes of a training step.
    pub fn count(&self, forward: u64, backward: u64) {
        let p = self.passes.get();
        self.passes.set(Passes {
            forward: p.forward + forward,
            backward: p.backward + backward,
        });
    }

    /// The passes counted so far.
    pub fn passes(&self) -> Passes {
        self.passes.get()
    }

    /// Sets the passes counted so far (a gradient check does not count as training).
    pub fn set_passes(&self, passes: Passes) {
        self.passes.set(passes);
    }

    /// Sets what `grad` does with its results, returning what it did before.
    pub fn set_grad_replay(&self, replay: GradReplay) -> GradReplay {
        self.grad_replay.replace(replay)
    }

    /// The layers' running statistics as named tensors (`<layer>.running_mean`, `.running_var`).
    pub fn state(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut out = vec![];
        for NormStats { key, mean, var, .. } in self.norm_stats.borrow().iter() {
            let name = &self.param_names[*key];
            let base = name.strip_suffix(".weight").unwrap_or(name);
            for (suffix, t) in [("running_mean", mean), ("running_var", var)] {
                let t = DynTensor::R1(t.clone());
                out.push((format!("{base}.{suffix}"), t.dims(), t.to_values()));
            }
        }
        out
    }

    /// The parameter index behind `id`, if it is one of this forward pass's parameter handles.
    fn param_index(&self, id: TensorId) -> Option<usize> {
        let slot = (id & 0xffff_ffff) as usize;
        let (start, len) = self.param_range.get();
        ((id >> 32) as u32 == self.generation.get() && (start..start + len).contains(&slot))
            .then(|| slot - start)
    }

    /// The object handed to plugin callbacks.
    pub fn ops(&self) -> HostOpsRef<'_> {
        HostOps_TO::from_ptr(self, TD_Opaque)
    }

    /// The model's output `[n, outputs]` for `input` with `params` (spec order), inside the
    /// current scope: the parameters get handles of their own for this pass, so batch norm
    /// finds its statistics, and the handles made before stay valid.
    pub fn forward_model(
        &self,
        params: Vec<DynTensor>,
        input: DynTensor,
        train: bool,
    ) -> Result<Tensor<B, 2>, String> {
        let ModelRef { model, outputs } = self.model.as_ref().ok_or("no model in this session")?;
        let saved = (self.param_range.get(), self.train.replace(train));
        let start = self.arena.borrow().len();
        let ids: Vec<TensorId> = params.into_iter().map(|p| self.insert(p)).collect();
        self.param_range.set((start, ids.len()));
        let input = self.insert(input);
        let out = model.forward(self.ops(), input, RSlice::from_slice(&ids), train);
        self.param_range.set(saved.0);
        self.train.set(saved.1);
        let out = out.into_result().map_err(|e| e.to_string())?;
        if let Some(e) = self.error.borrow().clone() {
            return Err(format!("model forward: {e}"));
        }
        let out = self.get(out)?;
        let n = out.dims()[0];
        if out.num_elements() != n * outputs {
            return Err(format!(
                "model output has shape {:?}, expected [{n}, {outputs}]",
                out.dims()
            ));
        }
        Ok(match out {
            DynTensor::R2(t) => t, // already [n, outputs]: no extra graph node
            other => crate::with_dyn!(other, |t| t.reshape([n, *outputs])),
        })
    }

    /// The device tensors are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Starts a new scope (one step or callback): earlier handles become invalid.
    pub fn reset(&self, params: Vec<DynTensor>, train: bool) {
        self.arena.borrow_mut().clear();
        self.param_range.set((0, 0));
        self.spent_below.set(0);
        self.draws.set(0);
        if let Some(tracker) = self.saturation.borrow_mut().as_mut() {
            tracker.start_pass();
        }
        self.generation.set(self.generation.get().wrapping_add(1));
        *self.params.borrow_mut() = params;
        self.train.set(train);
    }

    /// Drops every tensor of the current scope, so that the parameters are uniquely owned
    /// again when the optimizer updates them (Burn then updates in place).
    pub fn clear(&self) {
        self.reset(Vec::new(), self.train.get());
    }

    /// Adds a tensor to the arena and returns its handle.
    pub fn insert(&self, t: DynTensor) -> TensorId {
        self.insert_slot(Slot::Tensor(t))
    }

    /// Adds a parameter group of `members` to the arena, not concatenated (see [`Slot`]).
    pub(super) fn insert_group(&self, members: Vec<DynTensor>) -> TensorId {
        self.insert_slot(Slot::Group(members))
    }

    fn insert_slot(&self, slot: Slot) -> TensorId {
        let mut arena = self.arena.borrow_mut();
        arena.push(slot);
        (u64::from(self.generation.get()) << 32) | (arena.len() as u64 - 1)
    }

    /// The tensor behind a handle (a parameter group is concatenated the first time).
    pub fn get(&self, id: TensorId) -> Result<DynTensor, String> {
        let slot = self.slot(id)?;
        let mut arena = self.arena.borrow_mut();
        let entry = arena
            .get_mut(slot)
            .ok_or_else(|| format!("unknown tensor handle {id}"))?;
        Ok(match entry {
            Slot::Tensor(t) => t.clone(),
            Slot::Group(members) => {
                let mut flat: Vec<Tensor<B, 1>> =
                    members.drain(..).map(DynTensor::flatten).collect();
                let t = DynTensor::R1(if flat.len() == 1 {
                    flat.remove(0)
                } else {
                    Tensor::cat(flat, 0)
                });
                *entry = Slot::Tensor(t.clone());
                t
            }
        })
    }

    /// The members of the parameter group behind `id`, if it is one not yet concatenated.
    pub(super) fn group_members(&self, id: TensorId) -> Result<Option<Vec<DynTensor>>, String> {
        let slot = self.slot(id)?;
        Ok(match self.arena.borrow().get(slot) {
            Some(Slot::Group(members)) => Some(members.clone()),
            _ => None,
        })
    }

    /// The dimensions of the tensor behind a handle (a group's without concatenating it).
    pub(super) fn dims_of(&self, id: TensorId) -> Result<Vec<usize>, String> {
        let slot = self.slot(id)?;
        if let Some(Slot::Group(members)) = self.arena.borrow().get(slot) {
            return Ok(vec![members.iter().map(DynTensor::num_elements).sum()]);
        }
        Ok(self.get(id)?.dims())
    }

    /// The arena slot of a handle that is valid now.
    fn slot(&self, id: TensorId) -> Result<usize, String> {
        if id == POISON {
            return Err("input comes from a failed operation".into());
        }
        if (id >> 32) as u32 != self.generation.get() {
            return Err(
                "tensor handle from an earlier step or callback (use Ops::keep to hold values)"
                    .into(),
            );
        }
        let slot = (id & 0xffff_ffff) as usize;
        let (start, len) = self.param_range.get();
        if slot < self.spent_below.get() && !(start..start + len).contains(&slot) {
            return Err("tensor handle made before Ops::grad, whose backward pass used up its graph (compute it again after the call)".into());
        }
        Ok(slot)
    }

    /// Takes the first error recorded since the last call.
    pub fn take_error(&self) -> Option<String> {
        self.error.borrow_mut().take()
    }

    /// The kept tensors (e.g. θ0 and anchors), by name.
    pub fn kept(&self) -> Vec<(String, DynTensor)> {
        self.kept.borrow().clone()
    }

    /// The values of the tensor kept under `key` (see `HostOps::keep`).
    pub fn kept_values(&self, key: u64) -> Result<Vec<f32>, String> {
        let kept = self.kept.borrow();
        let (_, t) = usize::try_from(key)
            .ok()
            .and_then(|i| kept.get(i))
            .ok_or_else(|| format!("unknown kept tensor {key}"))?;
        Ok(t.to_values())
    }

    pub(super) fn fail(&self, op: &str, message: String) -> TensorId {
        let mut error = self.error.borrow_mut();
        if error.is_none() {
            *error = Some(format!("tensor operation `{op}` failed: {message}"));
        }
        POISON
    }

    pub(super) fn run(&self, op: &str, f: impl FnOnce() -> OpResult) -> TensorId {
        if self.error.borrow().is_some() {
            return POISON;
        }
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(t)) => self.insert(t),
            Ok(Err(e)) => self.fail(op, e),
            Err(payload) => self.fail(op, crate::panic_message(payload.as_ref())),
        }
    }

    pub(super) fn group_indices(&self, patterns: &[RString]) -> Result<Vec<usize>, String> {
        let same = |key: &[String]| {
            key.iter()
                .map(String::as_str)
                .eq(patterns.iter().map(RString::as_str))
        };
        if let Some((_, found)) = self.groups.borrow().iter().find(|(key, _)| same(key)) {
            return Ok(found.clone());
        }
        let key: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        let mut builder = globset::GlobSetBuilder::new();
        for p in &key {
            builder
                .add(globset::Glob::new(p).map_err(|e| format!("bad parameter glob `{p}`: {e}"))?);
        }
        let set = builder.build().map_err(|e| e.to_string())?;
        let found: Vec<usize> = (0..self.param_names.len())
            .filter(|&i| set.is_match(&self.param_names[i]))
            .collect();
        if found.is_empty() {
            return Err(format!(
                "no parameter matches {key:?}; parameters are {:?}",
                self.param_names
            ));
        }
        self.groups.borrow_mut().push((key, found.clone()));
        Ok(found)
    }
}
