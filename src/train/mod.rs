//! Training: settings, schedule, optimizer, loop, metrics, run directory and checkpoints.

pub mod checkpoint;
pub mod config;
pub mod epoch;
pub mod evaluate;
pub mod memorization;
pub mod metrics;
pub mod progress;
pub mod results;
pub mod run_dir;
pub mod schedule;
pub mod sgd;
pub mod tensorboard;
pub mod trainer;

pub use config::{TrainConfig, ValLabels};
pub use trainer::{RunOptions, RunSummary, train};
