//! Section 5 of the paper beyond raw pixels: Gabor and random-convolution features, the ridge,
//! the norms, and how many conjugate-gradient passes a kernel needs to fit random labels.
//! Real digits from `data/mnist/`; CIFAR-shaped synthetic images for `random-conv`.

mod common;
use common::{MNIST, kernel, kernel_config, run_err};

use faer::Mat;
use rethink::kernel::data::load;
use rethink::kernel::features::compute;
use rethink::kernel::matrix::Features;

/// The table on the 8,000/2,000 split of the real digits: the Gabor transform beats raw
/// pixels, with a larger minimum norm (the paper's point: the norm does not predict which
/// generalizes), and a ridge shrinks the norm without improving the error.
#[test]
fn gabor_features_beat_raw_pixels_on_real_digits() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |features: &str, ridge: &str| {
        let out = tmp.path().join(format!("{features}-{ridge}"));
        let args = ["--data-dir", MNIST, "--split-test-set", "8000", "--test-size", "2000", "--features", features];
        kernel(&[&args[..], &["--ridge", ridge, "--out", out.to_str().unwrap()]].concat()).unwrap().report
    };
    let (raw, gabor, gabor_ridge) = (run("raw", "0"), run("gabor", "0"), run("gabor", "1"));
    println!(
        "raw: err {:.2}% ‖w‖ {:.1}; gabor: err {:.2}% ‖w‖ {:.1}; gabor ridge 1: err {:.2}% ‖w‖ {:.1}",
        raw.test_error_percent,
        raw.norm_w,
        gabor.test_error_percent,
        gabor.norm_w,
        gabor_ridge.test_error_percent,
        gabor_ridge.norm_w
    );
    assert_eq!((gabor.features.dim, raw.features.dim), (833, 784));
    assert_eq!((raw.train_error_percent, gabor.train_error_percent), (0.0, 0.0));
    assert!(
        gabor.test_error_percent * 1.5 < raw.test_error_percent,
        "gabor {}% vs raw {}%",
        gabor.test_error_percent,
        raw.test_error_percent
    );
    assert!(gabor.norm_w > raw.norm_w, "the better features have the larger norm here, as in the paper");
    // (K + λI)c = Y has a smaller RKHS norm than the interpolant, and no longer fits every label.
    assert!(gabor_ridge.norm_w < gabor.norm_w && gabor_ridge.ridge == 1.0);
    assert!(gabor_ridge.train_error_percent > 0.0);
    assert!(gabor_ridge.test_error_percent >= gabor.test_error_percent, "ℓ2: no improvement");
}

/// The kernel of `kind` between rows i of `a` and j of `b`, straight from its formula.
fn kernel_value(kind: &str, a: &Features, i: usize, b: &Features, j: usize) -> f64 {
    let dot: f64 = (0..a.dim).map(|k| a.value(i, k) * b.value(j, k)).sum();
    match kind {
        "linear" => dot,
        _ => (-0.02 * (a.sq_norms[i] + b.sq_norms[j] - 2.0 * dot).max(0.0)).exp(),
    }
}

/// Solves S·c = y for symmetric positive definite S by a textbook Cholesky (no tiles, no f32,
/// no refinement): the reference for the tiled solver.
fn cholesky_solve(mut s: Vec<Vec<f64>>, y: &Mat<f64>) -> Mat<f64> {
    let n = s.len();
    for j in 0..n {
        for k in 0..j {
            let l = s[j][k];
            for row in s.iter_mut().skip(j) {
                row[j] -= row[k] * l;
            }
        }
        let d = s[j][j].sqrt();
        for row in s.iter_mut().skip(j) {
            row[j] /= d;
        }
    }
    let mut c = y.clone();
    for col in 0..y.ncols() {
        for i in 0..n {
            let v = c[(i, col)] - (0..i).map(|k| s[i][k] * c[(k, col)]).sum::<f64>();
            c[(i, col)] = v / s[i][i];
        }
        for i in (0..n).rev() {
            let v = c[(i, col)] - (i + 1..n).map(|k| s[k][i] * c[(k, col)]).sum::<f64>();
            c[(i, col)] = v / s[i][i];
        }
    }
    c
}

/// The tiled f32-refined solve on Gabor features equals a dense f64 reference built here from
/// the kernel formulas: the Gaussian interpolant, and the linear kernel with a ridge.
#[test]
fn exact_solve_matches_an_independent_reference() {
    let tmp = tempfile::tempdir().unwrap();
    for (kind, ridge) in [("gaussian", 0.0), ("linear", 0.5)] {
        let out = tmp.path().join(kind);
        let ridge_text = ridge.to_string();
        let args = [
            "--data-dir",
            MNIST,
            "--split-test-set",
            "300",
            "--test-size",
            "100",
            "--features",
            "gabor",
            "--kernel",
            kind,
            "--ridge",
            &ridge_text,
            "--tile",
            "64",
            "--out",
            out.to_str().unwrap(),
        ];
        let config = kernel_config(&args).unwrap();
        let ours = rethink::kernel::run(&config).unwrap();

        let images = load(&config).unwrap();
        let mapped = compute(&config.features, &images.train, &images.test, config.seed, false).unwrap();
        let (x, z) = (&mapped.train, &mapped.test);
        let shifted: Vec<Vec<f64>> = (0..x.n)
            .map(|i| (0..x.n).map(|j| kernel_value(kind, x, i, x, j) + if i == j { ridge } else { 0.0 }).collect())
            .collect();
        let y = Mat::from_fn(x.n, 10, |i, c| f64::from(images.train_labels[i] == c as u8));
        let c = cholesky_solve(shifted, &y);
        let rel = (&ours.c - &c).norm_max() / c.norm_max();
        assert!(rel < 1e-8, "{kind}: relative difference of the coefficients {rel:e}");
        let predictions: Vec<u8> = (0..z.n)
            .map(|t| {
                let scores: Vec<f64> = (0..10)
                    .map(|class| (0..x.n).map(|i| kernel_value(kind, z, t, x, i) * c[(i, class)]).sum())
                    .collect();
                (0..10).fold(0, |best, k| if scores[k] > scores[best] { k } else { best }) as u8
            })
            .collect();
        assert_eq!(ours.predictions, predictions, "{kind}");
        // ‖w‖² = cᵀKc with K the kernel alone (not K + λI).
        let ctkc: f64 = (0..10)
            .map(|col| {
                (0..x.n)
                    .map(|i| c[(i, col)] * (0..x.n).map(|j| kernel_value(kind, x, i, x, j) * c[(j, col)]).sum::<f64>())
                    .sum::<f64>()
            })
            .sum();
        assert!((ours.report.norm_ctkc - ctkc).abs() < 1e-8 * ctkc, "{kind}: {} vs {ctkc}", ours.report.norm_ctkc);
    }
}

/// Random convolutional features on CIFAR-shaped images: the dimension is filters × pool
/// regions, the run is seeded (same seed, same coefficients), and the result says so.
#[test]
fn random_conv_features_on_cifar_shaped_images() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: &str| {
        let out = tmp.path().join(name);
        let args = [
            "--data",
            "synthetic",
            "--train-size",
            "120",
            "--test-size",
            "40",
            "--features",
            "random-conv",
            "--filters",
            "64",
            "--pool-grid",
            "2",
            "--whiten-patches",
            "5000",
            "--seed",
            seed,
            "--out",
            out.to_str().unwrap(),
        ];
        (kernel(&args).unwrap(), out)
    };
    let (first, out) = run("a", "3");
    let r = &first.report;
    assert_eq!((r.features.dim, r.data.dim), (256, 256), "64 filters × 2×2 regions");
    assert_eq!(r.train_error_percent, 0.0);
    assert!(r.features.scale > 0.0 && r.times.features > 0.0);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    assert_eq!(json["features"]["settings"]["kind"], "random-conv");
    assert_eq!(json["features"]["settings"]["random_conv"]["filters"], 64);
    assert_eq!(json["features"]["dim"], 256);
    let (again, _) = run("b", "3");
    assert_eq!(again.c, first.c, "same seed, same filters, same coefficients");
    let (other, _) = run("c", "4");
    assert_ne!(other.c, first.c);
}

/// The kernel counterpart of Figure 1b (Belkin, Ma & Mandal 2018): plain CG stopped at the
/// first zero train error records how many passes over K fitting takes. Under random labels
/// the Laplacian kernel fits in fewer passes than the Gaussian; the count is reproducible.
#[test]
fn until_fit_counts_the_passes_to_fit_random_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |kind: &str, name: &str| {
        let out = tmp.path().join(name);
        let args = ["--data-dir", MNIST, "--split-test-set", "1000", "--test-size", "200", "--randomize", "labels"];
        let solver = ["--solver", "cg", "--cg-precond", "none", "--until-fit", "--max-iters", "2000", "--kernel", kind];
        kernel(&[&args[..], &solver, &["--out", out.to_str().unwrap()]].concat()).unwrap().report
    };
    let (laplacian, gaussian) = (run("laplacian", "l"), run("gaussian", "g"));
    let passes = |r: &rethink::kernel::result::KernelReport| r.fit_kernel_passes.expect("fitted");
    println!("passes over K to fit random labels: laplacian {}, gaussian {}", passes(&laplacian), passes(&gaussian));
    for r in [&laplacian, &gaussian] {
        assert_eq!(r.train_error_percent, 0.0);
        assert_eq!(r.fit_iterations, Some(r.cg_iterations.len()), "stops at the first fit");
        assert!(r.cg_iterations[..r.cg_iterations.len() - 1].iter().all(|i| i.train_error > 0.0));
    }
    assert!(passes(&laplacian) < passes(&gaussian));
    assert_eq!(run("gaussian", "g2").fit_kernel_passes, gaussian.fit_kernel_passes, "reproducible");
}

/// Bad feature, ridge and filter settings, and a feature matrix that would not fit, are
/// one-line errors naming the flag (and the numbers).
#[test]
fn bad_feature_settings_are_one_line_errors() {
    let base = ["kernel", "--data-dir", MNIST, "--split-test-set", "100", "--test-size", "50", "--no-progress"];
    let err = |extra: &[&str]| run_err(&[&base[..], extra].concat());
    assert!(err(&["--features", "wavelets"]).contains("--features"));
    assert!(err(&["--ridge=-1"]).contains("--ridge -1 must be a non-negative number"));
    assert!(err(&["--features", "random-conv", "--filters", "0"]).contains("--filters must be at least 1"));
    assert!(err(&["--filters", "10"]).contains("--filters applies to --features random-conv"));
    assert!(err(&["--features", "gabor", "--gabor-scales", "9"]).contains("--gabor-scales"));
    assert!(err(&["--kernel", "linear", "--bandwidth", "0.1"]).contains("--bandwidth applies to --kernel gaussian"));
    // 32,000 filters on 100 + 50 digits: 150 × 32,000 f32 features = 0.018 GiB.
    let line = err(&["--features", "random-conv", "--max-memory", "0.01"]);
    for part in ["not enough memory", "features", "--max-memory"] {
        assert!(line.contains(part), "{part:?} missing in: {line}");
    }
}
