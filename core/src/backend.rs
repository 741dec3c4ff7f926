//! Compute backends, chosen at run time: burn's `flex` CPU backend (pure Rust,
//! SIMD + rayon; also runs on wasm) or wgpu (Vulkan / Metal / DX12 / WebGPU).
//!
//! In a browser the GPU is granted asynchronously: [`device_async`] (native
//! callers may use [`device`]).
//!
//! All tensors in curvlab are f32. Every number is computed by the same code on
//! every backend; only the device differs.

use std::sync::OnceLock;

use burn::tensor::wgpu::WgpuSetup;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which compute backend runs the tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn's `flex` CPU backend (SIMD + rayon).
    #[default]
    Cpu,
    /// wgpu on the default adapter (a GPU; a software Vulkan driver also works).
    Wgpu,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Wgpu => "wgpu",
        })
    }
}

impl std::str::FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" | "flex" => Ok(BackendKind::Cpu),
            "wgpu" | "gpu" => Ok(BackendKind::Wgpu),
            other => Err(Error::Config(format!(
                "unknown backend '{other}' (expected cpu or wgpu)"
            ))),
        }
    }
}

/// The (non-autodiff) device for `kind`. wgpu is initialised once per process;
/// if no adapter can be acquired this returns [`Error::Backend`] with a hint.
///
/// Native only for wgpu: on wasm a browser grants the GPU asynchronously, so
/// use [`device_async`] there.
pub fn device(kind: BackendKind) -> Result<Device> {
    match kind {
        BackendKind::Cpu => Ok(Device::flex()),
        BackendKind::Wgpu => wgpu_device(),
    }
}

/// The device for `kind`, initialising wgpu asynchronously: the way to get a
/// WebGPU device in a browser (page or Web Worker), and valid natively too.
/// wgpu is initialised once per process (per worker on the web); a failure is
/// remembered and returned again.
pub async fn device_async(kind: BackendKind) -> Result<Device> {
    match kind {
        BackendKind::Cpu => Ok(Device::flex()),
        BackendKind::Wgpu => {
            if let Some(done) = WGPU.get() {
                return done.clone().map_err(Error::Backend);
            }
            let result = Device::wgpu_options()
                .init_with_setup_async()
                .await
                .map(|(device, setup)| {
                    let _ = WGPU_SETUP.set(setup);
                    device
                })
                .map_err(|e| format!("wgpu found no usable adapter ({e})"));
            // A concurrent initialisation (impossible on wasm's single thread,
            // rare natively) may have won; keep whichever result landed first.
            let _ = WGPU.set(result);
            WGPU.get()
                .expect("set above")
                .clone()
                .map_err(Error::Backend)
        }
    }
}

/// The process's wgpu device (or why there is none), once initialised.
static WGPU: OnceLock<std::result::Result<Device, String>> = OnceLock::new();

/// The wgpu handles behind the device [`device_async`] started.
static WGPU_SETUP: OnceLock<WgpuSetup> = OnceLock::new();

/// The wgpu instance, adapter, device and queue behind the device that
/// [`device_async`] started (`None` before that, or when it failed). A browser
/// app watches `setup.device` for loss (`set_device_lost_callback`) and falls
/// back to the CPU when the GPU goes away.
pub fn wgpu_setup() -> Option<&'static WgpuSetup> {
    WGPU_SETUP.get()
}

#[cfg(not(target_family = "wasm"))]
fn wgpu_device() -> Result<Device> {
    WGPU.get_or_init(|| {
        Device::wgpu_options().init().map_err(|e| {
            format!("wgpu found no usable adapter ({e}); install a Vulkan/Metal/DX12 driver or use --backend cpu")
        })
    })
    .clone()
    .map_err(Error::Backend)
}

#[cfg(target_family = "wasm")]
fn wgpu_device() -> Result<Device> {
    match WGPU.get() {
        Some(done) => done.clone().map_err(Error::Backend),
        None => Err(Error::Backend(
            "on wasm, wgpu starts asynchronously: call backend::device_async(BackendKind::Wgpu) first".into(),
        )),
    }
}

/// Waits for queued work on `device` (for timing).
pub fn sync(device: &Device) -> Result<()> {
    device.sync().map_err(|e| Error::Backend(format!("{e:?}")))
}

/// Reads a tensor's values to the host as f32, yielding while the device
/// finishes (the only way to read on wasm with WebGPU).
pub async fn read_vec<const D: usize>(t: &Tensor<D>) -> Result<Vec<f32>> {
    t.to_data_async()
        .await
        .map_err(|e| Error::Backend(format!("reading a tensor from the device failed: {e:?}")))?
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Backend(format!("tensor data is not f32: {e:?}")))
}

/// [`read_vec`] run to completion on this thread (native code and tests).
///
/// # Panics
/// If the device read fails.
pub fn tensor_to_vec<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    crate::block_on(read_vec(t)).expect("tensor read")
}
