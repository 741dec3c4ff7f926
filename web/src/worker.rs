//! The training worker: runs in a Web Worker so the page never freezes.
//!
//! It picks the backend (WebGPU when the browser grants an adapter, else
//! burn's CPU backend), builds one core [`Run`] per [`RunPlan`], and drives
//! them round-robin one unit of work at a time (a measurement or an
//! optimiser step), streaming [`Update`]s to the page in batches of at most
//! [`FLUSH_MS`]. Between units it yields to the worker's event loop, so
//! play/pause/step/reset messages are handled promptly even on the CPU
//! backend, whose futures never wait.

use burn::tensor::{Device, Tensor};
use curvlab::backend::{self, BackendKind};
use curvlab::experiment::{Event, Run};
use futures_channel::mpsc::{unbounded, UnboundedReceiver};
use futures_lite::StreamExt;
use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::data::{self, UserFile};
use crate::protocol::{push_update, BackendInfo, FromWorker, RunInfo, ToWorker, Update};
use crate::settings::{BackendPref, RunPlan};

/// Longest time updates wait before they are sent to the page.
pub const FLUSH_MS: f64 = 100.0;
/// Longest stretch of work between yields to the event loop.
const YIELD_MS: f64 = 40.0;

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Files the user supplied: (name, bytes).
type Files = Vec<(String, Vec<u8>)>;

/// A message from the page, with the files it carries (`None`: keep the
/// worker's files).
type Inbound = (ToWorker, Option<Files>);

/// Sends one message to the page.
fn post(msg: &FromWorker) {
    let json = serde_json::to_string(msg).expect("worker messages serialise");
    // Posting a string cannot fail while the worker lives.
    let _ = scope().post_message(&JsValue::from_str(&json));
}

/// Entry point of the worker binary.
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        let message = format!("the training worker crashed: {info}");
        web_sys::console::error_1(&JsValue::from_str(&message));
        post(&FromWorker::Error {
            message,
            fatal: true,
        });
    }));
    let (tx, rx) = unbounded::<Inbound>();
    let onmessage =
        Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| match decode(&ev.data()) {
            // At once, not after the unit of work in progress: a device goes
            // away under running computations.
            Ok((ToWorker::LoseDevice, _)) => lose_device(),
            Ok(msg) => {
                let _ = tx.unbounded_send(msg);
            }
            Err(e) => post(&FromWorker::Error {
                message: format!("worker got a malformed message: {e}"),
                fatal: false,
            }),
        });
    scope().set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    onmessage.forget();
    spawn_local(Driver::default().run(rx));
    post(&FromWorker::Ready);
}

/// A page message: `{msg: <JSON ToWorker>, files?: [ArrayBuffer], names?: [string]}`.
fn decode(v: &JsValue) -> Result<Inbound, String> {
    let text = Reflect::get(v, &"msg".into())
        .ok()
        .and_then(|m| m.as_string())
        .ok_or("no msg field")?;
    let msg: ToWorker = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let files = Reflect::get(v, &"files".into())
        .ok()
        .filter(|f| !f.is_undefined() && !f.is_null());
    let files = match files {
        Some(bufs) => {
            let bufs = js_sys::Array::from(&bufs);
            let names = js_sys::Array::from(&Reflect::get(v, &"names".into()).unwrap_or_default());
            Some(
                (0..bufs.length())
                    .map(|i| {
                        let name = names
                            .get(i)
                            .as_string()
                            .unwrap_or_else(|| format!("file {i}"));
                        (name, js_sys::Uint8Array::new(&bufs.get(i)).to_vec())
                    })
                    .collect(),
            )
        }
        None => None,
    };
    Ok((msg, files))
}

/// Destroys the WebGPU device (see [`ToWorker::LoseDevice`]).
fn lose_device() {
    match backend::wgpu_setup() {
        Some(setup) => setup.device.destroy(),
        None => post(&FromWorker::Error {
            message: "there is no WebGPU device to lose (training on the CPU)".into(),
            fatal: false,
        }),
    }
}

/// Resolves after the worker's event loop has run once (so queued messages
/// are delivered).
async fn yield_now() {
    let p = Promise::new(&mut |resolve, _| {
        let _ = scope().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
    });
    let _ = JsFuture::from(p).await;
}

struct Slot {
    run: Run,
    /// Optimiser steps the run takes.
    steps: u64,
    finished: bool,
}

#[derive(Default)]
struct Driver {
    /// The device and its kind, once chosen.
    device: Option<(Device, BackendKind)>,
    plans: Vec<RunPlan>,
    files: Files,
    runs: Vec<Slot>,
    generation: u64,
    playing: bool,
    step_request: bool,
    batch: Vec<Update>,
    last_flush: f64,
    last_yield: f64,
}

impl Driver {
    async fn run(mut self, mut rx: UnboundedReceiver<Inbound>) {
        loop {
            while let Ok((msg, file)) = rx.try_recv() {
                self.handle(msg, file).await;
            }
            if self.busy() {
                self.work().await;
                let t = now_ms();
                if t - self.last_flush >= FLUSH_MS {
                    self.flush();
                }
                if t - self.last_yield >= YIELD_MS {
                    yield_now().await;
                    self.last_yield = now_ms();
                }
            } else {
                self.flush();
                match rx.next().await {
                    Some((msg, file)) => self.handle(msg, file).await,
                    None => return,
                }
                self.last_yield = now_ms();
            }
        }
    }

    fn busy(&self) -> bool {
        (self.playing || self.step_request) && self.runs.iter().any(|s| !s.finished)
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            post(&FromWorker::Progress {
                generation: self.generation,
                updates: std::mem::take(&mut self.batch),
            });
        }
        self.last_flush = now_ms();
    }

    fn status(&mut self) {
        self.flush();
        let finished = !self.runs.is_empty() && self.runs.iter().all(|s| s.finished);
        post(&FromWorker::Status {
            playing: self.playing && !finished,
            finished,
        });
    }

    async fn handle(&mut self, msg: ToWorker, files: Option<Files>) {
        match msg {
            ToWorker::Init { prefer } => {
                if self.device.is_none() {
                    let (device, info) = init_backend(prefer).await;
                    let kind = if info.webgpu {
                        BackendKind::Wgpu
                    } else {
                        BackendKind::Cpu
                    };
                    self.device = Some((device, kind));
                    post(&FromWorker::Backend(info));
                }
            }
            ToWorker::Load { plans, play } => {
                if let Some(files) = files {
                    self.files = files;
                }
                self.plans = plans;
                self.rebuild().await;
                self.playing = play && !self.runs.is_empty();
                self.step_request = false;
                self.status();
            }
            ToWorker::Reset => {
                self.rebuild().await;
                self.playing = false;
                self.step_request = false;
                self.status();
            }
            ToWorker::Play => {
                self.playing = true;
                self.status();
            }
            ToWorker::Pause => {
                self.playing = false;
                self.status();
            }
            ToWorker::Step => {
                self.playing = false;
                self.step_request = true;
            }
            ToWorker::LoseDevice => lose_device(),
        }
    }

    /// Builds the runs of `self.plans` (all or none: a failure is reported
    /// and leaves no runs), and tells the page what was built.
    async fn rebuild(&mut self) {
        self.generation += 1;
        self.runs.clear();
        self.batch.clear();
        let Some((device, kind)) = self.device.clone() else {
            post(&FromWorker::Error {
                message: "internal: runs requested before the backend was chosen".into(),
                fatal: false,
            });
            return;
        };
        let mut infos = Vec::new();
        for plan in &self.plans {
            let files: Vec<UserFile> = self
                .files
                .iter()
                .map(|(name, bytes)| UserFile { name, bytes })
                .collect();
            let built = build(plan, &files, kind, &device).await;
            match built {
                Ok((run, info)) => {
                    self.runs.push(Slot {
                        run,
                        steps: info.steps,
                        finished: false,
                    });
                    infos.push(info);
                }
                Err(message) => {
                    self.runs.clear();
                    post(&FromWorker::Error {
                        message,
                        fatal: false,
                    });
                    post(&FromWorker::Loaded {
                        generation: self.generation,
                        runs: Vec::new(),
                    });
                    return;
                }
            }
            yield_now().await;
        }
        post(&FromWorker::Loaded {
            generation: self.generation,
            runs: infos,
        });
    }

    /// One round: a unit of work for every unfinished run (or, for a step
    /// request, one optimiser step and the measurement due after it).
    async fn work(&mut self) {
        let stepping = std::mem::take(&mut self.step_request);
        for i in 0..self.runs.len() {
            if self.runs[i].finished {
                continue;
            }
            loop {
                let ev = self.runs[i].run.next().await;
                let took_step = matches!(ev, Ok(Some(Event::Step { .. })));
                self.record(i, ev);
                if !stepping || self.runs[i].finished {
                    break;
                }
                if took_step {
                    // The row of a measurement due at this step comes next.
                    let every = self.runs[i].run.config().measure_every;
                    let s = self.runs[i].run.step();
                    if s.is_multiple_of(every) || s == self.runs[i].steps {
                        let ev = self.runs[i].run.next().await;
                        self.record(i, ev);
                    }
                    break;
                }
            }
        }
        if self.runs.iter().all(|s| s.finished) {
            self.playing = false;
            self.status();
        } else if stepping {
            self.status();
        }
    }

    fn record(&mut self, i: usize, ev: curvlab::Result<Option<Event>>) {
        match ev {
            Ok(Some(Event::Started { .. })) => {}
            Ok(Some(Event::Step { step, loss, .. })) => {
                push_update(&mut self.batch, Update::Step { run: i, step, loss })
            }
            Ok(Some(Event::Row(row))) => push_update(
                &mut self.batch,
                Update::Row {
                    run: i,
                    row: Box::new(row),
                },
            ),
            Ok(None) => {
                self.runs[i].finished = true;
                push_update(&mut self.batch, Update::Finished { run: i });
            }
            Err(e) => {
                self.runs[i].finished = true;
                push_update(
                    &mut self.batch,
                    Update::Failed {
                        run: i,
                        message: e.to_string(),
                    },
                );
            }
        }
    }
}

/// Loads a plan's data and builds its run; consumes the run's `Started`
/// event into the [`RunInfo`].
async fn build(
    plan: &RunPlan,
    files: &[UserFile<'_>],
    kind: BackendKind,
    device: &Device,
) -> Result<(Run, RunInfo), String> {
    let (train, test) = data::load(plan, files)?;
    let mut cfg = plan.config.clone();
    cfg.backend = kind;
    let mut run = Run::from_data(&cfg, &train, &test, device)
        .await
        .map_err(|e| e.to_string())?;
    let Ok(Some(Event::Started {
        params,
        train: n_train,
        test: n_test,
        measure_n,
        steps,
    })) = run.next().await
    else {
        return Err("internal: a new run did not start with Started".into());
    };
    let info = RunInfo {
        label: plan.label.clone(),
        config: cfg,
        data_name: train.name.clone(),
        params,
        steps,
        train: n_train,
        test: n_test,
        measure_n,
    };
    Ok((run, info))
}

/// What the browser says about its WebGPU adapter, or why there is none.
async fn request_adapter() -> Result<(String, bool), String> {
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

/// Chooses the device: WebGPU when preferred and granted and a test
/// computation on it reads back the right answer; the CPU otherwise, with the
/// reason.
async fn init_backend(prefer: BackendPref) -> (Device, BackendInfo) {
    let cpu = |reason: String| {
        (
            Device::flex(),
            BackendInfo {
                webgpu: false,
                adapter: None,
                software: false,
                fallback_reason: Some(reason),
            },
        )
    };
    if prefer == BackendPref::Cpu {
        return cpu("chosen in the settings".into());
    }
    let (name, software) = match request_adapter().await {
        Ok(a) => a,
        Err(reason) => {
            if prefer == BackendPref::Webgpu {
                post(&FromWorker::Error {
                    message: format!(
                        "WebGPU was asked for but is unavailable: {reason}; training on the CPU"
                    ),
                    fatal: false,
                });
            }
            return cpu(reason);
        }
    };
    let device = match backend::device_async(BackendKind::Wgpu).await {
        Ok(d) => d,
        Err(e) => return cpu(format!("WebGPU adapter {name} failed to start: {e}")),
    };
    if let Some(setup) = backend::wgpu_setup() {
        // A lost device (driver reset, GPU removed, or destroyed) ends this
        // worker's WebGPU: the page starts a new worker on the CPU.
        setup.device.set_device_lost_callback(|reason, message| {
            post(&FromWorker::Error {
                message: format!("the WebGPU device was lost ({reason:?}: {message})"),
                fatal: true,
            });
        });
    }
    // A computation read back asynchronously: proves the device works before a run depends on it.
    let probe = Tensor::<1>::from_floats([1.0f32, 2.0, 3.0, 4.0], &device)
        .mul_scalar(2.0)
        .sum();
    match probe.into_data_async().await {
        Ok(d) if d.try_to_vec::<f32>().ok().as_deref() == Some(&[20.0][..]) => {}
        Ok(d) => {
            return cpu(format!(
                "WebGPU adapter {name} computed a wrong test sum ({d:?})"
            ))
        }
        Err(e) => {
            return cpu(format!(
                "WebGPU adapter {name} failed a test computation: {e:?}"
            ))
        }
    }
    (
        device,
        BackendInfo {
            webgpu: true,
            adapter: Some(name),
            software,
            fallback_reason: None,
        },
    )
}
