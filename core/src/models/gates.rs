//! Nonlinearities and their gates.
//!
//! ReLU and max-pool are piecewise linear. For finite-difference curvature the
//! forward pass at θ can *record* its gates (which ReLU units are off, which
//! input each max-pool window picks), and the passes at θ ± εv can reuse them
//! (*fixed* gates). The network with fixed gates is a polynomial in θ whose
//! Hessian at θ is the generalised Hessian that double-backward frameworks
//! compute (relu'' = 0, max-pool routing fixed).

use burn::tensor::activation;
use burn::tensor::module::{max_pool2d, max_pool2d_with_indices};
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Bool, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::kernels::{self, PoolGate, Relu};
use crate::{Error, Result};

/// Hidden-unit nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// max(0, x); gates recorded/fixed for curvature.
    #[default]
    Relu,
    /// tanh(x)
    Tanh,
    /// x·Φ(x) (exact, erf form)
    Gelu,
}

impl std::str::FromStr for Activation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            "gelu" => Ok(Activation::Gelu),
            o => Err(Error::Config(format!(
                "unknown activation '{o}' (expected relu, tanh or gelu)"
            ))),
        }
    }
}

/// A gate recorded by a forward pass at θ.
#[derive(Clone, Debug)]
pub enum Gate {
    /// ReLU units that are off (pre-activation ≤ 0), flattened `[B, units]`.
    Off(Tensor<2, Bool>),
    /// Max-pool argmax per window, indices into the flattened `h·w` plane, `[B, C, h'·w']`.
    Pool(Tensor<3, Int>),
}

/// How a forward pass treats ReLU and max-pool.
pub enum Gates<'a> {
    /// Ordinary forward pass.
    Free,
    /// Ordinary forward pass that records its gates.
    Record(&'a mut Vec<Gate>),
    /// Forward pass with gates fixed to recorded ones.
    Fixed(&'a [Gate]),
}

/// The gates of one forward pass, taken in the order the pass meets its
/// ReLUs and max-pools.
pub(crate) struct GateCursor<'a> {
    gates: Gates<'a>,
    /// Index of the next gate.
    next: usize,
}

impl<'a> GateCursor<'a> {
    pub(crate) fn new(gates: Gates<'a>) -> GateCursor<'a> {
        GateCursor { gates, next: 0 }
    }

    /// `a` applied elementwise; for ReLU through the next gate.
    pub(crate) fn act<const D: usize>(&mut self, h: Tensor<D>, a: Activation) -> Tensor<D> {
        match a {
            Activation::Tanh => activation::tanh(h),
            Activation::Gelu => activation::gelu(h),
            Activation::Relu => {
                if let Some((y, off)) = kernels::relu(&h, self.fused_relu()) {
                    self.advance(off);
                    return y;
                }
                let dims = h.dims();
                let b = dims[0];
                let k = self.next;
                let off: Tensor<2, Bool> = match &mut self.gates {
                    Gates::Free => return activation::relu(h),
                    Gates::Record(list) => {
                        let off = h.clone().lower_equal_elem(0.0).reshape([b as i64, -1]);
                        list.push(Gate::Off(off.clone()));
                        off
                    }
                    Gates::Fixed(list) => match &list[k] {
                        Gate::Off(off) => off.clone(),
                        Gate::Pool(_) => panic!("gate {k} is a pool gate, expected a ReLU gate"),
                    },
                };
                self.next += 1;
                h.mask_fill(off.reshape(dims), 0.0)
            }
        }
    }

    /// The next ReLU gate, for a kernel that fuses the ReLU
    /// ([`crate::kernels::Relu`]); [`GateCursor::advance`] moves past it.
    ///
    /// # Panics
    /// With fixed gates, if the next one is a pool gate.
    pub(crate) fn fused_relu(&self) -> Relu<'a> {
        match &self.gates {
            Gates::Free => Relu::On { record: false },
            Gates::Record(_) => Relu::On { record: true },
            Gates::Fixed(list) => {
                let list: &'a [Gate] = list;
                match &list[self.next] {
                    Gate::Off(off) => Relu::Fixed(off),
                    Gate::Pool(_) => {
                        panic!("gate {} is a pool gate, expected a ReLU gate", self.next)
                    }
                }
            }
        }
    }

    /// Moves past the ReLU gate a fused kernel applied; `off`: its mask
    /// when recording.
    ///
    /// # Panics
    /// When recording without a mask.
    pub(crate) fn advance(&mut self, off: Option<Tensor<2, Bool>>) {
        match &mut self.gates {
            Gates::Free => return,
            Gates::Record(list) => list.push(Gate::Off(off.expect("a recorded ReLU mask"))),
            Gates::Fixed(_) => {}
        }
        self.next += 1;
    }

    /// Max-pool 2×2, stride 2, through the next gate.
    pub(crate) fn max_pool(&mut self, h: Tensor<4>) -> Tensor<4> {
        let [b, c, hh, ww] = h.dims();
        let opts = MaxPoolOptions::new([2, 2]);
        let k = self.next;
        let gate = match &self.gates {
            Gates::Free => PoolGate::Free,
            Gates::Record(_) => PoolGate::Record,
            Gates::Fixed(list) => match &list[k] {
                Gate::Pool(idx) => PoolGate::Fixed(idx),
                Gate::Off(_) => panic!("gate {k} is a ReLU gate, expected a pool gate"),
            },
        };
        if let Some((out, idx)) = kernels::max_pool2(&h, gate) {
            match &mut self.gates {
                Gates::Free => return out,
                Gates::Record(list) => list.push(Gate::Pool(idx.expect("a recorded argmax"))),
                Gates::Fixed(_) => {}
            }
            self.next += 1;
            return out;
        }
        let out = match &mut self.gates {
            Gates::Free => return max_pool2d(h, opts),
            Gates::Record(list) => {
                let (out, idx) = max_pool2d_with_indices(h, opts);
                list.push(Gate::Pool(idx.reshape([b, c, (hh / 2) * (ww / 2)])));
                out
            }
            Gates::Fixed(list) => match &list[k] {
                Gate::Pool(idx) => h.reshape([b, c, hh * ww]).gather(2, idx.clone()).reshape([
                    b,
                    c,
                    hh / 2,
                    ww / 2,
                ]),
                Gate::Off(_) => panic!("gate {k} is a ReLU gate, expected a pool gate"),
            },
        };
        self.next += 1;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::tensor_to_vec;
    use burn::tensor::{Device, TensorData};

    fn tensor(v: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(v, shape), &Device::flex())
    }

    /// Recorded gates replayed on other values route them as at θ.
    #[test]
    fn fixed_gates_replay_the_recorded_routing() {
        let x = tensor(vec![1.0, -2.0, 3.0, -4.0], [1, 1, 2, 2]);
        let y = tensor(vec![-5.0, 6.0, 7.0, 8.0], [1, 1, 2, 2]);
        let mut list = Vec::new();
        let mut rec = GateCursor::new(Gates::Record(&mut list));
        let r = rec.act(x.clone(), Activation::Relu);
        let p = rec.max_pool(x);
        assert_eq!(tensor_to_vec(&r), [1.0, 0.0, 3.0, 0.0]);
        assert_eq!(tensor_to_vec(&p), [3.0]);
        let mut fixed = GateCursor::new(Gates::Fixed(&list));
        // units 1 and 3 stay off; the pool still picks input 2 (value 7, not the larger 8)
        let r = fixed.act(y.clone(), Activation::Relu);
        let p = fixed.max_pool(y);
        assert_eq!(tensor_to_vec(&r), [-5.0, 0.0, 7.0, 0.0]);
        assert_eq!(tensor_to_vec(&p), [7.0]);
    }

    #[test]
    fn activation_names() {
        assert_eq!("gelu".parse::<Activation>().unwrap(), Activation::Gelu);
        let e = "sigmoid".parse::<Activation>().unwrap_err().to_string();
        assert!(e.contains("unknown activation 'sigmoid'"), "{e}");
    }
}
