//! The one place where the compute device is chosen: `--device cpu|wgpu[:N]|vulkan[:N]|cuda[:N]`.
//!
//! burn 0.22 picks the backend from the device at run time, so models and the training loop take
//! a `&Device` and never name a backend. On `cpu` (burn's Flex backend) the models run the fused
//! kernels of [`crate::ops`]; on a GPU device they run burn's own operations
//! ([`crate::ops::reference`]). The GPU backends are cargo features (`wgpu`, `vulkan`, `cuda`),
//! off by default; naming one the build lacks, or one that is not present, is a one-line error.

use anyhow::Result;
use burn::tensor::Device;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A compute device as the user names it on the command line and in `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// burn's pure-Rust `flex` CPU backend with rethink's fused kernels.
    #[default]
    Cpu,
    /// burn's wgpu backend (WGSL shaders; Vulkan, Metal or DX12 underneath), adapter `N` of
    /// `rethink devices` or the best one.
    Wgpu(Option<usize>),
    /// burn's wgpu backend pinned to Vulkan, with cubecl's SPIR-V compiler.
    Vulkan(Option<usize>),
    /// burn's CUDA backend, GPU `N` (default 0).
    Cuda(Option<usize>),
}

/// The accepted spellings, for error messages and `--help`.
pub const DEVICE_SYNTAX: &str = "cpu, wgpu[:N], vulkan[:N] or cuda[:N]";

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (name, index) = match text.split_once(':') {
            Some((name, index)) => {
                let index = index.parse::<usize>().map_err(|_| format!("bad device index in '{text}'"))?;
                (name, Some(index))
            }
            None => (text, None),
        };
        match (name, index) {
            // `flex` is the saved name of the CPU backend in configs written before `--device`.
            ("cpu" | "flex", None) => Ok(DeviceSpec::Cpu),
            ("wgpu", index) => Ok(DeviceSpec::Wgpu(index)),
            ("vulkan", index) => Ok(DeviceSpec::Vulkan(index)),
            ("cuda", index) => Ok(DeviceSpec::Cuda(index)),
            _ => Err(format!("unknown device '{text}': expected {DEVICE_SYNTAX}")),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, index) = match *self {
            DeviceSpec::Cpu => ("cpu", None),
            DeviceSpec::Wgpu(index) => ("wgpu", index),
            DeviceSpec::Vulkan(index) => ("vulkan", index),
            DeviceSpec::Cuda(index) => ("cuda", index),
        };
        match index {
            Some(index) => write!(f, "{name}:{index}"),
            None => f.write_str(name),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

impl DeviceSpec {
    /// The device for inference and data (no autodiff graph), checked to be present.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => {
                keep_freed_memory();
                Ok(Device::flex())
            }
            DeviceSpec::Wgpu(index) => gpu::wgpu(index),
            DeviceSpec::Vulkan(index) => gpu::vulkan(index),
            DeviceSpec::Cuda(index) => gpu::cuda(index),
        }
    }
}

/// One device this build can see, for `rethink devices`.
pub struct Listed {
    /// How to name it with `--device`.
    pub spec: String,
    /// What it is.
    pub description: String,
}

/// Every device this build can use: the CPU, then the adapters of each GPU feature compiled in,
/// and a line for each GPU feature that is not.
pub fn list() -> (Vec<Listed>, Vec<String>) {
    let threads = rayon::current_num_threads();
    let mut devices = vec![Listed {
        spec: "cpu".into(),
        description: format!("burn flex + rethink's fused kernels, {threads} threads ({})", cpu_name()),
    }];
    let mut missing = Vec::new();
    gpu::list(&mut devices, &mut missing);
    (devices, missing)
}

/// The CPU's model name (Linux), or the architecture.
fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The GPU backends, each behind its cargo feature.
mod gpu {
    use super::Listed;
    use anyhow::{Result, bail};
    use burn::tensor::Device;

    /// The error for a device whose feature this build lacks (unused when all are built).
    #[allow(dead_code)]
    fn not_built(name: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "--device {name}: this build has no {name} support; rebuild with `cargo build --release --features {name}` (see README, GPUs)"
        )
    }

    /// Adapter `index` of `found` (or `default` when none is named), or an error listing them.
    #[allow(dead_code)]
    fn pick(name: &str, found: Vec<(Device, String)>, index: Option<usize>, default: Device) -> Result<Device> {
        if found.is_empty() {
            bail!(
                "--device {name}: no {name} device found (no GPU driver, or no Vulkan ICD; `rethink devices` lists what this build sees)"
            );
        }
        match index {
            None => Ok(default),
            Some(i) => match found.get(i) {
                Some((device, _)) => Ok(device.clone()),
                None => {
                    let names: Vec<String> =
                        found.iter().enumerate().map(|(i, (_, d))| format!("{name}:{i} {d}")).collect();
                    bail!("--device {name}:{i}: only {} found: {}", found.len(), names.join("; "))
                }
            },
        }
    }

    /// A device's name and whether it is a software adapter (no card behind it).
    #[cfg(any(feature = "wgpu", feature = "vulkan", feature = "cuda"))]
    fn describe(device: &Device) -> String {
        match device.identity() {
            Some(identity) if identity.physical.is_none() => format!("{} (software adapter, no GPU)", identity.name),
            Some(identity) => identity.name,
            None => format!("{device:?}"),
        }
    }

    #[cfg(any(feature = "wgpu", feature = "vulkan", feature = "cuda"))]
    fn enumerate(kind: burn::tensor::DeviceType) -> Vec<(Device, String)> {
        Device::enumerate(kind).into_vec().into_iter().map(|d| (d.clone(), describe(&d))).collect()
    }

    pub fn wgpu(index: Option<usize>) -> Result<Device> {
        #[cfg(feature = "wgpu")]
        {
            use burn::tensor::{DeviceKind, DeviceType};
            // The default adapter prefers a hardware GPU, and takes a software one (lavapipe)
            // only when it is the only adapter, as cubecl's selection does.
            let found = enumerate(DeviceType::Wgpu);
            let default = match found.iter().all(|(d, _)| d.identity().is_some_and(|i| i.physical.is_none())) {
                true => Device::wgpu(DeviceKind::Cpu),
                false => Device::wgpu(DeviceKind::DefaultDevice),
            };
            pick("wgpu", found, index, default)
        }
        #[cfg(not(feature = "wgpu"))]
        {
            let _ = index;
            Err(not_built("wgpu"))
        }
    }

    pub fn vulkan(index: Option<usize>) -> Result<Device> {
        #[cfg(feature = "vulkan")]
        {
            use burn::tensor::{DeviceKind, DeviceType};
            pick("vulkan", enumerate(DeviceType::Vulkan), index, Device::vulkan(DeviceKind::DefaultDevice))
        }
        #[cfg(not(feature = "vulkan"))]
        {
            let _ = index;
            Err(not_built("vulkan"))
        }
    }

    pub fn cuda(index: Option<usize>) -> Result<Device> {
        #[cfg(feature = "cuda")]
        {
            use burn::tensor::DeviceType;
            pick("cuda", enumerate(DeviceType::Cuda), index, Device::cuda(0))
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = index;
            Err(not_built("cuda"))
        }
    }

    /// Appends the devices of each compiled GPU feature, and names the features not compiled.
    pub fn list(devices: &mut Vec<Listed>, missing: &mut Vec<String>) {
        let mut add = |name: &str, found: Vec<(Device, String)>| {
            for (i, (_, description)) in found.into_iter().enumerate() {
                devices.push(Listed { spec: format!("{name}:{i}"), description });
            }
        };
        #[cfg(feature = "wgpu")]
        add("wgpu", enumerate(burn::tensor::DeviceType::Wgpu));
        #[cfg(feature = "vulkan")]
        add("vulkan", enumerate(burn::tensor::DeviceType::Vulkan));
        #[cfg(feature = "cuda")]
        add("cuda", enumerate(burn::tensor::DeviceType::Cuda));
        let _ = &mut add;
        for (name, built) in
            [("wgpu", cfg!(feature = "wgpu")), ("vulkan", cfg!(feature = "vulkan")), ("cuda", cfg!(feature = "cuda"))]
        {
            if !built {
                missing.push(name.to_string());
            }
        }
    }
}

/// Asks the allocator to keep freed memory for reuse instead of returning it to the OS.
///
/// The CPU backend allocates a fresh buffer for every tensor an operation produces (megabytes
/// for a convolution's activation). glibc serves such sizes with `mmap` and unmaps them on free,
/// so every operation page-faults in new zeroed pages: about a tenth of a WRN training step and
/// a third of an eval pass. With high mmap and trim thresholds the heap keeps and reuses them.
/// Process-wide and idempotent.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes allocator tunables; both values are valid settings.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
                libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_round_trip_and_bad_ones_are_rejected() {
        for text in ["cpu", "wgpu", "wgpu:1", "vulkan", "vulkan:0", "cuda", "cuda:3"] {
            let spec: DeviceSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(serde_json::from_str::<DeviceSpec>(&json).unwrap(), spec);
        }
        assert_eq!("flex".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu, "configs saved before --device");
        for bad in ["gpu", "cpu:0", "wgpu:x", "cuda:-1", ""] {
            let err = bad.parse::<DeviceSpec>().unwrap_err();
            assert!(!err.contains('\n') && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn a_device_the_build_lacks_is_a_one_line_error_naming_the_feature() {
        for (spec, feature, built) in [
            (DeviceSpec::Wgpu(None), "wgpu", cfg!(feature = "wgpu")),
            (DeviceSpec::Vulkan(Some(0)), "vulkan", cfg!(feature = "vulkan")),
            (DeviceSpec::Cuda(None), "cuda", cfg!(feature = "cuda")),
        ] {
            if built {
                continue;
            }
            let err = spec.device().unwrap_err().to_string();
            assert!(err.contains(&format!("--features {feature}")) && !err.contains('\n'), "{err}");
        }
        assert!(DeviceSpec::Cpu.device().is_ok());
    }
}
