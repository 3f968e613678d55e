//! Comparison suites: the suite file and its plan ([`plan`]), the default comparison
//! ([`default`]), executing one ([`execute`]), runs in worker processes
//! ([`pool`]) and Slurm job arrays ([`slurm`]).

pub mod default;
pub mod execute;
pub mod plan;
pub mod pool;
pub mod slurm;

pub use plan::*;
