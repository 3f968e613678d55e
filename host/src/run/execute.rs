//! Executing one run: loading its data set, building its components, training, and the
//! record of a run that failed before or outside training.

use crate::device::{parse_device, Device};
use crate::error::Error;
use crate::plugin::registry::{Kind, PluginFile, Registry};
use crate::train::data::Data;
use crate::train::{self, Observer, Outcome, RunResult, Status};
use pn_plugin_api::DataSplits;

use super::{ComponentRef, RunConfig, RunRecord};

/// Loads a data set (once per workload; runs share it).
pub fn load_data(
    registry: &Registry,
    dataset: &ComponentRef,
    device: &Device,
) -> Result<Data, Error> {
    let splits = load_splits(registry, dataset)?;
    let (set, _) = registry.dataset(&dataset.name, &dataset.config)?;
    let test = set
        .load_test()
        .into_result()
        .map_err(|e| format!("data set `{}`: {e}", dataset.name))?;
    let data = Data::upload(splits, device);
    let data = match test.into_option() {
        Some(test) => data.and_then(|d| d.with_test(test, device)),
        None => data,
    };
    data.map_err(|e| format!("data set `{}`: {e}", dataset.name).into())
}

/// A data set's splits in memory, as its plugin loads them (missing or malformed files fail
/// here, with the plugin's message).
pub fn load_splits(registry: &Registry, dataset: &ComponentRef) -> Result<DataSplits, Error> {
    let (set, _) = registry.dataset(&dataset.name, &dataset.config)?;
    set.load().into_result().map_err(|e| {
        let e = e.to_string();
        let own = format!("{}: ", dataset.name);
        format!(
            "data set `{}`: {}",
            dataset.name,
            e.strip_prefix(&own).unwrap_or(&e)
        )
        .into()
    })
}

/// Executes one run; plugin and configuration errors become a failed record, never a panic.
pub fn execute(
    registry: &Registry,
    config: &RunConfig,
    data: &Data,
    device_name: &str,
    observer: &mut dyn Observer,
) -> (RunRecord, Outcome) {
    let mut record = blank_record(registry, config, device_name);
    let built = (|| -> Result<_, Error> {
        let device = parse_device(device_name)?;
        let (strategy, s_cfg) =
            registry.strategy(&config.strategy.name, &config.strategy.config)?;
        let (model, m_cfg) = registry.model(&config.model.name, &config.model.config)?;
        let (_, d_cfg) = registry.dataset(&config.dataset.name, &config.dataset.config)?;
        Ok((device, strategy, model, [s_cfg, m_cfg, d_cfg]))
    })();
    let (device, mut strategy, model, [s_cfg, m_cfg, d_cfg]) = match built {
        Ok(b) => b,
        Err(e) => return failed(registry, config, device_name, e.to_string()),
    };
    record.dataset.config = d_cfg;
    record.test_split = data.test.is_some();
    record.strategy.config = s_cfg;
    record.model.config = m_cfg;
    let outcome = train::run(
        &mut strategy,
        &model,
        data,
        &config.train,
        config.seed,
        &device,
        observer,
    );
    record.result = outcome.result.clone();
    record.kept = outcome.kept.iter().map(|(n, _, _)| n.clone()).collect();
    (record, outcome)
}

fn blank_record(registry: &Registry, config: &RunConfig, device_name: &str) -> RunRecord {
    let plugins: Vec<PluginFile> = [
        registry.plugin_of(Kind::Strategy, &config.strategy.name),
        registry.plugin_of(Kind::Model, &config.model.name),
        registry.plugin_of(Kind::Dataset, &config.dataset.name),
    ]
    .into_iter()
    .flatten()
    .collect();
    RunRecord {
        pn_host_version: env!("CARGO_PKG_VERSION").into(),
        strategy: config.strategy.clone(),
        model: config.model.clone(),
        dataset: config.dataset.clone(),
        train: config.train.clone(),
        seed: config.seed,
        device: device_name.into(),
        result: RunResult {
            status: Status::Failed,
            ..RunResult::default()
        },
        plugins,
        kept: vec![],
        test_split: false,
    }
}

/// The record and outcome of a run that failed before or outside training.
pub fn failed(
    registry: &Registry,
    config: &RunConfig,
    device_name: &str,
    message: String,
) -> (RunRecord, Outcome) {
    let outcome = Outcome {
        result: RunResult {
            status: Status::Failed,
            message: Some(message),
            ..RunResult::default()
        },
        ..Outcome::default()
    };
    let mut record = blank_record(registry, config, device_name);
    record.result = outcome.result.clone();
    (record, outcome)
}
