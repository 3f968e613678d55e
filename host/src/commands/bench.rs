//! `pn-host bench`: times training steps of strategies through the plugin boundary beside the
//! same network written directly (and, with a Python that has torch, beside PyTorch) and prints
//! the table.

use std::path::Path;

use crate::bench::{self, pytorch::Reference};
use crate::plugin::registry::Registry;

/// Times `strategies` (default: [`bench::DEFAULT_STRATEGIES`]) on the workloads whose name
/// contains `only` (all without it), `steps` timed steps per block on `device` (a device name),
/// with the PyTorch reference of `pytorch` when given; prints the results.
pub fn bench(
    registry: &Registry,
    device: &str,
    steps: usize,
    only: Option<&str>,
    strategies: &[String],
    pytorch: Option<&Path>,
) -> Result<(), String> {
    let parsed = crate::device::parse_device(device)?;
    let mut names: Vec<&str> = strategies.iter().map(String::as_str).collect();
    if names.is_empty() {
        names = bench::DEFAULT_STRATEGIES.to_vec();
    }
    let mut reference = match pytorch {
        Some(python) => {
            let reference = Reference::start(python, device)?;
            crate::outln!("PyTorch reference: {}", reference.banner);
            Some(reference)
        }
        None => None,
    };
    let results = bench::run(registry, &parsed, steps, only, &names, reference.as_mut())?;
    crate::outln!("{}", bench::format(&results));
    Ok(())
}
