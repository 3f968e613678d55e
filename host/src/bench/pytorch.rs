//! The PyTorch eager reference beside pn's steps (`pn-host bench --pytorch PYTHON`):
//! `bench/pytorch_reference.py --serve`, embedded in the binary, runs in a child process of the
//! given Python and times a block of the same workload and strategy whenever it is asked, so its
//! blocks alternate with pn's on the same machine in one invocation.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The reference script (`bench/pytorch_reference.py`).
const SCRIPT: &str = include_str!("../../../bench/pytorch_reference.py");

/// The strategies the reference script implements.
const STRATEGIES: [&str; 5] = ["baseline", "full_persistent", "sam", "lookahead", "ema"];

/// A running reference process.
pub struct Reference {
    child: Child,
    requests: ChildStdin,
    answers: BufReader<ChildStdout>,
    /// Its first line: the torch version and thread count.
    pub banner: String,
}

impl Reference {
    /// Starts the reference in `python` on `device` (`cpu` or `cuda[:N]`).
    pub fn start(python: &Path, device: &str) -> Result<Self, String> {
        let torch_device = match device {
            "cpu" => "cpu",
            d if d.starts_with("cuda") => d,
            d => return Err(format!("--pytorch compares on cpu or cuda, not on {d}")),
        };
        let what = format!("--pytorch {}", python.display());
        let mut child = Command::new(python)
            .args(["-c", SCRIPT, "--serve", "--device", torch_device])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{what}: cannot start it: {e}"))?;
        let requests = child.stdin.take().expect("piped stdin");
        let answers = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut reference = Self {
            child,
            requests,
            answers,
            banner: String::new(),
        };
        match reference.read() {
            Ok(line) if line.starts_with("ready ") => {
                reference.banner = line["ready ".len()..].to_string();
                Ok(reference)
            }
            _ => Err(format!("{what}: {}", reference.failure())),
        }
    }

    /// Builds the reference's stepper for `case` and `strategy`; `None` when the script does
    /// not implement that strategy.
    pub fn setup(&mut self, case: &str, strategy: &str) -> Result<Option<usize>, String> {
        if !STRATEGIES.contains(&strategy) {
            return Ok(None);
        }
        let answer = self.ask(&format!("setup\t{case}\t{strategy}"))?;
        answer
            .strip_prefix("ok ")
            .and_then(|i| i.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("the PyTorch reference answered `{answer}` to setup"))
    }

    /// Takes `steps` steps of stepper `index` in the reference.
    pub fn time(&mut self, index: usize, steps: usize) -> Result<(), String> {
        let answer = self.ask(&format!("time\t{index}\t{steps}"))?;
        answer
            .parse::<f64>()
            .map(|_| ())
            .map_err(|_| format!("the PyTorch reference answered `{answer}` to a timing"))
    }

    fn ask(&mut self, request: &str) -> Result<String, String> {
        let sent = writeln!(self.requests, "{request}").and_then(|_| self.requests.flush());
        match sent.ok().and_then(|_| self.read().ok()) {
            Some(answer) => match answer.strip_prefix("error ") {
                Some(error) => Err(format!("the PyTorch reference failed: {error}")),
                None => Ok(answer),
            },
            None => Err(format!("the PyTorch reference {}", self.failure())),
        }
    }

    fn read(&mut self) -> Result<String, ()> {
        let mut line = String::new();
        match self.answers.read_line(&mut line) {
            Ok(n) if n > 0 => Ok(line.trim_end().to_string()),
            _ => Err(()),
        }
    }

    /// Why the process stopped answering: the last line of its error output.
    fn failure(&mut self) -> String {
        let _ = self.child.kill();
        let mut errors = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut errors);
        }
        let _ = self.child.wait();
        match errors.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(last) => format!("stopped: {}", last.trim()),
            None => "stopped without a message".into(),
        }
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
