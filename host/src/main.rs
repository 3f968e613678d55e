//! The `pn-host` command line: parses ([`cli`]), calls the `pn_host` library and prints.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cli::{
    global_args, plugin_dirs, Cli, Command, CompareArgs, Global, NewKind, PluginsCommand, PoolArgs,
    RunArgs, SuiteCommand,
};
use pn_host::bench::pytorch::Reference;
use pn_host::containment;
use pn_host::plugin::registry::{plugins_in, Kind, Registry};
use pn_host::progress::{finish, Bar};
use pn_host::report;
use pn_host::results::Store;
use pn_host::run::{self, RunConfig, RunRecord};
use pn_host::suite::execute::SuiteOptions;
use pn_host::suite::pool;
use pn_host::suite::slurm;
use pn_host::suite::{self, Suite};
use pn_host::train::Status;

/// mimalloc instead of the system allocator: a training step allocates and frees many
/// tensor-sized buffers (a megabyte and more), which glibc's allocator serves with fresh
/// `mmap`s and page faults; mimalloc reuses them (the persistence penalty's step cost fell by
/// a third with it, see `pn-host bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn execute_and_save(
    registry: &Registry,
    config: &RunConfig,
    data: &pn_host::train::data::Data,
    global: &Global,
    dir: &std::path::Path,
) -> Result<RunRecord, String> {
    let label = format!("{} seed {}", config.strategy.name, config.seed);
    let mut bar = Bar::new(label, global.quiet);
    let (record, outcome) = run::execute(registry, config, data, &global.device, &mut bar);
    let line = finish(bar, &record);
    run::write_run(&dir.join(run::run_dir_name(config)), &record, &outcome)?;
    if record.status == Status::Completed {
        if !global.quiet {
            pn_host::errln!("{line}");
        }
    } else {
        pn_host::errln!("error: {line}");
    }
    Ok(record)
}

/// The default job: the embedded suite, or the `--plugin` files' strategies against its
/// reference.
fn compare(registry: &Registry, global: &Global, args: &CompareArgs) -> Result<bool, String> {
    let suite = suite::default::default_comparison(registry, &global.plugins, args.seeds)?;
    let out = args.out.clone().unwrap_or_else(|| "runs/default".into());
    run_suite(registry, global, suite, &out, &args.pool, None, false)
}

fn read_suite(registry: &Registry, file: &std::path::Path) -> Result<Suite, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read suite file {}: {e}", file.display()))?;
    Suite::parse(&text, &file.display().to_string(), registry)
}

fn run_suite(
    registry: &Registry,
    global: &Global,
    suite: Suite,
    out: &std::path::Path,
    pool: &PoolArgs,
    shard: Option<(usize, usize)>,
    retry_failed: bool,
) -> Result<bool, String> {
    let options = SuiteOptions {
        out: out.to_path_buf(),
        device: global.device.clone(),
        jobs: pool
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        timeout: pool.timeout.map(seconds).transpose()?,
        shard,
        retry_failed,
        quiet: global.quiet,
        worker_flags: global_args(global),
    };
    let result = suite::execute::execute(registry, suite, &options)?;
    match (&result.report, shard) {
        (Some(report), _) => {
            pn_host::outln!("{}", report.table());
            pn_host::outln!(
                "report: {}",
                report::markdown_path(&result.store.dir).display()
            );
        }
        (None, Some((i, n))) => pn_host::outln!(
            "shard {i}/{n} done; when every shard is done: pn-host suite report {}",
            result.store.dir.display()
        ),
        (None, None) => {}
    }
    Ok(result.all_completed)
}

/// A `--timeout` value as a duration.
fn seconds(value: f64) -> Result<std::time::Duration, String> {
    std::time::Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("--timeout must be a positive number of seconds, got {value}"))
}

fn suite_command(
    registry: &Registry,
    global: &Global,
    command: &SuiteCommand,
) -> Result<bool, String> {
    match command {
        SuiteCommand::Run(args) => {
            let suite = read_suite(registry, &args.file)?;
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(&suite.name));
            let shard = args.shard.as_deref().map(suite::parse_shard).transpose()?;
            run_suite(
                registry,
                global,
                suite,
                &out,
                &args.pool,
                shard,
                args.retry_failed,
            )
        }
        SuiteCommand::Report { dir } => {
            let store = Store::open(dir)?;
            let report = report::write(&store)?;
            pn_host::outln!("{}", report.table());
            pn_host::outln!("report: {}", report::markdown_path(dir).display());
            Ok(report.missing.is_empty())
        }
        SuiteCommand::Slurm(args) => {
            let suite = read_suite(registry, &args.file)?;
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(&suite.name));
            if let Some(warning) = slurm::cpu_warning(args.cpus_per_task, args.partition.as_deref())
            {
                pn_host::errln!("warning: {warning}");
            }
            let dir = slurm::write(&slurm::Slurm {
                suite: &suite,
                file: &args.file,
                out: &out,
                shards: args.shards,
                cpus: args.cpus_per_task,
                time: &args.time,
                partition: args.partition.as_deref(),
                gpu: global.device.starts_with("cuda"),
                global_args: global_args(global),
            })?;
            pn_host::outln!(
                "wrote {0}/array.sbatch and {0}/report.sbatch; submit both with: bash {0}/submit.sh",
                dir.display()
            );
            Ok(true)
        }
        SuiteCommand::Worker { dir } => {
            pool::worker(registry, &Store::create(dir)?, &global.device)?;
            Ok(true)
        }
    }
}

fn run(registry: &Registry, global: &Global, args: &RunArgs) -> Result<bool, String> {
    let config = run::assemble_config(&run::RunChoices {
        file: args.config.as_deref(),
        strategy: args.strategy.as_deref(),
        model: args.model.as_deref(),
        dataset: args.dataset.as_deref(),
        seed: args.seed,
        set: &args.set,
    })?;
    config.train.validate()?;
    // Every component builds from its config before a run folder exists: a mistake there is
    // one line and leaves nothing behind.
    registry.strategy(&config.strategy.name, &config.strategy.config)?;
    registry.model(&config.model.name, &config.model.config)?;
    registry.dataset(&config.dataset.name, &config.dataset.config)?;
    let device = pn_host::device::parse_device(&global.device)?;
    if config.train.timeout > 0.0 {
        containment::exit_after(
            std::time::Duration::from_secs_f64(config.train.timeout),
            format!(
                "timed out: the run took longer than its limit of {} s (train.timeout); no result was written",
                config.train.timeout
            ),
        );
    }
    let data = run::load_data(registry, &config.dataset, &device)?;
    let dir = run::job_dir(&args.out, "run")?;
    let record = execute_and_save(registry, &config, &data, global, &dir)?;
    pn_host::outln!(
        "{}",
        dir.join(run::run_dir_name(&config))
            .join("run.json")
            .display()
    );
    Ok(record.status == Status::Completed)
}

/// `plugins test`: every conformance check of every file, one line each.
fn plugins_test(registry: &Registry, files: &[PathBuf]) -> Result<bool, String> {
    let (mut failed, mut total) = (0, 0);
    for file in files {
        pn_host::outln!("{}", file.display());
        for check in pn_host::conformance::test_plugin(registry, file)? {
            total += 1;
            failed += matches!(check.verdict, pn_host::conformance::Verdict::Fail(_)) as usize;
            pn_host::outln!("  {}", check.line());
        }
    }
    if failed > 0 {
        pn_host::errln!("error: {failed} of {total} checks failed");
    }
    Ok(failed == 0)
}

fn list(registry: &Registry) {
    pn_host::out!("{}", registry.describe());
}

fn main_inner(cli: Cli) -> Result<bool, String> {
    let global = &cli.global;
    pn_host::log::set_verbosity(if global.quiet {
        0
    } else if global.verbose {
        2
    } else {
        1
    });
    match &cli.command {
        Some(Command::Plugins(PluginsCommand::Check { file })) => {
            let registry = Registry::load(std::slice::from_ref(file), &[])?;
            list(&registry);
            return Ok(true);
        }
        Some(Command::Plugins(PluginsCommand::Test { files })) => {
            let explicit: Vec<PathBuf> = global.plugins.iter().chain(files).cloned().collect();
            let registry = Registry::load(&explicit, &plugin_dirs(global))?;
            return plugins_test(&registry, files);
        }
        Some(Command::New {
            kind,
            name,
            dir,
            api,
        }) => {
            let kind = match kind {
                NewKind::Strategy => Kind::Strategy,
                NewKind::Model => Kind::Model,
                NewKind::Dataset => Kind::Dataset,
            };
            let api = pn_host::scaffold::find_api(api.as_deref())?;
            let written = pn_host::scaffold::write(kind, name, dir, &api)?;
            let joined = match written.workspace == written.root {
                true => String::new(),
                false => format!(
                    " (a member of the workspace {})",
                    written.workspace.display()
                ),
            };
            pn_host::outln!(
                "wrote {}{joined}: cd {} && cargo build --release, then pn-host --plugin {}",
                written.root.display(),
                written.workspace.display(),
                written.library(name).display()
            );
            return Ok(true);
        }
        _ => {}
    }
    let dirs = plugin_dirs(global);
    for dir in &global.plugin_dirs {
        if !dir.is_dir() {
            return Err(format!("plugin directory not found: {}", dir.display()));
        }
    }
    let registry = Registry::load(&global.plugins, &dirs)?;
    match &cli.command {
        Some(Command::Plugins(PluginsCommand::List)) => {
            list(&registry);
            if registry.plugins.is_empty() && dirs.iter().all(|d| plugins_in(d).is_empty()) {
                return Ok(false);
            }
            Ok(true)
        }
        Some(
            Command::Plugins(PluginsCommand::Check { .. } | PluginsCommand::Test { .. })
            | Command::New { .. },
        ) => Ok(true),
        Some(Command::Run(args)) => run(&registry, global, args),
        Some(Command::Suite(command)) => suite_command(&registry, global, command),
        Some(Command::Surface { run_dir, grid }) => {
            let device = pn_host::device::parse_device(&global.device)?;
            let png = pn_host::surface::draw(&registry, run_dir, &device, *grid)?;
            pn_host::outln!("{}", png.display());
            Ok(true)
        }
        Some(Command::Bench {
            steps,
            only,
            strategies,
            pytorch,
        }) => {
            let device = pn_host::device::parse_device(&global.device)?;
            let mut names: Vec<&str> = strategies.iter().map(String::as_str).collect();
            if names.is_empty() {
                names = pn_host::bench::DEFAULT_STRATEGIES.to_vec();
            }
            let mut reference = match pytorch {
                Some(python) => {
                    let reference = Reference::start(python, &global.device)?;
                    pn_host::outln!("PyTorch reference: {}", reference.banner);
                    Some(reference)
                }
                None => None,
            };
            let only = only.as_deref();
            let results =
                pn_host::bench::run(&registry, &device, *steps, only, &names, reference.as_mut())?;
            pn_host::outln!("{}", pn_host::bench::format(&results));
            Ok(true)
        }
        None => compare(&registry, global, &cli.compare),
    }
}

/// What survives when the process that runs plugin code for `command` crashes; `None` for
/// commands that run no plugin code (or are already a child: suite workers).
fn kept_after_crash(command: &Option<Command>) -> Option<&'static str> {
    match command {
        Some(Command::Run(_)) => Some("no result was written"),
        None | Some(Command::Suite(SuiteCommand::Run(_))) => {
            Some("finished runs are kept, and running the same command again resumes")
        }
        Some(Command::Plugins(_) | Command::Surface { .. } | Command::Bench { .. }) => {
            Some("nothing was written")
        }
        Some(Command::Suite(SuiteCommand::Slurm(_))) => Some("no scripts were written"),
        Some(Command::New { .. })
        | Some(Command::Suite(SuiteCommand::Report { .. } | SuiteCommand::Worker { .. })) => None,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let is_child = containment::is_child();
    if let Some(kept) = kept_after_crash(&cli.command) {
        if !is_child {
            return containment::run_contained(kept);
        }
    }
    pn_host::quiet_panics();
    let code = match std::panic::catch_unwind(|| main_inner(cli)) {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::from(1),
        Ok(Err(message)) => {
            pn_host::errln!("error: {message}");
            ExitCode::from(1)
        }
        Err(payload) => {
            let message =
                pn_host::take_panic().unwrap_or_else(|| pn_host::panic_message(payload.as_ref()));
            pn_host::errln!("error: internal error in pn-host: {message}");
            ExitCode::from(2)
        }
    };
    containment::mark_finished();
    code
}
