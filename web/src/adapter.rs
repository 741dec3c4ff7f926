//! The browser's WebGPU adapter, as `navigator.gpu.requestAdapter()` reports
//! it (wasm32 only). The worker asks before it starts WebGPU; the page asks
//! too, at start, to choose the default problem size for the backend the
//! worker will get — before the trainer (the worker's module) is loaded.

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::settings::{BackendPref, Speed};

/// What the browser says about its WebGPU adapter, or why there is none.
pub async fn request_adapter() -> Result<(String, bool), String> {
    let global = js_sys::global();
    let gpu = Reflect::get(&global, &"navigator".into())
        .and_then(|n| Reflect::get(&n, &"gpu".into()))
        .ok()
        .filter(|g| !g.is_undefined() && !g.is_null())
        .ok_or("this browser has no WebGPU (navigator.gpu is missing)")?;
    let request: Function = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or("navigator.gpu.requestAdapter is missing")?;
    let opts = Object::new();
    let _ = Reflect::set(&opts, &"powerPreference".into(), &"high-performance".into());
    let promise: Promise = request
        .call1(&gpu, &opts)
        .map_err(|e| format!("requestAdapter failed: {e:?}"))?
        .dyn_into()
        .map_err(|_| "requestAdapter did not return a promise")?;
    let adapter = JsFuture::from(promise)
        .await
        .map_err(|e| format!("requestAdapter failed: {e:?}"))?;
    if adapter.is_null() || adapter.is_undefined() {
        return Err(
            "WebGPU is present but the browser granted no adapter (disabled or blocklisted GPU)"
                .into(),
        );
    }
    let info = Reflect::get(&adapter, &"info".into()).unwrap_or(JsValue::UNDEFINED);
    let field = |obj: &JsValue, k: &str| {
        Reflect::get(obj, &k.into())
            .ok()
            .and_then(|v| v.as_string())
            .filter(|s| !s.is_empty())
    };
    let parts: Vec<String> = ["vendor", "architecture", "device", "description"]
        .iter()
        .filter_map(|k| field(&info, k))
        .collect();
    let mut name = parts.join(" ");
    if name.is_empty() {
        name = "unnamed adapter".into();
    }
    let flag = |obj: &JsValue| {
        Reflect::get(obj, &"isFallbackAdapter".into())
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    };
    let lower = name.to_lowercase();
    let software = flag(&info)
        || flag(&adapter)
        || [
            "swiftshader",
            "llvmpipe",
            "lavapipe",
            "software",
            "warp",
            "basic render",
        ]
        .iter()
        .any(|s| lower.contains(s));
    Ok((name, software))
}

/// The speed class of the backend a worker preferring `prefer` will get:
/// the CPU when chosen or when there is no adapter, else the adapter's class.
/// (The worker may still fall back to the CPU if the adapter fails to start
/// or fails its test computation; the sizes chosen here then stay.)
pub async fn expected_speed(prefer: BackendPref) -> Speed {
    if prefer == BackendPref::Cpu {
        return Speed::Cpu;
    }
    match request_adapter().await {
        Ok((_, true)) => Speed::Software,
        Ok((_, false)) => Speed::Gpu,
        Err(_) => Speed::Cpu,
    }
}
