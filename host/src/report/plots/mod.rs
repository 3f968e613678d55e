//! Comparison plots: learning curves, final-metric distributions, performance profiles,
//! tuning sensitivity (score against a setting's value) and loss surfaces.
//!
//! Every plot is written twice, as `<stem>.png` and `<stem>.svg`, 900x560 px on white. Text uses
//! the embedded DejaVu Sans font, so no system fonts are needed. Colours index a fixed palette, so
//! a strategy keeps its colour across plots.
//!
//! One file per figure kind (`curves`, `distributions`, `profile`, `sensitivity`, `surface`)
//! on shared helpers: `canvas` (files, font, palette, the framed chart), `axis`
//! (ticks, scales, bounds) and `legend` (where the legend goes).

mod axis;
mod canvas;
mod curves;
mod distributions;
mod legend;
mod profile;
mod sensitivity;
mod surface;
#[cfg(test)]
mod tests;

pub use curves::{learning_curves, Curve};
pub use distributions::{distributions, Group};
pub use profile::{performance_profile, Profile};
pub use sensitivity::{sensitivity, Sensitivity};
pub use surface::{surface, Surface};
