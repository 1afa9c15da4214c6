//! The command line: `rethink train`, `rethink labels` and `rethink kernel`.

use crate::data::batch::Preprocess;
use crate::data::randomize::Randomization;
use crate::data::source::DataKind;
use crate::device::Backend;
use crate::kernel::cg::{CgOptions, CgPrecond};
use crate::kernel::config::{KernelConfig, KernelKind, Precision, SolverChoice};
use crate::kernel::matrix::KernelFn;
use crate::kernel::refine::{Method, RefineOptions};
use crate::model::Arch;
use crate::train::config::{TrainConfig, ValLabels};
use crate::train::schedule::{LrSchedule, ScheduleKind};
use crate::train::trainer::RunOptions;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Randomization tests of "Understanding deep learning requires rethinking generalization".
#[derive(Debug, Parser)]
#[command(name = "rethink", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a network on (possibly randomized) data, as the reference demo's train.py.
    Train(TrainArgs),
    /// Write the effective (possibly corrupted) labels of every example as CSV.
    Labels(LabelsArgs),
    /// Solve the minimum-norm kernel interpolation K·c = Y exactly (the paper's section 5).
    Kernel(KernelArgs),
    /// Run a grid of training runs from a TOML file (locally, or as a Slurm job array).
    Sweep(crate::sweep::SweepArgs),
    /// Draw the paper's figures and tables (Figure 1, Table 1) from run directories.
    Report(crate::report::ReportArgs),
}

/// Where the data come from and how their labels are corrupted.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Dataset.
    #[arg(long, value_enum, default_value = "cifar10")]
    pub data: DataKind,
    /// Directory with the dataset files (CIFAR-10: data_batch_1.bin … test_batch.bin, the
    /// cifar-10-batches-bin/ folder or cifar-10-binary.tar.gz).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Download the official archive into --data-dir if it is not there (MD5-checked).
    #[arg(long)]
    pub download: bool,
    /// Download from this URL instead of the official one (a mirror).
    #[arg(long, value_name = "URL")]
    pub download_url: Option<String>,
    /// Expected MD5 of the file at --download-url (default: the official archive's).
    #[arg(long, value_name = "HEX")]
    pub download_md5: Option<String>,
    /// Number of training images of --data synthetic.
    #[arg(long, default_value_t = 2000)]
    pub synthetic_train: usize,
    /// Number of test images of --data synthetic.
    #[arg(long, default_value_t = 500)]
    pub synthetic_test: usize,
    /// Use only the first N training examples.
    #[arg(long, value_name = "N")]
    pub train_size: Option<usize>,
    /// Use only the first N validation (test) examples.
    #[arg(long, value_name = "N")]
    pub val_size: Option<usize>,
    /// Train on the first N examples of the test files and validate on the rest (reads only the
    /// test files, e.g. the MNIST t10k set alone).
    #[arg(long, value_name = "N")]
    pub split_test_set: Option<usize>,
    /// Number of classes [default: the dataset's, 10 or 100 for cifar100].
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Randomization test [default: labels if --label-corrupt-prob > 0, else none].
    #[arg(long, value_enum)]
    pub randomize: Option<Randomization>,
    /// Probability that a training label is replaced by a uniform random class.
    #[arg(long, default_value_t = 0.0, value_name = "P", allow_negative_numbers = true)]
    pub label_corrupt_prob: f64,
    /// Seed of numpy's legacy generator used for label corruption (the demo's 12345).
    #[arg(long, default_value_t = crate::data::corrupt::DEMO_CORRUPTION_SEED)]
    pub corrupt_seed: u32,
    /// Score validation against the clean test labels (the paper) or corrupted ones (the demo).
    #[arg(long, value_enum, default_value = "clean")]
    pub val_labels: ValLabels,
    /// Seed of model init, shuffling, augmentation, dropout and synthetic data.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Flags of `rethink train` (the demo's, plus seed, data and run management).
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Random crop (4-pixel zero padding) and horizontal flip of training images.
    #[arg(long, overrides_with = "no_data_augmentation")]
    pub data_augmentation: bool,
    /// No data augmentation (the default).
    #[arg(long, overrides_with = "data_augmentation")]
    pub no_data_augmentation: bool,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Number of epochs (0: build data and model, print the parameter count, exit).
    #[arg(long, default_value_t = 300)]
    pub epochs: usize,
    /// Base learning rate.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub learning_rate: f64,
    /// Learning-rate schedule: step (×0.1 from epoch 150, ×0.01 from 225) or exp (lr·decay^epoch).
    #[arg(long, value_enum, default_value = "step")]
    pub lr_schedule: ScheduleKind,
    /// Per-epoch factor of --lr-schedule exp (the paper's 0.95).
    #[arg(long, default_value_t = 0.95, allow_negative_numbers = true)]
    pub lr_decay: f64,
    /// Input preprocessing: demo (per-channel normalisation) or paper (centre 28×28 crop +
    /// per-image whitening).
    #[arg(long, value_enum, default_value = "demo")]
    pub preprocess: Preprocess,
    /// Stop at the first epoch whose train accuracy reaches A percent (time to fit).
    #[arg(long, value_name = "A", allow_negative_numbers = true)]
    pub stop_at_train_acc: Option<f64>,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub momentum: f64,
    /// L2 weight decay, added to the gradient.
    #[arg(long, default_value_t = 1e-4, allow_negative_numbers = true)]
    pub weight_decay: f64,
    /// After each epoch re-evaluate the whole train set in eval mode (the default).
    #[arg(long, overrides_with = "no_eval_full_trainset")]
    pub eval_full_trainset: bool,
    /// Report the running average over the epoch's mini-batches instead.
    #[arg(long, overrides_with = "eval_full_trainset")]
    pub no_eval_full_trainset: bool,
    /// Architecture: the demo's wide-resnet and mlp, the paper's inception, inception-nobn
    /// (no BatchNorm) and alexnet.
    #[arg(long, value_enum, default_value = "wide-resnet")]
    pub arch: Arch,
    /// Wide ResNet depth (6n+4).
    #[arg(long, default_value_t = 28)]
    pub wrn_depth: usize,
    /// Wide ResNet widen factor.
    #[arg(long, default_value_t = 1)]
    pub wrn_widen_factor: usize,
    /// Wide ResNet dropout rate between the two convolutions of a block.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub wrn_droprate: f64,
    /// MLP hidden widths joined by 'x', e.g. 512 or 512x128x512.
    #[arg(long, default_value = "512")]
    pub mlp_spec: String,
    /// Give the MLP's layers biases, as the paper's MLPs have (the demo's have none).
    #[arg(long)]
    pub mlp_bias: bool,
    /// Prefix of the experiment name.
    #[arg(long, default_value = "")]
    pub name: String,
    /// Root directory of runs; each run writes runs/<experiment>/.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Continue the run from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Name of the run directory under --out [default: the experiment name].
    #[arg(long, value_name = "NAME")]
    pub run_name: Option<String>,
    /// Compute backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: Backend,
    /// Hide the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

impl TrainArgs {
    /// The run's settings and how to carry it out.
    pub fn into_config(self) -> (TrainConfig, RunOptions) {
        let d = self.data;
        let config = TrainConfig {
            data: d.data,
            data_dir: d.data_dir,
            synthetic_train: d.synthetic_train,
            synthetic_test: d.synthetic_test,
            train_size: d.train_size,
            val_size: d.val_size,
            split_test_set: d.split_test_set,
            num_classes: d.num_classes.unwrap_or(d.data.num_classes()),
            randomize: d.randomize.unwrap_or(if d.label_corrupt_prob > 0.0 {
                Randomization::Labels
            } else {
                Randomization::None
            }),
            preprocess: self.preprocess,
            data_augmentation: self.data_augmentation && !self.no_data_augmentation,
            label_corrupt_prob: d.label_corrupt_prob,
            corrupt_seed: d.corrupt_seed,
            val_labels: d.val_labels,
            batch_size: self.batch_size,
            epochs: self.epochs,
            learning_rate: self.learning_rate,
            lr_schedule: LrSchedule::new(self.lr_schedule, self.lr_decay),
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            eval_full_trainset: !self.no_eval_full_trainset,
            arch: self.arch,
            wrn_depth: self.wrn_depth,
            wrn_widen_factor: self.wrn_widen_factor,
            wrn_droprate: self.wrn_droprate,
            mlp_spec: self.mlp_spec,
            mlp_bias: self.mlp_bias,
            name: self.name,
            stop_at_train_acc: self.stop_at_train_acc,
            seed: d.seed,
            backend: self.backend,
        };
        let options = RunOptions {
            out: self.out,
            resume: self.resume,
            download: d.download,
            download_url: d.download_url,
            download_md5: d.download_md5,
            progress: !self.no_progress,
            run_name: self.run_name,
        };
        (config, options)
    }
}

/// Flags of `rethink labels`.
#[derive(Debug, Clone, Args)]
pub struct LabelsArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// CSV file to write (`split,index,original,label,corrupted`).
    #[arg(long, value_name = "FILE.csv")]
    pub out: PathBuf,
}

impl LabelsArgs {
    /// Training settings with these data flags (other settings at their defaults).
    pub fn into_config(self) -> (TrainConfig, RunOptions, PathBuf) {
        let train = TrainArgs::parse_from_defaults(self.data);
        let (config, options) = train.into_config();
        (config, options, self.out)
    }
}

impl TrainArgs {
    /// Parses `rethink train ARGS…` (panics on invalid flags: for defaults and tests).
    pub fn parse_args(args: &[&str]) -> Self {
        let argv = ["rethink", "train"].iter().chain(args);
        match Cli::parse_from(argv).command {
            Command::Train(train) => train,
            _ => unreachable!("parsed a train command"),
        }
    }

    /// `rethink train` with every flag at its default, but the given data flags.
    fn parse_from_defaults(data: DataArgs) -> Self {
        Self { data, ..Self::parse_args(&[]) }
    }
}

/// Flags of `rethink kernel`.
#[derive(Debug, Clone, Args)]
pub struct KernelArgs {
    /// Dataset (pixels scaled to [0, 1]).
    #[arg(long, value_enum, default_value = "mnist")]
    pub data: DataKind,
    /// Directory with the dataset files (MNIST: train-*/t10k-* IDX files, raw or .gz;
    /// CIFAR-10: the .bin batches, their folder or the .tar.gz).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Download the dataset into --data-dir if it is not there (MD5-checked).
    #[arg(long)]
    pub download: bool,
    /// Use only the first N training examples.
    #[arg(long, value_name = "N")]
    pub train_size: Option<usize>,
    /// Use only the first N test examples.
    #[arg(long, value_name = "N")]
    pub test_size: Option<usize>,
    /// Build both splits from the test files: their first N examples train, the others (or the
    /// first --test-size of them) test. For data with only a test split, e.g. MNIST's t10k-* files.
    #[arg(long, value_name = "N", conflicts_with = "train_size")]
    pub split_test_set: Option<usize>,
    /// Probability that a training label is replaced by a uniform random class
    /// (default 1 with --randomize labels, else 0).
    #[arg(long, value_name = "P")]
    pub label_corrupt_prob: Option<f64>,
    /// Seed of numpy's legacy generator used for label corruption (the demo's 12345).
    #[arg(long, default_value_t = crate::data::corrupt::DEMO_CORRUPTION_SEED)]
    pub corrupt_seed: u32,
    /// Randomization test: labels, or the pixels of train and test images.
    #[arg(long, value_enum, default_value = "none")]
    pub randomize: Randomization,
    /// Seed of the pixel randomizations and of the CG preconditioner's sketch.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Kernel function.
    #[arg(long, value_enum, default_value = "gaussian")]
    pub kernel: KernelKind,
    /// Gaussian kernel exp(-BW·‖x−y‖²) [default: 0.02, the demo's].
    #[arg(long, value_name = "BW", allow_negative_numbers = true)]
    pub bandwidth: Option<f64>,
    /// Laplacian kernel exp(-‖x−y‖/SIGMA) [default: 10].
    #[arg(long, value_name = "SIGMA", allow_negative_numbers = true)]
    pub sigma: Option<f64>,
    /// Solver: exact tiled Cholesky, matrix-free conjugate gradient, or Cholesky when it fits.
    #[arg(long, value_enum, default_value = "auto")]
    pub solver: SolverChoice,
    /// Precision of the Cholesky factorization.
    #[arg(long, value_enum, default_value = "f32-refined")]
    pub precision: Precision,
    /// Refinement of the Cholesky solution: preconditioned CG or classic iterative refinement.
    #[arg(long, value_enum, default_value = "pcg")]
    pub refine: Method,
    /// Refine until the normwise backward error is at most this.
    #[arg(long, default_value_t = 1e-14)]
    pub refine_tol: f64,
    /// At most this many refinement steps (exact kernel products).
    #[arg(long, default_value_t = 20)]
    pub max_refine: usize,
    /// Conjugate gradient: stop when every ‖r_j‖/‖y_j‖ is at most this.
    #[arg(long, default_value_t = 1e-6)]
    pub tol: f64,
    /// Conjugate gradient: at most this many iterations.
    #[arg(long, default_value_t = 500)]
    pub max_iters: usize,
    /// Conjugate gradient preconditioner.
    #[arg(long, value_enum, default_value = "nystrom")]
    pub cg_precond: CgPrecond,
    /// Rank of the Nyström preconditioner.
    #[arg(long, default_value_t = 200)]
    pub cg_rank: usize,
    /// Tile size of the Cholesky factorization [default: 384 in f32, 256 in f64, where faer's
    /// tile GEMMs run fastest on this class of CPU]; a multiple of 32 keeps the exact int8
    /// kernel path.
    #[arg(long)]
    pub tile: Option<usize>,
    /// Tile columns sharing one trailing update of the factorization.
    #[arg(long, default_value_t = 4)]
    pub group: usize,
    /// Block size of the matrix-free kernel products (a multiple of 32 keeps the exact int8
    /// kernel path).
    #[arg(long, default_value_t = 256)]
    pub block: usize,
    /// Worker threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Use at most this much memory (GiB); the default is MemAvailable of /proc/meminfo.
    #[arg(long, value_name = "GIB")]
    pub max_memory: Option<f64>,
    /// Directory receiving result.json and predictions.txt (the predicted class index of every
    /// test point, in decimal, one per line).
    #[arg(long, default_value = "runs/kernel")]
    pub out: PathBuf,
    /// Hide the factorization progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

impl KernelArgs {
    /// The solve's settings; errors when a kernel parameter is given for the other kernel.
    pub fn into_config(self) -> anyhow::Result<KernelConfig> {
        let kernel = match (self.kernel, self.bandwidth, self.sigma) {
            (KernelKind::Gaussian, _, Some(_)) => {
                anyhow::bail!("--sigma applies to --kernel laplacian, not gaussian")
            }
            (KernelKind::Laplacian, Some(_), _) => {
                anyhow::bail!("--bandwidth applies to --kernel gaussian, not laplacian")
            }
            (KernelKind::Gaussian, bw, None) => KernelFn::Gaussian { bandwidth: bw.unwrap_or(0.02) },
            (KernelKind::Laplacian, None, sigma) => KernelFn::Laplacian { sigma: sigma.unwrap_or(10.0) },
        };
        Ok(KernelConfig {
            data: self.data,
            data_dir: self.data_dir,
            download: self.download,
            train_size: self.train_size,
            test_size: self.test_size,
            split_test_set: self.split_test_set,
            label_corrupt_prob: self.label_corrupt_prob,
            corrupt_seed: self.corrupt_seed,
            randomize: self.randomize,
            seed: self.seed,
            kernel,
            solver: self.solver,
            precision: self.precision,
            refine: RefineOptions { method: self.refine, tol: self.refine_tol, max_steps: self.max_refine },
            cg: CgOptions {
                tol: self.tol,
                max_iters: self.max_iters,
                precond: self.cg_precond,
                rank: self.cg_rank,
                seed: self.seed,
            },
            tile: self.tile.unwrap_or(match self.precision {
                Precision::F32Refined => 384,
                Precision::F64 => 256,
            }),
            group: self.group,
            block: self.block,
            threads: self.threads,
            max_memory_gib: self.max_memory,
            out: self.out,
            progress: !self.no_progress,
        })
    }
}
