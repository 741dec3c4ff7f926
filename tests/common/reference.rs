//! Independent float64 references for curvlab's measurements.
//!
//! Nothing here uses burn or curvlab's numeric code: models are re-implemented
//! as plain loops, generic over a number type, and evaluated in hyper-dual
//! arithmetic (a + b·ε₁ + c·ε₂ + d·ε₁ε₂ with ε₁² = ε₂² = 0), which gives first
//! and second derivatives *exactly* (to f64 rounding), without finite
//! differences. ReLU and max-pool branch on the real part, so the second
//! derivatives are those of the generalised Hessian (relu'' = 0, pool routing
//! fixed), as double-backward frameworks compute.

#![allow(dead_code)]

use std::ops::{Add, Div, Mul, Neg, Sub};

use curvlab::loss::LossKind;
use curvlab::models::{Activation, Architecture, Cnn, Mlp, Resnet18, Vgg11};

/// Number types the reference model runs on.
pub trait Num:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    fn c(x: f64) -> Self;
    fn re(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn tanh(self) -> Self;
    fn erf(self) -> Self;
    fn sqrt(self) -> Self;
}

/// erf(x) in f64: Taylor series for |x| < 3, continued fraction of erfc beyond (≤ 1e-15 abs).
pub fn erf64(x: f64) -> f64 {
    let a = x.abs();
    let v = if a < 3.0 {
        // erf x = 2/√π Σ (-1)^n x^{2n+1} / (n! (2n+1))
        let mut term = a;
        let mut sum = a;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= -a * a / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    } else {
        // erfc a = e^{-a²}/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + ...))))
        let mut f = a;
        for k in (1..60).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
    };
    v.copysign(x)
}

impl Num for f64 {
    fn c(x: f64) -> Self {
        x
    }
    fn re(self) -> f64 {
        self
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    fn erf(self) -> Self {
        erf64(self)
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
}

/// Hyper-dual number a + b ε₁ + c ε₂ + d ε₁ε₂.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HD {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub d: f64,
}

impl HD {
    pub fn new(a: f64, b: f64, c: f64, d: f64) -> Self {
        HD { a, b, c, d }
    }
    /// g applied to self, given g(a), g'(a), g''(a).
    fn chain(self, g: f64, g1: f64, g2: f64) -> Self {
        HD {
            a: g,
            b: g1 * self.b,
            c: g1 * self.c,
            d: g1 * self.d + g2 * self.b * self.c,
        }
    }
}

impl Add for HD {
    type Output = HD;
    fn add(self, o: HD) -> HD {
        HD::new(self.a + o.a, self.b + o.b, self.c + o.c, self.d + o.d)
    }
}
impl Sub for HD {
    type Output = HD;
    fn sub(self, o: HD) -> HD {
        HD::new(self.a - o.a, self.b - o.b, self.c - o.c, self.d - o.d)
    }
}
impl Neg for HD {
    type Output = HD;
    fn neg(self) -> HD {
        HD::new(-self.a, -self.b, -self.c, -self.d)
    }
}
impl Mul for HD {
    type Output = HD;
    fn mul(self, o: HD) -> HD {
        HD::new(
            self.a * o.a,
            self.a * o.b + self.b * o.a,
            self.a * o.c + self.c * o.a,
            self.a * o.d + self.b * o.c + self.c * o.b + self.d * o.a,
        )
    }
}
impl Div for HD {
    type Output = HD;
    fn div(self, o: HD) -> HD {
        let inv = o.chain(1.0 / o.a, -1.0 / (o.a * o.a), 2.0 / (o.a * o.a * o.a));
        self * inv
    }
}
impl Num for HD {
    fn c(x: f64) -> Self {
        HD::new(x, 0.0, 0.0, 0.0)
    }
    fn re(self) -> f64 {
        self.a
    }
    fn exp(self) -> Self {
        let e = self.a.exp();
        self.chain(e, e, e)
    }
    fn ln(self) -> Self {
        self.chain(self.a.ln(), 1.0 / self.a, -1.0 / (self.a * self.a))
    }
    fn tanh(self) -> Self {
        let t = self.a.tanh();
        let d1 = 1.0 - t * t;
        self.chain(t, d1, -2.0 * t * d1)
    }
    fn erf(self) -> Self {
        let d1 = 2.0 / std::f64::consts::PI.sqrt() * (-self.a * self.a).exp();
        self.chain(erf64(self.a), d1, -2.0 * self.a * d1)
    }
    fn sqrt(self) -> Self {
        let r = self.a.sqrt();
        self.chain(r, 0.5 / r, -0.25 / (r * self.a))
    }
}

fn act<T: Num>(x: T, a: Activation) -> T {
    match a {
        Activation::Relu => {
            if x.re() > 0.0 {
                x
            } else {
                T::c(0.0)
            }
        }
        Activation::Tanh => x.tanh(),
        Activation::Gelu => {
            x * (T::c(1.0) + (x * T::c(std::f64::consts::FRAC_1_SQRT_2)).erf()) * T::c(0.5)
        }
    }
}

/// Logits of one example; `theta` in PyTorch parameter order.
pub fn forward<T: Num>(arch: &Architecture, theta: &[T], x: &[T]) -> Vec<T> {
    let mut off = 0usize;
    let mut take = |n: usize| {
        let s = off;
        off += n;
        s
    };
    let linear = |theta: &[T], w0: usize, b0: usize, h: &[T], out: usize| -> Vec<T> {
        let inp = h.len();
        (0..out)
            .map(|o| {
                let mut s = theta[b0 + o];
                for i in 0..inp {
                    s = s + theta[w0 + o * inp + i] * h[i];
                }
                s
            })
            .collect()
    };
    match arch {
        Architecture::Mlp(Mlp {
            input_dim,
            hidden,
            classes,
            activation,
        }) => {
            let mut h = x.to_vec();
            let mut d = *input_dim;
            let widths: Vec<usize> = hidden.iter().copied().chain([*classes]).collect();
            for (l, &w) in widths.iter().enumerate() {
                let w0 = take(w * d);
                let b0 = take(w);
                h = linear(theta, w0, b0, &h, w);
                if l + 1 < widths.len() {
                    h = h.into_iter().map(|v| act(v, *activation)).collect();
                }
                d = w;
            }
            h
        }
        Architecture::Cnn(Cnn {
            in_channels,
            height,
            width,
            channels,
            classes,
            activation,
        }) => {
            let (mut c, mut hh, mut ww) = (*in_channels, *height, *width);
            let mut h = x.to_vec(); // (c, h, w)
            for &co in channels {
                let w0 = take(co * c * 9);
                let b0 = take(co);
                let mut out = vec![T::c(0.0); co * hh * ww];
                for o in 0..co {
                    for i in 0..hh {
                        for j in 0..ww {
                            let mut s = theta[b0 + o];
                            for ci in 0..c {
                                for di in 0..3 {
                                    for dj in 0..3 {
                                        let (ii, jj) = (
                                            i as isize + di as isize - 1,
                                            j as isize + dj as isize - 1,
                                        );
                                        if ii >= 0
                                            && jj >= 0
                                            && (ii as usize) < hh
                                            && (jj as usize) < ww
                                        {
                                            s = s + theta[w0 + ((o * c + ci) * 3 + di) * 3 + dj]
                                                * h[(ci * hh + ii as usize) * ww + jj as usize];
                                        }
                                    }
                                }
                            }
                            out[(o * hh + i) * ww + j] = act(s, *activation);
                        }
                    }
                }
                // max-pool 2×2, stride 2, by real part
                let (ph, pw) = (hh / 2, ww / 2);
                let mut pooled = vec![T::c(0.0); co * ph * pw];
                for o in 0..co {
                    for i in 0..ph {
                        for j in 0..pw {
                            let mut best = out[(o * hh + 2 * i) * ww + 2 * j];
                            for (di, dj) in [(0, 1), (1, 0), (1, 1)] {
                                let v = out[(o * hh + 2 * i + di) * ww + 2 * j + dj];
                                if v.re() > best.re() {
                                    best = v;
                                }
                            }
                            pooled[(o * ph + i) * pw + j] = best;
                        }
                    }
                }
                h = pooled;
                c = co;
                hh = ph;
                ww = pw;
            }
            let w0 = take(classes * h.len());
            let b0 = take(*classes);
            linear(theta, w0, b0, &h, *classes)
        }
        Architecture::Vgg11(Vgg11 { .. }) | Architecture::Resnet18(Resnet18 { .. }) => {
            panic!("per-example reference: use tests/common/deep.rs for VGG11 / ResNet18")
        }
    }
}

/// c(z, t) for one example.
pub fn example_loss<T: Num>(z: &[T], t: &[f64], kind: LossKind, target_scale: f64) -> T {
    match kind {
        LossKind::CrossEntropy => {
            let m = z.iter().map(|v| v.re()).fold(f64::NEG_INFINITY, f64::max);
            let mut s = T::c(0.0);
            for &v in z {
                s = s + (v - T::c(m)).exp();
            }
            let lse = s.ln() + T::c(m);
            let mut l = T::c(0.0);
            for (v, &tk) in z.iter().zip(t) {
                l = l - T::c(tk) * (*v - lse);
            }
            l
        }
        LossKind::Square => {
            let mut l = T::c(0.0);
            for (v, &tk) in z.iter().zip(t) {
                let dlt = *v - T::c(target_scale * tk);
                l = l + dlt * dlt;
            }
            l * T::c(0.5)
        }
    }
}

/// A small problem: architecture, θ, inputs (n × d), targets (n × C).
pub struct Problem {
    pub arch: Architecture,
    pub theta: Vec<f64>,
    pub x: Vec<f64>,
    pub t: Vec<f64>,
    pub n: usize,
    pub kind: LossKind,
    pub target_scale: f64,
}

impl Problem {
    fn d(&self) -> usize {
        self.arch.input_len()
    }
    fn c(&self) -> usize {
        self.arch.classes()
    }

    /// ℓ_S(θ) in f64.
    pub fn loss(&self) -> f64 {
        let (d, c) = (self.d(), self.c());
        (0..self.n)
            .map(|i| {
                let z = forward(&self.arch, &self.theta, &self.x[i * d..(i + 1) * d]);
                example_loss(
                    &z,
                    &self.t[i * c..(i + 1) * c],
                    self.kind,
                    self.target_scale,
                )
            })
            .sum::<f64>()
            / self.n as f64
    }

    fn loss_hd(&self, j: usize, k: usize) -> HD {
        let (d, c) = (self.d(), self.c());
        let mut th: Vec<HD> = self.theta.iter().map(|&v| HD::c(v)).collect();
        th[j].b = 1.0;
        th[k].c = 1.0;
        let mut total = HD::c(0.0);
        for i in 0..self.n {
            let x: Vec<HD> = self.x[i * d..(i + 1) * d]
                .iter()
                .map(|&v| HD::c(v))
                .collect();
            let z = forward(&self.arch, &th, &x);
            total = total
                + example_loss(
                    &z,
                    &self.t[i * c..(i + 1) * c],
                    self.kind,
                    self.target_scale,
                );
        }
        total / HD::c(self.n as f64)
    }

    /// Exact gradient ∇ℓ_S (f64).
    pub fn gradient(&self) -> Vec<f64> {
        (0..self.theta.len())
            .map(|j| self.loss_hd(j, j).b)
            .collect()
    }

    /// Exact (generalised) Hessian, P × P row-major.
    pub fn hessian(&self) -> Vec<f64> {
        let p = self.theta.len();
        let mut h = vec![0.0; p * p];
        for j in 0..p {
            for k in j..p {
                let v = self.loss_hd(j, k).d;
                h[j * p + k] = v;
                h[k * p + j] = v;
            }
        }
        h
    }

    /// Exact Gauss–Newton matrix (1/N) Σ J_iᵀ H_i J_i, P × P.
    pub fn gauss_newton(&self) -> Vec<f64> {
        let (d, c, p) = (self.d(), self.c(), self.theta.len());
        let mut g = vec![0.0; p * p];
        for i in 0..self.n {
            let x: Vec<HD> = self.x[i * d..(i + 1) * d]
                .iter()
                .map(|&v| HD::c(v))
                .collect();
            // J (C × P) by one dual pass per parameter
            let mut jac = vec![0.0; c * p];
            let mut z0 = vec![0.0; c];
            for j in 0..p {
                let mut th: Vec<HD> = self.theta.iter().map(|&v| HD::c(v)).collect();
                th[j].b = 1.0;
                let z = forward(&self.arch, &th, &x);
                for k in 0..c {
                    jac[k * p + j] = z[k].b;
                    z0[k] = z[k].a;
                }
            }
            // H_z
            let hz: Vec<f64> = match self.kind {
                LossKind::Square => (0..c * c)
                    .map(|q| if q / c == q % c { 1.0 } else { 0.0 })
                    .collect(),
                LossKind::CrossEntropy => {
                    let m = z0.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = z0.iter().map(|v| (v - m).exp()).collect();
                    let s: f64 = e.iter().sum();
                    let pr: Vec<f64> = e.iter().map(|v| v / s).collect();
                    let tsum: f64 = self.t[i * c..(i + 1) * c].iter().sum();
                    (0..c * c)
                        .map(|q| {
                            tsum * (if q / c == q % c { pr[q / c] } else { 0.0 }
                                - pr[q / c] * pr[q % c])
                        })
                        .collect()
                }
            };
            for a in 0..p {
                for b in 0..p {
                    let mut s = 0.0;
                    for k in 0..c {
                        for l in 0..c {
                            s += jac[k * p + a] * hz[k * c + l] * jac[l * p + b];
                        }
                    }
                    g[a * p + b] += s / self.n as f64;
                }
            }
        }
        g
    }

    /// Exact logit and softmax input Jacobians of example i (C × d each).
    pub fn input_jacobians(&self, i: usize) -> (Vec<f64>, Vec<f64>) {
        let (d, c) = (self.d(), self.c());
        let th: Vec<HD> = self.theta.iter().map(|&v| HD::c(v)).collect();
        let mut jl = vec![0.0; c * d];
        let mut js = vec![0.0; c * d];
        for q in 0..d {
            let mut x: Vec<HD> = self.x[i * d..(i + 1) * d]
                .iter()
                .map(|&v| HD::c(v))
                .collect();
            x[q].b = 1.0;
            let z = forward(&self.arch, &th, &x);
            let m = z.iter().map(|v| v.a).fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<HD> = z.iter().map(|v| (*v - HD::c(m)).exp()).collect();
            let s = e.iter().fold(HD::c(0.0), |a, b| a + *b);
            for k in 0..c {
                jl[k * d + q] = z[k].b;
                js[k * d + q] = (e[k] / s).b;
            }
        }
        (jl, js)
    }
}

/// Spectral norm of a `rows × cols` matrix by power iteration on AᵀA in f64
/// (independent of curvlab's eigen-solver), to 1e-14 relative.
pub fn spectral_norm(a: &[f64], rows: usize, cols: usize) -> f64 {
    let mut v: Vec<f64> = (0..cols).map(|i| 1.0 + (i as f64 * 0.37).sin()).collect();
    let mut sigma = 0.0;
    for _ in 0..100_000 {
        let av: Vec<f64> = (0..rows)
            .map(|r| (0..cols).map(|c| a[r * cols + c] * v[c]).sum())
            .collect();
        let mut w: Vec<f64> = (0..cols)
            .map(|c| (0..rows).map(|r| a[r * cols + c] * av[r]).sum())
            .collect();
        let nw = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        if nw == 0.0 {
            return 0.0;
        }
        w.iter_mut().for_each(|x| *x /= nw);
        let s = nw.sqrt();
        let done = (s - sigma).abs() <= 1e-15 * s;
        sigma = s;
        v = w;
        if done {
            break;
        }
    }
    sigma
}

fn act_deriv<T: Num>(x: T, a: Activation) -> T {
    match a {
        Activation::Relu => T::c(if x.re() > 0.0 { 1.0 } else { 0.0 }),
        Activation::Tanh => {
            let t = x.tanh();
            T::c(1.0) - t * t
        }
        Activation::Gelu => {
            let phi =
                (-(x * x) * T::c(0.5)).exp() * T::c(1.0 / (2.0 * std::f64::consts::PI).sqrt());
            (T::c(1.0) + (x * T::c(std::f64::consts::FRAC_1_SQRT_2)).erf()) * T::c(0.5) + x * phi
        }
    }
}

/// An MLP's layer sizes [d, h1, …, C] and activation.
fn mlp_dims(arch: &Architecture) -> (Vec<usize>, Activation) {
    match arch {
        Architecture::Mlp(Mlp {
            input_dim,
            hidden,
            classes,
            activation,
        }) => {
            let mut d = vec![*input_dim];
            d.extend(hidden);
            d.push(*classes);
            (d, *activation)
        }
        _ => panic!("MLP only"),
    }
}

impl Problem {
    /// ∇ℓ_S by hand-written backpropagation (MLP only), generic over the number
    /// type: with θ = θ₀ + ε·v in dual numbers the ε-part is H·v exactly
    /// (forward-over-reverse; ReLU' by the real part: the generalised Hessian).
    fn mlp_gradient<T: Num>(&self, theta: &[T]) -> Vec<T> {
        let (dims, a) = mlp_dims(&self.arch);
        let c = *dims.last().unwrap();
        let mut offs = Vec::new();
        let mut off = 0;
        for l in 0..dims.len() - 1 {
            offs.push((off, off + dims[l + 1] * dims[l]));
            off += dims[l + 1] * dims[l] + dims[l + 1];
        }
        let mut grad = vec![T::c(0.0); theta.len()];
        let inv_n = T::c(1.0 / self.n as f64);
        for i in 0..self.n {
            let x: Vec<T> = self.x[i * dims[0]..(i + 1) * dims[0]]
                .iter()
                .map(|&v| T::c(v))
                .collect();
            // forward, keeping pre-activations
            let mut hs = vec![x];
            let mut pre = Vec::new();
            for l in 0..dims.len() - 1 {
                let (w0, b0) = offs[l];
                let h = hs.last().unwrap();
                let z: Vec<T> = (0..dims[l + 1])
                    .map(|o| {
                        let mut s = theta[b0 + o];
                        for q in 0..dims[l] {
                            s = s + theta[w0 + o * dims[l] + q] * h[q];
                        }
                        s
                    })
                    .collect();
                let last = l + 2 == dims.len();
                hs.push(if last {
                    z.clone()
                } else {
                    z.iter().map(|&v| act(v, a)).collect()
                });
                pre.push(z);
            }
            let z = hs.last().unwrap().clone();
            let t = &self.t[i * c..(i + 1) * c];
            // δ = ∂c/∂z
            let mut delta: Vec<T> = match self.kind {
                LossKind::CrossEntropy => {
                    let m = z.iter().map(|v| v.re()).fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<T> = z.iter().map(|v| (*v - T::c(m)).exp()).collect();
                    let s = e.iter().fold(T::c(0.0), |acc, v| acc + *v);
                    let tsum: f64 = t.iter().sum();
                    e.iter()
                        .zip(t)
                        .map(|(ek, &tk)| *ek / s * T::c(tsum) - T::c(tk))
                        .collect()
                }
                LossKind::Square => z
                    .iter()
                    .zip(t)
                    .map(|(zk, &tk)| *zk - T::c(self.target_scale * tk))
                    .collect(),
            };
            for l in (0..dims.len() - 1).rev() {
                let (w0, b0) = offs[l];
                let h = &hs[l];
                for o in 0..dims[l + 1] {
                    grad[b0 + o] = grad[b0 + o] + delta[o] * inv_n;
                    for q in 0..dims[l] {
                        grad[w0 + o * dims[l] + q] =
                            grad[w0 + o * dims[l] + q] + delta[o] * h[q] * inv_n;
                    }
                }
                if l > 0 {
                    delta = (0..dims[l])
                        .map(|q| {
                            let mut s = T::c(0.0);
                            for o in 0..dims[l + 1] {
                                s = s + theta[w0 + o * dims[l] + q] * delta[o];
                            }
                            s * act_deriv(pre[l - 1][q], a)
                        })
                        .collect();
                }
            }
        }
        grad
    }

    /// Exact H·v (MLP only), forward-over-reverse in dual numbers.
    pub fn mlp_hvp(&self, v: &[f64]) -> Vec<f64> {
        let th: Vec<HD> = self
            .theta
            .iter()
            .zip(v)
            .map(|(&t, &vi)| HD::new(t, vi, 0.0, 0.0))
            .collect();
        self.mlp_gradient(&th).into_iter().map(|g| g.b).collect()
    }

    /// Exact gradient (MLP only), plain f64 backprop.
    pub fn mlp_grad(&self) -> Vec<f64> {
        self.mlp_gradient(&self.theta)
    }

    /// Logit and softmax input Jacobians of example i in closed form (MLP only):
    /// J = W_L D_{L−1} W_{L−1} ⋯ D_1 W_1, D_l = diag σ'(a_l); softmax: (diag p − ppᵀ) J.
    pub fn mlp_input_jacobians(&self, i: usize) -> (Vec<f64>, Vec<f64>) {
        let (dims, a) = mlp_dims(&self.arch);
        let d = dims[0];
        let c = *dims.last().unwrap();
        let x = &self.x[i * d..(i + 1) * d];
        // forward
        let mut h = x.to_vec();
        let mut off = 0;
        let mut layers = Vec::new();
        let mut derivs = Vec::new();
        for l in 0..dims.len() - 1 {
            let (w0, b0) = (off, off + dims[l + 1] * dims[l]);
            off += dims[l + 1] * dims[l] + dims[l + 1];
            let z: Vec<f64> = (0..dims[l + 1])
                .map(|o| {
                    self.theta[b0 + o]
                        + (0..dims[l])
                            .map(|q| self.theta[w0 + o * dims[l] + q] * h[q])
                            .sum::<f64>()
                })
                .collect();
            layers.push(w0);
            if l + 2 < dims.len() {
                derivs.push(z.iter().map(|&v| act_deriv(v, a)).collect::<Vec<f64>>());
                h = z.iter().map(|&v| act(v, a)).collect();
            } else {
                h = z;
            }
        }
        // J = W_1 first: M (width × d) ← D W M
        let mut m: Vec<f64> = self.theta[layers[0]..layers[0] + dims[1] * d].to_vec();
        for l in 1..dims.len() - 1 {
            let w0 = layers[l];
            let (inp, out) = (dims[l], dims[l + 1]);
            let mut next = vec![0.0; out * d];
            for o in 0..out {
                for q in 0..inp {
                    let w = self.theta[w0 + o * inp + q] * derivs[l - 1][q];
                    if w != 0.0 {
                        for col in 0..d {
                            next[o * d + col] += w * m[q * d + col];
                        }
                    }
                }
            }
            m = next;
        }
        let mx = h.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = h.iter().map(|v| (v - mx).exp()).collect();
        let s: f64 = e.iter().sum();
        let p: Vec<f64> = e.iter().map(|v| v / s).collect();
        let mut js = vec![0.0; c * d];
        for k in 0..c {
            for l in 0..c {
                let a_kl = if k == l { p[k] } else { 0.0 } - p[k] * p[l];
                for col in 0..d {
                    js[k * d + col] += a_kl * m[l * d + col];
                }
            }
        }
        (m, js)
    }
}
