//! Comparison suites: the suite file and its plan ([`plan`]), what a step of each strategy
//! costs ([`cost`]), the default comparison ([`default`]), executing one ([`execute`]), runs in
//! worker processes ([`pool`]; the worker itself: [`worker`]), Slurm job arrays ([`slurm`]) and
//! tuning with equal budgets ([`tuning`]).

pub mod cost;
pub mod default;
pub mod execute;
mod file;
pub mod plan;
pub mod pool;
pub mod slurm;
pub mod tuning;
pub mod worker;

pub use plan::*;
