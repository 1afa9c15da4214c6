//! The one place where the compute device is chosen.
//!
//! burn 0.22 picks the backend from the device at run time, so models and the training loop take
//! a `&Device` and never name a backend. Adding a GPU backend means adding a variant here (and
//! the matching burn feature), nothing else.

use burn::tensor::Device;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// The compute backends this build can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// burn's pure-Rust `flex` CPU backend (multi-threaded, SIMD).
    #[default]
    Flex,
}

impl Backend {
    /// The device for inference and data: no autodiff graph.
    pub fn device(self) -> Device {
        keep_freed_memory();
        match self {
            Backend::Flex => Device::flex(),
        }
    }

    /// The device for training: the same backend with autodiff enabled.
    pub fn training_device(self) -> Device {
        self.device().autodiff()
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
