//! Writes an MNIST-like dataset in MNIST's IDX format, made from the real MNIST test digits
//! (all there is in `data/mnist/`), for kernel runs at full size:
//!
//! - training split: `--count` digits distorted from the first `--sources` test digits
//!   (the sources themselves first, then random affine distortions; see
//!   `rethink::data::mnist_like`);
//! - test split: the remaining real test digits, untouched, so no test digit (or distortion of
//!   one) is ever a training point.
//!
//! ```text
//! cargo run --release --example mnist_like -- --from data/mnist --out bench/data/mnist60k
//! rethink kernel --data mnist --data-dir bench/data/mnist60k
//! ```

use anyhow::{Result, bail};
use clap::Parser;
use rethink::data::idx::{load_mnist_test_only, write_mnist};
use rethink::data::image_set::Splits;
use rethink::data::mnist_like::distorted_digits;
use std::path::PathBuf;

/// Build an MNIST-like training set from the MNIST test digits.
#[derive(Debug, Parser)]
struct Args {
    /// Directory with t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz).
    #[arg(long, default_value = "data/mnist")]
    from: PathBuf,
    /// Output directory (receives the four raw IDX files).
    #[arg(long)]
    out: PathBuf,
    /// The first N test digits are the sources of the training split.
    #[arg(long, default_value_t = 8000)]
    sources: usize,
    /// Number of training digits to write.
    #[arg(long, default_value_t = 60000)]
    count: usize,
    /// Seed of the distortions.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let test = load_mnist_test_only(&args.from)?;
    if args.sources == 0 || args.sources >= test.len() {
        bail!(
            "--sources {} must be between 1 and {} (the test digits minus at least one for testing)",
            args.sources,
            test.len() - 1
        );
    }
    let train = distorted_digits(&test.take(args.sources), args.count, args.seed);
    let held_out = rethink::data::image_set::ImageSet {
        images: test.images[args.sources * test.image_len()..].to_vec(),
        labels: test.labels[args.sources..].to_vec(),
        ..test.clone()
    };
    let (n_train, n_test) = (train.len(), held_out.len());
    write_mnist(&args.out, &Splits { train, test: held_out, num_classes: 10 })?;
    println!(
        "wrote {}: {n_train} training digits from the first {} test digits, {n_test} test digits",
        args.out.display(),
        args.sources
    );
    Ok(())
}
