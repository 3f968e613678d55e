//! Executes a suite's runs in worker processes, `--jobs` at a time.
//!
//! Plugins are native code: a segfault or an abort inside one cannot be caught, so every run
//! executes in a worker process (`pn-host suite worker DIR`). A worker loads the plugins once,
//! keeps loaded data sets, and takes runs one by one as JSON lines on stdin; it writes each run's
//! folder itself and answers with JSON-line events on a pipe of their own (file descriptor
//! [`EVENTS_FD`]), so that nothing a plugin prints can pass for one; the worker's stdout and
//! stderr become log lines. If a worker dies, or a run takes longer than its time limit (the
//! worker is then killed), the run is recorded as failed and a fresh worker takes the next one.
//! Workers die with their parent. The worker's side is [`super::worker`].

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, PipeReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::suite::PlannedRun;
use crate::train::Status;

/// The file descriptor on which a worker writes its events.
pub const EVENTS_FD: i32 = 3;

/// What a worker tells its parent, one JSON object per line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(super) enum Event {
    Ready,
    Progress {
        done: u64,
        total: u64,
    },
    Finished {
        status: Status,
        line: String,
        train_s: f64,
        busy_s: f64,
    },
}

/// How one run went, as the parent saw it.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Run id.
    pub id: String,
    /// Its status.
    pub status: Status,
    /// One line for the log.
    pub line: String,
    /// Seconds of training (the engine's wall time).
    pub train_s: f64,
    /// Seconds the worker spent on the run (data, training, writing results).
    pub busy_s: f64,
}

/// What a pool did.
#[derive(Debug, Clone, Default)]
pub struct PoolStats {
    /// Every executed run.
    pub reports: Vec<RunReport>,
    /// Seconds workers spent starting (process start, loading plugins), summed.
    pub startup_s: f64,
}

impl PoolStats {
    /// Time not spent training (worker start, plugin loading, data, writing results) as a
    /// fraction of the training time.
    /// `None` when nothing trained.
    pub fn overhead(&self) -> Option<f64> {
        let train: f64 = self.reports.iter().map(|r| r.train_s).sum();
        let busy: f64 = self.reports.iter().map(|r| r.busy_s).sum();
        (train > 0.0).then(|| (busy - train + self.startup_s) / train)
    }
}

/// How to start workers.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// The `pn-host` executable.
    pub exe: PathBuf,
    /// Arguments that make it a worker for this suite (global flags, `suite worker DIR`).
    pub worker_args: Vec<String>,
    /// Workers at a time.
    pub jobs: usize,
    /// No progress bars or per-run lines (failures are still printed).
    pub quiet: bool,
    /// The time limit of a run whose `train.timeout` is unset (`None`: no limit).
    pub timeout: Option<Duration>,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    events: Receiver<Event>,
}

/// Why a run has no result from its worker.
enum Lost {
    /// The worker died (or closed its pipe); the text adds detail to the exit.
    Died(String),
    /// The run passed its time limit.
    TimedOut(Duration),
}

struct Shared {
    queue: Mutex<VecDeque<PlannedRun>>,
    stats: Mutex<PoolStats>,
    multi: MultiProgress,
    overall: ProgressBar,
    quiet: bool,
}

impl Shared {
    fn say(&self, line: &str) {
        if self.multi.is_hidden() {
            crate::errln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }
}

/// Runs `runs` in up to `opts.jobs` workers; `on_crash` records a run whose worker died.
pub fn execute(
    runs: Vec<PlannedRun>,
    opts: &PoolOptions,
    on_crash: &(dyn Fn(&PlannedRun, &str) -> Result<(), String> + Sync),
) -> Result<PoolStats, String> {
    let total = runs.len() as u64;
    let multi = MultiProgress::with_draw_target(if opts.quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let overall = multi.add(ProgressBar::new(total));
    overall.set_style(style(
        "runs {bar:30} {pos}/{len} ({elapsed} elapsed, ETA {eta})",
    ));
    let shared = Arc::new(Shared {
        queue: Mutex::new(runs.into()),
        stats: Mutex::new(PoolStats::default()),
        multi,
        overall,
        quiet: opts.quiet,
    });
    let jobs = opts.jobs.clamp(1, total.max(1) as usize);
    let errors: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..jobs)
            .map(|_| {
                let shared = shared.clone();
                scope.spawn(move || slot(&shared, opts, on_crash))
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("a worker thread panicked".into()),
            })
            .collect()
    });
    shared.overall.finish_and_clear();
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    let stats = shared.stats.lock().map_err(|e| e.to_string())?.clone();
    Ok(stats)
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// One worker slot: starts a worker, feeds it runs until the queue is empty, replaces it if
/// it dies.
fn slot(
    shared: &Shared,
    opts: &PoolOptions,
    on_crash: &(dyn Fn(&PlannedRun, &str) -> Result<(), String> + Sync),
) -> Result<(), String> {
    let bar = shared.multi.add(ProgressBar::new(0));
    bar.set_style(style("{prefix:>44} {bar:24} {pos}/{len} steps"));
    let mut worker: Option<Worker> = None;
    loop {
        let Some(run) = shared.queue.lock().map_err(|e| e.to_string())?.pop_front() else {
            break;
        };
        if worker.is_none() {
            let started = Instant::now();
            worker = Some(spawn(opts, shared)?);
            shared.stats.lock().map_err(|e| e.to_string())?.startup_s +=
                started.elapsed().as_secs_f64();
        }
        let w = worker.as_mut().expect("started above");
        bar.set_prefix(run.id.clone());
        bar.set_position(0);
        let limit = time_limit(&run, opts);
        let report = match feed(w, &run, &bar, limit) {
            Ok(report) => report,
            Err(lost) => {
                let mut dead = worker.take().expect("started above");
                let _ = dead.child.kill();
                let exit = dead.child.wait();
                let how = exit
                    .as_ref()
                    .map(|e| describe_exit(*e))
                    .unwrap_or_else(|e| e.to_string());
                let interrupted = exit.as_ref().is_ok_and(|e| {
                    use std::os::unix::process::ExitStatusExt;
                    matches!(
                        e.signal(),
                        Some(libc::SIGTERM | libc::SIGINT | libc::SIGHUP)
                    )
                });
                let message = match lost {
                    // scancel, Ctrl-C or a closed session: the suite is being stopped, and the
                    // run is left unfinished (not failed) so that resuming runs it again
                    Lost::Died(_) if interrupted => format!("interrupted ({how}); it runs again when the suite resumes"),
                    Lost::Died(detail) => {
                        format!("the worker process died during this run ({how}{detail})")
                    }
                    Lost::TimedOut(limit) => format!(
                        "timed out: the run took longer than its limit of {} s (train.timeout, or suite run --timeout), and its worker was stopped",
                        limit.as_secs_f64()
                    ),
                };
                if !interrupted {
                    on_crash(&run, &message)?;
                }
                RunReport {
                    id: run.id.clone(),
                    status: Status::Failed,
                    line: match interrupted {
                        true => format!("{}: {message}", run.id),
                        false => format!("{}: failed: {message}", run.id),
                    },
                    train_s: 0.0,
                    busy_s: 0.0,
                }
            }
        };
        if report.status != Status::Completed {
            shared.say(&format!("error: {}", report.line));
        } else if !shared.quiet {
            shared.say(&report.line);
        }
        shared
            .stats
            .lock()
            .map_err(|e| e.to_string())?
            .reports
            .push(report);
        shared.overall.inc(1);
    }
    bar.finish_and_clear();
    if let Some(mut w) = worker {
        drop(w.stdin);
        let _ = w.child.wait();
    }
    Ok(())
}

/// The run's time limit: its `train.timeout`, else the pool's.
fn time_limit(run: &PlannedRun, opts: &PoolOptions) -> Option<Duration> {
    match run.config.train.timeout {
        t if t > 0.0 => Some(Duration::from_secs_f64(t)),
        _ => opts.timeout,
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (_, Some(signal)) => format!("killed by signal {signal}"),
        (Some(code), _) => format!("exit code {code}"),
        _ => "unknown exit".into(),
    }
}

fn spawn(opts: &PoolOptions, shared: &Shared) -> Result<Worker, String> {
    let cannot = |e: std::io::Error| format!("cannot start a worker ({}): {e}", opts.exe.display());
    let (events_in, events_out) = std::io::pipe().map_err(cannot)?;
    let (log_in, log_out) = std::io::pipe().map_err(cannot)?;
    let events_fd = events_out.as_raw_fd();
    let mut command = Command::new(&opts.exe);
    command
        .args(&opts.worker_args)
        .stdin(Stdio::piped())
        .stdout(log_out.try_clone().map_err(cannot)?)
        .stderr(log_out);
    // SAFETY: between fork and exec only dup2 or fcntl, which are async-signal-safe; the copy on
    // EVENTS_FD has no close-on-exec flag, so the worker inherits it.
    unsafe {
        command.pre_exec(move || {
            let copied = if events_fd == EVENTS_FD {
                libc::fcntl(EVENTS_FD, libc::F_SETFD, 0) // already there: keep it across exec
            } else {
                libc::dup2(events_fd, EVENTS_FD)
            };
            if copied < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let spawned = command.spawn();
    drop(command); // the parent's copies of the write ends: the pipes end when the worker does
    drop(events_out);
    let mut child = spawned.map_err(cannot)?;
    let stdin = child.stdin.take().expect("piped");
    let multi = shared.multi.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(log_in).lines().map_while(Result::ok) {
            if multi.is_hidden() {
                crate::errln!("{line}");
            } else {
                let _ = multi.println(line);
            }
        }
    });
    let events = forward_events(events_in);
    match events.recv() {
        Ok(Event::Ready) => Ok(Worker {
            child,
            stdin,
            events,
        }),
        _ => {
            let how = child.wait().map(describe_exit).unwrap_or_default();
            Err(format!("a worker process could not start ({how})"))
        }
    }
}

/// Reads a worker's events on a thread of their own; the channel closes when the pipe does.
fn forward_events(pipe: PipeReader) -> Receiver<Event> {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let Ok(event) = serde_json::from_str(line.trim()) else {
                break; // the pipe carries only events: anything else is a broken worker
            };
            if send.send(event).is_err() {
                break;
            }
        }
    });
    receive
}

/// Sends one run and waits for its result, at most `limit`.
fn feed(
    w: &mut Worker,
    run: &PlannedRun,
    bar: &ProgressBar,
    limit: Option<Duration>,
) -> Result<RunReport, Lost> {
    let json = serde_json::to_string(run).map_err(|e| Lost::Died(format!(", {e}")))?;
    writeln!(w.stdin, "{json}")
        .and_then(|_| w.stdin.flush())
        .map_err(|e| Lost::Died(format!(", {e}")))?;
    let deadline = limit.map(|l| (Instant::now() + l, l));
    loop {
        let event = match deadline {
            Some((at, limit)) => match w
                .events
                .recv_timeout(at.saturating_duration_since(Instant::now()))
            {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => return Err(Lost::TimedOut(limit)),
                Err(RecvTimeoutError::Disconnected) => return Err(Lost::Died(String::new())),
            },
            None => w.events.recv().map_err(|_| Lost::Died(String::new()))?,
        };
        match event {
            Event::Progress { done, total } => {
                bar.set_length(total);
                bar.set_position(done);
            }
            Event::Finished {
                status,
                line,
                train_s,
                busy_s,
            } => {
                return Ok(RunReport {
                    id: run.id.clone(),
                    status,
                    line,
                    train_s,
                    busy_s,
                })
            }
            Event::Ready => {}
        }
    }
}
