//! `rethink kernel`: the paper's minimum-norm kernel interpolation (section 5), solved exactly.
//!
//! Solving K·c = Y for the kernel matrix K of the training points and one-hot targets Y gives
//! the minimum-norm interpolant — what SGD from zero converges to for the linear model in the
//! kernel's feature space. Predictions are argmax(K(test, train)·c). The demo's README does it
//! with a 28.8 GB dense f64 matrix for all 60,000 MNIST digits (test error 1.22%); here:
//!
//! - [`data`]: the inputs, with the training pipeline's corruption and randomizations;
//! - [`features`]: the feature map applied before the kernel (raw pixels, Gabor, random conv);
//! - [`matrix`]: kernel blocks by GEMM and matrix-free products, in f64;
//! - [`gram`]: exact integer Gram blocks of 8-bit pixels (int8 VNNI or exact f32 chunks);
//! - [`cpu`]: run-time CPU feature checks (VNNI, `vzeroupper`) shared by the above;
//! - [`exp`]: the vectorized `exp` every kernel entry goes through;
//! - [`cholesky`]: a tiled lower-triangle Cholesky on faer tile kernels, parallel over tiles;
//! - [`refine`]: an f32 factor refined against the exact f64 residual to f64 accuracy;
//! - [`exact`]: that pipeline, kernel → factor → solve → refinement;
//! - [`cg`]: matrix-free conjugate gradient (optionally Nyström/EigenPro-style preconditioned)
//!   for systems whose factor does not fit;
//! - [`memory`]: the check of needed against available memory before allocating;
//! - [`result`]: the printed summary and `result.json`.

pub mod cg;
pub mod cholesky;
pub mod config;
pub mod cpu;
pub mod data;
pub mod exact;
pub mod exp;
pub mod features;
pub mod gram;
pub mod matrix;
pub mod memory;
pub mod refine;
pub mod result;

use anyhow::{Context, Result};
use config::{KernelConfig, Precision, SolverChoice};
use faer::Mat;
use matrix::{argmax_rows, cross_product, error_rate, one_hot};
use memory::{Budget, MemoryPlan};
use result::{DataReport, FeatureReport, KernelReport, MemoryReport, SolverReport, Times};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a run produced: the report (also in `result.json`) and what tests compare.
#[derive(Debug, Clone)]
pub struct KernelOutcome {
    /// The report.
    pub report: KernelReport,
    /// Predicted class of every test point.
    pub predictions: Vec<u8>,
    /// The coefficients c (training points × classes).
    pub c: Mat<f64>,
    /// Where `result.json` was written.
    pub result_path: PathBuf,
}

/// The solver a run uses after the memory check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Solver {
    Cholesky(Precision),
    Cg,
}

/// Memory of the exact solver: the tiles in the factor's precision, the features
/// (`feature_bytes`, train and test), and the n×classes vectors (with one accumulator per
/// thread in the matrix-free products).
pub fn cholesky_plan(
    precision: Precision,
    n: usize,
    feature_bytes: u64,
    classes: usize,
    tile: usize,
    threads: usize,
) -> MemoryPlan {
    let mut plan = MemoryPlan::default();
    match precision {
        Precision::F32Refined => plan.add("f32 kernel tiles (lower triangle)", exact::tile_bytes::<f32>(n, tile)),
        Precision::F64 => plan.add("f64 kernel tiles (lower triangle)", exact::tile_bytes::<f64>(n, tile)),
    };
    plan.add("features", feature_bytes);
    let vectors = (threads as u64 + 10) * (n as u64) * (classes as u64) * 8;
    let scratch = (4 * threads as u64 + 16) * ((tile * tile) as u64 * 8 + n as u64 * 8);
    plan.add("vectors and scratch", vectors + scratch);
    plan
}

/// Memory of conjugate gradient: the features (`feature_bytes`, train and test), the Nyström
/// sketch (about five n×rank matrices plus one accumulator per thread) and the n×classes
/// vectors.
pub fn cg_plan(n: usize, feature_bytes: u64, classes: usize, rank: usize, block: usize, threads: usize) -> MemoryPlan {
    let mut plan = MemoryPlan::default();
    plan.add("features", feature_bytes);
    if rank > 0 {
        plan.add("Nyström sketch", (5 + threads as u64) * (n as u64) * (rank as u64) * 8);
    }
    let vectors = (threads as u64 + 10) * (n as u64) * (classes as u64) * 8;
    plan.add("vectors and scratch", vectors + (4 * threads as u64 + 16) * (block * block) as u64 * 8);
    plan
}

/// The text of `predictions.txt`: the predicted class index of every test point in decimal,
/// one per line, in test order (so CIFAR-100's classes 10–99 are written in full).
pub fn predictions_text(predictions: &[u8]) -> String {
    predictions.iter().map(|p| format!("{p}\n")).collect()
}

/// Writes [`predictions_text`] of `predictions` atomically to `path`.
pub fn write_predictions(path: &Path, predictions: &[u8]) -> Result<()> {
    crate::atomic::write_atomic(path, predictions_text(predictions).as_bytes())
}

/// Runs `rethink kernel`: loads the data, solves, predicts, prints and writes `result.json`.
pub fn run(config: &KernelConfig) -> Result<KernelOutcome> {
    config.validate()?;
    let threads = config.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().context("cannot start the worker threads")?;
    pool.install(|| run_in_pool(config, threads))
}

/// Picks the solver that fits `budget`, or refuses with needed vs available.
fn choose_solver(config: &KernelConfig, chol: &MemoryPlan, cg: &MemoryPlan, budget: &Budget) -> Result<Solver> {
    let chol_hint = match config.precision {
        Precision::F64 => "try --precision f32-refined, --solver cg or a smaller --train-size",
        Precision::F32Refined => "try --solver cg or a smaller --train-size",
    };
    match config.solver {
        SolverChoice::Cholesky => memory::check(chol, budget, chol_hint).map(|_| Solver::Cholesky(config.precision)),
        SolverChoice::Cg => memory::check(cg, budget, "try a smaller --cg-rank or --train-size").map(|_| Solver::Cg),
        SolverChoice::Auto => {
            if memory::check(chol, budget, "").is_ok() {
                Ok(Solver::Cholesky(config.precision))
            } else if memory::check(cg, budget, "").is_ok() {
                println!(
                    "note: the exact solver needs {} but {} is available; using conjugate gradient",
                    memory::gib(chol.total()),
                    memory::gib(budget.bytes)
                );
                Ok(Solver::Cg)
            } else {
                memory::check(cg, budget, "try a smaller --train-size").map(|_| Solver::Cg)
            }
        }
    }
}

/// What either solver hands to prediction and reporting.
struct Solved {
    c: Mat<f64>,
    kc: Mat<f64>,
    solver: SolverReport,
    refinement: Vec<refine::Step>,
    cg_iterations: Vec<cg::Iteration>,
    backward_error: Option<f64>,
    factor_gflops: Option<f64>,
}

/// The exact solver ([`exact::solve`]) in the factor's precision, with its times and warnings.
fn solve_exact(
    config: &KernelConfig,
    precision: Precision,
    inputs: &data::KernelInputs,
    y: faer::MatRef<'_, f64>,
    threads: usize,
    times: &mut Times,
    log: &mut dyn FnMut(&str),
) -> Result<Solved> {
    let settings = exact::ExactSettings {
        kernel: config.kernel,
        ridge: config.ridge,
        tile: config.tile,
        group: config.group,
        block: config.block,
        refine: config.refine,
        progress: config.progress,
    };
    let out = match precision {
        Precision::F32Refined => exact::solve::<f32>(&inputs.train, y, &inputs.train_labels, &settings, log)?,
        Precision::F64 => exact::solve::<f64>(&inputs.train, y, &inputs.train_labels, &settings, log)?,
    };
    times.kernel = out.kernel_seconds;
    times.factor = out.factor_seconds;
    times.solve = out.solve_seconds;
    times.refine = out.refine_seconds;
    if !out.converged {
        log(&format!(
            "warning: refinement stopped at backward error {:.2e} > --refine-tol {:.0e} after {} steps",
            out.steps.last().map_or(f64::NAN, |s| s.backward_error),
            config.refine.tol,
            out.steps.len()
        ));
    }
    Ok(Solved {
        solver: SolverReport {
            solver: "cholesky".into(),
            precision: precision.name().into(),
            tile: Some(config.tile),
            refine: Some(config.refine_name().into()),
            tol: config.refine.tol,
            cg_precond: None,
            converged: out.converged,
            threads,
        },
        backward_error: out.steps.last().map(|s| s.backward_error),
        factor_gflops: Some(out.factor_flops as f64 / out.factor_seconds / 1e9),
        refinement: out.steps,
        cg_iterations: Vec::new(),
        c: out.c,
        kc: out.kc,
    })
}

/// Conjugate gradient on the matrix-free kernel ([`cg::solve`]), printing each iteration.
fn solve_cg(
    config: &KernelConfig,
    rank: usize,
    inputs: &data::KernelInputs,
    y: faer::MatRef<'_, f64>,
    threads: usize,
    times: &mut Times,
    log: &mut dyn FnMut(&str),
) -> Result<Solved> {
    let product = |v: faer::MatRef<'_, f64>| {
        matrix::symmetric_product(config.kernel, config.ridge, &inputs.train, v, config.block)
    };
    let mut on_iter = |it: &cg::Iteration| {
        log(&format!(
            "cg {}: relative residual {:.2e}, train error {:.2}%, {:.1}s",
            it.iter,
            it.relative_residual,
            100.0 * it.train_error,
            it.seconds
        ))
    };
    let options = cg::CgOptions { rank, ..config.cg };
    let started = Instant::now();
    let out = cg::solve(&product, y, &inputs.train_labels, options, &mut on_iter)?;
    times.kernel = out.precond_seconds;
    times.refine = started.elapsed().as_secs_f64() - out.precond_seconds;
    if !out.converged {
        log(&format!(
            "warning: conjugate gradient stopped after {} iterations above --tol {:.0e}",
            out.iterations.len(),
            config.cg.tol
        ));
    }
    Ok(Solved {
        solver: SolverReport {
            solver: "cg".into(),
            precision: "f64".into(),
            tile: None,
            refine: None,
            tol: config.cg.tol,
            cg_precond: Some(if rank > 0 { format!("nystrom rank {}", out.precond_rank) } else { "none".into() }),
            converged: out.converged,
            threads,
        },
        backward_error: None,
        factor_gflops: None,
        refinement: Vec::new(),
        cg_iterations: out.iterations,
        c: out.c,
        kc: out.kc,
    })
}

/// Loads, plans, maps, solves, predicts and reports (inside the worker pool).
fn run_in_pool(config: &KernelConfig, threads: usize) -> Result<KernelOutcome> {
    let all = Instant::now();
    let mut times = Times::default();
    let mut log = |line: &str| println!("{line}");

    let started = Instant::now();
    let images = data::load(config)?;
    times.load = started.elapsed().as_secs_f64();
    let shape = features::shape_of(&images.train);
    config.features.validate(shape)?;
    let (n, n_test, classes) = (images.train.len(), images.test.len(), images.classes);
    let dim = config.features.dim(shape);

    // The memory check covers the feature matrices before they are computed.
    let budget = memory::budget(Path::new("/proc/meminfo"), config.max_memory_gib)?;
    let feature_bytes = config.features.bytes(n, shape) + config.features.bytes(n_test, shape);
    let chol = cholesky_plan(config.precision, n, feature_bytes, classes, config.tile, threads);
    let rank = if config.cg.precond == cg::CgPrecond::Nystrom { config.cg.rank.min(n) } else { 0 };
    let cgp = cg_plan(n, feature_bytes, classes, rank, config.block, threads);
    let solver = choose_solver(config, &chol, &cgp, &budget)?;
    let plan = if solver == Solver::Cg { &cgp } else { &chol };

    log(&format!("data: {}, {}", images.description, config.features.describe(shape)));
    log(&format!(
        "kernel: {}{}",
        config.kernel.describe(),
        if config.ridge > 0.0 { format!(", ridge λ = {}", config.ridge) } else { ", interpolation (no ridge)".into() }
    ));
    log(&format!(
        "solver: {}; memory {} ({}) of {} available ({}); {threads} threads",
        match solver {
            Solver::Cholesky(p) => format!(
                "tiled Cholesky, {}, tile {}, refinement {} to backward error {:.0e}",
                p.name(),
                config.tile,
                config.refine_name(),
                config.refine.tol
            ),
            Solver::Cg => format!(
                "conjugate gradient, tol {:.0e}, {}{}",
                config.cg.tol,
                if rank > 0 { format!("Nyström preconditioner of rank {rank}") } else { "no preconditioner".into() },
                if config.cg.until_fit { ", until the train error is 0" } else { "" }
            ),
        },
        memory::gib(plan.total()),
        plan.breakdown(),
        memory::gib(budget.bytes),
        budget.source
    ));

    let started = Instant::now();
    let mapped = features::compute(&config.features, &images.train, &images.test, config.seed, config.progress)?;
    times.features = started.elapsed().as_secs_f64();
    if config.features.kind != features::FeatureKind::Raw {
        log(&format!("features: {n} + {n_test} images in {:.1}s, scaled by {:.4e}", times.features, mapped.scale));
    }
    let inputs = data::KernelInputs {
        train: mapped.train,
        train_labels: images.train_labels,
        corrupted: images.corrupted,
        test: mapped.test,
        test_labels: images.test.labels.clone(),
        classes,
        description: images.description,
    };

    let y = one_hot(&inputs.train_labels, classes);
    let solved = match solver {
        Solver::Cholesky(precision) => {
            solve_exact(config, precision, &inputs, y.as_ref(), threads, &mut times, &mut log)?
        }
        Solver::Cg => solve_cg(config, rank, &inputs, y.as_ref(), threads, &mut times, &mut log)?,
    };
    let Solved { c, kc, solver: solver_report, refinement, cg_iterations, backward_error, factor_gflops } = solved;
    // The solvers return (K + λI)·c; the model's values at the training points are K·c.
    let k_only = &kc - &c * faer::Scale(config.ridge);

    let started = Instant::now();
    let scores = cross_product(config.kernel, &inputs.test, &inputs.train, c.as_ref(), config.block);
    let predictions = argmax_rows(scores.as_ref());
    times.predict = started.elapsed().as_secs_f64();
    let test_error = error_rate(&predictions, &inputs.test_labels);
    let test_mistakes = predictions.iter().zip(&inputs.test_labels).filter(|(p, t)| p != t).count();
    let train_error = error_rate(&argmax_rows(k_only.as_ref()), &inputs.train_labels);
    let norm_ctkc: f64 =
        (0..n).flat_map(|i| (0..classes).map(move |j| (i, j))).map(|(i, j)| c[(i, j)] * k_only[(i, j)]).sum();
    let relative_residual = (&y - &kc).norm_l2() / y.norm_l2().max(f64::MIN_POSITIVE);
    let fit = cg_iterations.iter().find(|it| it.train_error == 0.0).map(|it| it.iter);
    times.total = all.elapsed().as_secs_f64();

    let report = KernelReport {
        data: DataReport {
            dataset: config.data.name().into(),
            dir: config.data_dir.clone(),
            split: inputs.description.clone(),
            n_train: n,
            n_test,
            dim,
            label_corrupt_prob: config.corrupt_prob(),
            corrupt_seed: config.corrupt_seed,
            corrupted_labels: inputs.corrupted,
            randomize: config.randomize.name().into(),
            seed: config.seed,
        },
        features: FeatureReport { settings: config.features, dim, scale: mapped.scale },
        kernel: config.kernel,
        ridge: config.ridge,
        solver: solver_report,
        test_error_percent: 100.0 * test_error,
        test_mistakes,
        train_error_percent: 100.0 * train_error,
        norm_ctkc,
        norm_w: norm_ctkc.max(0.0).sqrt(),
        relative_residual,
        backward_error,
        fit_iterations: fit,
        fit_kernel_passes: fit.map(|iters| iters + usize::from(rank > 0 && solver == Solver::Cg)),
        refinement,
        cg_iterations,
        factor_gflops,
        times,
        memory: MemoryReport {
            planned_bytes: plan.total(),
            available_bytes: budget.bytes,
            available_source: budget.source.clone(),
            peak_rss_bytes: memory::peak_rss(),
        },
        config: config.clone(),
    };
    // result.json last: its presence marks a finished run (a sweep skips the point).
    std::fs::create_dir_all(&config.out).with_context(|| format!("cannot create {}", config.out.display()))?;
    write_predictions(&config.out.join("predictions.txt"), &predictions)?;
    let result_path = report.write_json(&config.out)?;
    println!("{}", report.summary());
    println!("wrote {}", result_path.display());
    Ok(KernelOutcome { report, predictions, c, result_path })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn config(args: &[&str]) -> KernelConfig {
        let argv = ["rethink", "kernel"].iter().chain(args);
        let Command::Kernel(args) = Cli::parse_from(argv).command else { unreachable!() };
        args.into_config().unwrap()
    }

    fn plan(gib: u64) -> MemoryPlan {
        let mut p = MemoryPlan::default();
        p.add("x", gib << 30);
        p
    }

    #[test]
    fn auto_uses_cholesky_then_cg_then_refuses() {
        let budget = |gib: u64| Budget { bytes: gib << 30, source: "test".into() };
        let (chol, cg) = (plan(10), plan(1));
        let auto = config(&[]);
        assert_eq!(choose_solver(&auto, &chol, &cg, &budget(20)).unwrap(), Solver::Cholesky(Precision::F32Refined));
        assert_eq!(choose_solver(&auto, &chol, &cg, &budget(4)).unwrap(), Solver::Cg);
        let msg = choose_solver(&auto, &chol, &cg, &budget(0)).unwrap_err().to_string();
        assert!(msg.contains("needs 1.00 GiB"), "{msg}");
        let forced = config(&["--solver", "cholesky", "--precision", "f64"]);
        let msg = choose_solver(&forced, &chol, &cg, &budget(4)).unwrap_err().to_string();
        assert!(msg.contains("needs 10.00 GiB") && msg.contains("--precision f32-refined"), "{msg}");
        assert_eq!(choose_solver(&config(&["--solver", "cg"]), &chol, &cg, &budget(4)).unwrap(), Solver::Cg);
    }

    #[test]
    fn predictions_of_100_classes_are_written_in_full() {
        // A tiny 100-class problem: scores peaked at class (7·i + 3) mod 100 for point i.
        let scores = Mat::<f64>::from_fn(30, 100, |i, j| f64::from(j == (7 * i + 3) % 100));
        let predictions = argmax_rows(scores.as_ref());
        let want: Vec<u8> = (0..30).map(|i| ((7 * i + 3) % 100) as u8).collect();
        assert_eq!(predictions, want);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("predictions.txt");
        write_predictions(&path, &predictions).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("3\n10\n17\n24\n"), "{text}");
        let read: Vec<u8> = text.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(read, want);
        assert_eq!(predictions_text(&[0, 9, 10, 99]), "0\n9\n10\n99\n");
    }

    #[test]
    fn plans_count_the_tiles_in_the_factor_precision() {
        let pixels = matrix::Features::pixel_bytes(62_000, 784);
        let f32p = cholesky_plan(Precision::F32Refined, 60_000, pixels, 10, 384, 2);
        let f64p = cholesky_plan(Precision::F64, 60_000, pixels, 10, 384, 2);
        assert_eq!(f32p.items[0].1 * 2, f64p.items[0].1);
        assert!((6.7..6.8).contains(&(f32p.items[0].1 as f64 / memory::GIB)), "{}", f32p.breakdown());
        assert!(f32p.total() < f32p.items[0].1 + (1 << 30), "the rest is small: {}", f32p.breakdown());
    }
}
