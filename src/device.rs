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
        match self {
            Backend::Flex => Device::flex(),
        }
    }

    /// The device for training: the same backend with autodiff enabled.
    pub fn training_device(self) -> Device {
        self.device().autodiff()
    }
}
