//! Slurm scripts for a suite: an array job with one shard per task (`suite run --shard I/N`,
//! all shards writing into the same suite directory; submitted twice for a tuning suite, whose
//! final runs wait for the trials), and a report job that runs after it; and
//! a check, through `sinfo` where it is available, that the partition's nodes have the CPUs a
//! task asks for.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::results::{Sharding, Store};
use crate::suite::Suite;

/// What the scripts need to know.
pub struct Slurm<'a> {
    /// The suite (for its name).
    pub suite: &'a Suite,
    /// The suite file.
    pub file: &'a Path,
    /// The suite directory.
    pub out: &'a Path,
    /// Array tasks.
    pub shards: usize,
    /// CPUs per task; each task runs this many runs at a time.
    pub cpus: usize,
    /// Time limit per task (`HH:MM:SS`).
    pub time: &'a str,
    /// Partition, if any.
    pub partition: Option<&'a str>,
    /// Ask for one GPU per task.
    pub gpu: bool,
    /// Global `pn-host` flags (plugins, device).
    pub global_args: Vec<String>,
}

fn absolute(path: &Path) -> Result<PathBuf, Error> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// `s` as one shell word.
pub fn quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:=+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Writes `array.sbatch`, `report.sbatch` and `submit.sh` into `<out>/slurm`; returns that folder.
pub fn write(s: &Slurm) -> Result<PathBuf, Error> {
    if s.shards == 0 || s.cpus == 0 {
        return Err("--shards and --cpus-per-task must be at least 1".into());
    }
    let out = absolute(s.out)?;
    let file = s
        .file
        .canonicalize()
        .map_err(|e| format!("{}: {e}", s.file.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find pn-host itself: {e}"))?;
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let dir = out.join("slurm");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
    Store::create(&out)?.write_sharding(&Sharding {
        shards: s.shards,
        slurm: true,
    })?;
    let globals: Vec<String> = s.global_args.iter().map(|a| quote(a)).collect();
    let pn = format!(
        "{} {}",
        quote(&exe.display().to_string()),
        globals.join(" ")
    );
    let header = |name: &str, extra: &str| {
        let mut h = format!(
            "#!/bin/bash\n#SBATCH --job-name=pn-{}-{name}\n#SBATCH --time={}\n{extra}",
            s.suite.name, s.time
        );
        if let Some(p) = s.partition {
            h.push_str(&format!("#SBATCH --partition={p}\n"));
        }
        h + &format!(
            "set -euo pipefail\ncd {}\n",
            quote(&cwd.display().to_string())
        )
    };
    let gpu = if s.gpu { "#SBATCH --gres=gpu:1\n" } else { "" };
    let array = header(
        "shards",
        &format!(
            "#SBATCH --array=1-{n}\n#SBATCH --cpus-per-task={c}\n{gpu}#SBATCH --output={log}/shard-%a.log\n",
            n = s.shards,
            c = s.cpus,
            log = quote(&dir.display().to_string()),
        ),
    ) + &format!(
        "exec {pn} suite run {} --out {} --shard \"${{SLURM_ARRAY_TASK_ID}}/{}\" --jobs \"${{SLURM_CPUS_PER_TASK:-{}}}\"\n",
        quote(&file.display().to_string()),
        quote(&out.display().to_string()),
        s.shards,
        s.cpus
    );
    let report = header(
        "report",
        &format!(
            "#SBATCH --cpus-per-task=1\n#SBATCH --output={}/report.log\n",
            quote(&dir.display().to_string())
        ),
    ) + &format!(
        "exec {pn} suite report {}\n",
        quote(&out.display().to_string())
    );
    let d = quote(&dir.display().to_string());
    // With tuning, a final run waits for its strategy's trials, which other tasks run: a second
    // array after the first runs the final runs (each task skips the runs that finished).
    let submit = if s.suite.tuning.is_some() {
        format!(
            "#!/bin/bash\n# Submits the shards as an array job (the tuning trials and what it can of the rest), \
             the same array again once it has ended (the final runs of tuned strategies), then the report.\n\
             set -euo pipefail\ntrials=$(sbatch --parsable {d}/array.sbatch)\n\
             array=$(sbatch --parsable --dependency=afterany:\"${{trials%%;*}}\" {d}/array.sbatch)\n\
             sbatch --dependency=afterany:\"${{array%%;*}}\" {d}/report.sbatch\n"
        )
    } else {
        format!(
            "#!/bin/bash\n# Submits the shards as an array job, then the report once they have all ended.\n\
             set -euo pipefail\narray=$(sbatch --parsable {d}/array.sbatch)\n\
             sbatch --dependency=afterany:\"${{array%%;*}}\" {d}/report.sbatch\n"
        )
    };
    for (name, text) in [
        ("array.sbatch", array),
        ("report.sbatch", report),
        ("submit.sh", submit),
    ] {
        crate::run::write_atomic(&dir.join(name), text.as_bytes())?;
    }
    Ok(dir)
}

/// A warning when no node of `partition` (the default partition for None) has `cpus` CPUs, so
/// that the array tasks would pend forever; None when some node has them or `sinfo` cannot tell.
pub fn cpu_warning(cpus: usize, partition: Option<&str>) -> Option<String> {
    let (name, most) = partition_cpus(&sinfo(partition)?, partition)?;
    (cpus > most).then(|| {
        format!(
            "--cpus-per-task {cpus} exceeds the CPUs of every node in partition `{name}` \
             (at most {most}), so the array tasks would never start; pass --cpus-per-task {most} \
             or fewer"
        )
    })
}

/// `sinfo`'s partition and CPUs per node, one node a line; None where `sinfo` is missing, fails
/// or takes more than 10 seconds (an unreachable controller).
fn sinfo(partition: Option<&str>) -> Option<String> {
    let mut command = Command::new("sinfo");
    command
        .args(["--noheader", "--Node", "--format=%P %c"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(p) = partition {
        command.arg(format!("--partition={p}"));
    }
    let mut child = command.spawn().ok()?;
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let text = reader.join().ok()?.ok()?;
    status?.success().then_some(text)
}

/// The partition's name and the most CPUs any of its nodes has, from [`sinfo`]'s lines (the
/// default partition carries a `*`); None if no line is of that partition.
fn partition_cpus(text: &str, partition: Option<&str>) -> Option<(String, usize)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?;
            let cpus: usize = fields.next()?.trim_end_matches('+').parse().ok()?;
            let default = name.ends_with('*');
            let name = name.trim_end_matches('*');
            let wanted = match partition {
                Some(p) => name == p,
                None => default,
            };
            wanted.then(|| (name.to_string(), cpus))
        })
        .max_by_key(|(_, cpus)| *cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SINFO: &str = "debug* 2\ndebug* 4\nbig 64\nodd 8+\n";

    #[test]
    fn the_largest_node_of_the_partition_counts() {
        assert_eq!(partition_cpus(SINFO, None), Some(("debug".into(), 4)));
        assert_eq!(
            partition_cpus(SINFO, Some("debug")),
            Some(("debug".into(), 4))
        );
        assert_eq!(partition_cpus(SINFO, Some("big")), Some(("big".into(), 64)));
        assert_eq!(partition_cpus(SINFO, Some("odd")), Some(("odd".into(), 8)));
        assert_eq!(partition_cpus(SINFO, Some("gpu")), None);
        assert_eq!(partition_cpus("junk\n\n", None), None);
    }
}
