//! Datasets as host arrays: CIFAR-10/100 binary files ([`cifar`]), the synthetic
//! δ-good data of docs/measurements.md "Data and inputs" ([`synthetic`]), a 2-D toy set for the browser
//! explainer ([`toy`]), and subsets ([`Dataset::subset`]).
//!
//! Inputs are stored already normalised (docs/measurements.md "Data and inputs"), row-major,
//! one example after another, in the order (c, h, w) for images.

pub mod cifar;
pub mod synthetic;
pub mod toy;

use crate::rng::Rng;

/// A labelled dataset held on the host.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Inputs, `n × input_len()` values, example after example.
    pub x: Vec<f32>,
    /// Labels in `0..classes`.
    pub y: Vec<u32>,
    /// Shape of one input: `[d]` for vectors, `[c, h, w]` for images.
    pub input_shape: Vec<usize>,
    /// Number of classes C.
    pub classes: usize,
    /// Human-readable name (recorded in results).
    pub name: String,
}

impl Dataset {
    /// Number of examples N.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Number of values in one input (d).
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// The input of example `i`.
    pub fn input(&self, i: usize) -> &[f32] {
        let d = self.input_len();
        &self.x[i * d..(i + 1) * d]
    }

    /// The examples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let d = self.input_len();
        let mut x = Vec::with_capacity(indices.len() * d);
        let mut y = Vec::with_capacity(indices.len());
        for &i in indices {
            x.extend_from_slice(self.input(i));
            y.push(self.y[i]);
        }
        Dataset {
            x,
            y,
            input_shape: self.input_shape.clone(),
            classes: self.classes,
            name: self.name.clone(),
        }
    }

    /// The first `n` examples in file order (all of them if `n >= len`).
    pub fn first(&self, n: usize) -> Dataset {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.subset(&idx)
    }

    /// A class-balanced subset of `n` examples: for each class, the first
    /// ⌊n/C⌋ (+1 for the first n mod C classes) examples of that class in file
    /// order, kept in file order. Errors if a class has too few examples.
    pub fn class_balanced(&self, n: usize) -> crate::Result<Dataset> {
        let c = self.classes;
        let mut want: Vec<usize> = (0..c).map(|k| n / c + usize::from(k < n % c)).collect();
        let mut idx = Vec::with_capacity(n);
        for (i, &label) in self.y.iter().enumerate() {
            let w = &mut want[label as usize];
            if *w > 0 {
                *w -= 1;
                idx.push(i);
            }
        }
        if let Some(k) = want.iter().position(|&w| w > 0) {
            return Err(crate::Error::Config(format!(
                "{}: class {k} has too few examples for a balanced subset of {n}",
                self.name
            )));
        }
        Ok(self.subset(&idx))
    }

    /// A random permutation of `0..len` drawn from `rng`.
    pub fn permutation(&self, rng: &mut Rng) -> Vec<usize> {
        let mut p: Vec<usize> = (0..self.len()).collect();
        rng.shuffle(&mut p);
        p
    }

    /// Count of examples per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.y {
            counts[l as usize] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Dataset {
        Dataset {
            x: (0..12).map(|v| v as f32).collect(),
            y: vec![0, 0, 1, 1, 0, 1],
            input_shape: vec![2],
            classes: 2,
            name: "toy".into(),
        }
    }

    #[test]
    fn subsets() {
        let d = toy();
        let s = d.subset(&[3, 1]);
        assert_eq!(s.x, vec![6.0, 7.0, 2.0, 3.0]);
        assert_eq!(s.y, vec![1, 0]);
        let b = d.class_balanced(4).unwrap();
        assert_eq!(b.y, vec![0, 0, 1, 1]);
        let b = d.class_balanced(3).unwrap();
        assert_eq!(b.class_counts(), vec![2, 1]);
        assert!(d.class_balanced(8).is_err());
        assert_eq!(d.first(2).len(), 2);
    }
}
