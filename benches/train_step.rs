//! Training-step benchmark: ms per step and images/s for WRN-28-1 and MLP-512 at batch 128
//! (forward, loss, backward, SGD update), and the eval-mode forward pass.
//!
//! Run: `cargo bench --bench train_step` (options after `--`: `--steps N --batch-size B`).
//! It prints the median time per step (the batch is built beforehand, as on the PyTorch side);
//! it asserts nothing. The baseline for the performance issue.

use burn::optim::GradientsParams;
use clap::Parser;
use rethink::data::batch::{InputPipeline, Normalization, Preprocess, make_batch};
use rethink::data::synthetic::{SyntheticSpec, generate};
use rethink::device::DeviceSpec;
use rethink::model::{Arch, Model, ModelSpec, WrnSpec, trainable_param_count};
use rethink::train::epoch::train_step;
use rethink::train::evaluate::cross_entropy;
use rethink::train::sgd::{Sgd, SgdConfig};
use std::time::Instant;

/// Benchmark options.
#[derive(Parser)]
struct Args {
    /// Timed steps per model (after 2 warm-up steps).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Print `name,train_ms,eval_ms` lines instead of a table (for bench/vs_pytorch.sh).
    #[arg(long)]
    csv: bool,
    /// Also print the time of each phase of a train step (forward, backward, SGD update).
    #[arg(long)]
    phases: bool,
    /// Ignored (cargo bench passes it).
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let args = Args::parse();
    let backend = DeviceSpec::Cpu;
    let data = generate(SyntheticSpec { train: args.batch_size, test: 1, num_classes: 10 }, 0);
    let indices: Vec<usize> = (0..args.batch_size).collect();
    let pipeline = InputPipeline { preprocess: Preprocess::Demo, norm: Normalization::cifar10() };
    let wrn = WrnSpec { depth: 28, widen_factor: 1, droprate: 0.0 };
    let models = [
        (
            "WRN-28-1",
            ModelSpec {
                arch: Arch::WideResnet,
                wrn,
                mlp_hidden: vec![],
                mlp_bias: false,
                input: [3, 32, 32],
                num_classes: 10,
            },
        ),
        (
            "MLP-512",
            ModelSpec {
                arch: Arch::Mlp,
                wrn,
                mlp_hidden: vec![512],
                mlp_bias: false,
                input: [3, 32, 32],
                num_classes: 10,
            },
        ),
    ];
    if !args.csv {
        println!("threads: {}, batch {}, {} timed steps", rayon_threads(), args.batch_size, args.steps);
        println!("| model | params | train ms/step | train img/s | eval ms/batch | eval img/s |");
        println!("|---|---:|---:|---:|---:|---:|");
    }
    for (name, spec) in models {
        let device = backend.device().expect("the CPU is always there").autodiff();
        let mut model = Model::new(&spec, 0, &device).expect("model builds");
        let params = trainable_param_count(&model);
        let mut sgd = Sgd::new(SgdConfig { momentum: 0.9, weight_decay: 1e-4 });
        // The batch is built once, outside the timed region, as the PyTorch side does.
        let train_batch = make_batch(&pipeline, &data.train, &data.train.labels, &indices, None, &device);
        let mut time_train = |steps: usize| {
            median_ms(steps, || {
                let b = train_batch.clone();
                model = train_step(model.clone(), &mut sgd, b.images, b.targets, 0.01).model;
            })
        };
        time_train(2);
        let train_ms = time_train(args.steps);
        if args.phases {
            let (mut fwd, mut bwd, mut upd) = (0.0, 0.0, 0.0);
            for _ in 0..args.steps {
                let b = train_batch.clone();
                let t = Instant::now();
                let logits = model.forward(b.images);
                let loss = cross_entropy(logits, b.targets);
                let _ = loss.clone().into_scalar::<f32>();
                fwd += t.elapsed().as_secs_f64();
                let t = Instant::now();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                bwd += t.elapsed().as_secs_f64();
                let t = Instant::now();
                model = sgd.step(0.01, model.clone(), grads);
                let _ = rethink::model::named_tensors(&model); // force the lazy update
                upd += t.elapsed().as_secs_f64();
            }
            let n = args.steps as f64;
            eprintln!(
                "{name} phases (ms): forward {:.1}, backward {:.1}, sgd+sync {:.1}",
                fwd / n * 1e3,
                bwd / n * 1e3,
                upd / n * 1e3
            );
        }
        let eval_device = backend.device().expect("the CPU is always there");
        let eval_model = burn::module::Module::valid(&model);
        let eval_batch = make_batch(&pipeline, &data.train, &data.train.labels, &indices, None, &eval_device);
        let time_eval = |steps: usize| median_ms(steps, || eval_model.forward(eval_batch.images.clone()).into_data());
        time_eval(2);
        let eval_ms = time_eval(args.steps);
        let bs = args.batch_size as f64;
        if args.csv {
            println!("{name},{train_ms:.2},{eval_ms:.2}");
            continue;
        }
        println!(
            "| {name} | {params} | {train_ms:.1} | {:.0} | {eval_ms:.1} | {:.0} |",
            bs * 1e3 / train_ms,
            bs * 1e3 / eval_ms
        );
    }
}

/// Median milliseconds per call of `f` over `steps` calls (the machines are noisy; a median
/// resists the outliers a mean would absorb).
fn median_ms<T>(steps: usize, mut f: impl FnMut() -> T) -> f64 {
    let mut times: Vec<f64> = (0..steps.max(1))
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
