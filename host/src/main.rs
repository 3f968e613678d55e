//! The `pn-host` command line: a thin layer over the `pn_host` library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pn_host::plugin::registry::{plugins_in, Kind, Registry};
use pn_host::report;
use pn_host::results::Store;
use pn_host::run::{self, ComponentRef, RunConfig, RunRecord};
use pn_host::suite::execute::SuiteOptions;
use pn_host::suite::pool;
use pn_host::suite::slurm;
use pn_host::suite::{self, Suite};
use pn_host::train::{EpochMetrics, Observer, Status};
use serde_json::Value;

/// Train and compare persistent-neuron strategies loaded from plugins.
///
/// With no subcommand, runs the embedded default suite (suites/default.toml: every strategy
/// found, or those of the `--plugin` files, against `baseline` on the teacher-student workload)
/// into `runs/default` and prints its report.
#[derive(Parser)]
#[command(name = "pn-host", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(flatten)]
    compare: CompareArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args)]
struct Global {
    /// A plugin file to load (repeatable). Also loaded: every `.so` in the plugin directories.
    #[arg(long = "plugin", global = true, value_name = "FILE")]
    plugins: Vec<PathBuf>,
    /// A directory of plugins (repeatable; default `plugins/`, plus `PN_PLUGIN_PATH`).
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// Device: `cpu` (Burn flex) or `cuda[:N]` (built with `--features cuda`).
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
    /// Only warnings and results.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Also debug lines from the host and plugins.
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Args)]
struct CompareArgs {
    /// Seeds per strategy (default: the suite's 20).
    #[arg(long)]
    seeds: Option<u64>,
    /// The suite directory (default: runs/default).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Runs at a time, each in its own worker process (default: the number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Write a new plugin crate (a strategy, model or data set) that builds against
    /// pn-plugin-api and loads into this pn-host.
    New {
        /// What the plugin provides.
        kind: NewKind,
        /// Its name: lower-case letters, digits and `_` (the crate and the component).
        name: String,
        /// The folder to create the crate in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The pn-plugin-api folder to build against (default: the one of the checkout this
        /// pn-host was built in).
        #[arg(long)]
        api: Option<PathBuf>,
    },
    /// Train one strategy x model x data set x seed.
    Run(RunArgs),
    /// Plot the loss surface of a two-parameter model (e.g. toy2d) with a run's trajectory
    /// (recorded with `--set train.record_every=N`) and its anchors.
    Surface {
        /// The run's folder (with run.json and trajectory.csv).
        run_dir: PathBuf,
        /// Grid points per axis.
        #[arg(long, default_value_t = 80)]
        grid: usize,
    },
    /// Comparison suites: many runs from one file, with statistics and plots.
    #[command(subcommand)]
    Suite(SuiteCommand),
    /// Milliseconds per training step: plugin boundary and persistence penalty vs plain Burn.
    Bench {
        /// Timed steps per block (divided for slow models: LeNet-5 by 10, ResNet-20 by 100).
        #[arg(long, default_value_t = 200)]
        steps: usize,
        /// Only the workloads whose name contains this, e.g. `resnet`.
        #[arg(long)]
        only: Option<String>,
        /// The strategies to time, comma-separated (default: baseline,full_persistent).
        #[arg(long, value_delimiter = ',')]
        strategies: Vec<String>,
    },
}

/// The kinds of plugin `pn-host new` writes.
#[derive(Clone, Copy, clap::ValueEnum)]
enum NewKind {
    Strategy,
    Model,
    Dataset,
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// List every loaded plugin and what it provides.
    List,
    /// Load one file and say what it provides, its API version, or why it cannot load.
    Check {
        /// The plugin file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum SuiteCommand {
    /// Run every strategy × workload × seed of a suite file that has no result yet, then report.
    Run(SuiteRunArgs),
    /// Summarise a suite directory: table, summary.csv, report.md and plots.
    Report {
        /// The suite directory.
        dir: PathBuf,
    },
    /// Write Slurm scripts that run the suite as an array job, one shard per task, then report.
    Slurm(SlurmArgs),
    /// (internal) Execute runs sent on stdin; used by `suite run`.
    #[command(hide = true)]
    Worker {
        /// The suite directory.
        dir: PathBuf,
    },
}

#[derive(Args)]
struct SuiteRunArgs {
    /// The suite file (TOML).
    file: PathBuf,
    /// The suite directory (default: runs/<suite name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Runs at a time, each in its own worker process (default: the number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
    /// Run only shard I of N (from 1), e.g. `--shard 2/8`; shards share the suite directory.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Also rerun runs that failed (unfinished and changed runs are always rerun).
    #[arg(long)]
    retry_failed: bool,
}

#[derive(Args)]
struct SlurmArgs {
    /// The suite file (TOML).
    file: PathBuf,
    /// Array tasks (shards).
    #[arg(long, default_value_t = 8)]
    shards: usize,
    /// The suite directory (default: runs/<suite name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// CPUs per task (each task runs that many runs at a time).
    #[arg(long, default_value_t = 4)]
    cpus_per_task: usize,
    /// Time limit per task.
    #[arg(long, default_value = "04:00:00")]
    time: String,
    /// Slurm partition.
    #[arg(long)]
    partition: Option<String>,
}

#[derive(Args)]
struct RunArgs {
    /// A TOML run file (strategy, model, dataset, train, seed); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Strategy name (default: baseline).
    #[arg(long)]
    strategy: Option<String>,
    /// Model name (default: the embedded workload's).
    #[arg(long)]
    model: Option<String>,
    /// Data-set name (default: the embedded workload's).
    #[arg(long)]
    dataset: Option<String>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Config overrides, `section.key=value` with a TOML value, e.g. `strategy.lambda=0.5`,
    /// `train.lr=0.001`, `dataset.dir="data/mnist"` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    set: Vec<String>,
    /// Where results are written.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
}

fn plugin_dirs(global: &Global) -> Vec<PathBuf> {
    let mut dirs = global.plugin_dirs.clone();
    if dirs.is_empty() && PathBuf::from("plugins").is_dir() {
        dirs.push("plugins".into());
    }
    if let Some(extra) = std::env::var_os("PN_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&extra));
    }
    dirs
}

/// A progress bar for one run (hidden when stderr is not a terminal or with --quiet).
struct Bar {
    bar: ProgressBar,
    label: String,
}

impl Bar {
    fn new(label: String, quiet: bool) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(
            ProgressStyle::with_template("{prefix:>32} [{bar:30}] {pos}/{len} steps {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.clone());
        Self { bar, label }
    }
}

impl Observer for Bar {
    fn step(&mut self, _phase: u32, done: u64, total: u64) {
        if done.is_multiple_of(16) || done == total {
            self.bar.set_length(total);
            self.bar.set_position(done);
        }
    }
    fn epoch(&mut self, phase: u32, m: &EpochMetrics) {
        self.bar.set_message(format!(
            "phase {} epoch {} loss {:.3e}",
            phase + 1,
            m.epoch,
            m.train_loss
        ));
    }
}

fn finish(bar: Bar, record: &RunRecord) -> String {
    bar.bar.finish_and_clear();
    run::describe(&bar.label, record)
}

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
            eprintln!("{line}");
        }
    } else {
        eprintln!("error: {line}");
    }
    Ok(record)
}

/// The default job: the embedded suite, or the `--plugin` files' strategies against its
/// reference.
fn compare(registry: &Registry, global: &Global, args: &CompareArgs) -> Result<bool, String> {
    let suite = suite::default::default_comparison(registry, &global.plugins, args.seeds)?;
    let out = args.out.clone().unwrap_or_else(|| "runs/default".into());
    run_suite(registry, global, suite, &out, args.jobs, None, false)
}

fn read_suite(registry: &Registry, file: &std::path::Path) -> Result<Suite, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read suite file {}: {e}", file.display()))?;
    Suite::parse(&text, &file.display().to_string(), registry)
}

/// The global flags a worker or a Slurm task needs to see the same plugins and device.
fn global_args(global: &Global) -> Vec<String> {
    let abs = |p: &PathBuf| {
        p.canonicalize()
            .unwrap_or_else(|_| p.clone())
            .display()
            .to_string()
    };
    let mut args = vec![];
    for p in &global.plugins {
        args.extend(["--plugin".to_string(), abs(p)]);
    }
    for d in &global.plugin_dirs {
        args.extend(["--plugin-dir".to_string(), abs(d)]);
    }
    args.extend(["--device".to_string(), global.device.clone()]);
    if global.quiet {
        args.push("-q".into());
    }
    if global.verbose {
        args.push("-v".into());
    }
    args
}

fn run_suite(
    registry: &Registry,
    global: &Global,
    suite: Suite,
    out: &std::path::Path,
    jobs: Option<usize>,
    shard: Option<(usize, usize)>,
    retry_failed: bool,
) -> Result<bool, String> {
    let options = SuiteOptions {
        out: out.to_path_buf(),
        device: global.device.clone(),
        jobs: jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        shard,
        retry_failed,
        quiet: global.quiet,
        worker_flags: global_args(global),
    };
    let result = suite::execute::execute(registry, suite, &options)?;
    match (&result.report, shard) {
        (Some(report), _) => {
            println!("{}", report.table());
            println!(
                "report: {}",
                report::markdown_path(&result.store.dir).display()
            );
        }
        (None, Some((i, n))) => println!(
            "shard {i}/{n} done; when every shard is done: pn-host suite report {}",
            result.store.dir.display()
        ),
        (None, None) => {}
    }
    Ok(result.all_completed)
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
                args.jobs,
                shard,
                args.retry_failed,
            )
        }
        SuiteCommand::Report { dir } => {
            let store = Store::open(dir)?;
            let report = report::write(&store)?;
            println!("{}", report.table());
            println!("report: {}", report::markdown_path(dir).display());
            Ok(report.missing == 0)
        }
        SuiteCommand::Slurm(args) => {
            let suite = read_suite(registry, &args.file)?;
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(&suite.name));
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
            println!(
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
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            run::parse_toml::<RunConfig>(&text, &path.display().to_string())?
        }
        None => RunConfig::new(
            ComponentRef {
                name: "baseline".into(),
                config: Value::Null,
            },
            &suite::default_workload(),
            0,
        ),
    };
    let rename = |c: &mut ComponentRef, name: &Option<String>| {
        if let Some(n) = name {
            if *n != c.name {
                *c = ComponentRef {
                    name: n.clone(),
                    config: Value::Null,
                };
            }
        }
    };
    rename(&mut config.strategy, &args.strategy);
    rename(&mut config.model, &args.model);
    rename(&mut config.dataset, &args.dataset);
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    for s in &args.set {
        run::apply_set(&mut config, s)?;
    }
    config.train.validate()?;
    let device = pn_host::device::parse_device(&global.device)?;
    let data = run::load_data(registry, &config.dataset, &device)?;
    let dir = run::job_dir(&args.out, "run")?;
    let record = execute_and_save(registry, &config, &data, global, &dir)?;
    println!(
        "{}",
        dir.join(run::run_dir_name(&config))
            .join("run.json")
            .display()
    );
    Ok(record.status == Status::Completed)
}

fn list(registry: &Registry) {
    print!("{}", registry.describe());
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
            let root = pn_host::scaffold::write(kind, name, dir, &api)?;
            println!(
                "wrote {0}: cd {0} && cargo build --release, then pn-host --plugin {0}/target/release/lib{name}.so",
                root.display()
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
        Some(Command::Plugins(PluginsCommand::Check { .. }) | Command::New { .. }) => Ok(true),
        Some(Command::Run(args)) => run(&registry, global, args),
        Some(Command::Suite(command)) => suite_command(&registry, global, command),
        Some(Command::Surface { run_dir, grid }) => {
            let device = pn_host::device::parse_device(&global.device)?;
            let png = pn_host::surface::draw(&registry, run_dir, &device, *grid)?;
            println!("{}", png.display());
            Ok(true)
        }
        Some(Command::Bench {
            steps,
            only,
            strategies,
        }) => {
            let device = pn_host::device::parse_device(&global.device)?;
            let mut names: Vec<&str> = strategies.iter().map(String::as_str).collect();
            if names.is_empty() {
                names = pn_host::bench::DEFAULT_STRATEGIES.to_vec();
            }
            let results = pn_host::bench::run(&registry, &device, *steps, only.as_deref(), &names)?;
            println!("{}", pn_host::bench::format(&results));
            Ok(true)
        }
        None => compare(&registry, global, &cli.compare),
    }
}

/// Set in the child process of a contained `pn-host run`: the file it creates once the host
/// itself has finished (see [`contained`]).
const FINISHED_MARKER: &str = "PN_RUN_FINISHED_MARKER";

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Run(_))) && std::env::var_os(FINISHED_MARKER).is_none() {
        return contained();
    }
    pn_host::quiet_panics();
    let code = match std::panic::catch_unwind(|| main_inner(cli)) {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::from(1),
        Ok(Err(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
        Err(payload) => {
            let message =
                pn_host::take_panic().unwrap_or_else(|| pn_host::panic_message(payload.as_ref()));
            eprintln!("error: internal error in pn-host: {message}");
            ExitCode::from(2)
        }
    };
    if let Some(marker) = std::env::var_os(FINISHED_MARKER) {
        let _ = std::fs::write(marker, b"");
    }
    code
}

/// Runs this same `pn-host run` command in a child process: plugins are native code, and one
/// that aborts, segfaults or ends the process would otherwise take pn-host down without a word.
/// The child creates a marker file when the host itself finishes, so an exit that skipped it is
/// recognised too.
fn contained() -> ExitCode {
    let fail = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(1)
    };
    let marker = std::env::temp_dir().join(format!("pn-run-{}.finished", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let status = std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(FINISHED_MARKER, &marker)
            .status()
    });
    let finished = std::fs::remove_file(&marker).is_ok();
    match status {
        Err(e) => fail(format!("cannot start the run's process: {e}")),
        Ok(status) => match (status.code(), finished) {
            (Some(code), true) => ExitCode::from(code.clamp(0, 255) as u8),
            (Some(code), false) => fail(format!(
                "the run's process exited with status {code} before the run finished (a plugin ended the process); no result was written"
            )),
            (None, _) => {
                use std::os::unix::process::ExitStatusExt;
                let signal = status.signal().unwrap_or(0);
                fail(format!(
                    "the run's process was killed by signal {signal} (a crash in a plugin's native code, or out of memory); no result was written"
                ))
            }
        },
    }
}
