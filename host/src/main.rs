//! The `pn-host` command line: a thin layer over the `pn_host` library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pn_host::engine::{EpochMetrics, Observer, Status};
use pn_host::job::{self, ComponentRef, RunConfig, RunRecord};
use pn_host::registry::{plugins_in, Registry};
use serde_json::Value;

/// Train and compare persistent-neuron strategies loaded from plugins.
///
/// With no subcommand, runs the strategies of the `--plugin` files (or every strategy found)
/// against `baseline` on the embedded teacher-student workload and prints a comparison.
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
    /// Seeds per strategy in the comparison.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// Where results are written.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Train one strategy x model x data set x seed.
    Run(RunArgs),
    /// Milliseconds per training step: plugin boundary and persistence penalty vs plain Burn.
    Bench {
        /// Timed steps per block.
        #[arg(long, default_value_t = 200)]
        steps: usize,
    },
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

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Completed => "completed",
        Status::Diverged => "diverged",
        Status::Failed => "failed",
    }
}

fn finish(bar: Bar, record: &RunRecord) -> String {
    bar.bar.finish_and_clear();
    match (&record.status, &record.final_metrics) {
        (Status::Completed, Some(m)) => format!(
            "{}: train loss {:.3e}, valid loss {:.3e}{} ({} steps, {:.1}s)",
            bar.label,
            m.train_loss,
            m.valid_loss,
            m.valid_accuracy
                .map(|a| format!(", valid acc {:.2}%", 100.0 * a))
                .unwrap_or_default(),
            record.steps,
            record.wall_time_s
        ),
        (status, _) => format!(
            "{}: {}: {}",
            bar.label,
            status_name(*status),
            record.message.as_deref().unwrap_or("")
        ),
    }
}

fn execute_and_save(
    registry: &Registry,
    config: &RunConfig,
    data: &pn_host::data::Data,
    global: &Global,
    dir: &std::path::Path,
) -> Result<RunRecord, String> {
    let label = format!("{} seed {}", config.strategy.name, config.seed);
    let mut bar = Bar::new(label, global.quiet);
    let (record, outcome) = job::execute(registry, config, data, &global.device, &mut bar);
    let line = finish(bar, &record);
    job::write_run(&dir.join(job::run_dir_name(config)), &record, &outcome)?;
    if record.status == Status::Completed {
        if !global.quiet {
            eprintln!("{line}");
        }
    } else {
        eprintln!("error: {line}");
    }
    Ok(record)
}

fn compare(registry: &Registry, global: &Global, args: &CompareArgs) -> Result<bool, String> {
    let mut names: Vec<String> = vec![];
    let explicit: Vec<PathBuf> = global
        .plugins
        .iter()
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .collect();
    for entry in &registry.strategies {
        let file = &registry.plugins[entry.plugin].path;
        let file = file.canonicalize().unwrap_or_else(|_| file.clone());
        if explicit.is_empty() || explicit.contains(&file) || entry.decl.name == "baseline" {
            names.push(entry.decl.name.to_string());
        }
    }
    if !names.iter().any(|n| n == "baseline") {
        return Err(registry
            .strategy("baseline", &Value::Null)
            .err()
            .unwrap_or_else(|| "the baseline strategy is missing".into()));
    }
    names.sort_by_key(|n| (n != "baseline", n.clone()));
    let workload = job::default_workload();
    let device = pn_host::device::parse_device(&global.device)?;
    let data = job::load_data(registry, &workload.dataset, &device)?;
    let dir = job::job_dir(&args.out, "compare")?;
    if !global.quiet {
        eprintln!(
            "comparing {} on {} + {} ({} seeds) -> {}",
            names.join(", "),
            workload.model.name,
            workload.dataset.name,
            args.seeds,
            dir.display()
        );
    }
    let mut records = vec![];
    for seed in 0..args.seeds {
        for name in &names {
            let config = RunConfig::new(
                ComponentRef {
                    name: name.clone(),
                    config: Value::Null,
                },
                &workload,
                seed,
            );
            records.push(execute_and_save(registry, &config, &data, global, &dir)?);
        }
    }
    let rows = job::summarise(&records, workload.target_train_loss);
    let table = job::format_table(&rows, workload.target_train_loss);
    std::fs::write(dir.join("summary.txt"), &table).map_err(|e| e.to_string())?;
    println!("{table}");
    println!("results: {}", dir.display());
    Ok(records.iter().all(|r| r.status == Status::Completed))
}

fn run(registry: &Registry, global: &Global, args: &RunArgs) -> Result<bool, String> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            job::parse_toml::<RunConfig>(&text, &path.display().to_string())?
        }
        None => RunConfig::new(
            ComponentRef {
                name: "baseline".into(),
                config: Value::Null,
            },
            &job::default_workload(),
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
        job::apply_set(&mut config, s)?;
    }
    config.train.validate()?;
    let device = pn_host::device::parse_device(&global.device)?;
    let data = job::load_data(registry, &config.dataset, &device)?;
    let dir = job::job_dir(&args.out, "run")?;
    let record = execute_and_save(registry, &config, &data, global, &dir)?;
    println!(
        "{}",
        dir.join(job::run_dir_name(&config))
            .join("run.json")
            .display()
    );
    Ok(record.status == Status::Completed)
}

fn list(registry: &Registry) {
    for (i, plugin) in registry.plugins.iter().enumerate() {
        println!(
            "{} (pn-plugin-api {}, sha256 {})",
            plugin.path.display(),
            plugin.api_version,
            &plugin.sha256[..12]
        );
        let show = |kind: &str, name: &str, description: &str, config: &str| {
            println!(
                "  {kind:<9} {name:<20} {description}\n  {:<30} defaults: {config}",
                ""
            )
        };
        registry
            .strategies
            .iter()
            .filter(|e| e.plugin == i)
            .for_each(|e| {
                show(
                    "strategy",
                    &e.decl.name,
                    &e.decl.description,
                    &e.decl.default_config,
                )
            });
        registry
            .models
            .iter()
            .filter(|e| e.plugin == i)
            .for_each(|e| {
                show(
                    "model",
                    &e.decl.name,
                    &e.decl.description,
                    &e.decl.default_config,
                )
            });
        registry
            .datasets
            .iter()
            .filter(|e| e.plugin == i)
            .for_each(|e| {
                show(
                    "data set",
                    &e.decl.name,
                    &e.decl.description,
                    &e.decl.default_config,
                )
            });
    }
    if registry.plugins.is_empty() {
        println!("no plugins found (build them with `cargo xtask build`, or pass --plugin / --plugin-dir)");
    }
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
    if let Some(Command::Plugins(PluginsCommand::Check { file })) = &cli.command {
        let registry = Registry::load(std::slice::from_ref(file), &[])?;
        list(&registry);
        return Ok(true);
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
        Some(Command::Plugins(PluginsCommand::Check { .. })) => Ok(true),
        Some(Command::Run(args)) => run(&registry, global, args),
        Some(Command::Bench { steps }) => {
            let device = pn_host::device::parse_device(&global.device)?;
            let results = pn_host::bench::run(&registry, &device, *steps)?;
            println!("{}", pn_host::bench::format(&results));
            Ok(true)
        }
        None => compare(&registry, global, &cli.compare),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    pn_host::quiet_panics();
    match std::panic::catch_unwind(|| main_inner(cli)) {
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
    }
}
