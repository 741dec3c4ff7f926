//! Runtime CPU dispatch for the kernels' own loops. curvlab is compiled for
//! the baseline x86-64 target (SSE2), so plain loops get 4-wide vectors;
//! [`wide`] runs a closure compiled for x86-64-v4 (AVX-512) or v3 (AVX2)
//! when the CPU has it (the closure is inlined into a `#[target_feature]`
//! function). The arithmetic is the same either way: Rust never contracts
//! a·b + c into a fused multiply-add, and sums keep their written order
//! (explicit lanes), so results are bit-identical on every path.

/// Runs `f` compiled for the widest vector extension the CPU has.
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has every feature the function enables.
            return unsafe { v4(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { v3(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,avx,fma,bmi1,bmi2,lzcnt,popcnt")]
#[inline]
unsafe fn v4<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx,fma,bmi1,bmi2,lzcnt,popcnt")]
#[inline]
unsafe fn v3<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatched and the baseline loop give the same bits.
    #[test]
    fn same_bits_on_every_path() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        let run = || -> Vec<f32> { x.iter().map(|v| v * 1.7 + 0.3).collect() };
        assert_eq!(wide(run), run());
    }
}
