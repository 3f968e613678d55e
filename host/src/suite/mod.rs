//! Comparison suites: the suite file and its plan ([`plan`]), the default comparison
//! ([`default`]), executing one ([`execute`]), runs in worker processes
//! ([`pool`]), Slurm job arrays ([`slurm`]) and tuning with equal budgets ([`tuning`]).

pub mod default;
pub mod execute;
pub mod plan;
pub mod pool;
pub mod slurm;
pub mod tuning;

pub use plan::*;
