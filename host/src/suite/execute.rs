//! Executing a suite: plan it, skip what the results store already holds, check every data
//! set once, run the rest in worker processes, and write the report. With tuning, the final
//! runs of a tuned strategy follow in a second round, once its trials have results.

use std::path::PathBuf;

use crate::error::Error;
use crate::plugin::registry::Registry;
use crate::report::{self, Report};
use crate::results::{RunState, Sharding, Store};
use crate::run;
use crate::suite::cost::{self, StepCosts};
use crate::suite::pool::{self, PoolOptions};
use crate::suite::{tuning, Plan, PlannedRun, Suite};
use crate::train::Status;

/// How to execute a suite.
pub struct SuiteOptions {
    /// The suite directory.
    pub out: PathBuf,
    /// The device name (`cpu`, `cuda:0`, ...).
    pub device: String,
    /// Worker processes at a time.
    pub jobs: usize,
    /// Only shard I of N.
    pub shard: Option<(usize, usize)>,
    /// Rerun runs that failed before.
    pub retry_failed: bool,
    /// Only warnings and results on stderr.
    pub quiet: bool,
    /// The `pn-host` flags a worker needs to load the same plugins and device.
    pub worker_flags: Vec<String>,
    /// The time limit of a run whose `train.timeout` is unset.
    pub timeout: Option<std::time::Duration>,
}

/// What executing a suite left.
pub struct SuiteResult {
    /// The suite directory.
    pub store: Store,
    /// The report (None for a shard: it is written once every shard is done).
    pub report: Option<Report>,
    /// Whether every run of this invocation completed.
    pub all_completed: bool,
}

/// Executes `suite` as `opts` say (see the module docs).
pub fn execute(
    registry: &Registry,
    suite: Suite,
    opts: &SuiteOptions,
) -> Result<SuiteResult, Error> {
    crate::device::parse_device(&opts.device)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find pn-host itself: {e}"))?;
    let mut options = PoolOptions {
        exe,
        worker_args: opts.worker_flags.clone(),
        jobs: opts.jobs,
        quiet: opts.quiet,
        timeout: opts.timeout,
    };
    let costs = match suite.equal_steps {
        true => {
            let probes = cost::probes(&suite);
            check_data_sets(registry, &probes)?;
            StepCosts::measure(&probes, &options)?
        }
        false => StepCosts::one_pass(),
    };
    let mut plan = suite.plan(&costs);
    let store = Store::create(&opts.out)?;
    store.clean_leftovers();
    if let Some((_, n)) = opts.shard {
        // Tasks of the array job that `suite slurm` wrote keep its record.
        let slurm = store.sharding().is_some_and(|s| s.slurm && s.shards == n);
        store.write_sharding(&Sharding { shards: n, slurm })?;
    }
    options.worker_args.extend([
        "suite".into(),
        "worker".into(),
        store.dir.display().to_string(),
    ]);
    let record_crash = |run: &PlannedRun, message: &str| {
        let (record, outcome) = run::failed(registry, &run.config, &opts.device, message.into());
        store
            .write_unless_finished(run, &record, &outcome)
            .map_err(String::from)
    };
    // A tuned strategy's final runs wait for its trials: a second round runs those whose
    // trials the first round finished.
    let (mut reports, mut waiting) = (vec![], 0);
    for round in 0..2 {
        tuning::resolve(&mut plan, |run| store.result(run, Some(registry)));
        store.write_plan(&plan, &suite.source)?;
        let mine = match opts.shard {
            Some(s) => crate::suite::shard(plan.runs.clone(), s),
            None => plan.runs.clone(),
        };
        let pending = Pending::sort(&plan, mine, &store, registry, opts.retry_failed);
        waiting = pending.waiting;
        if round > 0 && pending.todo.is_empty() {
            break;
        }
        check_data_sets(registry, &pending.todo)?;
        if !opts.quiet {
            crate::errln!("{}", pending.line(&plan, opts, &store));
        }
        let stats = pool::execute(pending.todo, &options, &record_crash)?;
        if let (Some(overhead), false) = (stats.overhead(), opts.quiet) {
            crate::errln!(
                "{} runs in this invocation; suite overhead (worker start, plugin loading, data, \
                 writing results): {:.2}% of training time",
                stats.reports.len(),
                100.0 * overhead
            );
        }
        reports.extend(stats.reports);
        if waiting == 0 {
            break;
        }
    }
    if waiting > 0 {
        crate::errln!(
            "warning: {waiting} final runs wait for tuning trials without a result yet (another shard's, or interrupted): run this command again once they have one"
        );
    }
    let report = match opts.shard {
        Some(_) => None,
        None => Some(report::write(&store)?),
    };
    Ok(SuiteResult {
        all_completed: reports.iter().all(|r| r.status == Status::Completed),
        store,
        report,
    })
}

/// A round's runs: those to do, and how many are finished, failed before or wait for their
/// tuning trials.
struct Pending {
    todo: Vec<PlannedRun>,
    done: usize,
    skipped_failed: usize,
    waiting: usize,
}

impl Pending {
    /// Sorts `mine` by their state in `store` (a failed run is redone with `retry_failed`).
    fn sort(
        plan: &Plan,
        mine: Vec<PlannedRun>,
        store: &Store,
        registry: &Registry,
        retry_failed: bool,
    ) -> Self {
        let (mut todo, mut done, mut skipped_failed, mut waiting) = (vec![], 0, 0, 0);
        for run in mine {
            if tuning::waits(plan, &run) {
                waiting += 1;
                continue;
            }
            match store.state(&run, Some(registry)) {
                RunState::Finished(_) => done += 1,
                RunState::Failed(_) if !retry_failed => skipped_failed += 1,
                _ => todo.push(run),
            }
        }
        Self {
            todo,
            done,
            skipped_failed,
            waiting,
        }
    }

    /// The line that says what this round does.
    fn line(&self, plan: &Plan, opts: &SuiteOptions, store: &Store) -> String {
        let (done, skipped_failed, waiting) = (self.done, self.skipped_failed, self.waiting);
        format!(
            "suite `{}`{}: {} runs to do, {done} already finished{}{} -> {}",
            plan.suite,
            opts.shard
                .map(|(i, n)| format!(" shard {i}/{n}"))
                .unwrap_or_default(),
            self.todo.len(),
            if skipped_failed > 0 {
                format!(", {skipped_failed} failed before (--retry-failed reruns them)")
            } else {
                String::new()
            },
            if waiting > 0 {
                format!(", {waiting} final runs wait for their tuning trials")
            } else {
                String::new()
            },
            store.dir.display()
        )
    }
}

/// Loads each data set of `runs` once (plugin `load` only, nothing on the device): a data set
/// that cannot load stops the suite once, before any run, rather than failing every run of its
/// workload.
fn check_data_sets(registry: &Registry, runs: &[PlannedRun]) -> Result<(), Error> {
    let mut loaded: Vec<&run::ComponentRef> = vec![];
    for run in runs {
        let dataset = &run.config.dataset;
        if !loaded.contains(&dataset) {
            run::load_splits(registry, dataset)
                .map_err(|e| format!("workload `{}`: {e}", run.workload))?;
            loaded.push(dataset);
        }
    }
    Ok(())
}
