//! The `pn-host` command line: parses ([`cli`]), calls the `pn_host` library (each command's
//! flow is in [`pn_host::commands`]) and turns the outcome into an exit code.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cli::{global_args, Cli, Command, Global, NewKind, PluginsCommand, PoolArgs, SuiteCommand};
use pn_host::commands::{self, plugins};
use pn_host::containment;
use pn_host::plugin::registry::{Kind, Registry};
use pn_host::run::RunChoices;
use pn_host::suite::execute::SuiteOptions;
use pn_host::suite::{self, slurm};
use pn_host::Error;

/// mimalloc instead of the system allocator: a training step allocates and frees many
/// tensor-sized buffers (a megabyte and more), which glibc's allocator serves with fresh
/// `mmap`s and page faults; mimalloc reuses them (the persistence penalty's step cost fell by
/// a third with it, see `pn-host bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Lets mimalloc keep the memory it frees instead of returning it to the system after 1 s (its
/// default): a ResNet-sized step frees and reallocates hundreds of megabytes, and returned
/// memory comes back as fresh pages that the kernel zeroes on first touch (a tenth of such a
/// step in `perf`; a 10 s delay still let the faults grow with the steps). A process keeps its
/// peak memory until it exits.
fn keep_freed_memory() {
    /// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the bindings name no constant).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: setting an option is allowed at any time; -1 means never.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
}

/// How a suite executes, from the global flags and `pool` (`--jobs`, `--timeout`).
fn suite_options(
    global: &Global,
    out: PathBuf,
    pool: &PoolArgs,
    shard: Option<(usize, usize)>,
    retry_failed: bool,
) -> Result<SuiteOptions, Error> {
    Ok(SuiteOptions {
        out,
        device: global.device.clone(),
        jobs: pool.jobs.unwrap_or_else(commands::suite::default_jobs),
        timeout: pool.timeout.map(commands::suite::seconds).transpose()?,
        shard,
        retry_failed,
        quiet: global.quiet,
        worker_flags: global_args(global),
    })
}

fn suite_command(
    registry: &Registry,
    global: &Global,
    command: &SuiteCommand,
) -> Result<bool, Error> {
    match command {
        SuiteCommand::Run(args) => {
            let suite = commands::suite::read(registry, &args.file)?;
            let out = commands::suite::out_dir(args.out.as_deref(), &suite);
            let shard = args.shard.as_deref().map(suite::parse_shard).transpose()?;
            let options = suite_options(global, out, &args.pool, shard, args.retry_failed)?;
            commands::suite::run(registry, suite, &options)
        }
        SuiteCommand::Report { dir } => commands::suite::report(dir),
        SuiteCommand::Slurm(args) => {
            let suite = commands::suite::read(registry, &args.file)?;
            let out = commands::suite::out_dir(args.out.as_deref(), &suite);
            commands::suite::slurm(&slurm::Slurm {
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
            Ok(true)
        }
        SuiteCommand::Worker { dir } => {
            commands::suite::worker(registry, dir, &global.device)?;
            Ok(true)
        }
    }
}

fn main_inner(cli: Cli) -> Result<bool, Error> {
    let global = &cli.global;
    pn_host::log::set_verbosity(if global.quiet {
        0
    } else if global.verbose {
        2
    } else {
        1
    });
    // Commands that load plugins of their own, or none.
    match &cli.command {
        Some(Command::Plugins(PluginsCommand::Check { file })) => {
            plugins::check(file)?;
            return Ok(true);
        }
        Some(Command::Plugins(PluginsCommand::Test { files })) => {
            return plugins::test(&global.plugins, files, &global.plugin_dirs);
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
            commands::new::new_plugin(kind, name, dir, api.as_deref())?;
            return Ok(true);
        }
        _ => {}
    }
    let (registry, dirs) = plugins::load(&global.plugins, &global.plugin_dirs)?;
    match &cli.command {
        Some(Command::Plugins(PluginsCommand::List)) => Ok(plugins::list(&registry, &dirs)),
        Some(
            Command::Plugins(PluginsCommand::Check { .. } | PluginsCommand::Test { .. })
            | Command::New { .. },
        ) => Ok(true),
        Some(Command::Run(args)) => {
            let choices = RunChoices {
                file: args.config.as_deref(),
                strategy: args.strategy.as_deref(),
                model: args.model.as_deref(),
                dataset: args.dataset.as_deref(),
                seed: args.seed,
                set: &args.set,
            };
            commands::run::run(&registry, &choices, &args.out, &global.device, global.quiet)
        }
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
            let (only, python) = (only.as_deref(), pytorch.as_deref());
            commands::bench::bench(&registry, &global.device, *steps, only, strategies, python)?;
            Ok(true)
        }
        None => {
            let compare = &cli.compare;
            let suite =
                suite::default::default_comparison(&registry, &global.plugins, compare.seeds)?;
            let out = compare.out.clone().unwrap_or_else(|| "runs/default".into());
            let options = suite_options(global, out, &compare.pool, None, false)?;
            commands::suite::run(&registry, suite, &options)
        }
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
    keep_freed_memory();
    pn_host::device::denormals::flush_everywhere();
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
