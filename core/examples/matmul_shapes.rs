//! Times the three matmuls of an MLP layer's gradient with burn flex's
//! matmul, for the benchmark MLP's first layer (batch 256, 3072 → 512): the
//! forward x·W₀ᵀ, the input gradient δ·W₀ and the weight gradient δᵀ·x, all
//! 0.4 GFLOP; each the product alone (one value read back) and with the
//! whole result read back to the host.
//!
//! What it showed: the weight gradient, timed with its read-back, took 3×
//! the forward (25–37 against 7–12 ms on 2026-11-30); most of that was
//! reading back and allocating its 6 MB result, not the product. With
//! gemm's AVX-512 kernels (burn feature `x86-v4`) the products alone take
//! 2.7–4.6 ms (forward) and 5.5 ms (weight gradient) on the 2-core machine
//! (2026-12-02, load ~1), of which ~2 ms is flex zero-filling the fresh
//! output; `curvlab::kernels::linear` writes it uninitialised (MLP train
//! step 14.6 → 9.7 ms, `examples/train_step.rs --compare`).
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
