//! The backend and device a run uses, chosen at run time from those the build has.
//!
//! `cpu` is Burn's `flex` backend; `cuda[:N]` exists when built with `--features cuda`, and
//! `vulkan[:N]` (Burn's wgpu backend with CubeCL's SPIR-V compiler) with `--features vulkan`.
//! A CPU-only build (the default) trains on Burn's autodiff over `flex` itself, which lets the
//! host record its own CPU kernels in the graph ([`crate::kernels`]). A build with a GPU
//! feature uses Burn's `dispatch` backend, where autodiff is a property of the device, so
//! training runs on `DispatchDevice::autodiff(device)` (and Burn's kernels, also on `cpu`).
//!
//! A device other than `cpu` is probed the first time a process asks for it: a small tensor
//! computation runs on it and its result is read back. A missing driver, a device index that
//! does not exist or a failed initialisation becomes one error naming the device and the cause,
//! before any run starts, instead of a panic deep inside CubeCL (for CUDA, `RecvError` on a
//! channel whose device thread died). The probe runs once per process and device name.

pub mod denormals;
#[cfg(any(feature = "cuda", feature = "vulkan"))]
mod dispatch;

#[cfg(any(feature = "cuda", feature = "vulkan"))]
pub use dispatch::{parse_device, Device, B};

/// The host's backend (CPU-only build): Burn's autodiff over `flex`.
#[cfg(not(any(feature = "cuda", feature = "vulkan")))]
pub type B = burn::backend::Autodiff<burn::backend::Flex>;

/// The device of a run (CPU-only build).
#[cfg(not(any(feature = "cuda", feature = "vulkan")))]
pub type Device = burn::backend::flex::FlexDevice;

/// The device names `--device` accepts, for messages.
const KNOWN: &str = "cpu, cuda[:N] or vulkan[:N]";

/// Parses `cpu` (the only device of a CPU-only build); `cuda[:N]` and `vulkan[:N]` name the
/// feature that would provide them.
#[cfg(not(any(feature = "cuda", feature = "vulkan")))]
pub fn parse_device(name: &str) -> Result<Device, String> {
    if name == "cpu" {
        return Ok(burn::backend::flex::FlexDevice);
    }
    for kind in ["cuda", "vulkan"] {
        if index_of(name, kind)?.is_some() {
            return Err(not_built(name, kind));
        }
    }
    Err(format!("unknown device `{name}`: use {KNOWN}"))
}

/// `Some(N)` for `kind` or `kind:N` (`kind` alone is 0), `None` for another kind.
fn index_of(name: &str, kind: &str) -> Result<Option<usize>, String> {
    match name.strip_prefix(kind) {
        Some("") => Ok(Some(0)),
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .map(Some)
            .ok_or_else(|| format!("unknown device `{name}`: use {KNOWN}")),
        None => Ok(None),
    }
}

#[cfg(not(all(feature = "cuda", feature = "vulkan")))]
fn not_built(name: &str, feature: &str) -> String {
    format!("device `{name}` needs a pn-host built with `--features {feature}`")
}
