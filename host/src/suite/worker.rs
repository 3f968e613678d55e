//! The worker side of [`super::pool`] (`pn-host suite worker DIR`): it loads the plugins once,
//! keeps loaded data sets, takes runs as JSON lines on stdin, writes each run's folder and
//! answers with events on [`EVENTS_FD`]. It dies with its parent.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use crate::device::parse_device;
use crate::error::Error;
use crate::plugin::registry::Registry;
use crate::results::{RunState, Store};
use crate::run;
use crate::suite::PlannedRun;
use crate::train::data::Data;
use crate::train::Observer;

use super::pool::{Event, EVENTS_FD};

/// The worker's end of the events pipe.
struct Events(File);

impl Events {
    /// Takes over [`EVENTS_FD`], which the parent opened.
    fn open() -> Result<Self, Error> {
        // SAFETY: fcntl(F_GETFD) only asks whether the descriptor is open.
        if unsafe { libc::fcntl(EVENTS_FD, libc::F_GETFD) } < 0 {
            return Err("`suite worker` is started by `suite run`, not by hand".into());
        }
        // SAFETY: the descriptor is open, and nothing else in this process uses it.
        Ok(Events(unsafe { File::from_raw_fd(EVENTS_FD) }))
    }

    fn emit(&mut self, event: &Event) {
        if let Ok(json) = serde_json::to_string(event) {
            let _ = writeln!(self.0, "{json}");
        }
    }

    fn finished(&mut self, run: &PlannedRun, record: &run::RunRecord, started: Instant) {
        self.emit(&Event::Finished {
            status: record.result.status,
            line: run::describe(&run.id, record),
            train_s: record.result.wall_time_s,
            busy_s: started.elapsed().as_secs_f64(),
        });
    }
}

/// Reports progress to the parent at most every 100 ms.
struct Reporter<'a> {
    events: &'a mut Events,
    last: Instant,
}

impl Observer for Reporter<'_> {
    fn step(&mut self, _phase: u32, done: u64, total: u64) {
        if self.last.elapsed() > Duration::from_millis(100) || done == total {
            self.last = Instant::now();
            self.events.emit(&Event::Progress { done, total });
        }
    }
}

/// The worker side: reads runs from stdin until it closes, executes each, writes its folder.
pub fn worker(registry: &Registry, store: &Store, device_name: &str) -> Result<(), Error> {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a signal for this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    let mut events = Events::open()?;
    let device = parse_device(device_name)?;
    let mut data_sets: HashMap<String, Data> = HashMap::new();
    events.emit(&Event::Ready);
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let run: PlannedRun =
            serde_json::from_str(&line).map_err(|e| format!("bad run from parent: {e}"))?;
        let started = Instant::now();
        let _lock = store.lock_run(&run.id)?;
        // Another process may have finished it since the parent planned it.
        if let RunState::Finished(record) = store.state(&run, Some(registry)) {
            events.finished(&run, &record, started);
            continue;
        }
        let key = format!("{}{}", run.config.dataset.name, run.config.dataset.config);
        if !data_sets.contains_key(&key) {
            match run::load_data(registry, &run.config.dataset, &device) {
                Ok(data) => {
                    data_sets.insert(key.clone(), data);
                }
                Err(e) => {
                    let (record, outcome) =
                        run::failed(registry, &run.config, device_name, e.to_string());
                    store.write_run(&run, &record, &outcome)?;
                    events.finished(&run, &record, started);
                    continue;
                }
            }
        }
        let mut reporter = Reporter {
            events: &mut events,
            last: Instant::now(),
        };
        let (record, outcome) = run::execute(
            registry,
            &run.config,
            &data_sets[&key],
            device_name,
            &mut reporter,
        );
        store.write_run(&run, &record, &outcome)?;
        events.finished(&run, &record, started);
    }
    Ok(())
}
