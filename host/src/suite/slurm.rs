//! Slurm scripts for a suite: an array job with one shard per task (`suite run --shard I/N`,
//! all shards writing into the same suite directory), and a report job that runs after it.

use std::path::{Path, PathBuf};

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

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))
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
pub fn write(s: &Slurm) -> Result<PathBuf, String> {
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
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
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
    let submit = format!(
        "#!/bin/bash\n# Submits the shards as an array job, then the report once they have all ended.\n\
         set -euo pipefail\narray=$(sbatch --parsable {d}/array.sbatch)\n\
         sbatch --dependency=afterany:\"${{array%%;*}}\" {d}/report.sbatch\n",
        d = quote(&dir.display().to_string())
    );
    for (name, text) in [
        ("array.sbatch", array),
        ("report.sbatch", report),
        ("submit.sh", submit),
    ] {
        crate::run::write_atomic(&dir.join(name), text.as_bytes())?;
    }
    Ok(dir)
}
