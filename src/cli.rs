//! The command line: `rethink train`, `rethink labels` and `rethink kernel`.

use crate::data::randomize::Randomization;
use crate::data::source::DataKind;
use crate::kernel::cg::{CgOptions, CgPrecond};
use crate::kernel::config::{KernelConfig, KernelKind, Precision, SolverChoice};
use crate::kernel::features::gabor::GaborSettings;
use crate::kernel::features::random_conv::RandomConvSettings;
use crate::kernel::features::{FeatureKind, FeatureSettings};
use crate::kernel::matrix::KernelFn;
use crate::kernel::refine::{Method, RefineOptions};
use crate::train::config::{DerivedFlags, TrainConfig};
use crate::train::trainer::{DownloadOptions, RunOptions};
use clap::ValueEnum;
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
    Sweep(SweepArgs),
    /// Draw the paper's figures and tables (Figure 1, Table 1) from run directories.
    Report(crate::report::ReportArgs),
    /// List the compute devices this build can use (`--device` names), software adapters marked.
    Devices,
}

/// Flags of `rethink train`: the run's settings, the flags resolved into settings after parsing,
/// and run management.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// The settings saved in `config.json` (those with a flag of their own).
    #[command(flatten)]
    pub config: TrainConfig,
    /// Flags resolved into the remaining settings.
    #[command(flatten)]
    pub derived: DerivedFlags,
    /// Output directory, resume, download and progress.
    #[command(flatten)]
    pub run: RunOptions,
}

impl TrainArgs {
    /// The run's (resolved) settings and how to carry it out.
    pub fn into_config(self) -> (TrainConfig, RunOptions) {
        (self.derived.resolve(self.config), self.run)
    }

    /// Parses `rethink train ARGS…` (panics on invalid flags: for defaults and tests).
    pub fn parse_args(args: &[&str]) -> Self {
        let argv = ["rethink", "train"].iter().chain(args);
        match Cli::parse_from(argv).command {
            Command::Train(train) => train,
            _ => unreachable!("parsed a train command"),
        }
    }
}

/// The `rethink train` flags `rethink labels` shows: those that choose the data and their labels.
/// The other training flags are accepted but hidden, as they do not change the labels.
const LABELS_FLAGS: [&str; 16] = [
    "data",
    "data_dir",
    "download",
    "download_url",
    "download_md5",
    "synthetic_train",
    "synthetic_test",
    "train_size",
    "val_size",
    "split_test_set",
    "num_classes",
    "randomize",
    "label_corrupt_prob",
    "corrupt_seed",
    "val_labels",
    "seed",
];

/// Hides the training flags that do not concern `rethink labels`.
fn labels_flag(arg: clap::Arg) -> clap::Arg {
    let shown = LABELS_FLAGS.contains(&arg.get_id().as_str()) || arg.get_id() == "out";
    arg.hide(!shown)
}

/// Flags of `rethink labels`: the data flags of `rethink train` and the CSV file to write.
#[derive(Debug, Clone, Args)]
#[command(mut_args(labels_flag))]
pub struct LabelsArgs {
    /// Training settings (only the data flags are shown).
    #[command(flatten)]
    pub config: TrainConfig,
    /// Flags resolved into settings (`--num-classes`, `--randomize`, …).
    #[command(flatten)]
    pub derived: DerivedFlags,
    /// Whether and from where a missing dataset is downloaded.
    #[command(flatten)]
    pub download: DownloadOptions,
    /// CSV file to write (`split,index,original,label,corrupted`).
    #[arg(long, value_name = "FILE.csv")]
    pub out: PathBuf,
}

impl LabelsArgs {
    /// Training settings with these data flags (other settings at their defaults), how to get
    /// the data, and the CSV file to write.
    pub fn into_config(self) -> (TrainConfig, RunOptions, PathBuf) {
        let options = RunOptions { download: self.download, ..TrainArgs::parse_args(&[]).run };
        (self.derived.resolve(self.config), options, self.out)
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
    /// Feature map applied to train and test images before the kernel: raw pixels/255; gabor,
    /// a first-order scattering transform (pooled moduli of Morlet/Gabor wavelets); or
    /// random-conv, random filters on whitened patches, rectified and pooled (Coates & Ng 2011).
    /// Non-raw features are scaled so the mean squared distance between training points is 100
    /// (raw MNIST's is 104), so --bandwidth and --sigma keep their meaning.
    #[arg(long, value_enum, default_value = "raw")]
    pub features: FeatureKind,
    /// gabor: dyadic scales J; the maps are pooled by a Gaussian of width σ₀·2^J every 2^J
    /// pixels [default: 2].
    #[arg(long, value_name = "J")]
    pub gabor_scales: Option<usize>,
    /// gabor: orientations L over [0, π) [default: 8].
    #[arg(long, value_name = "L")]
    pub gabor_orientations: Option<usize>,
    /// gabor: envelope width σ₀ of the finest wavelet in pixels; scale j has σ₀·2^j and centre
    /// frequency (3π/4)·2^−j [default: 0.8].
    #[arg(long, value_name = "PIXELS")]
    pub gabor_sigma: Option<f64>,
    /// random-conv: number of random filters [default: 32000, the paper's].
    #[arg(long, value_name = "N")]
    pub filters: Option<usize>,
    /// random-conv: patch side in pixels [default: 6].
    #[arg(long, value_name = "PIXELS")]
    pub patch: Option<usize>,
    /// random-conv: step between patches [default: 1].
    #[arg(long, value_name = "PIXELS")]
    pub conv_stride: Option<usize>,
    /// random-conv: average over a G×G grid of regions; features = filters·G² [default: 1].
    #[arg(long, value_name = "G")]
    pub pool_grid: Option<usize>,
    /// random-conv: rectifier max(0, w·x − α) threshold α [default: 0.25].
    #[arg(long, value_name = "ALPHA", allow_negative_numbers = true)]
    pub threshold: Option<f64>,
    /// random-conv: patches drawn (seeded by --seed) to fit the ZCA whitening [default: 100000].
    #[arg(long, value_name = "N")]
    pub whiten_patches: Option<usize>,
    /// random-conv: whitening regularizer ε of V·diag(1/√(λ+ε))·Vᵀ, on patches normalized by
    /// (x − mean)/√(var + 10) in pixel units [default: 0.1].
    #[arg(long, value_name = "EPS")]
    pub whiten_eps: Option<f64>,
    /// Kernel function on the features.
    #[arg(long, value_enum, default_value = "gaussian")]
    pub kernel: KernelKind,
    /// Gaussian kernel exp(-BW·‖x−y‖²) [default: 0.02, the demo's].
    #[arg(long, value_name = "BW", allow_negative_numbers = true)]
    pub bandwidth: Option<f64>,
    /// Laplacian kernel exp(-‖x−y‖/SIGMA) [default: 10].
    #[arg(long, value_name = "SIGMA", allow_negative_numbers = true)]
    pub sigma: Option<f64>,
    /// Ridge λ: solve (K + λI)·c = Y; 0 is the minimum-norm interpolant.
    #[arg(long, value_name = "LAMBDA", default_value_t = 0.0, allow_negative_numbers = true)]
    pub ridge: f64,
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
    /// Conjugate gradient: stop at the first iteration whose train error is 0 (records how
    /// many kernel passes it takes to fit the labels: fitting time against label noise).
    #[arg(long)]
    pub until_fit: bool,
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
    /// The feature map's settings; errors when a flag of another map is given.
    fn feature_settings(&self) -> anyhow::Result<FeatureSettings> {
        let gabor_flags = [
            ("--gabor-scales", self.gabor_scales.is_some()),
            ("--gabor-orientations", self.gabor_orientations.is_some()),
            ("--gabor-sigma", self.gabor_sigma.is_some()),
        ];
        let conv_flags = [
            ("--filters", self.filters.is_some()),
            ("--patch", self.patch.is_some()),
            ("--conv-stride", self.conv_stride.is_some()),
            ("--pool-grid", self.pool_grid.is_some()),
            ("--threshold", self.threshold.is_some()),
            ("--whiten-patches", self.whiten_patches.is_some()),
            ("--whiten-eps", self.whiten_eps.is_some()),
        ];
        for (flags, owner) in [(&gabor_flags[..], FeatureKind::Gabor), (&conv_flags[..], FeatureKind::RandomConv)] {
            if let Some((flag, _)) = flags.iter().find(|(_, given)| *given)
                && self.features != owner
            {
                let name = owner.to_possible_value().expect("no skipped variants").get_name().to_owned();
                anyhow::bail!("{flag} applies to --features {name}");
            }
        }
        let (g, r) = (GaborSettings::default(), RandomConvSettings::default());
        Ok(FeatureSettings {
            kind: self.features,
            gabor: GaborSettings {
                scales: self.gabor_scales.unwrap_or(g.scales),
                orientations: self.gabor_orientations.unwrap_or(g.orientations),
                sigma: self.gabor_sigma.unwrap_or(g.sigma),
            },
            random_conv: RandomConvSettings {
                filters: self.filters.unwrap_or(r.filters),
                patch: self.patch.unwrap_or(r.patch),
                stride: self.conv_stride.unwrap_or(r.stride),
                pool_grid: self.pool_grid.unwrap_or(r.pool_grid),
                threshold: self.threshold.unwrap_or(r.threshold),
                whiten_patches: self.whiten_patches.unwrap_or(r.whiten_patches),
                whiten_eps: self.whiten_eps.unwrap_or(r.whiten_eps),
            },
        })
    }

    /// The solve's settings; errors when a kernel parameter is given for the other kernel.
    pub fn into_config(self) -> anyhow::Result<KernelConfig> {
        let features = self.feature_settings()?;
        let kernel = match (self.kernel, self.bandwidth, self.sigma) {
            (KernelKind::Gaussian | KernelKind::Linear, _, Some(_)) => {
                anyhow::bail!("--sigma applies to --kernel laplacian")
            }
            (KernelKind::Laplacian | KernelKind::Linear, Some(_), _) => {
                anyhow::bail!("--bandwidth applies to --kernel gaussian")
            }
            (KernelKind::Gaussian, bw, None) => KernelFn::Gaussian { bandwidth: bw.unwrap_or(0.02) },
            (KernelKind::Laplacian, None, sigma) => KernelFn::Laplacian { sigma: sigma.unwrap_or(10.0) },
            (KernelKind::Linear, None, None) => KernelFn::Linear,
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
            features,
            kernel,
            ridge: self.ridge,
            solver: self.solver,
            precision: self.precision,
            refine: RefineOptions { method: self.refine, tol: self.refine_tol, max_steps: self.max_refine },
            cg: CgOptions {
                tol: self.tol,
                max_iters: self.max_iters,
                precond: self.cg_precond,
                rank: self.cg_rank,
                seed: self.seed,
                until_fit: self.until_fit,
                ridge: self.ridge,
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

/// Flags of `rethink sweep`.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// The sweep file: [base] settings, a [grid] of lists and/or [[points]] (see sweeps/).
    #[arg(value_name = "SPEC.toml")]
    pub spec: PathBuf,
    /// Root of the sweep's run directories [default: runs/<sweep name>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print every point with its index, status (done, partial, pending, running) and run
    /// directory, and exit.
    #[arg(long, conflicts_with_all = ["index", "emit_slurm"])]
    pub list: bool,
    /// Run point N only, in this process (what each Slurm array task does).
    #[arg(long, value_name = "N", conflicts_with = "emit_slurm")]
    pub index: Option<usize>,
    /// Run K points at once, each a child process with its share of the cores.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub jobs: usize,
    /// Write an sbatch script that runs the sweep as a Slurm job array, and exit.
    #[arg(long, value_name = "FILE")]
    pub emit_slurm: Option<PathBuf>,
    /// With --emit-slurm: run at most M array tasks at once (`--array=0-(N-1)%M`).
    #[arg(long, value_name = "M", requires = "emit_slurm")]
    pub array_max: Option<usize>,
    /// With --emit-slurm: an `#SBATCH` option for the script, e.g. --sbatch=--partition=gpu
    /// --sbatch=--time=24:00:00 (repeatable).
    #[arg(long, value_name = "OPTION", requires = "emit_slurm", allow_hyphen_values = true)]
    pub sbatch: Vec<String>,
    /// Do not write the report (figures and tables) into <out>/report at the end.
    #[arg(long)]
    pub no_report: bool,
    /// Train every point on this device (cpu, wgpu[:N], vulkan[:N], cuda[:N]), overriding the
    /// sweep file. The device is not part of a run's identity: a point resumes on any device.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<crate::device::DeviceSpec>,
}
