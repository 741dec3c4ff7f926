//! Decision regions of a model with two-dimensional inputs (the toy sets):
//! the class the model predicts at every cell of a grid over the plane, and
//! how sure it is (the softmax probability of that class), from the model's
//! forward pass in eval mode — what TensorFlow Playground paints behind its
//! data points.
//!
//! # Shapes
//! Grid `ny` rows × `nx` columns, row-major; row 0 is the lowest y, column 0
//! the lowest x; cell (r, c) is evaluated at its centre.

use burn::tensor::{activation, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::backend::read_vec;
use crate::data::Dataset;
use crate::models::Model;
use crate::{Error, Result};

/// A rectangle of the input plane: x in [x0, x1], y in [y0, y1].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    pub x0: f64,
    pub x1: f64,
    pub y0: f64,
    pub y1: f64,
}

impl Bounds {
    /// The smallest square holding every input of `data` (2-D), widened by
    /// `margin` × its side on each edge (square, so the plane is not distorted).
    pub fn around(data: &Dataset, margin: f64) -> Result<Bounds> {
        if data.input_len() != 2 || data.is_empty() {
            return Err(Error::Shape(format!(
                "{}: decision regions need non-empty 2-D inputs (inputs have {} values)",
                data.name,
                data.input_len()
            )));
        }
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in data.x.chunks(2) {
            let (x, y) = (f64::from(p[0]), f64::from(p[1]));
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        let side = (x1 - x0).max(y1 - y0).max(1e-6);
        let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        let half = side * (0.5 + margin);
        Ok(Bounds {
            x0: cx - half,
            x1: cx + half,
            y0: cy - half,
            y1: cy + half,
        })
    }
}

/// The predicted class and its probability on a grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Regions {
    pub bounds: Bounds,
    pub nx: usize,
    pub ny: usize,
    /// argmax_k f_k(x) per cell.
    pub class: Vec<u8>,
    /// softmax(f(x))_class per cell, in [1/C, 1].
    pub confidence: Vec<f32>,
}

/// Evaluates `model` (2-D inputs) at the centres of an `nx` × `ny` grid over `bounds`.
pub async fn decision_regions(
    model: &Model,
    bounds: Bounds,
    nx: usize,
    ny: usize,
) -> Result<Regions> {
    if model.arch.input_len() != 2 {
        return Err(Error::Shape(format!(
            "decision regions need a model of 2-D inputs (this one takes {})",
            model.arch.input_len()
        )));
    }
    if nx == 0 || ny == 0 {
        return Err(Error::Config(
            "the region grid needs at least one cell".into(),
        ));
    }
    let c = model.arch.classes();
    let mut xy = Vec::with_capacity(2 * nx * ny);
    for r in 0..ny {
        let y = bounds.y0 + (r as f64 + 0.5) * (bounds.y1 - bounds.y0) / ny as f64;
        for col in 0..nx {
            let x = bounds.x0 + (col as f64 + 0.5) * (bounds.x1 - bounds.x0) / nx as f64;
            xy.push(x as f32);
            xy.push(y as f32);
        }
    }
    let x = Tensor::<2>::from_data(TensorData::new(xy, [nx * ny, 2]), &model.device());
    let p = read_vec(&activation::softmax(model.forward(x), 1)).await?;
    let mut class = Vec::with_capacity(nx * ny);
    let mut confidence = Vec::with_capacity(nx * ny);
    for row in p.chunks(c) {
        let k = row
            .iter()
            .enumerate()
            .fold(0, |b, (k, v)| if *v > row[b] { k } else { b });
        class.push(k as u8);
        confidence.push(row[k]);
    }
    Ok(Regions {
        bounds,
        nx,
        ny,
        class,
        confidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Activation, Architecture, Mlp};
    use crate::Block;
    use burn::tensor::Device;

    #[test]
    fn a_linear_model_splits_the_plane_where_its_logits_cross() {
        let dev = Device::flex();
        let arch = Architecture::Mlp(Mlp {
            input_dim: 2,
            hidden: vec![],
            classes: 2,
            activation: Activation::Tanh,
        });
        // logits (x, −x): class 0 where x > 0, with probability σ(2x).
        let model =
            Model::from_host(&arch, &[vec![1.0, 0.0, -1.0, 0.0], vec![0.0, 0.0]], &dev).unwrap();
        let b = Bounds {
            x0: -2.0,
            x1: 2.0,
            y0: -1.0,
            y1: 1.0,
        };
        let r = decision_regions(&model, b, 4, 2).block().unwrap();
        // cell centres x = −1.5, −0.5, 0.5, 1.5 on both rows
        assert_eq!(r.class, vec![1, 1, 0, 0, 1, 1, 0, 0]);
        let sigma = |z: f64| 1.0 / (1.0 + (-z).exp());
        for (i, &x) in [-1.5f64, -0.5, 0.5, 1.5].iter().enumerate() {
            assert!((f64::from(r.confidence[i]) - sigma(2.0 * x.abs())).abs() < 1e-6);
        }
        let data = Dataset {
            x: vec![0.0, 0.0, 2.0, 1.0],
            y: vec![0, 1],
            input_shape: vec![2],
            classes: 2,
            name: "two".into(),
        };
        let around = Bounds::around(&data, 0.1).unwrap();
        assert_eq!(
            around,
            Bounds {
                x0: 1.0 - 1.2,
                x1: 1.0 + 1.2,
                y0: 0.5 - 1.2,
                y1: 0.5 + 1.2
            }
        );
        let image = Dataset {
            input_shape: vec![1, 2, 2],
            x: vec![0.0; 8],
            ..data
        };
        assert!(Bounds::around(&image, 0.1).is_err());
    }
}
