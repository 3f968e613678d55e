//! All components of all loaded plugins, by unique name, and building them from user config.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use abi_stable::std_types::RString;
use pn_plugin_api::abi::{ComponentDecl, DatasetBox, ModelBox, StrategyBox};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::plugin::loader::{load, LoadError, LoadedPlugin};

/// Where the plugins came from, recorded with every run.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PluginFile {
    /// Path as loaded.
    pub path: PathBuf,
    /// sha256 of the file.
    pub sha256: String,
    /// pn-plugin-api version it was built against.
    pub api_version: String,
}

/// The kinds of component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Training strategy.
    Strategy,
    /// Model.
    Model,
    /// Data set.
    Dataset,
}

impl Kind {
    /// Lower-case name for messages.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Strategy => "strategy",
            Kind::Model => "model",
            Kind::Dataset => "data set",
        }
    }
}

/// One component entry: its declaration and the plugin that provides it.
pub struct Entry<T> {
    /// The declaration.
    pub decl: ComponentDecl<T>,
    /// Index into [`Registry::plugins`].
    pub plugin: usize,
}

/// Every loaded plugin and component.
#[derive(Default)]
pub struct Registry {
    /// Loaded plugin files.
    pub plugins: Vec<PluginFile>,
    /// Strategies.
    pub strategies: Vec<Entry<StrategyBox>>,
    /// Models.
    pub models: Vec<Entry<ModelBox>>,
    /// Data sets.
    pub datasets: Vec<Entry<DatasetBox>>,
    seen: HashSet<PathBuf>,
}

/// The `.so` files in a directory, sorted.
pub fn plugins_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "so") && p.is_file())
        .collect();
    found.sort();
    found
}

impl Registry {
    /// Loads `explicit` plugin files (any failure is an error) and every `.so` in `dirs`
    /// (a broken file there is skipped with a warning). A file is loaded once however it is named.
    pub fn load(explicit: &[PathBuf], dirs: &[PathBuf]) -> Result<Self, Error> {
        let mut registry = Registry::default();
        for path in explicit {
            registry.add(path)?;
        }
        for dir in dirs {
            for path in plugins_in(dir) {
                match registry.add(&path) {
                    Ok(()) => {}
                    Err(e @ LoadError::Duplicate(_)) => return Err(e.into()),
                    Err(e) => {
                        crate::log::log(pn_plugin_api::LogLevel::Warn, &format!("skipping {e}"))
                    }
                }
            }
        }
        Ok(registry)
    }

    /// Loads one plugin file and adds its components.
    pub fn add(&mut self, path: &Path) -> Result<(), LoadError> {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if self.seen.contains(&canonical) {
            return Ok(());
        }
        let LoadedPlugin {
            path,
            sha256,
            api_version,
            components,
        } = load(path)?;
        let index = self.plugins.len();
        let clash = |name: &RString, kind: Kind| -> Option<LoadError> {
            self.provider(kind, name.as_str()).map(|other| {
                LoadError::Duplicate(format!(
                    "{} `{name}` is provided by both {} and {}: remove one of the plugins",
                    kind.label(),
                    other.display(),
                    path.display()
                ))
            })
        };
        for d in &components.strategies {
            if let Some(e) = clash(&d.name, Kind::Strategy) {
                return Err(e);
            }
        }
        for d in &components.models {
            if let Some(e) = clash(&d.name, Kind::Model) {
                return Err(e);
            }
        }
        for d in &components.datasets {
            if let Some(e) = clash(&d.name, Kind::Dataset) {
                return Err(e);
            }
        }
        self.strategies
            .extend(components.strategies.into_iter().map(|decl| Entry {
                decl,
                plugin: index,
            }));
        self.models
            .extend(components.models.into_iter().map(|decl| Entry {
                decl,
                plugin: index,
            }));
        self.datasets
            .extend(components.datasets.into_iter().map(|decl| Entry {
                decl,
                plugin: index,
            }));
        self.plugins.push(PluginFile {
            path,
            sha256,
            api_version,
        });
        self.seen.insert(canonical);
        Ok(())
    }

    /// Every loaded plugin with what it provides and the default configurations, as
    /// `pn-host plugins list` prints them.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (i, plugin) in self.plugins.iter().enumerate() {
            out += &format!(
                "{} (pn-plugin-api {}, sha256 {})\n",
                plugin.path.display(),
                plugin.api_version,
                &plugin.sha256[..12]
            );
            describe_entries(&mut out, Kind::Strategy, &self.strategies, i);
            describe_entries(&mut out, Kind::Model, &self.models, i);
            describe_entries(&mut out, Kind::Dataset, &self.datasets, i);
        }
        if self.plugins.is_empty() {
            out += "no plugins found (build them with `cargo xtask build`, or pass --plugin / --plugin-dir)\n";
        }
        out
    }

    /// The names of the components of `kind`, each with the index of its plugin.
    pub fn names(&self, kind: Kind) -> Vec<(&str, usize)> {
        match kind {
            Kind::Strategy => self
                .strategies
                .iter()
                .map(|e| (e.decl.name.as_str(), e.plugin))
                .collect(),
            Kind::Model => self
                .models
                .iter()
                .map(|e| (e.decl.name.as_str(), e.plugin))
                .collect(),
            Kind::Dataset => self
                .datasets
                .iter()
                .map(|e| (e.decl.name.as_str(), e.plugin))
                .collect(),
        }
    }

    /// The plugin file providing `name`, if any.
    pub fn provider(&self, kind: Kind, name: &str) -> Option<&Path> {
        self.names(kind)
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| self.plugins[p].path.as_path())
    }

    fn unknown(&self, kind: Kind, name: &str) -> String {
        let known: Vec<&str> = self.names(kind).into_iter().map(|(n, _)| n).collect();
        let hint = if self.plugins.is_empty() {
            " (no plugins loaded: build them with `cargo xtask build`, or pass --plugin / --plugin-dir)".to_string()
        } else {
            format!(
                "; available: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        };
        format!("unknown {} `{name}`{hint}", kind.label())
    }

    /// The plugin file that provides a component (for run records).
    pub fn plugin_of(&self, kind: Kind, name: &str) -> Option<PluginFile> {
        self.names(kind)
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| self.plugins[p].clone())
    }

    /// Builds strategy `name` with `overrides` on its defaults; returns it and its full config.
    pub fn strategy(&self, name: &str, overrides: &Value) -> Result<(StrategyBox, Value), String> {
        self.build(&self.strategies, Kind::Strategy, name, overrides)
    }

    /// Builds model `name` with `overrides` on its defaults.
    pub fn model(&self, name: &str, overrides: &Value) -> Result<(ModelBox, Value), String> {
        self.build(&self.models, Kind::Model, name, overrides)
    }

    /// Builds data set `name` with `overrides` on its defaults.
    pub fn dataset(&self, name: &str, overrides: &Value) -> Result<(DatasetBox, Value), String> {
        self.build(&self.datasets, Kind::Dataset, name, overrides)
    }

    /// Builds component `name` of `entries` (of `kind`) with `overrides` on its defaults.
    fn build<T>(
        &self,
        entries: &[Entry<T>],
        kind: Kind,
        name: &str,
        overrides: &Value,
    ) -> Result<(T, Value), String> {
        let e = entries
            .iter()
            .find(|e| e.decl.name == name)
            .ok_or_else(|| self.unknown(kind, name))?;
        create(&e.decl, kind, overrides)
    }
}

/// The most phases a strategy may declare: beyond it a run could not finish in any budget, and
/// equal-step budgets (epochs × phases) would overflow.
pub const MAX_PHASES: u32 = 1000;

/// The number of phases `strategy` declares, checked to lie in 1..=[`MAX_PHASES`].
pub fn phases_of(strategy: &StrategyBox) -> Result<u32, String> {
    let k = strategy.phases().into_result().map_err(|e| e.to_string())?;
    if k == 0 || k > MAX_PHASES {
        return Err(format!(
            "the strategy declares {k} phases; it must be 1 to {MAX_PHASES}"
        ));
    }
    Ok(k)
}

/// `defaults` with the keys of `overrides` replaced; unknown keys are refused by name.
pub fn merge_config(defaults: &Value, overrides: &Value, what: &str) -> Result<Value, String> {
    let mut merged: Map<String, Value> = defaults.as_object().cloned().unwrap_or_default();
    match overrides {
        Value::Null => {}
        Value::Object(o) => {
            for (k, v) in o {
                if !merged.contains_key(k) {
                    let known: Vec<&str> = merged.keys().map(String::as_str).collect();
                    let nearest = known
                        .iter()
                        .map(|&key| (strsim::damerau_levenshtein(k, key), key))
                        .filter(|&(distance, key)| distance <= 2.max(key.len() / 4))
                        .min();
                    let hint = nearest
                        .map(|(_, key)| format!("did you mean `{key}`? "))
                        .unwrap_or_default();
                    return Err(format!(
                        "unknown config key `{k}` for {what} ({hint}known: {})",
                        known.join(", ")
                    ));
                }
                merged.insert(k.clone(), v.clone());
            }
        }
        other => return Err(format!("config of {what} must be a table, got {other}")),
    }
    Ok(Value::Object(merged))
}

fn create<T>(decl: &ComponentDecl<T>, kind: Kind, overrides: &Value) -> Result<(T, Value), String> {
    let what = format!("{} `{}`", kind.label(), decl.name);
    let defaults: Value = serde_json::from_str(decl.default_config.as_str())
        .map_err(|e| format!("{what}: bad default config: {e}"))?;
    let config = merge_config(&defaults, overrides, &what)?;
    let json = config.to_string();
    let built = (decl.create)(json.as_str().into())
        .into_result()
        .map_err(|e| {
            let e = e.to_string();
            let prefix = format!("{}: ", decl.name);
            format!("{what}: {}", e.strip_prefix(&prefix).unwrap_or(&e))
        })?;
    Ok((built, config))
}

/// One line pair per component of `entries` that plugin `plugin` provides.
fn describe_entries<T>(out: &mut String, kind: Kind, entries: &[Entry<T>], plugin: usize) {
    for e in entries.iter().filter(|e| e.plugin == plugin) {
        *out += &format!(
            "  {:<9} {:<20} {}\n  {:<30} defaults: {}\n",
            kind.label(),
            e.decl.name.as_str(),
            e.decl.description.as_str(),
            "",
            e.decl.default_config.as_str()
        );
    }
}
