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
use curvlab::data::cifar;
use curvlab::data::Dataset;
use curvlab::experiment::{Event, Run};
use curvlab::mechanism::{Mechanism, MechanismConfig};
use curvlab::regions::Bounds;
use futures_channel::mpsc::{unbounded, UnboundedReceiver};
use futures_lite::StreamExt;
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::data::{self, UserFile};
use crate::protocol::{
    push_update, BackendInfo, DataView, FromWorker, RunInfo, Thumb, ToWorker, Update,
};
use crate::settings::{BackendPref, DataPlan, RunPlan};

/// Longest time updates wait before they are sent to the page.
pub const FLUSH_MS: f64 = 100.0;
/// Longest stretch of work between yields to the event loop.
const YIELD_MS: f64 = 40.0;
/// The window over which steps per second are measured.
const RATE_MS: f64 = 1000.0;

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
/// are delivered). A `MessageChannel` message, not `setTimeout(0)`: browsers
/// clamp nested timeouts to 4 ms, which cost the CPU backend a tenth of its time.
async fn yield_now() {
    let p = Promise::new(&mut |resolve, _| {
        if post_to_self(&resolve).is_none() {
            let _ = scope().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
        }
    });
    let _ = JsFuture::from(p).await;
}

/// `new MessageChannel()`, `port1.onmessage = f`, `port2.postMessage(undefined)`
/// (through `Reflect`: no web-sys feature, so burn's web-sys build is shared).
fn post_to_self(f: &Function) -> Option<()> {
    let global = js_sys::global();
    let ctor: Function = Reflect::get(&global, &"MessageChannel".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let ch = Reflect::construct(&ctor, &js_sys::Array::new()).ok()?;
    let port1 = Reflect::get(&ch, &"port1".into()).ok()?;
    let port2 = Reflect::get(&ch, &"port2".into()).ok()?;
    Reflect::set(&port1, &"onmessage".into(), f).ok()?;
    let post: Function = Reflect::get(&port2, &"postMessage".into())
        .ok()?
        .dyn_into()
        .ok()?;
    post.call1(&port2, &JsValue::UNDEFINED).ok()?;
    Some(())
}

struct Slot {
    run: Run,
    /// Optimiser steps the run takes.
    steps: u64,
    finished: bool,
    /// The step of the latest measurement row.
    measured: Option<u64>,
    /// The plane of the decision regions (2-D data).
    bounds: Option<Bounds>,
    /// The training set and its input scale, for the thumbnails of image data.
    images: Option<(Dataset, f32)>,
    /// Optimiser steps and milliseconds of step work in the current rate window.
    rate_steps: u64,
    rate_ms: f64,
    steps_per_s: f64,
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
    /// On WebGPU (its first units of work compile kernels).
    webgpu: bool,
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
                    self.webgpu = info.webgpu;
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
                Ok((run, info, images)) => {
                    let bounds = match &info.view {
                        DataView::Plane { bounds, .. } => Some(*bounds),
                        _ => None,
                    };
                    self.runs.push(Slot {
                        run,
                        steps: info.steps,
                        finished: false,
                        measured: None,
                        bounds,
                        images,
                        rate_steps: 0,
                        rate_ms: 0.0,
                        steps_per_s: 0.0,
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
                self.announce(i);
                let t0 = now_ms();
                let ev = self.runs[i].run.next().await;
                let took_step = matches!(ev, Ok(Some(Event::Step { .. })));
                if took_step {
                    self.time_step(i, now_ms() - t0);
                }
                let row = match &ev {
                    Ok(Some(Event::Row(r))) if !r.diverged => Some(r.sharpness),
                    _ => None,
                };
                self.record(i, ev);
                if let Some(sharpness) = row {
                    self.mechanism(i, sharpness).await;
                }
                if !stepping || self.runs[i].finished {
                    break;
                }
                if took_step {
                    // The row of a measurement due at this step comes next.
                    let every = self.runs[i].run.config().measure_every;
                    let s = self.runs[i].run.step();
                    if s.is_multiple_of(every) || s == self.runs[i].steps {
                        self.announce(i);
                        let ev = self.runs[i].run.next().await;
                        let row = match &ev {
                            Ok(Some(Event::Row(r))) if !r.diverged => Some(r.sharpness),
                            _ => None,
                        };
                        self.record(i, ev);
                        if let Some(sharpness) = row {
                            self.mechanism(i, sharpness).await;
                        }
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

    /// Tells the page at once when run `i`'s next unit of work is slow: a
    /// measurement (Lanczos, Jacobian norms), or a first step on WebGPU
    /// (the adapter compiles its kernels; tens of seconds on a software one).
    fn announce(&mut self, i: usize) {
        let slot = &self.runs[i];
        let s = slot.run.step();
        let every = slot.run.config().measure_every;
        let measuring = (s.is_multiple_of(every) || s == slot.steps) && slot.measured != Some(s);
        let what = if measuring {
            let gpu = if self.webgpu && slot.measured.is_none() {
                " — the GPU compiles its kernels first"
            } else {
                ""
            };
            format!("measuring at step {s}: sharpness, Jacobian norms{gpu}")
        } else if self.webgpu && s == 0 {
            "first step: the GPU compiles its kernels".into()
        } else {
            return;
        };
        self.flush();
        post(&FromWorker::Working {
            generation: self.generation,
            what,
        });
    }

    /// Counts `ms` of step work of run `i` towards its steps per second.
    fn time_step(&mut self, i: usize, ms: f64) {
        let slot = &mut self.runs[i];
        slot.rate_steps += 1;
        slot.rate_ms += ms;
        if slot.rate_ms >= RATE_MS || slot.steps_per_s == 0.0 && slot.rate_steps >= 10 {
            slot.steps_per_s = slot.rate_steps as f64 * 1000.0 / slot.rate_ms.max(1e-3);
            slot.rate_steps = 0;
            slot.rate_ms = 0.0;
        }
    }

    /// The mechanism panel's content for run `i` after its row (a failure is
    /// reported in the console and skipped: the run goes on).
    async fn mechanism(&mut self, i: usize, sharpness: Option<f64>) {
        let slot = &self.runs[i];
        let cfg = MechanismConfig {
            region_cells: if slot.bounds.is_some() { 48 } else { 0 },
            top_jacobian: if slot.bounds.is_some() || slot.images.is_some() {
                5
            } else {
                0
            },
            ..MechanismConfig::default()
        };
        match slot.run.mechanism(sharpness, slot.bounds, &cfg).await {
            Ok(m) => {
                let m = finite(m);
                let thumbs = match &slot.images {
                    Some((data, scale)) => m
                        .top_jacobian
                        .iter()
                        .map(|e| Thumb {
                            index: e.index,
                            rgb: rgb_bytes(data.input(e.index), *scale),
                        })
                        .collect(),
                    None => Vec::new(),
                };
                push_update(
                    &mut self.batch,
                    Update::Mechanism {
                        run: i,
                        mechanism: Box::new(m),
                        thumbs,
                    },
                );
            }
            Err(e) => web_sys::console::warn_1(&JsValue::from_str(&format!(
                "mechanism panel of run {i}: {e}"
            ))),
        }
    }

    fn record(&mut self, i: usize, ev: curvlab::Result<Option<Event>>) {
        match ev {
            Ok(Some(Event::Started { .. })) => {}
            Ok(Some(Event::Step { step, loss, .. })) => {
                let steps_per_s = self.runs[i].steps_per_s;
                push_update(
                    &mut self.batch,
                    Update::Step {
                        run: i,
                        step,
                        loss,
                        steps_per_s,
                    },
                )
            }
            Ok(Some(Event::Row(row))) => {
                self.runs[i].measured = Some(row.step);
                push_update(
                    &mut self.batch,
                    Update::Row {
                        run: i,
                        row: Box::new(row),
                    },
                )
            }
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
) -> Result<(Run, RunInfo, Option<(Dataset, f32)>), String> {
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
    let subset = train.first(measure_n);
    let (view, images) = if train.input_len() == 2 {
        let bounds = Bounds::around(&subset, 0.08).map_err(|e| e.to_string())?;
        (
            DataView::Plane {
                points: subset.x.chunks(2).map(|p| [p[0], p[1]]).collect(),
                labels: subset.y.clone(),
                classes: train.classes,
                bounds,
            },
            None,
        )
    } else if train.input_shape == [3, 32, 32] {
        let scale = match plan.data {
            DataPlan::CifarFile { input_scale, .. } => input_scale,
            _ => 1.0,
        };
        (
            DataView::Images {
                classes: train.classes,
            },
            Some((subset, scale)),
        )
    } else {
        (DataView::Other, None)
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
        view,
    };
    Ok((run, info, images))
}

/// A normalised CIFAR input (`[3, 32, 32]`, (x/255 − mean)/std · scale) back
/// to RGB bytes `[32, 32, 3]`.
fn rgb_bytes(x: &[f32], scale: f32) -> Vec<u8> {
    let plane = 32 * 32;
    let mut out = vec![0u8; 3 * plane];
    for c in 0..3 {
        for p in 0..plane {
            let v = (x[c * plane + p] / scale * cifar::STD[c] + cifar::MEAN[c]) * 255.0;
            out[3 * p + c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// Drops what JSON cannot carry (NaN, ±∞ from a diverging run): a slice with
/// such a value is left out.
fn finite(mut m: Mechanism) -> Mechanism {
    if let Some(s) = &m.slice {
        let ok = s
            .loss
            .iter()
            .chain(&s.t)
            .chain([&s.loss0, &s.slope, &s.curvature, &s.t_step, &s.loss_step])
            .all(|v| v.is_finite());
        if !ok {
            m.slice = None;
        }
    }
    if m.regions
        .as_ref()
        .is_some_and(|g| g.confidence.iter().any(|c| !c.is_finite()))
    {
        m.regions = None;
    }
    m.top_jacobian.retain(|e| e.norm.is_finite());
    m
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
    let (name, software) = match crate::adapter::request_adapter().await {
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
