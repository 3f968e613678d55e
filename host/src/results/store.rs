//! The results store: a suite directory on disk.
//!
//! A suite directory holds `plan.json` (every planned run, so `suite report` needs no plugins),
//! `shards.json` once the plan has been split into shards, and `runs/<id>/` per run:
//! `config.json`, `run.json` (the manifest: versions, device, plugin hashes, status, metrics),
//! `metrics.csv` and `metrics.jsonl` (per epoch), `model.safetensors` and `kept.safetensors`. A run
//! folder is written under a temporary name and renamed into place, so it is either complete or
//! absent.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::plugin::registry::Registry;
use crate::run::{self, RunConfig, RunRecord};
use crate::suite::plan::{Plan, PlannedRun};
use crate::train::{Outcome, Status};

/// Where a suite's files live.
#[derive(Debug, Clone)]
pub struct Store {
    /// The suite directory.
    pub dir: PathBuf,
}

/// A run's lock, held while the value lives (see [`Store::lock_run`]).
pub struct RunLock(#[allow(dead_code)] std::fs::File);

/// What the store holds for a planned run.
#[derive(Debug)]
pub enum RunState {
    /// No finished folder.
    Missing,
    /// A folder from another config or other plugin files.
    Stale,
    /// Completed or diverged: a result.
    Finished(Box<RunRecord>),
    /// The run failed (a plugin error or a crash).
    Failed(Box<RunRecord>),
}

/// How a suite's plan is split into shards (`suite run --shard I/N`, `suite slurm --shards N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sharding {
    /// N: shard I runs every N-th run of the plan, starting at the I-th.
    pub shards: usize,
    /// Whether the shards are the tasks of the array job in `slurm/array.sbatch`.
    pub slurm: bool,
}

impl Store {
    /// Opens (creating) a suite directory.
    pub fn create(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir.join("runs")).map_err(|e| Error::io("create", dir, e))?;
        Ok(Self { dir: dir.into() })
    }

    /// Opens an existing suite directory.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        if !dir.join("plan.json").is_file() {
            return Err(format!(
                "{} is not a suite directory (no plan.json; run `pn-host suite run FILE` first)",
                dir.display()
            )
            .into());
        }
        Ok(Self { dir: dir.into() })
    }

    /// The folder of run `id`.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.dir.join("runs").join(id)
    }

    /// Writes `plan.json` and the suite file's text (atomically).
    pub fn write_plan(&self, plan: &Plan, source: &str) -> Result<(), Error> {
        let json = serde_json::to_vec_pretty(plan).map_err(|e| e.to_string())?;
        run::write_atomic(&self.dir.join("plan.json"), &json)?;
        run::write_atomic(&self.dir.join("suite.toml"), source.as_bytes())
    }

    /// Reads `plan.json`.
    pub fn read_plan(&self) -> Result<Plan, Error> {
        let path = self.dir.join("plan.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()).into())
    }

    /// Records how the plan was last split into shards (`shards.json`), so that a report can
    /// say which shard each missing run belongs to.
    pub fn write_sharding(&self, sharding: &Sharding) -> Result<(), Error> {
        let json = serde_json::to_vec_pretty(sharding).map_err(|e| e.to_string())?;
        run::write_atomic(&self.dir.join("shards.json"), &json)
    }

    /// How the plan was last split into shards; None if it never was (or the record is
    /// unreadable: a report then lists missing runs without their shards).
    pub fn sharding(&self) -> Option<Sharding> {
        let bytes = std::fs::read(self.dir.join("shards.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The state of `run`; with `plugins`, a run made with other plugin files is stale.
    pub fn state(&self, run: &PlannedRun, plugins: Option<&Registry>) -> RunState {
        let dir = self.run_dir(&run.id);
        let config: Option<RunConfig> = std::fs::read(dir.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let record: Option<RunRecord> = std::fs::read(dir.join("run.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let (Some(config), Some(record)) = (config, record) else {
            return RunState::Missing;
        };
        let changed_plugin = plugins.is_some_and(|registry| {
            record
                .plugins
                .iter()
                .any(|used| !registry.plugins.iter().any(|p| p.sha256 == used.sha256))
        });
        if config != run.config || changed_plugin {
            return RunState::Stale;
        }
        match record.result.status {
            Status::Failed => RunState::Failed(Box::new(record)),
            _ => RunState::Finished(Box::new(record)),
        }
    }

    /// The result of `run` (finished or failed), if the store holds a current one.
    pub fn result(&self, run: &PlannedRun, plugins: Option<&Registry>) -> Option<RunRecord> {
        match self.state(run, plugins) {
            RunState::Finished(r) | RunState::Failed(r) => Some(*r),
            RunState::Missing | RunState::Stale => None,
        }
    }

    /// Writes a run's folder: everything goes into a temporary folder that is then renamed
    /// into place, replacing an older folder of the same run.
    pub fn write_run(
        &self,
        run: &PlannedRun,
        record: &RunRecord,
        outcome: &Outcome,
    ) -> Result<(), Error> {
        let runs = self.dir.join("runs");
        let tag = format!("{}-{}", host_name(), std::process::id());
        let tmp = runs.join(format!(".tmp-{}-{tag}", run.id));
        let _ = std::fs::remove_dir_all(&tmp);
        run::write_run(&tmp, record, outcome)?;
        let config = serde_json::to_vec_pretty(&run.config).map_err(|e| e.to_string())?;
        run::write_atomic(&tmp.join("config.json"), &config)?;
        write_metrics(&tmp, record)?;
        let target = self.run_dir(&run.id);
        if target.exists() {
            let old = runs.join(format!(".old-{}-{tag}", run.id));
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(&target, &old).map_err(|e| Error::io("replace", &target, e))?;
            let _ = std::fs::remove_dir_all(&old);
        }
        std::fs::rename(&tmp, &target).map_err(|e| Error::io("write", &target, e))
    }

    /// Takes run `id`'s lock (`locks/<id>`), waiting while another process holds it, so
    /// that one process at a time executes and writes a run: suites started twice on one
    /// directory, or shards that overlap, then never overwrite each other's results. The lock
    /// goes with the returned value (or with the process).
    pub fn lock_run(&self, id: &str) -> Result<RunLock, Error> {
        use std::os::fd::AsRawFd;
        let locks = self.dir.join("locks");
        std::fs::create_dir_all(&locks).map_err(|e| Error::io("create", &locks, e))?;
        let path = locks.join(id);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        // SAFETY: flock on a file descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(Error::io("lock", &path, std::io::Error::last_os_error()));
        }
        Ok(RunLock(file))
    }

    /// Writes `record` for `run` unless another process has meanwhile finished it (a
    /// completed or diverged result is never replaced by a failure).
    pub fn write_unless_finished(
        &self,
        run: &PlannedRun,
        record: &RunRecord,
        outcome: &Outcome,
    ) -> Result<(), Error> {
        let _lock = self.lock_run(&run.id)?;
        if matches!(self.state(run, None), RunState::Finished(_)) {
            return Ok(());
        }
        self.write_run(run, record, outcome)
    }

    /// Removes temporary folders left by killed processes of this machine.
    pub fn clean_leftovers(&self) {
        let prefix = format!("{}-", host_name());
        let Ok(entries) = std::fs::read_dir(self.dir.join("runs")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with(".tmp-") || name.starts_with(".old-")) {
                continue;
            }
            let pid = name
                .rsplit_once('-')
                .and_then(|(rest, pid)| rest.contains(&prefix).then_some(pid))
                .and_then(|pid| pid.parse::<i32>().ok());
            if pid.is_some_and(|pid| !process_alive(pid)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if ok && end > 0 {
        String::from_utf8_lossy(&buf[..end]).replace(['-', '/', '.'], "_")
    } else {
        "host".into()
    }
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let sent = unsafe { libc::kill(pid, 0) } == 0;
    sent || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// One row of `metrics.csv` / `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// Phase, from 1.
    pub phase: u32,
    /// Epoch within the phase, from 1.
    pub epoch: u32,
    /// Optimizer steps since the run started, over all phases.
    pub step: u64,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Training accuracy over the epoch's batches.
    pub train_accuracy: Option<f64>,
    /// Held-out loss after the epoch.
    pub valid_loss: f64,
    /// Held-out accuracy after the epoch.
    pub valid_accuracy: Option<f64>,
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// Saturation per activation layer on the held-out split, `act1.relu=0.25;act2.relu=0`.
    pub saturation: String,
}

/// The per-epoch rows of a run, with steps counted over all phases.
pub fn metric_rows(record: &RunRecord) -> Vec<MetricRow> {
    let mut rows = vec![];
    let mut before = 0u64;
    for (p, phase) in record.result.phases.iter().enumerate() {
        let per_epoch = phase.steps / phase.epochs.len().max(1) as u64;
        for e in &phase.epochs {
            rows.push(MetricRow {
                phase: p as u32 + 1,
                epoch: e.epoch,
                step: before + per_epoch * e.epoch as u64,
                train_loss: e.train_loss,
                train_accuracy: e.train_accuracy,
                valid_loss: e.valid_loss,
                valid_accuracy: e.valid_accuracy,
                elapsed_s: e.elapsed_s,
                saturation: e
                    .saturation
                    .iter()
                    .map(|l| format!("{}={}", l.layer, l.fraction))
                    .collect::<Vec<_>>()
                    .join(";"),
            });
        }
        before += phase.steps;
    }
    rows
}

fn write_metrics(dir: &Path, record: &RunRecord) -> Result<(), Error> {
    let rows = metric_rows(record);
    let mut csv = csv::Writer::from_writer(vec![]);
    let mut jsonl = vec![];
    for row in &rows {
        csv.serialize(row).map_err(|e| e.to_string())?;
        serde_json::to_writer(&mut jsonl, row).map_err(|e| e.to_string())?;
        jsonl.push(b'\n');
    }
    let csv = csv.into_inner().map_err(|e| e.to_string())?;
    run::write_atomic(&dir.join("metrics.csv"), &csv)?;
    run::write_atomic(&dir.join("metrics.jsonl"), &jsonl)
}
