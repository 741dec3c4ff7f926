//! A bounds-checked f32 matrix product over strided slices, on the `gemm`
//! crate (the GEMM burn's flex backend uses).
//!
//! C ← A·B, or C ← C + A·B when `accumulate`, for A `[m, k]`, B `[k, n]`,
//! C `[m, n]`, each given as a slice with a row stride and a column stride
//! (element (i, j) of A is `a[i·rs + j·cs]`), so transposed operands need no
//! copy.
//!
//! # Shapes
//! A `[m, k]`, B `[k, n]`, C `[m, n]`; strides ≥ 0.

use std::mem::MaybeUninit;

use gemm::Parallelism;

/// A matrix view: a slice, its row stride and its column stride.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major `[rows, cols]` (row stride `cols`).
    pub fn rows(data: &'a [f32], cols: usize) -> Mat<'a> {
        Mat {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of row-major `[rows, cols]` data, as a `[cols, rows]` view.
    pub fn transposed(data: &'a [f32], cols: usize) -> Mat<'a> {
        Mat {
            data,
            rs: 1,
            cs: cols,
        }
    }
}

/// Largest index a `[rows, cols]` view with strides `rs`, `cs` touches, plus one.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// C = A·B (or C += A·B when `accumulate`) with A `[m, k]`, B `[k, n]` and
/// C `[m, n]` stored in `c` with row stride `c_rs` and column stride `c_cs`.
/// `threads`: run the product on rayon's pool (large products only; callers
/// that already run in parallel pass `false`).
///
/// # Panics
/// If a view reaches past its slice, or C's strides make distinct elements
/// overlap (a zero stride with more than one row or column).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    c: &mut [f32],
    c_rs: usize,
    c_cs: usize,
    accumulate: bool,
    threads: bool,
) {
    if k == 0 {
        assert!(
            extent(m, n, c_rs, c_cs) <= c.len(),
            "matmul: C out of bounds"
        );
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    c[i * c_rs + j * c_cs] = 0.0;
                }
            }
        }
        return;
    }
    // SAFETY: `c` is initialised, so reading it (accumulate) is sound.
    unsafe {
        product(
            m,
            n,
            k,
            a,
            b,
            c.as_mut_ptr(),
            c.len(),
            c_rs,
            c_cs,
            accumulate,
            threads,
        )
    }
}

/// C = A·B into uninitialised C (never read); see [`matmul`]. Writes every
/// element of the `[m, n]` view.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_into(
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    c: &mut [MaybeUninit<f32>],
    c_rs: usize,
    c_cs: usize,
    threads: bool,
) {
    assert!(k > 0, "matmul_into: an empty inner dimension");
    // SAFETY: without accumulation the product only writes C.
    unsafe {
        product(
            m,
            n,
            k,
            a,
            b,
            c.as_mut_ptr().cast(),
            c.len(),
            c_rs,
            c_cs,
            false,
            threads,
        )
    }
}

/// The product on raw C (`c_len` values at `c`).
///
/// # Safety
/// `c` must be valid for writes of `c_len` values (and reads when
/// `accumulate`), not aliased elsewhere during the call; `k > 0`.
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    c: *mut f32,
    c_len: usize,
    c_rs: usize,
    c_cs: usize,
    accumulate: bool,
    threads: bool,
) {
    assert!(
        extent(m, k, a.rs, a.cs) <= a.data.len(),
        "matmul: A out of bounds"
    );
    assert!(
        extent(k, n, b.rs, b.cs) <= b.data.len(),
        "matmul: B out of bounds"
    );
    assert!(extent(m, n, c_rs, c_cs) <= c_len, "matmul: C out of bounds");
    assert!(
        (m <= 1 || c_rs > 0) && (n <= 1 || c_cs > 0),
        "matmul: C's strides overlap"
    );
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = if threads && rayon::current_num_threads() > 1 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    // SAFETY: every element the product reads or writes lies inside its
    // buffer (checked above), C's elements are distinct, and the caller
    // guarantees C is not aliased; without `accumulate` gemm never reads C.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            c_cs as isize,
            c_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: Mat, b: Mat) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|l| a.data[i * a.rs + l * a.cs] * b.data[l * b.rs + j * b.cs])
                    .sum();
            }
        }
        c
    }

    #[test]
    fn strided_products_match_the_definition() {
        let (m, n, k) = (7, 5, 11);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 - 6.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.5 - 1.0).collect();
        for (a_view, b_view) in [
            (Mat::rows(&a, k), Mat::rows(&b, n)),
            (Mat::transposed(&a, m), Mat::transposed(&b, k)),
        ] {
            let want = naive(m, n, k, a_view, b_view);
            // row-major C, then accumulate into it
            let mut c = vec![0.0; m * n];
            matmul(m, n, k, a_view, b_view, &mut c, n, 1, false, false);
            assert_eq!(c, want);
            matmul(m, n, k, a_view, b_view, &mut c, n, 1, true, true);
            let twice: Vec<f32> = want.iter().map(|x| 2.0 * x).collect();
            assert_eq!(c, twice);
            // column-major C
            let mut ct = vec![0.0; m * n];
            matmul(m, n, k, a_view, b_view, &mut ct, 1, m, false, false);
            for i in 0..m {
                for j in 0..n {
                    assert_eq!(ct[i + j * m], want[i * n + j]);
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "A out of bounds")]
    fn a_view_past_its_slice_panics() {
        let mut c = vec![0.0; 4];
        matmul(
            2,
            2,
            3,
            Mat::rows(&[1.0; 5], 3),
            Mat::rows(&[1.0; 6], 2),
            &mut c,
            2,
            1,
            false,
            false,
        );
    }
}
