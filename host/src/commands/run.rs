//! `pn-host run`: one strategy × model × data set × seed, checked before anything is written,
//! trained with a progress bar, saved to a new job folder whose `run.json` path is printed.

use std::path::Path;

use crate::containment;
use crate::error::Error;
use crate::plugin::registry::Registry;
use crate::progress::{finish, Bar};
use crate::run::{self, RunChoices, RunConfig, RunRecord};
use crate::train::data::Data;
use crate::train::Status;

/// Assembles the run's config from `choices`, builds every component, loads the data, trains
/// on `device` (a device name) into a new folder under `out` and prints its `run.json`; `false`
/// when the run did not complete. `quiet` leaves out the progress bar and the success line.
pub fn run(
    registry: &Registry,
    choices: &RunChoices<'_>,
    out: &Path,
    device: &str,
    quiet: bool,
) -> Result<bool, Error> {
    let config = run::assemble_config(choices)?;
    config.train.validate()?;
    // Every component builds from its config before a run folder exists: a mistake there is
    // one line and leaves nothing behind.
    registry.strategy(&config.strategy.name, &config.strategy.config)?;
    registry.model(&config.model.name, &config.model.config)?;
    registry.dataset(&config.dataset.name, &config.dataset.config)?;
    let parsed = crate::device::parse_device(device)?;
    if config.train.timeout > 0.0 {
        containment::exit_after(
            std::time::Duration::from_secs_f64(config.train.timeout),
            format!(
                "timed out: the run took longer than its limit of {} s (train.timeout); no result was written",
                config.train.timeout
            ),
        );
    }
    let data = run::load_data(registry, &config.dataset, &parsed)?;
    let dir = run::job_dir(out, "run")?;
    let record = execute_and_save(registry, &config, &data, device, quiet, &dir)?;
    crate::outln!(
        "{}",
        dir.join(run::run_dir_name(&config))
            .join("run.json")
            .display()
    );
    Ok(record.result.status == Status::Completed)
}

/// Trains one run with a progress bar, writes its folder under `dir` and prints its last line
/// (an error always, a success unless `quiet`).
fn execute_and_save(
    registry: &Registry,
    config: &RunConfig,
    data: &Data,
    device: &str,
    quiet: bool,
    dir: &Path,
) -> Result<RunRecord, Error> {
    let label = format!("{} seed {}", config.strategy.name, config.seed);
    let mut bar = Bar::new(label, quiet);
    let (record, outcome) = run::execute(registry, config, data, device, &mut bar);
    let line = finish(bar, &record);
    run::write_run(&dir.join(run::run_dir_name(config)), &record, &outcome)?;
    if record.result.status == Status::Completed {
        if !quiet {
            crate::errln!("{line}");
        }
    } else {
        crate::errln!("error: {line}");
    }
    Ok(record)
}
