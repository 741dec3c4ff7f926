//! Independent float64 reference for the deep image models (VGG11 with and
//! without BatchNorm, ResNet18): plain loops over `[n, c, h, w]` arrays,
//! generic over [`Num`], so that hyper-dual numbers give exact directional
//! first and second derivatives. BatchNorm in train mode normalises with the
//! statistics of the whole batch given (biased variance, ε = 1e-5, as
//! PyTorch); in eval mode with given running statistics. ReLU and max-pool
//! branch on the real part (the generalised Hessian).
//!
//! Only the tensor *layout* (names, shapes, order) is taken from curvlab's
//! `param_specs`; every operation is re-implemented here.

#![allow(dead_code)]

use std::collections::HashMap;

use curvlab::loss::LossKind;
use curvlab::models::{Architecture, Resnet18, Vgg11, VGG11_LAYERS};

use super::reference::{example_loss, Num, HD};

const EPS: f64 = 1e-5;

/// Activations `[n, c, h, w]`.
#[derive(Clone)]
struct A<T> {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    v: Vec<T>,
}

impl<T: Num> A<T> {
    fn at(&self, b: usize, c: usize, i: usize, j: usize) -> T {
        self.v[((b * self.c + c) * self.h + i) * self.w + j]
    }
}

/// Parameter offsets by name.
struct Params<'a, T> {
    theta: &'a [T],
    off: HashMap<String, (usize, Vec<usize>)>,
}

impl<'a, T: Num> Params<'a, T> {
    fn new(arch: &Architecture, theta: &'a [T]) -> Self {
        let mut off = HashMap::new();
        let mut o = 0;
        for s in arch.param_specs() {
            let n: usize = s.shape.iter().product();
            off.insert(s.name.clone(), (o, s.shape.clone()));
            o += n;
        }
        assert_eq!(o, theta.len(), "θ length");
        Params { theta, off }
    }
    fn get(&self, name: &str) -> (&'a [T], Vec<usize>) {
        let (o, shape) = self.off.get(name).unwrap_or_else(|| panic!("no {name}"));
        let n: usize = shape.iter().product();
        (&self.theta[*o..*o + n], shape.clone())
    }
}

fn conv<T: Num>(
    x: &A<T>,
    w: &[T],
    shape: &[usize],
    bias: Option<&[T]>,
    stride: usize,
    pad: usize,
) -> A<T> {
    let (co, ci, k) = (shape[0], shape[1], shape[2]);
    assert_eq!(ci, x.c);
    let ho = (x.h + 2 * pad - k) / stride + 1;
    let wo = (x.w + 2 * pad - k) / stride + 1;
    let mut v = vec![T::c(0.0); x.n * co * ho * wo];
    for b in 0..x.n {
        for o in 0..co {
            for i in 0..ho {
                for j in 0..wo {
                    let mut s = bias.map_or(T::c(0.0), |bb| bb[o]);
                    for c in 0..ci {
                        for di in 0..k {
                            for dj in 0..k {
                                let ii = (i * stride + di) as isize - pad as isize;
                                let jj = (j * stride + dj) as isize - pad as isize;
                                if ii >= 0 && jj >= 0 && (ii as usize) < x.h && (jj as usize) < x.w
                                {
                                    s = s + w[((o * ci + c) * k + di) * k + dj]
                                        * x.at(b, c, ii as usize, jj as usize);
                                }
                            }
                        }
                    }
                    v[((b * co + o) * ho + i) * wo + j] = s;
                }
            }
        }
    }
    A {
        n: x.n,
        c: co,
        h: ho,
        w: wo,
        v,
    }
}

/// BatchNorm: batch statistics (`running` = None) or running statistics.
fn batch_norm<T: Num>(
    x: &A<T>,
    gamma: &[T],
    beta: &[T],
    running: Option<(&[f64], &[f64])>,
) -> A<T> {
    let m = (x.n * x.h * x.w) as f64;
    let mut out = x.clone();
    for c in 0..x.c {
        let (mean, var) = match running {
            Some((rm, rv)) => (T::c(rm[c]), T::c(rv[c])),
            None => {
                let mut s = T::c(0.0);
                for b in 0..x.n {
                    for i in 0..x.h {
                        for j in 0..x.w {
                            s = s + x.at(b, c, i, j);
                        }
                    }
                }
                let mean = s / T::c(m);
                let mut q = T::c(0.0);
                for b in 0..x.n {
                    for i in 0..x.h {
                        for j in 0..x.w {
                            let d = x.at(b, c, i, j) - mean;
                            q = q + d * d;
                        }
                    }
                }
                (mean, q / T::c(m))
            }
        };
        let inv = T::c(1.0) / (var + T::c(EPS)).sqrt();
        for b in 0..x.n {
            for i in 0..x.h {
                for j in 0..x.w {
                    let k = ((b * x.c + c) * x.h + i) * x.w + j;
                    out.v[k] = (x.v[k] - mean) * inv * gamma[c] + beta[c];
                }
            }
        }
    }
    out
}

fn relu<T: Num>(mut x: A<T>) -> A<T> {
    for v in &mut x.v {
        if v.re() <= 0.0 {
            *v = T::c(0.0);
        }
    }
    x
}

fn max_pool<T: Num>(x: &A<T>) -> A<T> {
    let (ho, wo) = (x.h / 2, x.w / 2);
    let mut v = Vec::with_capacity(x.n * x.c * ho * wo);
    for b in 0..x.n {
        for c in 0..x.c {
            for i in 0..ho {
                for j in 0..wo {
                    let mut best = x.at(b, c, 2 * i, 2 * j);
                    for (di, dj) in [(0, 1), (1, 0), (1, 1)] {
                        let q = x.at(b, c, 2 * i + di, 2 * j + dj);
                        if q.re() > best.re() {
                            best = q;
                        }
                    }
                    v.push(best);
                }
            }
        }
    }
    A {
        n: x.n,
        c: x.c,
        h: ho,
        w: wo,
        v,
    }
}

fn add<T: Num>(mut a: A<T>, b: &A<T>) -> A<T> {
    for (x, y) in a.v.iter_mut().zip(&b.v) {
        *x = *x + *y;
    }
    a
}

/// Linear layer on `[n, f]` rows.
fn linear<T: Num>(rows: &[T], n: usize, w: &[T], shape: &[usize], bias: &[T]) -> Vec<T> {
    let (out, inp) = (shape[0], shape[1]);
    let mut z = Vec::with_capacity(n * out);
    for b in 0..n {
        for o in 0..out {
            let mut s = bias[o];
            for i in 0..inp {
                s = s + w[o * inp + i] * rows[b * inp + i];
            }
            z.push(s);
        }
    }
    z
}

/// Logits `[n, C]` of a batch `x` (`[n, d]`, (c, h, w) order). `running`:
/// `[mean₀, var₀, mean₁, …]` per BatchNorm layer for eval mode; `None` = train
/// mode over this batch.
pub fn forward_deep<T: Num>(
    arch: &Architecture,
    theta: &[T],
    running: Option<&[Vec<f64>]>,
    x: &[T],
    n: usize,
) -> Vec<T> {
    let p = Params::new(arch, theta);
    let [c, h, w] = arch.image_shape().expect("image model");
    let mut bn_index = 0usize;
    let mut bn = |a: &A<T>, prefix: &str| {
        let (g, _) = p.get(&format!("{prefix}.weight"));
        let (b, _) = p.get(&format!("{prefix}.bias"));
        let r = running.map(|r| (&r[2 * bn_index][..], &r[2 * bn_index + 1][..]));
        bn_index += 1;
        batch_norm(a, g, b, r)
    };
    let x = A {
        n,
        c,
        h,
        w,
        v: x.to_vec(),
    };
    match arch {
        Architecture::Vgg11(Vgg11 {
            batch_norm: with_bn,
            ..
        }) => {
            let mut a = x;
            let mut idx = 0;
            for layer in VGG11_LAYERS {
                if layer.is_none() {
                    a = max_pool(&a);
                    idx += 1;
                    continue;
                }
                let (wt, shape) = p.get(&format!("features.{idx}.weight"));
                let (bias, _) = p.get(&format!("features.{idx}.bias"));
                a = conv(&a, wt, &shape, Some(bias), 1, 1);
                if *with_bn {
                    a = bn(&a, &format!("features.{}", idx + 1));
                    idx += 3;
                } else {
                    idx += 2;
                }
                a = relu(a);
            }
            let (wt, shape) = p.get("classifier.weight");
            let (bias, _) = p.get("classifier.bias");
            let f = a.c * a.h * a.w;
            assert_eq!(f, shape[1]);
            linear(&a.v, n, wt, &shape, bias)
        }
        Architecture::Resnet18(Resnet18 { .. }) => {
            let (wt, shape) = p.get("conv1.weight");
            let mut a = relu(bn(&conv(&x, wt, &shape, None, 1, 1), "bn1"));
            for l in 1..=4 {
                for k in 0..2 {
                    let pre = format!("layer{l}.{k}");
                    let stride = if l > 1 && k == 0 { 2 } else { 1 };
                    let (w1, s1) = p.get(&format!("{pre}.conv1.weight"));
                    let o = relu(bn(
                        &conv(&a, w1, &s1, None, stride, 1),
                        &format!("{pre}.bn1"),
                    ));
                    let (w2, s2) = p.get(&format!("{pre}.conv2.weight"));
                    let o = bn(&conv(&o, w2, &s2, None, 1, 1), &format!("{pre}.bn2"));
                    let sc = if p.off.contains_key(&format!("{pre}.downsample.0.weight")) {
                        let (wd, sd) = p.get(&format!("{pre}.downsample.0.weight"));
                        bn(
                            &conv(&a, wd, &sd, None, stride, 0),
                            &format!("{pre}.downsample.1"),
                        )
                    } else {
                        a.clone()
                    };
                    a = relu(add(o, &sc));
                }
            }
            // global average pool
            let mut pooled = Vec::with_capacity(n * a.c);
            for b in 0..n {
                for ch in 0..a.c {
                    let mut s = T::c(0.0);
                    for i in 0..a.h {
                        for j in 0..a.w {
                            s = s + a.at(b, ch, i, j);
                        }
                    }
                    pooled.push(s / T::c((a.h * a.w) as f64));
                }
            }
            let (wt, shape) = p.get("fc.weight");
            let (bias, _) = p.get("fc.bias");
            linear(&pooled, n, wt, &shape, bias)
        }
        _ => panic!("forward_deep is for VGG11 / ResNet18"),
    }
}

/// A loss over one batch (one BatchNorm chunk) of a deep model.
pub struct DeepProblem {
    pub arch: Architecture,
    pub theta: Vec<f64>,
    pub running: Option<Vec<Vec<f64>>>,
    pub x: Vec<f64>,
    pub t: Vec<f64>,
    pub n: usize,
    pub kind: LossKind,
}

impl DeepProblem {
    fn loss_generic<T: Num>(&self, theta: &[T]) -> T {
        let c = self.arch.classes();
        let x: Vec<T> = self.x.iter().map(|&v| T::c(v)).collect();
        let z = forward_deep(&self.arch, theta, self.running.as_deref(), &x, self.n);
        let mut total = T::c(0.0);
        for i in 0..self.n {
            total = total
                + example_loss(
                    &z[i * c..(i + 1) * c],
                    &self.t[i * c..(i + 1) * c],
                    self.kind,
                    1.0,
                );
        }
        total / T::c(self.n as f64)
    }

    /// ℓ(θ) in f64.
    pub fn loss(&self) -> f64 {
        self.loss_generic(&self.theta)
    }

    /// uᵀ∇²ℓ v exactly (one hyper-dual pass), and ∇ℓ·u.
    pub fn bilinear(&self, u: &[f64], v: &[f64]) -> (f64, f64) {
        let th: Vec<HD> = self
            .theta
            .iter()
            .zip(u.iter().zip(v))
            .map(|(&t, (&a, &b))| HD::new(t, a, b, 0.0))
            .collect();
        let l = self.loss_generic(&th);
        (l.d, l.b)
    }

    /// Exact logit input Jacobian (C × d) of example i in the batch (eval mode only:
    /// in train mode examples are coupled through the batch statistics).
    pub fn logit_jacobian(&self, i: usize) -> Vec<f64> {
        assert!(self.running.is_some(), "eval mode");
        let (c, d) = (self.arch.classes(), self.arch.input_len());
        let th: Vec<HD> = self.theta.iter().map(|&v| HD::c(v)).collect();
        let mut j = vec![0.0; c * d];
        for q in 0..d {
            let mut x: Vec<HD> = self.x[i * d..(i + 1) * d]
                .iter()
                .map(|&v| HD::c(v))
                .collect();
            x[q].b = 1.0;
            let z = forward_deep(&self.arch, &th, self.running.as_deref(), &x, 1);
            for k in 0..c {
                j[k * d + q] = z[k].b;
            }
        }
        j
    }
}
