//! A sweep point as a `rethink train` (or `rethink kernel`) run: its command line, its
//! settings, its run directory and how far it got.

use super::spec::{PointSettings, Settings, SweepCommand, value_text};
use crate::cli::{Cli, Command, TrainArgs};
use crate::device::DeviceSpec;
use crate::kernel::config::{KernelConfig, identity_of};
use crate::kernel::matrix::KernelFn;
use crate::train::config::TrainConfig;
use crate::train::run_dir::{experiment_name, is_locked, python_g};
use crate::train::trainer::first_difference;
use anyhow::{Result, bail};
use clap::{ArgAction, CommandFactory, Parser};
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Value;

/// What a point runs, with its checked settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// A `rethink train` run.
    Train(Box<TrainConfig>),
    /// A `rethink kernel` solve (its `out` is the point's run directory).
    Kernel(Box<KernelConfig>),
}

/// A checked point: the flags it stands for and the run they describe.
#[derive(Debug, Clone)]
pub struct Point {
    /// Position in the sweep (`--index`, the Slurm array task id).
    pub index: usize,
    /// Flags of the command (without `--out`, `--run-name`, `--resume`, `--no-progress`).
    pub args: Vec<String>,
    /// The command and the run's settings.
    pub job: Job,
    /// The run directory's name under the sweep's output directory.
    pub dir_name: String,
    /// The settings that vary across points, for display (`arch=mlp label-corrupt-prob=0.5`).
    pub label: String,
}

/// Settings the demo's experiment name already spells out; other varying settings are appended
/// to the run directory's name so that every point gets its own.
const IN_EXPERIMENT_NAME: [&str; 15] = [
    "name",
    "data",
    "randomize",
    "label-corrupt-prob",
    "arch",
    "wrn-depth",
    "wrn-widen-factor",
    "wrn-droprate",
    "mlp-spec",
    "mlp-bias",
    "learning-rate",
    "momentum",
    "weight-decay",
    "data-augmentation",
    "no-data-augmentation",
];

impl Point {
    /// Checks a point against the flags and settings of `command`. Errors name the point and
    /// the flag.
    pub fn new(settings: &PointSettings, command: SweepCommand) -> Result<Self> {
        let label = settings.own.iter().map(|(k, v)| format!("{k}={}", value_text(v))).collect::<Vec<_>>().join(" ");
        let context = |what: String| anyhow::anyhow!("point {} ({label}): {what}", settings.index);
        let args = command_args(&settings.settings, command).map_err(|e| context(e.to_string()))?;
        let argv = ["rethink", command.name()].into_iter().map(String::from).chain(args.iter().cloned());
        let parsed = Cli::try_parse_from(argv).map_err(|e| context(clap_line(&e)))?;
        let (job, dir_name) = match parsed.command {
            Command::Train(train) => {
                let (config, _) = train.into_config();
                config.validate().map_err(|e| context(format!("{e:#}")))?;
                if config.epochs == 0 {
                    return Err(context("epochs = 0 trains nothing; a sweep point needs at least one epoch".into()));
                }
                let dir_name = dir_name(experiment_name(&config), &settings.own, &IN_EXPERIMENT_NAME);
                (Job::Train(Box::new(config)), dir_name)
            }
            Command::Kernel(kernel) => {
                let config = kernel.into_config().map_err(|e| context(format!("{e:#}")))?;
                config.validate().map_err(|e| context(format!("{e:#}")))?;
                let kind = match config.kernel {
                    KernelFn::Gaussian { .. } => "gaussian",
                    KernelFn::Laplacian { .. } => "laplacian",
                    KernelFn::Linear => "linear",
                };
                (Job::Kernel(Box::new(config)), dir_name(format!("kernel-{kind}"), &settings.own, &["kernel"]))
            }
            _ => unreachable!("parsed a {} command", command.name()),
        };
        Ok(Self { index: settings.index, args, job, dir_name, label })
    }

    /// The training settings of a `train` point.
    pub fn train_config(&self) -> Option<&TrainConfig> {
        match &self.job {
            Job::Train(config) => Some(config),
            Job::Kernel(_) => None,
        }
    }

    /// Trains the point on `device` instead of the device its settings name; kernel solves
    /// run on the CPU and refuse.
    pub fn set_device(&mut self, device: DeviceSpec) -> Result<()> {
        let Job::Train(config) = &mut self.job else {
            bail!("--device applies to sweeps of `rethink train`: kernel solves run on the CPU");
        };
        if let Some(at) = self.args.iter().position(|a| a == "--device") {
            self.args.drain(at..(at + 2).min(self.args.len()));
        }
        self.args.extend(["--device".to_string(), device.to_string()]);
        config.device = device;
        Ok(())
    }

    /// The point's run directory under `out`.
    pub fn dir(&self, out: &Path) -> PathBuf {
        out.join(&self.dir_name)
    }

    /// The full command line that runs (or resumes) the point under `out`.
    pub fn command_line(&self, out: &Path) -> Vec<String> {
        let command = match self.job {
            Job::Train(_) => "train",
            Job::Kernel(_) => "kernel",
        };
        let mut argv: Vec<String> = vec![command.into()];
        argv.extend(self.args.iter().cloned());
        match self.job {
            Job::Train(_) => argv.extend([
                "--out".into(),
                out.display().to_string(),
                "--run-name".into(),
                self.dir_name.clone(),
                "--resume".into(),
            ]),
            Job::Kernel(_) => argv.extend(["--out".into(), self.dir(out).display().to_string()]),
        }
        argv.push("--no-progress".into());
        argv
    }

    /// The settings of a `kernel` point writing into its run directory under `out` (for
    /// running it in-process).
    pub fn kernel_config(&self, out: &Path) -> Result<KernelConfig> {
        let argv = std::iter::once("rethink".to_string()).chain(self.command_line(out));
        match Cli::try_parse_from(argv).map_err(|e| anyhow::anyhow!(clap_line(&e)))?.command {
            Command::Kernel(kernel) => kernel.into_config(),
            _ => bail!("point {} is not a kernel solve", self.index),
        }
    }

    /// The parsed `rethink train` flags of the point under `out` (for running it in-process).
    pub fn train_args(&self, out: &Path) -> Result<TrainArgs> {
        let argv = std::iter::once("rethink".to_string()).chain(self.command_line(out));
        match Cli::try_parse_from(argv).map_err(|e| anyhow::anyhow!(clap_line(&e)))?.command {
            Command::Train(train) => Ok(train),
            _ => unreachable!("parsed a train command"),
        }
    }
}

/// Settings → arguments of `command`, checking each key is a flag and each value's type.
fn command_args(settings: &Settings, command: SweepCommand) -> Result<Vec<String>> {
    let cli = Cli::command();
    let name = command.name();
    let train = cli.find_subcommand(name).expect("rethink has the sweep's subcommands");
    let mut args = Vec::new();
    for (key, value) in settings {
        let Some(arg) = train.get_arguments().find(|a| a.get_long() == Some(key)) else {
            bail!("unknown setting `{key}`: not a `rethink {name}` flag (see rethink {name} --help)");
        };
        let switch = matches!(arg.get_action(), ArgAction::SetTrue);
        match (switch, value) {
            (true, Value::Boolean(true)) => args.push(format!("--{key}")),
            (true, Value::Boolean(false)) => {
                let negated = format!("no-{key}");
                if train.get_arguments().any(|a| a.get_long() == Some(&negated)) {
                    args.push(format!("--{negated}"));
                }
            }
            (true, other) => bail!("`{key}` is a switch: give true or false, not {}", other.type_str()),
            (false, Value::Boolean(_)) => bail!("`{key}` takes a value, not a boolean"),
            (false, value) => {
                args.push(format!("--{key}"));
                args.push(value_text(value));
            }
        }
    }
    Ok(args)
}

/// clap's error on one line, without the usage boilerplate.
fn clap_line(err: &clap::Error) -> String {
    err.render()
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `base` (the demo's experiment name for training, `kernel` for kernel solves), plus
/// `_<flag>-<value>` for each varying setting it does not spell out (`spelled`), e.g.
/// `_seed-1`. It depends only on the point's own settings, so adding points to a sweep never
/// renames the runs it already has.
fn dir_name(base: String, own: &Settings, spelled: &[&str]) -> String {
    let mut name = base;
    for (key, value) in own {
        if spelled.contains(&key.as_str()) {
            continue;
        }
        let text = match value {
            Value::Float(f) => python_g(*f),
            other => value_text(other),
        };
        let text: String =
            text.chars().map(|c| if c.is_ascii_alphanumeric() || ".-+".contains(c) { c } else { '-' }).collect();
        name.push_str(&format!("_{key}-{text}"));
    }
    name
}

/// How far a point's run got.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Finished: `results.json` was written for at least the point's epochs.
    Done,
    /// Started: a checkpoint exists; running the point resumes it.
    Partial {
        /// Epochs completed so far.
        epochs: usize,
    },
    /// Not started.
    Pending,
    /// Another process holds the run directory's lock.
    Running,
    /// The run directory holds a run with other settings (the sweep file changed).
    Conflict(String),
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Done => write!(f, "done"),
            Status::Partial { epochs } => write!(f, "partial ({epochs} epochs)"),
            Status::Pending => write!(f, "pending"),
            Status::Running => write!(f, "running"),
            Status::Conflict(why) => write!(f, "conflict ({why})"),
        }
    }
}

impl Point {
    /// The point's status under `out`, from its run directory.
    pub fn status(&self, out: &Path) -> Status {
        let dir = self.dir(out);
        let config = match &self.job {
            Job::Train(config) => config,
            Job::Kernel(config) => return kernel_status(&dir, config),
        };
        if is_locked(&dir) {
            return Status::Running;
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("config.json"))
            && let Ok(saved) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(saved) = saved.get("config")
            && let Ok(saved) = serde_json::from_value::<TrainConfig>(saved.clone())
            && saved.resume_key() != config.resume_key()
        {
            return Status::Conflict(first_difference(&saved.resume_key(), &config.resume_key()));
        }
        let results = std::fs::read_to_string(dir.join("results.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        if let Some(results) = &results {
            let planned = results.get("epochs_planned").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
            if planned >= config.epochs {
                return Status::Done;
            }
        }
        let epochs =
            std::fs::read_to_string(dir.join("metrics.csv")).map_or(0, |t| t.lines().count().saturating_sub(1));
        if dir.join("checkpoint.safetensors").exists() { Status::Partial { epochs } } else { Status::Pending }
    }
}

/// A kernel point is done when its `result.json` (written last, atomically) holds the same
/// settings; a solve is not resumable, so an unfinished one is pending.
fn kernel_status(dir: &Path, config: &KernelConfig) -> Status {
    let Some(result) = std::fs::read_to_string(dir.join("result.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    else {
        return Status::Pending;
    };
    let saved = identity_of(result.get("config").cloned().unwrap_or_default());
    let now = config.identity();
    if saved == now { Status::Done } else { Status::Conflict(first_difference(&saved, &now)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::spec::SweepSpec;

    fn points(text: &str) -> Result<Vec<Point>> {
        let spec = SweepSpec::parse(text, "t")?;
        spec.expand()?.iter().map(|p| Point::new(p, spec.command)).collect()
    }

    fn error(text: &str) -> String {
        format!("{:#}", points(text).unwrap_err())
    }

    #[test]
    fn points_become_train_runs_with_distinct_directories() {
        let points = points(
            r#"
            [base]
            data = "synthetic"
            arch = "mlp"
            epochs = 2
            data_augmentation = false
            eval_full_trainset = true
            [grid]
            label_corrupt_prob = [0.0, 0.5]
            seed = [0, 7]
            "#,
        )
        .unwrap();
        assert_eq!(points.len(), 4);
        let config = points[3].train_config().unwrap();
        assert_eq!(config.label_corrupt_prob, 0.5);
        assert_eq!(config.seed, 7);
        assert!(!config.data_augmentation);
        assert_eq!(points[0].dir_name, "synthetic_mlp512_lr0.1_mmt0.9_Wd0.0001_NoAug_seed-0");
        assert_eq!(points[3].dir_name, "synthetic_corrupt0.5_mlp512_lr0.1_mmt0.9_Wd0.0001_NoAug_seed-7");
        assert_eq!(points[3].label, "label-corrupt-prob=0.5 seed=7");
        let argv = points[3].command_line(Path::new("runs/x"));
        assert!(argv.windows(2).any(|w| w == ["--run-name", points[3].dir_name.as_str()]));
        assert_eq!(&points[3].train_args(Path::new("runs/x")).unwrap().into_config().0, config);
    }

    #[test]
    fn bad_points_name_the_point_and_the_flag() {
        let e = error("[base]\narhc = \"mlp\"\n[grid]\nseed = [1]");
        assert!(e.contains("point 0 (seed=1): unknown setting `arhc`"), "{e}");
        let e = error("[grid]\nepochs = [\"ten\"]");
        assert!(e.contains("point 0 (epochs=ten)") && e.contains("--epochs"), "{e}");
        let e = error("[grid]\ndata_augmentation = [1]");
        assert!(e.contains("`data-augmentation` is a switch"), "{e}");
        let e = error("[grid]\nepochs = [true]");
        assert!(e.contains("`epochs` takes a value"), "{e}");
        let e = error("[base]\nrandomize = \"none\"\n[grid]\nlabel_corrupt_prob = [0.0, 0.5]");
        assert!(e.contains("point 1 (label-corrupt-prob=0.5)") && e.contains("contradicts"), "{e}");
        let e = error("[grid]\nepochs = [0]");
        assert!(e.contains("at least one epoch"), "{e}");
    }
}
