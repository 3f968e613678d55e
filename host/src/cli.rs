//! The command line's flags and subcommands (clap), and the global flags a worker process or
//! Slurm task is given.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Train and compare persistent-neuron strategies loaded from plugins.
///
/// With no subcommand, runs the embedded default suite (suites/default.toml: every strategy
/// found, or those of the `--plugin` files, against `baseline` on the teacher-student workload)
/// into `runs/default` and prints its report.
#[derive(Parser)]
#[command(name = "pn-host", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(flatten)]
    pub compare: CompareArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args)]
pub struct Global {
    /// A plugin file to load (repeatable). Also loaded: every `.so` in the plugin directories.
    #[arg(long = "plugin", global = true, value_name = "FILE")]
    pub plugins: Vec<PathBuf>,
    /// A directory of plugins (repeatable; default `plugins/`, plus `PN_PLUGIN_PATH`).
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Device: `cpu` (Burn flex), `cuda[:N]` (built with `--features cuda`) or `vulkan[:N]`
    /// (Burn wgpu on Vulkan, built with `--features vulkan`; GPUs first, then CPU drivers).
    #[arg(long, global = true, default_value = "cpu")]
    pub device: String,
    /// Only warnings and results.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Also debug lines from the host and plugins.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Args)]
pub struct CompareArgs {
    /// Seeds per strategy (default: the suite's 20).
    #[arg(long)]
    pub seeds: Option<u64>,
    /// The suite directory (default: runs/default).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Worker processes and time limits.
    #[command(flatten)]
    pub pool: PoolArgs,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Milliseconds per training step of strategies through the plugin boundary, beside the same network written directly.
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
        /// A Python with torch: time the PyTorch eager reference of each workload and strategy
        /// in turn with pn's blocks, and print PyTorch's ms ÷ pn's (e.g. `.venv/bin/python3`).
        #[arg(long, value_name = "PYTHON")]
        pytorch: Option<PathBuf>,
    },
}

/// The kinds of plugin `pn-host new` writes.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum NewKind {
    Strategy,
    Model,
    Dataset,
}

#[derive(Subcommand)]
pub enum PluginsCommand {
    /// List every loaded plugin and what it provides.
    List,
    /// Load one file and say what it provides, its API version, or why it cannot load.
    Check {
        /// The plugin file.
        file: PathBuf,
    },
    /// Conformance checks before publishing: each component builds with its defaults and
    /// round-trips its config; each strategy trains a small workload with finite losses, the same
    /// for the same seed, its objective's gradient agreeing with finite differences; each model
    /// trains two steps on random inputs, its gradient checked the same way. One line per
    /// check; exit 1 if any fails.
    Test {
        /// The plugin files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum SuiteCommand {
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
pub struct SuiteRunArgs {
    /// The suite file (TOML).
    pub file: PathBuf,
    /// The suite directory (default: runs/<suite name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Worker processes and time limits.
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Run only shard I of N (from 1), e.g. `--shard 2/8`; shards share the suite directory.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Also rerun runs that failed (unfinished and changed runs are always rerun).
    #[arg(long)]
    pub retry_failed: bool,
}

#[derive(Args)]
pub struct SlurmArgs {
    /// The suite file (TOML).
    pub file: PathBuf,
    /// Array tasks (shards).
    #[arg(long, default_value_t = 8)]
    pub shards: usize,
    /// The suite directory (default: runs/<suite name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// CPUs per task (each task runs that many runs at a time).
    #[arg(long, default_value_t = 4)]
    pub cpus_per_task: usize,
    /// Time limit per task.
    #[arg(long, default_value = "04:00:00")]
    pub time: String,
    /// Slurm partition.
    #[arg(long)]
    pub partition: Option<String>,
}

#[derive(Args)]
pub struct RunArgs {
    /// A TOML run file (strategy, model, dataset, train, seed); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Strategy name (default: baseline).
    #[arg(long)]
    pub strategy: Option<String>,
    /// Model name, with its own defaults (default: the embedded workload's model, mlp with
    /// hidden = [10] and output = "sum"). Unnamed components and `[train]` stay the embedded
    /// workload's (teacher-student); change them with --set or a run file.
    #[arg(long)]
    pub model: Option<String>,
    /// Data-set name, with its own defaults (default: the embedded workload's, teacher_student).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Config overrides, `section.key=value` with a TOML value, e.g. `strategy.lambda=0.5`,
    /// `train.lr=0.001`, `dataset.dir="data/mnist"` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
    /// Where results are written.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
}

/// The global flags a worker or a Slurm task needs to see the same plugins and device.
pub fn global_args(global: &Global) -> Vec<String> {
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

/// How a suite's runs execute.
#[derive(Args)]
pub struct PoolArgs {
    /// Runs at a time, each in its own worker process (default: the number of CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Seconds a run may take where its `train.timeout` is unset; a run that takes longer is
    /// stopped and recorded as failed (default: no limit).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
}
