//! `suite run` (and the default comparison), `suite report`, `suite slurm` and `suite worker`:
//! read a suite file, execute it or write its Slurm scripts, and print the table and where the
//! report is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;
use crate::plugin::registry::Registry;
use crate::report;
use crate::results::Store;
use crate::suite::execute::{self, SuiteOptions};
use crate::suite::{slurm, worker, Suite};

/// Reads and checks a suite file.
pub fn read(registry: &Registry, file: &Path) -> Result<Suite, Error> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io("read suite file", file, e))?;
    Suite::parse(&text, &file.display().to_string(), registry)
}

/// The suite directory: `out` when given, else `runs/<suite name>`.
pub fn out_dir(out: Option<&Path>, suite: &Suite) -> PathBuf {
    out.map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("runs").join(&suite.name))
}

/// Runs at a time when `--jobs` is not given: the number of CPUs.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A `--timeout` value as a duration.
pub fn seconds(value: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            format!("--timeout must be a positive number of seconds, got {value}").into()
        })
}

/// Executes `suite` and prints its table and report path (or, for a shard, how to report once
/// every shard is done); `false` when a run did not complete.
pub fn run(registry: &Registry, suite: Suite, options: &SuiteOptions) -> Result<bool, Error> {
    let result = execute::execute(registry, suite, options)?;
    match (&result.report, options.shard) {
        (Some(report), _) => {
            crate::outln!("{}", report.table());
            crate::outln!(
                "report: {}",
                report::markdown_path(&result.store.dir).display()
            );
        }
        (None, Some((i, n))) => crate::outln!(
            "shard {i}/{n} done; when every shard is done: pn-host suite report {}",
            result.store.dir.display()
        ),
        (None, None) => {}
    }
    Ok(result.all_completed)
}

/// `suite report`: writes the report of a suite directory and prints its table and path;
/// `false` when runs are missing.
pub fn report(dir: &Path) -> Result<bool, Error> {
    let store = Store::open(dir)?;
    let report = report::write(&store)?;
    crate::outln!("{}", report.table());
    crate::outln!("report: {}", report::markdown_path(dir).display());
    Ok(report.missing.is_empty())
}

/// `suite slurm`: warns about a CPU count the partition may not have, writes the scripts and
/// prints how to submit them.
pub fn slurm(job: &slurm::Slurm) -> Result<(), Error> {
    if let Some(warning) = slurm::cpu_warning(job.cpus, job.partition) {
        crate::errln!("warning: {warning}");
    }
    let dir = slurm::write(job)?;
    crate::outln!(
        "wrote {0}/array.sbatch and {0}/report.sbatch; submit both with: bash {0}/submit.sh",
        dir.display()
    );
    Ok(())
}

/// `suite worker` (internal): executes the runs sent on stdin into the suite directory `dir`.
pub fn worker(registry: &Registry, dir: &Path, device: &str) -> Result<(), Error> {
    worker::worker(registry, &Store::create(dir)?, device)
}
