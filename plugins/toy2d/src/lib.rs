//! `toy2d`: a two-parameter model θ = (x, y) whose training loss is a fixed surface, to watch
//! persistence escape a poor minimum (the persistent-neurons paper's 2-D toy problem), and the
//! `toy2d` data set that drives it (a few dummy rows; the loss does not depend on them).
//!
//! The surface is a shallow bowl centred on the global minimum `g` with two Gaussian wells,
//! a deep one at `g` and a shallow one at the poor point `p`:
//!
//! `S(θ) = q‖θ − g‖² − A_g exp(−‖θ − g‖²/2w_g²) − A_p exp(−‖θ − p‖²/2w_p²) + A_g + δ`
//!
//! With the defaults S(g) ≈ δ = 0.01 and the poor minimum near p = (−1, 0) has S ≈ 0.72. θ0 is
//! drawn uniformly in a box of half-width `radius` around `start` = (−1.6, 0.6), inside the
//! poor well's basin, so plain training ends there. The model outputs √S for every row and the
//! data set's targets are 0, so the host's mean squared error is exactly S.

use pn_plugin_api::{
    Component, DataSplit, DataSplits, Dataset, Model, Ops, ParamSpec, Result, Tensor,
};
use serde::{Deserialize, Serialize};

/// The surface and the start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Centre of the box θ0 is drawn from. Default (−1.6, 0.6).
    pub start: [f64; 2],
    /// Half-width of that box. Default 0.2.
    pub radius: f64,
    /// The global minimum g. Default (1.5, 0).
    pub global: [f64; 2],
    /// The poor minimum's well centre p. Default (−1, 0).
    pub poor: [f64; 2],
    /// Curvature q of the bowl. Default 0.05.
    pub bowl: f64,
    /// Depths (A_g, A_p) of the wells. Default (1.0, 0.6).
    pub depths: [f64; 2],
    /// Widths (w_g, w_p) of the wells. Default (0.6, 0.35).
    pub widths: [f64; 2],
    /// δ, the loss at the global minimum (keeps √S smooth). Default 0.01.
    pub offset: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            start: [-1.6, 0.6],
            radius: 0.2,
            global: [1.5, 0.0],
            poor: [-1.0, 0.0],
            bowl: 0.05,
            depths: [1.0, 0.6],
            widths: [0.6, 0.35],
            offset: 0.01,
        }
    }
}

/// The two-parameter model.
pub struct Toy2d(Config);

impl Component for Toy2d {
    const NAME: &'static str = "toy2d";
    const DESCRIPTION: &'static str =
        "θ = (x, y) on a fixed 2-D loss surface with a poor minimum near the start";
    type Config = Config;
    fn new(c: Config) -> Result<Self> {
        let positive = c.radius > 0.0 && c.bowl >= 0.0 && c.offset > 0.0;
        if !positive || c.widths.iter().any(|w| *w <= 0.0) || c.depths.iter().any(|a| *a < 0.0) {
            return Err("radius, widths and offset must be > 0; bowl and depths ≥ 0".into());
        }
        Ok(Toy2d(c))
    }
}

impl Model for Toy2d {
    fn parameters(&self, _input_shape: &[usize], outputs: usize) -> Result<Vec<ParamSpec>> {
        if outputs != 1 {
            return Err(format!("toy2d has one output, the data set asks for {outputs}").into());
        }
        let (s, r) = (self.0.start, self.0.radius);
        Ok(vec![
            ParamSpec::uniform("x", &[1], s[0] - r, s[0] + r),
            ParamSpec::uniform("y", &[1], s[1] - r, s[1] + r),
        ])
    }

    fn forward<'a>(
        &self,
        ops: Ops<'a>,
        input: Tensor<'a>,
        p: &[Tensor<'a>],
        _train: bool,
    ) -> Result<Tensor<'a>> {
        let c = &self.0;
        let theta = ops.cat(&[p[0], p[1]], 0);
        let dist2 = |centre: [f64; 2]| {
            let centre = ops.constant(&[centre[0] as f32, centre[1] as f32], &[2]);
            (theta - centre).square().sum()
        };
        let well = |centre: [f64; 2], depth: f64, width: f64| {
            (dist2(centre) * (-0.5 / (width * width))).exp() * depth
        };
        let surface = dist2(c.global) * c.bowl
            - well(c.global, c.depths[0], c.widths[0])
            - well(c.poor, c.depths[1], c.widths[1])
            + (c.depths[0] + c.offset);
        // One output per row: √S, broadcast over the batch (the input only gives its size).
        let n = input.shape()[0] as i64;
        let rows = input.reshape(&[n, -1]).narrow(1, 0, 1) * 0.0;
        Ok(rows + surface.clamp_min(1e-12).powf(0.5).reshape(&[1, 1]))
    }
}

/// Settings of the dummy data set.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Rows per split (the loss is the same for every row). Default 8.
    pub rows: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self { rows: 8 }
    }
}

/// Rows of zeros with zero targets: the loss of `toy2d` is its surface.
pub struct Toy2dData(DataConfig);

impl Component for Toy2dData {
    const NAME: &'static str = "toy2d";
    const DESCRIPTION: &'static str = "dummy rows with zero targets, for the toy2d model";
    type Config = DataConfig;
    fn new(c: DataConfig) -> Result<Self> {
        if c.rows == 0 {
            return Err("rows must be at least 1".into());
        }
        Ok(Toy2dData(c))
    }
}

impl Dataset for Toy2dData {
    fn load(&self) -> Result<DataSplits> {
        let n = self.0.rows;
        let split = || DataSplit {
            inputs: vec![0.0; n].into(),
            targets: vec![0.0; n].into(),
            len: n,
        };
        Ok(pn_plugin_kit::data::scalar_regression(
            &[1],
            split(),
            split(),
        ))
    }
}

pn_plugin_api::register_model!(Toy2d);
pn_plugin_api::register_dataset!(Toy2dData);
pn_plugin_api::export_plugin!();
