//! The backend and device a run uses: Burn's `dispatch` backend, chosen at run time.
//!
//! `cpu` is Burn's `flex` backend; `cuda[:N]` exists when built with `--features cuda`.
//! Autodiff is a property of the device in `dispatch`, so training runs on
//! `DispatchDevice::autodiff(device)`.

use burn::{Dispatch, DispatchDevice};

/// The host's backend.
pub type B = Dispatch;

/// The device of a run (always autodiff-enabled).
pub type Device = DispatchDevice;

/// Parses `cpu`, `cuda` or `cuda:N` into an autodiff device.
pub fn parse_device(name: &str) -> Result<Device, String> {
    let base = match name {
        "cpu" => DispatchDevice::Flex(burn::backend::flex::FlexDevice),
        other => cuda_device(other)?,
    };
    Ok(DispatchDevice::autodiff(base))
}

#[cfg(feature = "cuda")]
fn cuda_device(name: &str) -> Result<DispatchDevice, String> {
    let index = match name.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| format!("unknown device `{name}`: use cpu, cuda or cuda:N"))?,
        None => return Err(format!("unknown device `{name}`: use cpu, cuda or cuda:N")),
    };
    Ok(DispatchDevice::Cuda(burn::backend::cuda::CudaDevice::new(
        index,
    )))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(name: &str) -> Result<DispatchDevice, String> {
    if name.starts_with("cuda") {
        Err(format!(
            "device `{name}` needs a pn-host built with `--features cuda`"
        ))
    } else {
        Err(format!("unknown device `{name}`: use cpu, cuda or cuda:N"))
    }
}
