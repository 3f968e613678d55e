//! The `dispatch` backend of builds with a GPU feature: `cpu`, `cuda[:N]`, `vulkan[:N]`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use burn::tensor::Tensor;
use burn::{Dispatch, DispatchDevice};

#[cfg(not(all(feature = "cuda", feature = "vulkan")))]
use super::not_built;
use super::{index_of, KNOWN};

/// The host's backend.
pub type B = Dispatch;

/// The device of a run (always autodiff-enabled).
pub type Device = DispatchDevice;

/// Parses `cpu`, `cuda[:N]` or `vulkan[:N]` into an autodiff device, and probes it. A process
/// finds and probes each device name once (see the module docs); later calls return the first
/// answer.
pub fn parse_device(name: &str) -> Result<Device, String> {
    if name == "cpu" {
        return Ok(DispatchDevice::autodiff(DispatchDevice::Flex(
            burn::backend::flex::FlexDevice,
        )));
    }
    static OPENED: OnceLock<Mutex<HashMap<String, Result<Device, String>>>> = OnceLock::new();
    let mut opened = OPENED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    opened
        .entry(name.to_string())
        .or_insert_with(|| {
            let base = find(name)?;
            probe(name, &base)?;
            Ok(DispatchDevice::autodiff(base))
        })
        .clone()
}

/// The device `name` (other than `cpu`) stands for in this build.
fn find(name: &str) -> Result<DispatchDevice, String> {
    if let Some(index) = index_of(name, "cuda")? {
        cuda_device(name, index)
    } else if let Some(index) = index_of(name, "vulkan")? {
        vulkan_device(name, index)
    } else {
        Err(format!("unknown device `{name}`: use {KNOWN}"))
    }
}

#[cfg(feature = "cuda")]
fn cuda_device(_name: &str, index: usize) -> Result<DispatchDevice, String> {
    Ok(DispatchDevice::Cuda(burn::backend::cuda::CudaDevice::new(
        index,
    )))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(name: &str, _index: usize) -> Result<DispatchDevice, String> {
    Err(not_built(name, "cuda"))
}

/// The `index`-th Vulkan device: discrete GPUs first, then integrated, virtual and CPU
/// implementations (such as Mesa's lavapipe), each in the driver's order.
#[cfg(feature = "vulkan")]
fn vulkan_device(name: &str, index: usize) -> Result<DispatchDevice, String> {
    use burn::backend::wgpu::WgpuDevice;
    use burn::prelude::Backend;
    private_runtime_dir();
    // CubeCL's wgpu type ids: 0 discrete, 1 integrated, 2 virtual, 3 CPU (it addresses one).
    // Without any Vulkan adapter (no loader, no driver) wgpu's request fails and CubeCL panics.
    let counts = match contained(|| {
        (0..4u16)
            .map(burn::backend::Vulkan::<f32>::device_count)
            .collect::<Vec<_>>()
    }) {
        Ok(counts) => counts,
        Err(cause) if cause.contains("No possible adapter") => vec![0; 4],
        Err(cause) => {
            return Err(format!(
                "device {name}: cannot list Vulkan devices: {cause}"
            ))
        }
    };
    let mut rest = index;
    for (type_id, &count) in counts.iter().enumerate() {
        let count = if type_id == 3 { count.min(1) } else { count };
        if rest < count {
            return Ok(DispatchDevice::Vulkan(match type_id {
                0 => WgpuDevice::DiscreteGpu(rest),
                1 => WgpuDevice::IntegratedGpu(rest),
                2 => WgpuDevice::VirtualGpu(rest),
                _ => WgpuDevice::Cpu,
            }));
        }
        rest -= count;
    }
    Err(match index - rest {
        0 => format!(
            "device {name}: no Vulkan device found (no Vulkan driver installed? on Debian or Ubuntu, `apt-get install mesa-vulkan-drivers` adds lavapipe, which runs on the CPU)"
        ),
        1 => format!("device {name}: no such Vulkan device (only vulkan:0 exists)"),
        found => format!(
            "device {name}: no such Vulkan device (vulkan:0 to vulkan:{} exist)",
            found - 1
        ),
    })
}

/// Points `XDG_RUNTIME_DIR` at a private folder when it names none: Mesa's Vulkan drivers
/// print `XDG_RUNTIME_DIR is invalid` on every start otherwise (login-less shells, CI, Slurm
/// jobs). Called before the device starts, while the process has no other threads that read
/// the environment; worker processes inherit the setting.
#[cfg(feature = "vulkan")]
fn private_runtime_dir() {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let valid = |dir: &std::path::Path| {
        std::fs::symlink_metadata(dir)
            .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0)
    };
    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| valid(d.as_ref())) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pn-runtime-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    if valid(&dir) {
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}

#[cfg(not(feature = "vulkan"))]
fn vulkan_device(name: &str, _index: usize) -> Result<DispatchDevice, String> {
    Err(not_built(name, "vulkan"))
}

/// Runs a small computation on `device` and checks the result read back.
fn probe(name: &str, device: &DispatchDevice) -> Result<(), String> {
    let result = contained(|| {
        let x = Tensor::<B, 1>::from_floats([1.0, 2.0, 3.0], device);
        let sum: f32 = (x.clone() * x).sum().into_scalar();
        sum
    });
    match result {
        Ok(14.0) => Ok(()),
        Ok(sum) => Err(format!(
            "device {name}: computes wrong results (1 + 4 + 9 gave {sum})"
        )),
        Err(cause) => Err(format!("device {name}: {}", shorter(cause))),
    }
}

/// A cause in a few words where the library's own text runs long: cudarc lists every library
/// name it tried when no CUDA driver is installed.
fn shorter(cause: String) -> String {
    if cause.contains("Unable to dynamically load the \"cuda\" shared library") {
        "no CUDA driver (libcuda.so cannot be loaded: is the NVIDIA driver installed and on \
         LD_LIBRARY_PATH?)"
            .into()
    } else {
        cause
    }
}

/// Runs `f`, turning a panic on this or any other thread meanwhile (CubeCL initialises a device
/// on a thread of its own) into the first panic's message. The panic hook is replaced while `f`
/// runs and restored after.
fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static MESSAGES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let record = |message: String| {
        MESSAGES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message)
    };
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        record(crate::panic_message(info.payload()))
    }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    let messages = std::mem::take(&mut *MESSAGES.lock().unwrap_or_else(|e| e.into_inner()));
    match result {
        Ok(value) if messages.is_empty() => Ok(value),
        Ok(_) | Err(_) => Err(messages
            .into_iter()
            .next()
            .map(|m| first_line(&m))
            .unwrap_or_else(|| "the device failed without a message".into())),
    }
}

/// The first line of a panic message (CubeCL's can run to many lines of adapter details).
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or("").trim().to_string()
}
