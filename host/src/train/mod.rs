//! Training one run: the configuration, the session that executes plugin tensor operations in
//! Burn's autodiff graph, the parameters, the data and its augmentation, one step, the phase
//! loop, the conformance kit's gradient check, phase results (averages and ensembles) and the records a run produces.

pub mod augment;
pub mod config;
pub mod data;
pub mod dyn_tensor;
pub mod ensemble;
pub mod gradient_check;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod params;
pub mod phases;
pub mod record;
pub mod saturation;
pub mod seeds;
pub mod session;
pub mod step;

pub use config::{OptimizerKind, TrainConfig, MAX_TRAJECTORY_PARAMS};
pub use gradient_check::GradientCheck;
pub use loss::{count_correct, task_loss};
pub use phases::run;
pub use record::{
    EpochMetrics, FinalMetrics, Observer, Outcome, PhaseRecord, RunResult, Silent, Status,
    TrajectoryPoint,
};
pub use step::{ModelRunner, StepAt, StepOutput};
