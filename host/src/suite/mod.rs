//! Comparison suites: the suite file and its plan ([`plan`]), runs in worker processes
//! ([`pool`]) and Slurm job arrays ([`slurm`]).

pub mod plan;
pub mod pool;
pub mod slurm;

pub use plan::*;
