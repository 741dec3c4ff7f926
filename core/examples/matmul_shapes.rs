//! Times the three matmuls of an MLP layer's gradient on the CPU backend
//! (flex), for the benchmark MLP's first layer (batch 256, 3072 → 512):
//! the forward x·W₀ᵀ, the input gradient δ·W₀ and the weight gradient δᵀ·x.
//! All three do the same 0.4 GFLOP. On the idle 2-core development machine
//! (2026-11-30, four runs) the forward took 7–12 ms and the weight gradient,
//! whose inner dimension is the batch (K = 256), 25–37 ms whatever the
//! operands' layout (views or contiguous copies, δᵀ·x or xᵀ·δ): burn flex's
//! matmul is ~3× slower on that shape, which is where curvlab's MLP gradient
//! loses to JAX (README "Benchmarks").
//!
//! `cargo run --release --example matmul_shapes`

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

/// Median ms of `f` (flex is eager: the product is done when `f` returns;
/// one value is read back so nothing is left pending) and of `f` plus
/// reading the whole product back to the host.
fn time(name: &str, mut f: impl FnMut() -> Tensor<2>) {
    let mut run = |read_all: bool| {
        let mut ms: Vec<f64> = (0..23)
            .map(|_| {
                let t = Instant::now();
                let out = f();
                if read_all {
                    curvlab::backend::tensor_to_vec(&out);
                } else {
                    curvlab::backend::tensor_to_vec(&out.slice([0..1, 0..1]));
                }
                t.elapsed().as_secs_f64() * 1e3
            })
            .skip(3)
            .collect();
        ms.sort_by(f64::total_cmp);
        ms[ms.len() / 2]
    };
    let (product, with_read) = (run(false), run(true));
    println!("{name:<44} {product:>8.2} ms   (+ read back: {with_read:>6.2} ms)");
}

fn contiguous(t: Tensor<2>, device: &Device) -> Tensor<2> {
    Tensor::from_data(t.into_data(), device)
}

fn main() {
    let dev = Device::flex();
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<2>::random([256, 3072], normal, &dev);
    let w = Tensor::<2>::random([512, 3072], normal, &dev);
    let d = Tensor::<2>::random([256, 512], normal, &dev);
    let (wt, xt, dt) = (
        contiguous(w.clone().transpose(), &dev),
        contiguous(x.clone().transpose(), &dev),
        contiguous(d.clone().transpose(), &dev),
    );
    println!("MLP first layer, batch 256, 3072 → 512 (each 0.4 GFLOP), flex CPU backend:");
    time("forward x·W₀ᵀ, W₀ᵀ a view", || {
        x.clone().matmul(w.clone().transpose())
    });
    time("forward x·W₀ᵀ, W₀ᵀ contiguous", || {
        x.clone().matmul(wt.clone())
    });
    time("input gradient δ·W₀", || d.clone().matmul(w.clone()));
    time("weight gradient δᵀ·x, δᵀ a view", || {
        d.clone().transpose().matmul(x.clone())
    });
    time("weight gradient δᵀ·x, δᵀ contiguous", || {
        dt.clone().matmul(x.clone())
    });
    time("weight gradient as xᵀ·δ, xᵀ contiguous", || {
        xt.clone().matmul(d.clone())
    });
}
