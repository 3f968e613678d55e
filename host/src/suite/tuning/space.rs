//! Search spaces: a strategy's settings with their distributions (uniform, log-uniform,
//! choice), read from `[strategies.NAME.search]`, and the trials drawn from them, the points of
//! a scrambled Sobol sequence.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::run::{self, RunConfig};

/// The most settings one search space may have (the Sobol sequence's dimensions).
pub const MAX_SETTINGS: usize = 256;
/// The train settings a search space may name: those that do not change the budget (epochs,
/// batch size) or the split (holdout).
pub const TUNABLE_TRAIN: [&str; 9] = [
    "optimizer",
    "lr",
    "momentum",
    "dampening",
    "nesterov",
    "beta1",
    "beta2",
    "epsilon",
    "weight_decay",
];

/// How one setting is drawn from a point's coordinate u in [0, 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// low + u (high − low); whole numbers when both bounds are integers.
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
        /// Round to whole numbers.
        integer: bool,
    },
    /// low (high / low)^u, 0 < low < high; whole numbers when both bounds are integers.
    LogUniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
        /// Round to whole numbers.
        integer: bool,
    },
    /// One of the values, each an equal share of [0, 1).
    Choice(Vec<Value>),
}

/// One setting of a search space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    /// `name` for a strategy setting, `train.name` for a training setting.
    pub key: String,
    /// Its distribution.
    pub distribution: Distribution,
}

impl Setting {
    /// The `section.key` path [`run::set_value`] takes.
    pub(super) fn path(&self) -> String {
        if self.key.starts_with("train.") {
            self.key.clone()
        } else {
            format!("strategy.{}", self.key)
        }
    }

    /// The value at coordinate `u`.
    fn value(&self, u: f64) -> Value {
        let number = |x: f64, integer: bool| {
            if integer {
                Value::from(x.round() as i64)
            } else {
                Value::from(round_significant(x, 4))
            }
        };
        match &self.distribution {
            Distribution::Uniform { low, high, integer } => {
                number(low + u * (high - low), *integer)
            }
            Distribution::LogUniform { low, high, integer } => {
                number(low * (high / low).powf(u), *integer)
            }
            Distribution::Choice(values) => {
                let i = ((u * values.len() as f64) as usize).min(values.len() - 1);
                values[i].clone()
            }
        }
    }

    /// Whether a sensitivity plot should put this setting on a log axis.
    pub fn log_scale(&self) -> bool {
        matches!(self.distribution, Distribution::LogUniform { .. })
    }
}

/// `x` rounded to `digits` significant digits, so trial settings read as plain numbers.
fn round_significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// A strategy's search space: its settings in file order.
pub type Space = Vec<Setting>;

/// One trial: its index and the values it sets, by setting key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// From 0.
    pub index: u32,
    /// The value of each setting of the space.
    pub values: IndexMap<String, Value>,
}

/// Reads one entry of a `[strategies.NAME.search]` table: `setting = { uniform = [low, high] }`,
/// `{ log_uniform = [low, high] }` or `{ choice = [a, b, ...] }`; train settings as
/// `train.lr = { ... }` (TOML reads that as a `train` table, hence several settings). Errors
/// name the setting; the caller adds the file and line.
pub fn parse_entry(key: &str, value: &toml::Value) -> Result<Vec<Setting>, String> {
    match value.as_table() {
        Some(train) if key == "train" => train
            .iter()
            .map(|(name, value)| {
                if !TUNABLE_TRAIN.contains(&name.as_str()) {
                    return Err(format!(
                        "`train.{name}` cannot be tuned (tunable train settings: {}; epochs, batch size and holdout set the budget and the split)",
                        TUNABLE_TRAIN.join(", ")
                    ));
                }
                parse_setting(&format!("train.{name}"), value)
            })
            .collect(),
        _ => Ok(vec![parse_setting(key, value)?]),
    }
}

/// Checks the size of a whole space.
pub fn check_size(space: &Space) -> Result<(), String> {
    if space.is_empty() {
        return Err("`search` names no setting".into());
    }
    if space.len() > MAX_SETTINGS {
        return Err(format!(
            "`search` has {} settings; at most {MAX_SETTINGS}",
            space.len()
        ));
    }
    Ok(())
}

fn parse_setting(key: &str, value: &toml::Value) -> Result<Setting, String> {
    const FORMS: &str =
        "expected one of { uniform = [low, high] }, { log_uniform = [low, high] }, { choice = [a, b, ...] }";
    let table = value
        .as_table()
        .filter(|t| t.len() == 1)
        .ok_or_else(|| format!("search setting `{key}`: {FORMS}"))?;
    let (form, args) = table.iter().next().expect("one entry");
    let items = args
        .as_array()
        .ok_or_else(|| format!("search setting `{key}`: `{form}` takes a list"))?;
    let bounds = || -> Result<(f64, f64, bool), String> {
        let number = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
        match items.as_slice() {
            [lo, hi] => match (number(lo), number(hi)) {
                (Some(l), Some(h)) if l.is_finite() && h.is_finite() && l < h => {
                    Ok((l, h, lo.is_integer() && hi.is_integer()))
                }
                _ => Err(format!(
                    "search setting `{key}`: `{form}` needs two finite numbers low < high, got {args}"
                )),
            },
            _ => Err(format!(
                "search setting `{key}`: `{form}` takes [low, high], got {args}"
            )),
        }
    };
    let distribution = match form.as_str() {
        "uniform" => {
            let (low, high, integer) = bounds()?;
            Distribution::Uniform { low, high, integer }
        }
        "log_uniform" => {
            let (low, high, integer) = bounds()?;
            if low <= 0.0 {
                return Err(format!(
                    "search setting `{key}`: `log_uniform` needs bounds above 0, got {args}"
                ));
            }
            Distribution::LogUniform { low, high, integer }
        }
        "choice" if items.is_empty() => {
            return Err(format!("search setting `{key}`: `choice` is an empty list"))
        }
        "choice" => Distribution::Choice(
            items
                .iter()
                .map(|v| {
                    serde_json::to_value(v).map_err(|e| format!("search setting `{key}`: {e}"))
                })
                .collect::<Result<_, _>>()?,
        ),
        other => {
            return Err(format!(
                "search setting `{key}`: unknown form `{other}`: {FORMS}"
            ))
        }
    };
    Ok(Setting {
        key: key.to_string(),
        distribution,
    })
}

/// The `trials` points of `space`: point i sets setting d from coordinate d of point i of a
/// scrambled Sobol sequence (`sobol_burley`, scramble seed 0). The same file gives the same
/// trials; every strategy's first trials cover its space evenly.
pub fn trials(space: &Space, trials: u32) -> Vec<Trial> {
    (0..trials)
        .map(|i| Trial {
            index: i,
            values: space
                .iter()
                .enumerate()
                .map(|(d, s)| {
                    let u = sobol_burley::sample(i, d as u32, 0) as f64;
                    (s.key.clone(), s.value(u))
                })
                .collect(),
        })
        .collect()
}

/// `config` with the trial's values set.
pub fn apply(config: &RunConfig, space: &Space, trial: &Trial) -> Result<RunConfig, String> {
    let mut config = config.clone();
    for s in space {
        let value = trial.values.get(&s.key).cloned().unwrap_or(Value::Null);
        run::set_value(&mut config, &s.path(), value).map_err(|e| format!("search setting {e}"))?;
    }
    Ok(config)
}

/// A trial's settings as `key = value, ...`.
pub fn describe(trial: &Trial) -> String {
    trial
        .values
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(text: &str) -> Result<Space, String> {
        let table: IndexMap<String, toml::Value> = toml::from_str(text).unwrap();
        let mut space = vec![];
        for (key, value) in &table {
            space.extend(parse_entry(key, value)?);
        }
        check_size(&space)?;
        Ok(space)
    }

    #[test]
    fn the_three_forms_and_train_settings_parse() {
        let s = space(
            "lambda = { log_uniform = [0.01, 10.0] }\nrelease = { uniform = [0, 1.0] }\n\
             kernel = { choice = [\"gaussian\", \"inverse_power\"] }\ntrain.lr = { log_uniform = [1e-4, 1e-1] }",
        )
        .unwrap();
        let keys: Vec<&str> = s.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["lambda", "release", "kernel", "train.lr"]);
        assert!(s[0].log_scale() && !s[1].log_scale());
        assert_eq!(s[3].path(), "train.lr");
        assert_eq!(s[0].path(), "strategy.lambda");
    }

    #[test]
    fn mistakes_in_a_space_are_one_line_errors_naming_the_setting() {
        for (text, needle) in [
            (
                "x = { log_uniform = [0, 1] }",
                "`x`: `log_uniform` needs bounds above 0",
            ),
            ("x = { log_uniform = [-1, 1] }", "above 0"),
            ("x = { uniform = [2, 1] }", "low < high"),
            ("x = { uniform = [1] }", "takes [low, high]"),
            ("x = { choice = [] }", "`x`: `choice` is an empty list"),
            ("x = { normal = [0, 1] }", "unknown form `normal`"),
            ("x = 3", "expected one of"),
            (
                "train.epochs = { uniform = [1, 5] }",
                "`train.epochs` cannot be tuned",
            ),
        ] {
            let e = space(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn trials_are_deterministic_within_bounds_and_integers_stay_integers() {
        let s = space(
            "a = { log_uniform = [1e-3, 1e3] }\nb = { uniform = [1, 9] }\nc = { choice = [1, 2, 3] }",
        )
        .unwrap();
        let t = trials(&s, 64);
        assert_eq!(t, trials(&s, 64));
        for trial in &t {
            let a = trial.values["a"].as_f64().unwrap();
            assert!((1e-3..=1e3).contains(&a), "{a}");
            let b = &trial.values["b"];
            assert!(b.is_i64() && (1..=9).contains(&b.as_i64().unwrap()), "{b}");
        }
        // Quasi-random: the log-uniform setting visits every decade in the first 16 trials,
        // each choice comes up, and the trials are all different.
        let decades: std::collections::BTreeSet<i64> = t[..16]
            .iter()
            .map(|t| t.values["a"].as_f64().unwrap().log10().floor() as i64)
            .collect();
        assert_eq!(decades.len(), 6, "{decades:?}");
        for c in 1..=3 {
            assert!(t[..8].iter().any(|t| t.values["c"] == c), "choice {c}");
        }
        let distinct: std::collections::BTreeSet<String> =
            t.iter().map(|t| format!("{:?}", t.values)).collect();
        assert_eq!(distinct.len(), 64);
    }

    #[test]
    fn values_read_as_plain_numbers() {
        assert_eq!(round_significant(0.012345678, 4), 0.01235);
        assert_eq!(round_significant(1234.5678, 4), 1235.0);
    }
}
