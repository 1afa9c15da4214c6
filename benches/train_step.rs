//! Training-step benchmark: ms per step and images/s for WRN-28-1 and MLP-512 at batch 128
//! (forward, loss, backward, SGD update), and the eval-mode forward pass.
//!
//! Run: `cargo bench --bench train_step` (options after `--`: `--steps N --batch-size B`).
//! It prints a table; it asserts nothing. The baseline for the performance issue.

use clap::Parser;
use rethink::data::batch::{InputPipeline, Normalization, Preprocess, make_batch};
use rethink::data::synthetic::{SyntheticSpec, generate};
use rethink::device::Backend;
use rethink::model::{Arch, Model, ModelSpec, WrnSpec, trainable_param_count};
use rethink::train::sgd::{Sgd, SgdConfig};
use burn::optim::GradientsParams;
use rethink::train::epoch::train_step;
use rethink::train::evaluate::cross_entropy;
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
    let backend = Backend::Flex;
    let data = generate(SyntheticSpec { train: args.batch_size, test: 1, num_classes: 10 }, 0);
    let indices: Vec<usize> = (0..args.batch_size).collect();
    let pipeline = InputPipeline { preprocess: Preprocess::Demo, norm: Normalization::cifar10() };
    let wrn = WrnSpec { depth: 28, widen_factor: 1, droprate: 0.0 };
    let models = [
        ("WRN-28-1", ModelSpec { arch: Arch::WideResnet, wrn, mlp_hidden: vec![], mlp_bias: false, input: [3, 32, 32], num_classes: 10 }),
        ("MLP-512", ModelSpec { arch: Arch::Mlp, wrn, mlp_hidden: vec![512], mlp_bias: false, input: [3, 32, 32], num_classes: 10 }),
    ];
    if !args.csv {
        println!("threads: {}, batch {}, {} timed steps", rayon_threads(), args.batch_size, args.steps);
        println!("| model | params | train ms/step | train img/s | eval ms/batch | eval img/s |");
        println!("|---|---:|---:|---:|---:|---:|");
    }
    for (name, spec) in models {
        let device = backend.training_device();
        let mut model = Model::new(&spec, 0, &device).expect("model builds");
        let params = trainable_param_count(&model);
        let mut sgd = Sgd::new(SgdConfig { momentum: 0.9, weight_decay: 1e-4 });
        let batch = |device| make_batch(&pipeline, &data.train, &data.train.labels, &indices, None, device);
        let mut time_train = |steps: usize| {
            let start = Instant::now();
            for _ in 0..steps {
                let b = batch(&device);
                model = train_step(model.clone(), &mut sgd, b.images, b.targets, 0.01).model;
            }
            start.elapsed().as_secs_f64()
        };
        time_train(2);
        let train_s = time_train(args.steps) / args.steps as f64;
        if args.phases {
            let (mut fwd, mut bwd, mut upd) = (0.0, 0.0, 0.0);
            for _ in 0..args.steps {
                let b = batch(&device);
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
            eprintln!("{name} phases (ms): forward {:.1}, backward {:.1}, sgd+sync {:.1}", fwd / n * 1e3, bwd / n * 1e3, upd / n * 1e3);
        }
        let eval_device = backend.device();
        let eval_model = burn::module::Module::valid(&model);
        let time_eval = |steps: usize| {
            let start = Instant::now();
            for _ in 0..steps {
                let b = batch(&eval_device);
                let _ = eval_model.forward(b.images).into_data();
            }
            start.elapsed().as_secs_f64()
        };
        time_eval(2);
        let eval_s = time_eval(args.steps) / args.steps as f64;
        let bs = args.batch_size as f64;
        if args.csv {
            println!("{name},{:.2},{:.2}", train_s * 1e3, eval_s * 1e3);
            continue;
        }
        println!(
            "| {name} | {params} | {:.1} | {:.0} | {:.1} | {:.0} |",
            train_s * 1e3,
            bs / train_s,
            eval_s * 1e3,
            bs / eval_s
        );
    }
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
