//! The page: builds the controls from [`FIELDS`], keeps the URL in step with
//! them, talks to the training worker, and redraws the plots as rows arrive.
//! It holds state and messages only; every number comes from the worker.
//!
//! The trainer — the worker and its WebAssembly module, most of the page's
//! download — loads only when training is first asked for (Play, Step, an
//! `autoplay=1` link, or data files to check); until then the plots, legend
//! and progress line show the runs as planned, from the settings alone.
//!
//! Test hooks (read by tests/browser): `body[data-state]` is `starting`,
//! `loading`, `ready`, `playing`, `paused`, `finished` or `error`;
//! `body[data-backend]` is `webgpu` or `cpu` once chosen.

use std::cell::RefCell;
use std::rc::Rc;

use curvlab::loss::LossKind;
use curvlab::mechanism::Mechanism;
use curvlab::record::MetricsRow;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    DragEvent, Element, Event, HtmlButtonElement, HtmlCanvasElement, HtmlElement, HtmlImageElement,
    HtmlInputElement, HtmlSelectElement, KeyboardEvent, MessageEvent, Worker,
};

use crate::bound::BoundNote;
use crate::dom::{by_id, document, download_blob, download_text, el, on, set_hidden, window};
use crate::export::{to_csv, Export, RunExport};
use crate::help::help;
use crate::plot::{figure_svg, Frame, Hover, Panel, Series, PALETTE};
use crate::presets::{PRESETS, STORY};
use crate::protocol::{BackendInfo, DataView, FromWorker, RunInfo, Thumb, ToWorker, Update};
use crate::regions::{images_svg, plane_svg};
use crate::settings::{
    field, BackendPref, DataKind, FieldKind, PageState, RunPlan, Settings, Speed, FIELDS,
};
use crate::slice::slice_svg;
use crate::svg::Live;

/// Restarts of a crashed worker before the page gives up.
const MAX_RESTARTS: u32 = 2;

struct RunView {
    info: RunInfo,
    rows: Vec<MetricsRow>,
    step: u64,
    finished: bool,
    failed: Option<String>,
    /// The latest optimiser step's (minibatch) loss.
    loss: Option<f64>,
    /// Optimiser steps per second of training work, as the worker measures it.
    steps_per_s: f64,
    /// The mechanism panel's content after the latest row.
    mechanism: Option<(Box<Mechanism>, Vec<Thumb>)>,
    /// Planned on the page, not yet built by the worker (the trainer is not
    /// loaded): `info` holds what the settings say, without the data's facts.
    planned: bool,
}

impl RunView {
    fn new(info: RunInfo) -> RunView {
        RunView {
            info,
            rows: Vec::new(),
            step: 0,
            finished: false,
            failed: None,
            loss: None,
            steps_per_s: 0.0,
            mechanism: None,
            planned: false,
        }
    }

    /// A run as planned by the settings, before the trainer has built it.
    fn planned(plan: &RunPlan) -> RunView {
        let kind = match plan.data {
            crate::settings::DataPlan::Config => "synthetic δ-good set",
            crate::settings::DataPlan::Toy(_) => "2-D toy set",
            crate::settings::DataPlan::CifarFile { .. } => "CIFAR-10 files",
        };
        let info = RunInfo {
            label: plan.label.clone(),
            config: plan.config.clone(),
            data_name: format!("{kind} — built when training starts"),
            params: 0,
            steps: plan.config.steps,
            train: 0,
            test: 0,
            measure_n: 0,
            view: DataView::Other,
        };
        RunView {
            planned: true,
            ..RunView::new(info)
        }
    }
}

/// What the page asked of the trainer before it could answer (while it loads).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    /// Build the runs (a data file to check).
    Load,
    /// Build the runs and train.
    Play,
    /// Build the runs and take one step.
    Step,
}

/// CIFAR-10's class names, short (the image panel's captions).
const CIFAR10_CLASSES: [&str; 10] = [
    "plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
];

struct App {
    /// The URL query the page was opened with (presets re-apply over the backend's defaults).
    initial_query: String,
    page: PageState,
    /// The training worker, once training has been asked for.
    worker: Option<Worker>,
    /// While the trainer's module downloads and starts: bytes received, and
    /// the response's length (0 when unknown).
    trainer: Option<(f64, f64)>,
    /// Asked of the trainer while it was loading.
    want: Option<Want>,
    /// The user changed a control before the page chose its defaults.
    edited: bool,
    backend: Option<BackendInfo>,
    /// Generation of the runs on show (the worker's latest `Loaded`).
    generation: u64,
    runs: Vec<RunView>,
    playing: bool,
    finished: bool,
    /// The CIFAR files the user supplied (name, bytes).
    files: Vec<(String, Vec<u8>)>,
    redraw_pending: bool,
    restarts: u32,
    /// Set when a crash on WebGPU moved training to the CPU.
    forced_cpu: Option<String>,
    /// Play once the restarted worker has loaded the runs.
    resume: bool,
    /// The slow unit of work the worker announced, and when (ms).
    working: Option<(String, f64)>,
    /// The run the mechanism panel shows.
    focus: usize,
    /// The four plots on the page, patched in place ([`Panel::ALL`]'s order).
    plots: RefCell<[Live; 4]>,
    /// The plot under the pointer and the pointer's x in its SVG units.
    hover: Option<(Panel, f64)>,
}

type Shared = Rc<RefCell<App>>;

/// Entry point of the app binary.
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        let msg = format!("curvlab page error: {info}");
        web_sys::console::error_1(&JsValue::from_str(&msg));
        if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
            if let Some(m) = doc.get_element_by_id("message") {
                m.set_text_content(Some(&msg));
                set_hidden(&m, false);
            }
            if let Some(b) = doc.body() {
                let _ = b.set_attribute("data-state", "error");
            }
        }
    }));
    let query = window().location().search().unwrap_or_default();
    let page = PageState::from_query(&query, &Settings::small());
    let app = Rc::new(RefCell::new(App {
        initial_query: query,
        page,
        worker: None,
        trainer: None,
        want: None,
        edited: false,
        backend: None,
        generation: 0,
        runs: Vec::new(),
        playing: false,
        finished: false,
        files: Vec::new(),
        redraw_pending: false,
        restarts: 0,
        forced_cpu: None,
        resume: false,
        working: None,
        focus: 0,
        plots: RefCell::default(),
        hover: None,
    }));
    set_state("starting");
    build_presets();
    build_story();
    build_controls(&app);
    bind_tooltips();
    bind_focus(&app);
    bind_plots(&app);
    tick_working(&app);
    bind_toolbar(&app);
    bind_exports(&app);
    bind_file(&app);
    {
        let a = app.borrow();
        show_settings(&a.page.settings);
        apply_embed(&a.page);
        if !a.page.errors.is_empty() {
            show_message(&format!(
                "Some of the link's settings were not used: {}",
                a.page.errors.join("; ")
            ));
        }
    }
    expose_debug(&app);
    wasm_bindgen_futures::spawn_local(configure(app));
}

/// Reads the link over the defaults of the backend the trainer will get
/// (smaller on software adapters and the CPU: the page asks the browser for
/// its WebGPU adapter, which needs no download), then shows the planned runs,
/// or loads the trainer and plays when the link says `autoplay=1`.
async fn configure(app: Shared) {
    let prefer = app.borrow().page.settings.backend;
    let speed = crate::adapter::expected_speed(prefer).await;
    let autoplay = {
        let mut a = app.borrow_mut();
        if !a.edited {
            a.page = PageState::from_query(&a.initial_query, &Settings::for_speed(speed));
            show_settings(&a.page.settings);
        }
        write_url(&a.page);
        a.page.autoplay
    };
    if autoplay {
        request_training(&app, Want::Play);
    }
    load(&app, false);
}

/// Loads the trainer (the worker and its module) if it is not loaded, and
/// remembers what to do once it has built the runs.
fn request_training(app: &Shared, want: Want) {
    let mut a = app.borrow_mut();
    if a.worker.is_none() {
        a.worker = Some(spawn_worker());
        a.trainer = Some((0.0, 0.0));
        drop(a);
        attach_worker(app);
        a = app.borrow_mut();
    }
    // A file to check does not cancel a Play or Step asked for before it.
    if want != Want::Load || a.want.is_none() {
        a.want = Some(want);
    }
    set_state("loading");
    drop(a);
    schedule_redraw(app);
}

/// The trainer has built the runs the page shows (not only planned them).
fn trainer_ready(a: &App) -> bool {
    a.worker.is_some() && a.backend.is_some() && a.runs.first().is_some_and(|r| !r.planned)
}

/// `window.curvlabDebug.loseDevice()`: destroys the worker's WebGPU device, as
/// a driver reset would, to exercise the fallback to the CPU (used by the
/// browser tests; harmless otherwise).
fn expose_debug(app: &Shared) {
    let a = app.clone();
    let lose = Closure::<dyn FnMut()>::new(move || {
        to_worker(&a.borrow(), &ToWorker::LoseDevice);
    });
    let debug = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&debug, &"loseDevice".into(), lose.as_ref());
    lose.forget();
    let _ = js_sys::Reflect::set(&window(), &"curvlabDebug".into(), &debug);
}

fn spawn_worker() -> Worker {
    Worker::new("./worker_loader.js").expect("the worker script loads")
}

fn set_state(s: &str) {
    if let Some(b) = document().body() {
        let _ = b.set_attribute("data-state", s);
    }
}

fn show_message(text: &str) {
    let m: Element = by_id("message");
    m.set_text_content(Some(text));
    set_hidden(&m, text.is_empty());
}

/// Posts `msg` to the worker, if there is one.
fn to_worker(a: &App, msg: &ToWorker) {
    if let Some(w) = &a.worker {
        send(w, msg, None);
    }
}

/// Posts `msg` (and files) to the worker: `{msg: JSON, files?, names?}`.
fn send(worker: &Worker, msg: &ToWorker, files: Option<&[(String, Vec<u8>)]>) {
    let obj = js_sys::Object::new();
    let json = serde_json::to_string(msg).expect("page messages serialise");
    let _ = js_sys::Reflect::set(&obj, &"msg".into(), &json.into());
    if let Some(files) = files {
        let bufs = js_sys::Array::new();
        let names = js_sys::Array::new();
        for (name, bytes) in files {
            bufs.push(&js_sys::Uint8Array::from(&bytes[..]).buffer());
            names.push(&name.into());
        }
        let _ = js_sys::Reflect::set(&obj, &"files".into(), &bufs);
        let _ = js_sys::Reflect::set(&obj, &"names".into(), &names);
    }
    if let Err(e) = worker.post_message(&obj) {
        show_message(&format!("could not reach the training worker: {e:?}"));
    }
}

fn attach_worker(app: &Shared) {
    let Some(worker) = app.borrow().worker.clone() else {
        return;
    };
    let a = app.clone();
    on::<MessageEvent>(&worker, "message", move |ev| {
        let Some(text) = ev.data().as_string() else {
            // The loader's download progress (web/worker_loader.js):
            // `{trainer: {loaded, total}}`.
            let p = js_sys::Reflect::get(&ev.data(), &"trainer".into()).unwrap_or_default();
            let num = |k: &str| {
                js_sys::Reflect::get(&p, &k.into())
                    .ok()
                    .and_then(|v| v.as_f64())
            };
            if let Some(loaded) = num("loaded") {
                let mut b = a.borrow_mut();
                if b.trainer.is_some() {
                    b.trainer = Some((loaded, num("total").unwrap_or(0.0)));
                    drop(b);
                    schedule_redraw(&a);
                }
            }
            return;
        };
        match serde_json::from_str::<FromWorker>(&text) {
            Ok(msg) => on_worker_message(&a, msg),
            Err(e) => show_message(&format!("unreadable message from the worker: {e}")),
        }
    });
    let a = app.clone();
    on::<web_sys::ErrorEvent>(&worker, "error", move |ev| {
        ev.prevent_default();
        worker_crashed(&a, format!("the training worker failed: {}", ev.message()));
    });
}

/// A fatal worker error: start a new worker (on the CPU when WebGPU was in
/// use) and reload the runs, a few times at most.
fn worker_crashed(app: &Shared, reason: String) {
    let (was_webgpu, restarts) = {
        let a = app.borrow();
        (a.backend.as_ref().is_some_and(|b| b.webgpu), a.restarts)
    };
    if restarts >= MAX_RESTARTS {
        show_message(&format!("{reason}. Reload the page to try again."));
        set_state("error");
        return;
    }
    {
        let mut a = app.borrow_mut();
        a.restarts += 1;
        if let Some(w) = &a.worker {
            w.terminate();
        }
        a.worker = Some(spawn_worker());
        a.trainer = Some((0.0, 0.0));
        a.backend = None;
        a.resume = a.playing;
        a.playing = false;
        if was_webgpu {
            a.forced_cpu = Some(reason.clone());
        }
    }
    attach_worker(app);
    let note = if was_webgpu {
        "; continuing on the CPU"
    } else {
        "; restarted it"
    };
    show_message(&format!("{reason}{note}."));
}

fn on_worker_message(app: &Shared, msg: FromWorker) {
    match msg {
        FromWorker::Ready => {
            let a = app.borrow();
            // After a crash on WebGPU, stay on the CPU.
            let prefer = if a.forced_cpu.is_some() {
                BackendPref::Cpu
            } else {
                a.page.settings.backend
            };
            to_worker(&a, &ToWorker::Init { prefer });
        }
        FromWorker::Backend(info) => {
            let play = {
                let mut a = app.borrow_mut();
                a.trainer = None;
                let body = document().body().expect("body");
                let _ =
                    body.set_attribute("data-backend", if info.webgpu { "webgpu" } else { "cpu" });
                let mut line = info.describe();
                if let Some(r) = &a.forced_cpu {
                    line = format!("{line} — moved off WebGPU after: {r}");
                }
                let backend_line: Element = by_id("backend");
                backend_line.set_text_content(Some(&format!("Backend: {line} ")));
                if info.speed() == Speed::Software {
                    // The same run on the CPU backend, one click away.
                    let mut cpu = a.page.clone();
                    cpu.settings.backend = BackendPref::Cpu;
                    let link = el(
                        "a",
                        &[("href", &format!("?{}", cpu.to_query())), ("id", "use-cpu")],
                        "Use the CPU instead",
                    );
                    backend_line.append_child(&link).ok();
                }
                a.backend = Some(info);
                let want_play = a.want == Some(Want::Play);
                if want_play {
                    a.want = None;
                }
                // An autoplay link plays on every start of the trainer, a restart
                // after a crash too (the crash may have stopped the runs first).
                want_play || a.page.autoplay || std::mem::take(&mut a.resume)
            };
            load(app, play);
        }
        FromWorker::Loaded { generation, runs } => {
            let mut a = app.borrow_mut();
            a.generation = generation;
            a.finished = false;
            a.runs = runs.into_iter().map(RunView::new).collect();
            a.working = None;
            if a.focus >= a.runs.len() {
                a.focus = 0;
            }
            if a.runs.is_empty() {
                set_state("error");
            } else {
                set_state(if a.playing { "playing" } else { "ready" });
            }
            // A Step asked for while the trainer loaded.
            if a.want.take() == Some(Want::Step) && !a.runs.is_empty() {
                to_worker(&a, &ToWorker::Step);
            }
            drop(a);
            schedule_redraw(app);
        }
        FromWorker::Progress {
            generation,
            updates,
        } => {
            let mut a = app.borrow_mut();
            if generation != a.generation {
                return;
            }
            a.working = None;
            for u in updates {
                let Some(r) = a.runs.get_mut(u.run()) else {
                    continue;
                };
                match u {
                    Update::Step {
                        step,
                        loss,
                        steps_per_s,
                        ..
                    } => {
                        r.step = step;
                        r.loss = Some(loss);
                        if steps_per_s > 0.0 {
                            r.steps_per_s = steps_per_s;
                        }
                    }
                    Update::Row { row, .. } => {
                        r.step = r.step.max(row.step);
                        r.rows.push(*row);
                    }
                    Update::Mechanism {
                        mechanism, thumbs, ..
                    } => r.mechanism = Some((mechanism, thumbs)),
                    Update::Finished { .. } => r.finished = true,
                    Update::Failed { message, .. } => {
                        r.finished = true;
                        r.failed = Some(message.clone());
                        show_message(&format!("run {} failed: {message}", r.info.label));
                    }
                }
            }
            drop(a);
            schedule_redraw(app);
        }
        FromWorker::Status { playing, finished } => {
            let mut a = app.borrow_mut();
            a.playing = playing;
            a.finished = finished;
            let state = if finished {
                "finished"
            } else if playing {
                "playing"
            } else if a.runs.is_empty() {
                "error"
            } else {
                "paused"
            };
            set_state(state);
            if !playing {
                a.working = None;
            }
            let play: HtmlButtonElement = by_id("btn-play");
            play.set_text_content(Some(if playing {
                "Pause"
            } else if finished {
                "Run again"
            } else {
                "Play"
            }));
            play.set_title(if finished {
                "The run is finished. Run again: back to step 0 with the same initial weights (the plots start over)"
            } else {
                help("play").unwrap_or_default()
            });
            play.set_attribute("aria-pressed", if playing { "true" } else { "false" })
                .ok();
            drop(a);
            schedule_redraw(app);
        }
        FromWorker::Working { generation, what } => {
            let mut a = app.borrow_mut();
            if generation == a.generation {
                a.working = Some((what, js_sys::Date::now()));
                drop(a);
                schedule_redraw(app);
            }
        }
        FromWorker::Error { message, fatal } => {
            if fatal {
                worker_crashed(app, message);
            } else {
                show_message(&message);
            }
        }
    }
}

/// Sends the current settings' runs to the worker (replacing any).
fn load(app: &Shared, play: bool) {
    let a = app.borrow();
    let plans: Vec<RunPlan> = match a.page.settings.plans() {
        Ok(p) => p,
        Err(e) => {
            show_message(&e);
            set_state("error");
            return;
        }
    };
    let needs_file = a.page.settings.data == DataKind::Cifar;
    if needs_file && a.files.is_empty() {
        show_message("Choose CIFAR-10 binary files (data_batch_1.bin, and test_batch.bin for the test set) or drop them on the page to train on them.");
        set_state("error");
        return;
    }
    let (Some(worker), Some(_)) = (&a.worker, &a.backend) else {
        // No trainer yet (or it is still loading): show the runs as planned;
        // the trainer builds them once it is ready.
        let loading = a.worker.is_some();
        drop(a);
        let mut a = app.borrow_mut();
        a.runs = plans.iter().map(RunView::planned).collect();
        a.finished = false;
        a.working = None;
        if a.focus >= a.runs.len() {
            a.focus = 0;
        }
        set_state(if loading { "loading" } else { "ready" });
        drop(a);
        schedule_redraw(app);
        return;
    };
    set_state("loading");
    // The worker keeps the files; they travel again after a worker restart.
    let files = needs_file.then_some(&a.files[..]);
    send(worker, &ToWorker::Load { plans, play }, files);
}

fn write_url(page: &PageState) {
    let q = page.to_query();
    let url = format!("?{q}");
    if let Ok(h) = window().history() {
        let _ = h.replace_state_with_url(&JsValue::NULL, "", Some(&url));
    }
    if let Some(a) = document().get_element_by_id("permalink") {
        let _ = a.set_attribute("href", &url);
    }
}

/// The guided story: one step per idea, each a preset with what to watch for.
fn build_story() {
    let list: Element = by_id("story-steps");
    for (i, st) in STORY.iter().enumerate() {
        let li = el(
            "li",
            &[("class", "story-step"), ("data-panel", st.panel)],
            "",
        );
        li.append_child(&el("h3", &[], st.title)).ok();
        li.append_child(&el("p", &[], st.text)).ok();
        let watch = el("p", &[("class", "watch")], "");
        watch.append_child(&el("strong", &[], "Watch for: ")).ok();
        watch.append_child(&el("span", &[], st.watch)).ok();
        li.append_child(&watch).ok();
        let href = format!("?preset={}&story={}&autoplay=1", st.preset, i + 1);
        li.append_child(&el(
            "a",
            &[
                ("href", &href),
                ("class", "story-go"),
                ("data-preset", st.preset),
            ],
            &format!("Show me ▸ {}", st.button),
        ))
        .ok();
        list.append_child(&li).ok();
    }
    // The step the page was opened from (?story=N) is marked, and its panel outlined.
    let q = window().location().search().unwrap_or_default();
    if let Some(n) = crate::settings::parse_query(&q)
        .into_iter()
        .find(|(k, _)| k == "story")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        let steps = list.query_selector_all("li.story-step").ok();
        let li = steps
            .and_then(|s| s.item(n.saturating_sub(1) as u32))
            .and_then(|node| node.dyn_into::<Element>().ok());
        if let Some(li) = li {
            li.class_list().add_1("current").ok();
            if let Some(panel) = li.get_attribute("data-panel") {
                if let Some(fig) = document().get_element_by_id(&format!("plot-{panel}")) {
                    fig.class_list().add_1("watched").ok();
                }
            }
        }
    }
}

/// A tooltip on every control's label and input, and on the buttons.
fn bind_tooltips() {
    for f in FIELDS {
        if let Some(h) = help(f.key) {
            by_id::<Element>(&format!("wrap-{}", f.key))
                .set_attribute("title", h)
                .ok();
            by_id::<Element>(&format!("ctl-{}", f.key))
                .set_attribute("title", h)
                .ok();
        }
    }
    for b in ["play", "step", "reset"] {
        if let Some(h) = help(b) {
            by_id::<Element>(&format!("btn-{b}"))
                .set_attribute("title", h)
                .ok();
        }
    }
    if let Some(h) = help("file") {
        by_id::<Element>("ctl-file").set_attribute("title", h).ok();
    }
}

/// The mechanism panel's run buttons.
fn bind_focus(app: &Shared) {
    let a = app.clone();
    on::<Event>(&by_id::<HtmlElement>("mechanism-run"), "click", move |ev| {
        let run = ev
            .target()
            .and_then(|t| t.dyn_into::<Element>().ok())
            .and_then(|e| e.get_attribute("data-run"))
            .and_then(|v| v.parse::<usize>().ok());
        if let Some(k) = run {
            a.borrow_mut().focus = k;
            schedule_redraw(&a);
        }
    });
}

/// While the worker is busy with a slow unit of work, the progress line's
/// seconds count up once a second.
fn tick_working(app: &Shared) {
    let a = app.clone();
    let tick = Closure::<dyn FnMut()>::new(move || {
        let busy = a.try_borrow().map(|a| a.working.is_some()).unwrap_or(false);
        if busy {
            schedule_redraw(&a);
        }
    });
    let _ = window().set_interval_with_callback_and_timeout_and_arguments_0(
        tick.as_ref().unchecked_ref(),
        1000,
    );
    tick.forget();
}

fn build_presets() {
    let list: Element = by_id("presets");
    for p in PRESETS {
        let li = el("li", &[], "");
        let a = el(
            "a",
            &[("href", &format!("?preset={}", p.name)), ("title", p.blurb)],
            p.title,
        );
        li.append_child(&a).ok();
        li.append_child(&el("span", &[("class", "blurb")], p.blurb))
            .ok();
        list.append_child(&li).ok();
    }
}

/// Builds one labelled input per [`FIELDS`] entry inside its group's fieldset.
fn build_controls(app: &Shared) {
    for f in FIELDS {
        let group: Element = by_id(&format!("group-{}", f.group));
        let id = format!("ctl-{}", f.key);
        let wrap = el(
            "div",
            &[("class", "control"), ("id", &format!("wrap-{}", f.key))],
            "",
        );
        let label = el("label", &[("for", &id)], f.label);
        let input: Element = match f.kind {
            FieldKind::Number { min, max, step } => el(
                "input",
                &[
                    ("type", "number"),
                    ("id", &id),
                    ("min", &min.to_string()),
                    ("max", &max.to_string()),
                    ("step", "any"),
                    ("data-step", &step.to_string()),
                    ("inputmode", "decimal"),
                ],
                "",
            ),
            FieldKind::Choice(choices) => {
                let s = el("select", &[("id", &id)], "");
                for (v, text) in choices() {
                    s.append_child(&el("option", &[("value", v)], text)).ok();
                }
                s
            }
            FieldKind::Toggle => el("input", &[("type", "checkbox"), ("id", &id)], ""),
            FieldKind::List => el(
                "input",
                &[("type", "text"), ("id", &id), ("spellcheck", "false")],
                "",
            ),
        };
        let err = el(
            "span",
            &[
                ("class", "field-error"),
                ("id", &format!("err-{}", f.key)),
                ("aria-live", "polite"),
            ],
            "",
        );
        input
            .set_attribute("aria-describedby", &format!("err-{}", f.key))
            .ok();
        if matches!(f.kind, FieldKind::Toggle) {
            wrap.append_child(&input).ok();
            wrap.append_child(&label).ok();
        } else {
            wrap.append_child(&label).ok();
            wrap.append_child(&input).ok();
        }
        wrap.append_child(&err).ok();
        group.append_child(&wrap).ok();
        if f.key == "data" {
            // The CIFAR file picker (in index.html) sits right under the dataset menu.
            wrap.after_with_node_1(&by_id::<Element>("wrap-file")).ok();
        }
        let a = app.clone();
        let key = f.key;
        on::<Event>(&input, "change", move |_| control_changed(&a, key));
    }
}

fn control_value(key: &str) -> String {
    let id = format!("ctl-{key}");
    let e: Element = by_id(&id);
    if let Some(i) = e.dyn_ref::<HtmlInputElement>() {
        if i.type_() == "checkbox" {
            return if i.checked() { "1" } else { "0" }.into();
        }
        return i.value();
    }
    if let Some(s) = e.dyn_ref::<HtmlSelectElement>() {
        return s.value();
    }
    String::new()
}

fn control_changed(app: &Shared, key: &str) {
    let f = field(key).expect("controls come from FIELDS");
    let value = control_value(key);
    let err: Element = by_id(&format!("err-{key}"));
    let input: Element = by_id(&format!("ctl-{key}"));
    let mut s = app.borrow().page.settings.clone();
    if let Err(e) = (f.set)(&mut s, &value) {
        err.set_text_content(Some(&e));
        input.set_attribute("aria-invalid", "true").ok();
        return;
    }
    err.set_text_content(Some(""));
    input.remove_attribute("aria-invalid").ok();
    let backend_changed = s.backend != app.borrow().page.settings.backend;
    {
        let mut a = app.borrow_mut();
        a.page.settings = s;
        a.page.preset = None;
        a.edited = true;
        show_settings(&a.page.settings);
        write_url(&a.page);
    }
    show_message("");
    if backend_changed {
        // A new backend needs a new worker: reload the page with the new URL.
        let _ = window().location().reload();
        return;
    }
    let playing = app.borrow().playing;
    load(app, playing);
}

/// Puts `s` into the controls and hides the ones that do not apply.
fn show_settings(s: &Settings) {
    for f in FIELDS {
        let e: Element = by_id(&format!("ctl-{}", f.key));
        let v = (f.get)(s);
        if let Some(i) = e.dyn_ref::<HtmlInputElement>() {
            if i.type_() == "checkbox" {
                i.set_checked(v == "1");
            } else {
                i.set_value(&v);
            }
        } else if let Some(sel) = e.dyn_ref::<HtmlSelectElement>() {
            sel.set_value(&v);
        }
        let wrap: Element = by_id(&format!("wrap-{}", f.key));
        let varied = s.vary.key() == Some(f.key);
        set_hidden(&wrap, !(f.applies)(s));
        if let Some(i) = e.dyn_ref::<HtmlInputElement>() {
            i.set_disabled(varied);
            i.set_title(if varied {
                "Set by the compared values (one run per value): edit them under “Compare runs”"
            } else {
                help(f.key).unwrap_or_default()
            });
        }
    }
    set_hidden(&by_id::<Element>("wrap-file"), s.data != DataKind::Cifar);
}

fn apply_embed(page: &PageState) {
    if !page.embed {
        return;
    }
    let body = document().body().expect("body");
    body.class_list().add_1("embed").ok();
    let show: Vec<&str> = if page.show.is_empty() {
        vec!["play", "step", "reset"]
    } else {
        page.show.iter().map(String::as_str).collect()
    };
    for b in ["play", "step", "reset"] {
        set_hidden(&by_id::<Element>(&format!("btn-{b}")), !show.contains(&b));
    }
    set_hidden(&by_id::<Element>("exports"), !show.contains(&"export"));
    // A shown control that the preset varies across runs would sit disabled:
    // show the compared values instead (they are what the runs differ in).
    let mut show = show;
    if let Some(varied) = page.settings.vary.key() {
        if show.contains(&varied) {
            show.retain(|k| *k != varied);
            if !show.contains(&"values") {
                show.push("values");
            }
            if let (Some(f), Some(label)) = (
                field(varied),
                document()
                    .query_selector("label[for=ctl-values]")
                    .ok()
                    .flatten(),
            ) {
                label.set_text_content(Some(&format!("{} values (one run each)", f.short)));
            }
        }
    }
    let any_control = FIELDS
        .iter()
        .any(|f| show.contains(&f.key) && (f.applies)(&page.settings));
    set_hidden(&by_id::<Element>("controls"), !any_control);
    for f in FIELDS {
        if !show.contains(&f.key) {
            by_id::<Element>(&format!("wrap-{}", f.key))
                .class_list()
                .add_1("embed-hidden")
                .ok();
        }
    }
    // Link to the full page with the same state.
    let full = PageState {
        embed: false,
        show: Vec::new(),
        ..page.clone()
    };
    let link: Element = by_id("open-full");
    link.set_attribute("href", &format!("?{}", full.to_query()))
        .ok();
    set_hidden(&link, false);
}

fn bind_toolbar(app: &Shared) {
    let a = app.clone();
    on::<Event>(&by_id::<HtmlElement>("btn-play"), "click", move |_| {
        toggle_play(&a)
    });
    let a = app.clone();
    on::<Event>(&by_id::<HtmlElement>("btn-step"), "click", move |_| {
        step(&a)
    });
    let a = app.clone();
    on::<Event>(&by_id::<HtmlElement>("btn-reset"), "click", move |_| {
        reset(&a)
    });
    let a = app.clone();
    on::<KeyboardEvent>(&document(), "keydown", move |ev| {
        if ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
            return;
        }
        let tag = ev
            .target()
            .and_then(|t| t.dyn_into::<Element>().ok())
            .map(|e| e.tag_name().to_lowercase())
            .unwrap_or_default();
        let key = ev.key();
        if matches!(tag.as_str(), "input" | "select" | "textarea") {
            return;
        }
        // Space and Enter keep their own meaning on a focused button or link.
        if matches!(tag.as_str(), "button" | "a") && matches!(key.as_str(), " " | "Enter") {
            return;
        }
        match key.as_str() {
            " " | "k" => {
                ev.prevent_default();
                toggle_play(&a);
            }
            "s" => step(&a),
            "r" => reset(&a),
            _ => {}
        }
    });
}

fn toggle_play(app: &Shared) {
    let a = app.borrow();
    if a.runs.is_empty() {
        return;
    }
    if !trainer_ready(&a) {
        // Play loads the trainer; pressed again while it loads, it cancels.
        let cancel = a.worker.is_some() && a.want == Some(Want::Play);
        drop(a);
        if cancel {
            app.borrow_mut().want = None;
            schedule_redraw(app);
        } else {
            request_training(app, Want::Play);
        }
        return;
    }
    if a.finished {
        drop(a);
        reset(app);
        to_worker(&app.borrow(), &ToWorker::Play);
        return;
    }
    to_worker(
        &a,
        if a.playing {
            &ToWorker::Pause
        } else {
            &ToWorker::Play
        },
    );
}

fn step(app: &Shared) {
    let a = app.borrow();
    if a.runs.is_empty() || a.finished {
        return;
    }
    if !trainer_ready(&a) {
        drop(a);
        request_training(app, Want::Step);
        return;
    }
    to_worker(&a, &ToWorker::Step);
}

fn reset(app: &Shared) {
    let a = app.borrow();
    if a.runs.is_empty() || !trainer_ready(&a) {
        drop(a);
        load(app, false);
        return;
    }
    set_state("loading");
    to_worker(&a, &ToWorker::Reset);
}

fn bind_file(app: &Shared) {
    let input: HtmlInputElement = by_id("ctl-file");
    let a = app.clone();
    let i2 = input.clone();
    on::<Event>(&input, "change", move |_| {
        if let Some(l) = i2.files() {
            read_files(&a, l);
        }
    });
    let body = document().body().expect("body");
    on::<DragEvent>(&body, "dragover", |ev| {
        ev.prevent_default();
        if let Some(b) = document().body() {
            b.class_list().add_1("dragging").ok();
        }
    });
    on::<DragEvent>(&body, "dragleave", |_| {
        if let Some(b) = document().body() {
            b.class_list().remove_1("dragging").ok();
        }
    });
    let a = app.clone();
    on::<DragEvent>(&body, "drop", move |ev| {
        ev.prevent_default();
        if let Some(b) = document().body() {
            b.class_list().remove_1("dragging").ok();
        }
        if let Some(l) = ev.data_transfer().and_then(|d| d.files()) {
            read_files(&a, l);
        }
    });
}

/// Reads the user's files, switches the data to CIFAR and reloads; the
/// worker checks the bytes and reports a bad file in one line.
fn read_files(app: &Shared, list: web_sys::FileList) {
    let files: Vec<web_sys::File> = (0..list.length()).filter_map(|i| list.get(i)).collect();
    if files.is_empty() {
        return;
    }
    let app = app.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let mut read = Vec::new();
        for file in files {
            let name = file.name();
            match wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await {
                Ok(buf) => read.push((name, js_sys::Uint8Array::new(&buf).to_vec())),
                Err(e) => {
                    show_message(&format!("{name}: could not be read ({e:?})"));
                    return;
                }
            }
        }
        let names: Vec<&str> = read.iter().map(|(n, _)| n.as_str()).collect();
        let names = names.join(", ");
        {
            let mut a = app.borrow_mut();
            a.files = read;
            a.edited = true;
            if a.page.settings.data != DataKind::Cifar {
                a.page.settings.data = DataKind::Cifar;
                a.page.preset = None;
            }
            show_settings(&a.page.settings);
            write_url(&a.page);
            by_id::<Element>("file-name").set_text_content(Some(&names));
        }
        show_message("");
        // The core checks the files: in the trainer.
        request_training(&app, Want::Load);
        load(&app, false);
    });
}

fn schedule_redraw(app: &Shared) {
    if std::mem::replace(&mut app.borrow_mut().redraw_pending, true) {
        return;
    }
    let a = app.clone();
    let cb = Closure::once_into_js(move || {
        a.borrow_mut().redraw_pending = false;
        redraw(&a.borrow());
    });
    let _ = window().request_animation_frame(cb.unchecked_ref());
}

fn series(a: &App) -> (Vec<Series<'_>>, u64) {
    let series = a
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| Series {
            label: &r.info.label,
            color: PALETTE[i % PALETTE.len()],
            rows: &r.rows,
            loss: r.info.config.loss.kind,
            full_batch: r.info.config.optim.batch_size == 0,
            gap: r.info.config.loss.target_gap(),
        })
        .collect();
    let x_max = a.runs.iter().map(|r| r.info.steps).max().unwrap_or(1);
    (series, x_max)
}

fn redraw(a: &App) {
    let (series, x_max) = series(a);
    let mut plots = a.plots.borrow_mut();
    for (p, live) in Panel::ALL.into_iter().zip(plots.iter_mut()) {
        let fig: HtmlElement = by_id(&format!("plot-{}", p.id()));
        if a.runs.is_empty() {
            // Nothing loaded (bad settings or file): no stale titles or axes.
            fig.set_inner_html(
                r#"<p class="placeholder">No run loaded — see the message above, or pick a preset.</p>"#,
            );
            live.reset();
            continue;
        }
        // Drawn at the width it is shown at: one SVG unit is one CSS pixel.
        let frame = Frame::for_width(fig.client_width() as f64);
        let hover_x = a.hover.filter(|(hp, _)| *hp == p).map(|(_, x)| x);
        let (node, hover) = crate::plot::panel(p, &series, x_max, frame, hover_x);
        live.show(&fig, node);
        show_tip(&fig, hover.as_ref(), frame.width);
    }
    drop(plots);
    draw_mechanism(a);
    draw_spectrum(a);
    // Legend and latest values.
    let legend: Element = by_id("legend");
    legend.set_inner_html("");
    for (i, r) in a.runs.iter().enumerate() {
        let c = &r.info.config;
        let last = r.rows.last();
        let fmt = |v: Option<f64>| {
            v.map(curvlab::axis::format_value)
                .unwrap_or_else(|| "–".into())
        };
        let (jmax, _) = last
            .map(|l| crate::plot::jac(l, c.loss.kind))
            .unwrap_or((None, None));
        let status = if r.planned {
            "planned".to_string()
        } else if let Some(e) = &r.failed {
            format!("failed: {e}")
        } else if r.finished {
            "done".into()
        } else {
            format!("step {}", r.step)
        };
        let label = if r.info.label.is_empty() {
            "run".to_string()
        } else {
            r.info.label.clone()
        };
        let item = el(
            "div",
            &[("class", "legend-item"), ("data-run", &i.to_string())],
            "",
        );
        item.append_child(&el(
            "span",
            &[
                ("class", "swatch"),
                (
                    "style",
                    &format!("background:{}", PALETTE[i % PALETTE.len()]),
                ),
            ],
            "",
        ))
        .ok();
        item.append_child(&el("strong", &[], &label)).ok();
        let bound = last
            .and_then(|l| BoundNote::of(l, c.loss.target_gap(), jmax))
            .map(|b| format!(" · {}", b.short()))
            .unwrap_or_default();
        // The essentials first (they are what a phone shows); the set-up after.
        item.append_child(&el(
            "span",
            &[("class", "facts")],
            &format!(
                "{status} · sharpness {s} (2/η = {two}) · ‖J‖ max {j}{bound} · test acc {acc}",
                s = fmt(last.and_then(|l| l.sharpness)),
                // 2/η of the latest step (a schedule changes it), else of the base rate.
                two = curvlab::axis::format_value(last.map_or(2.0 / c.optim.lr, |l| l.two_over_lr)),
                j = fmt(jmax),
                acc = fmt(last.and_then(|l| l.test_acc)),
            ),
        ))
        .ok();
        item.append_child(&el(
            "span",
            &[("class", "setup")],
            &format!(
                "{model} {act:?}{p} · {loss} · η = {lr}",
                model = c.model.summary(),
                act = c.model.activation,
                // Counted when the trainer builds the run.
                p = if r.planned {
                    String::new()
                } else {
                    format!(", {} params", r.info.params)
                },
                loss = match c.loss.kind {
                    LossKind::CrossEntropy =>
                        format!("cross-entropy, α = {}", c.loss.label_smoothing),
                    LossKind::Square => format!(
                        "square loss, α = {}, s_out = {}",
                        c.loss.label_smoothing, c.loss.target_scale
                    ),
                },
                lr = c.optim.lr,
            ),
        ))
        .ok();
        legend.append_child(&item).ok();
    }
    draw_bound(a);
    let progress: Element = by_id("progress");
    progress.set_text_content(Some(&progress_text(a)));
    let rate = a
        .runs
        .iter()
        .map(|r| r.steps_per_s)
        .filter(|&v| v > 0.0)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))));
    if let Some(body) = document().body() {
        match rate {
            Some(v) => body
                .set_attribute("data-steps-per-s", &format!("{v:.2}"))
                .ok(),
            None => body.remove_attribute("data-steps-per-s").ok(),
        };
    }
    let data = match a.runs.first() {
        Some(r) => format!("Data: {}", r.info.data_name),
        None => format!(
            "Data: {} — not loaded",
            match a.page.settings.data {
                DataKind::Synthetic => "synthetic δ-good set",
                DataKind::Toy => "2-D toy set",
                DataKind::Cifar => "CIFAR-10 files",
            }
        ),
    };
    by_id::<Element>("data-name").set_text_content(Some(&data));
}

/// The progress line: steps, the latest step's loss, when the next
/// measurement comes, speed, and what the worker is busy with.
fn progress_text(a: &App) -> String {
    if let Some((loaded, total)) = a.trainer {
        return trainer_text(loaded, total, a.want);
    }
    let Some(s) = a.runs.iter().map(|r| r.step).min() else {
        return String::new();
    };
    if a.runs.iter().all(|r| r.planned) {
        let total = a.runs.iter().map(|r| r.info.steps).max().unwrap_or(0);
        return format!("{total} steps planned · Play loads the trainer");
    }
    let total = a.runs.iter().map(|r| r.info.steps).max().unwrap_or(0);
    let mut text = format!("step {s} / {total}");
    if let Some(l) = a.runs.first().and_then(|r| r.loss) {
        text.push_str(&format!(" · loss {}", curvlab::axis::format_value(l)));
    }
    let every = a
        .runs
        .first()
        .map(|r| r.info.config.measure_every)
        .unwrap_or(1)
        .max(1);
    let next = (s / every + 1) * every;
    if !a.finished && next <= total && s > 0 && !s.is_multiple_of(every) {
        text.push_str(&format!(" · next measurement at {next}"));
    }
    let rate = a.runs.iter().map(|r| r.steps_per_s).fold(0.0, f64::max);
    if rate > 0.0 {
        text.push_str(&format!(" · {rate:.0} steps/s"));
    }
    if let Some((what, t0)) = &a.working {
        let secs = ((js_sys::Date::now() - t0) / 1000.0).floor();
        text.push_str(&format!(" · {what}…"));
        if secs >= 1.0 {
            text.push_str(&format!(" {secs:.0} s"));
        }
    }
    text
}

/// The progress line while the trainer loads: "loading the trainer, 1.2 of
/// 20.4 MB…" (the size when the server sends it and the bytes are not
/// compressed on the way), then "starting the trainer…" once its module is in.
fn trainer_text(loaded: f64, total: f64, want: Option<Want>) -> String {
    let mb = |b: f64| format!("{:.1}", b / 1e6);
    let mut text = if total > 0.0 && loaded >= total {
        "starting the trainer…".to_string()
    } else if total > 0.0 {
        format!("loading the trainer, {} of {} MB…", mb(loaded), mb(total))
    } else {
        format!("loading the trainer, {} MB…", mb(loaded))
    };
    if want == Some(Want::Play) {
        text.push_str(" then playing");
    }
    text
}

/// The Theorem 5.1 note under the plots: B where it is positive, otherwise ℓ
/// against Δ/2 (for the first run; the legend has every run's).
fn draw_bound(a: &App) {
    let note: Element = by_id("bound-note");
    let b = a.runs.first().and_then(|r| {
        let last = r.rows.last()?;
        let c = &r.info.config;
        BoundNote::of(
            last,
            c.loss.target_gap(),
            crate::plot::jac(last, c.loss.kind).0,
        )
    });
    let Some(b) = b else {
        set_hidden(&note, true);
        return;
    };
    set_hidden(&note, false);
    note.set_attribute("data-active", if b.active() { "1" } else { "0" })
        .ok();
    note.set_inner_html("");
    note.append_child(&el("span", &[("class", "bound-text")], &b.sentence()))
        .ok();
    // ℓ against Δ/2 on one bar: the marker must pass the line for B to become positive.
    let ratio = b.fit_ratio();
    let scale = ratio.max(1.0) * 1.15;
    let meter = el(
        "span",
        &[
            ("class", "bound-meter"),
            ("role", "img"),
            ("aria-label", &format!("ℓ is {:.2} times Δ/2", ratio)),
        ],
        "",
    );
    meter
        .append_child(&el(
            "span",
            &[
                ("class", "bound-line"),
                ("style", &format!("left:{:.1}%", 100.0 / scale)),
                ("title", "Δ/2"),
            ],
            "",
        ))
        .ok();
    meter
        .append_child(&el(
            "span",
            &[
                ("class", "bound-ell"),
                ("style", &format!("width:{:.1}%", 100.0 * ratio / scale)),
                ("title", "ℓ"),
            ],
            "",
        ))
        .ok();
    note.append_child(&meter).ok();
}

/// The mechanism panels: the loss slice of the focused run, and its data
/// (decision regions for 2-D data, the largest-Jacobian images for CIFAR).
fn draw_mechanism(a: &App) {
    let slice_fig: Element = by_id("plot-mechanism");
    let regions_fig: Element = by_id("plot-regions");
    let chooser: Element = by_id("mechanism-run");
    let Some((i, r)) = a
        .runs
        .iter()
        .enumerate()
        .nth(a.focus)
        .or_else(|| a.runs.iter().enumerate().next())
    else {
        set_hidden(&slice_fig, true);
        set_hidden(&regions_fig, true);
        set_hidden(&chooser, true);
        return;
    };
    set_hidden(&slice_fig, false);
    let color = PALETTE[i % PALETTE.len()];
    let m = r.mechanism.as_ref();
    let note = if r.info.config.measure.sharpness {
        "waiting for the first sharpness estimate"
    } else {
        "sharpness is off"
    };
    let svg = slice_svg(m.and_then(|(m, _)| m.slice.as_ref()), color, note);
    set_svg_text(&slice_fig, &svg);
    // Which run: one button per run, when there are several.
    set_hidden(&chooser, a.runs.len() < 2);
    if a.runs.len() >= 2 && chooser.child_element_count() as usize != a.runs.len() {
        chooser.set_inner_html("");
        for (k, run) in a.runs.iter().enumerate() {
            let b = el(
                "button",
                &[
                    ("type", "button"),
                    ("data-run", &k.to_string()),
                    (
                        "style",
                        &format!("border-color:{}", PALETTE[k % PALETTE.len()]),
                    ),
                ],
                if run.info.label.is_empty() {
                    "run"
                } else {
                    run.info.label.as_str()
                },
            );
            chooser.append_child(&b).ok();
        }
    }
    if let Ok(buttons) = chooser.query_selector_all("button") {
        for k in 0..buttons.length() {
            if let Some(b) = buttons.item(k).and_then(|n| n.dyn_into::<Element>().ok()) {
                b.set_attribute(
                    "aria-pressed",
                    if k as usize == i { "true" } else { "false" },
                )
                .ok();
            }
        }
    }
    let (top, thumbs) = match m {
        Some((m, t)) => (&m.top_jacobian[..], &t[..]),
        None => (&[][..], &[][..]),
    };
    match &r.info.view {
        DataView::Plane {
            points,
            labels,
            classes,
            ..
        } => {
            set_hidden(&regions_fig, false);
            let regions = m.and_then(|(m, _)| m.regions.as_ref());
            set_svg_text(
                &regions_fig,
                &plane_svg(regions, points, labels, top, *classes),
            );
        }
        DataView::Images { .. } => {
            set_hidden(&regions_fig, false);
            set_svg_text(&regions_fig, &images_svg(top, thumbs, &CIFAR10_CLASSES));
        }
        DataView::Other => set_hidden(&regions_fig, true),
    }
}

/// The spectrum panels ([`crate::spectrum`]) of the focused run, shown when
/// its measurements include them.
fn draw_spectrum(a: &App) {
    let (i, run) = match a.runs.get(a.focus) {
        Some(r) => (a.focus, Some(r)),
        None => (0, a.runs.first()),
    };
    let m = run.map(|r| &r.info.config.measure);
    let color = PALETTE[i % PALETTE.len()];
    let note = "waiting for the first spectrum measurement";
    for (id, on, svg) in [
        (
            "plot-density",
            m.is_some_and(|m| m.density),
            crate::spectrum::density_svg as fn(&[MetricsRow], &str, &str) -> String,
        ),
        (
            "plot-layers",
            m.is_some_and(|m| m.per_layer),
            crate::spectrum::layers_svg,
        ),
    ] {
        let fig: Element = by_id(id);
        set_hidden(&fig, !on);
        if let (true, Some(r)) = (on, run) {
            set_svg_text(&fig, &svg(&r.rows, color, note));
        }
    }
}

/// Replaces `host`'s content with `svg` only when it changed since the last
/// time (a hash in `data-svg`): between measurements the mechanism panels
/// hold still.
fn set_svg_text(host: &Element, svg: &str) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    svg.hash(&mut h);
    let tag = format!("{:016x}", h.finish());
    if host.get_attribute("data-svg").as_deref() != Some(tag.as_str()) {
        host.set_inner_html(svg);
        host.set_attribute("data-svg", &tag).ok();
    }
}

/// The hover read-out of a plot: a box beside the pointer's step with one
/// line per value, updated in place while rows arrive.
fn show_tip(fig: &HtmlElement, hover: Option<&Hover>, width: f64) {
    let tip = match fig.query_selector(".tip").ok().flatten() {
        Some(t) => t,
        None => {
            let t = el("div", &[("class", "tip"), ("role", "tooltip")], "");
            fig.append_child(&t).ok();
            t
        }
    };
    let Some(h) = hover else {
        set_hidden(&tip, true);
        return;
    };
    set_hidden(&tip, false);
    let text: Vec<&str> = h.lines.iter().map(|(_, t)| t.as_str()).collect();
    let text = text.join("\n");
    if tip.get_attribute("data-text").as_deref() != Some(text.as_str()) {
        tip.set_inner_html("");
        for (color, line) in &h.lines {
            let row = el("div", &[], "");
            row.append_child(&el(
                "span",
                &[("class", "sw"), ("style", &format!("background:{color}"))],
                "",
            ))
            .ok();
            row.append_child(&el("span", &[], line)).ok();
            tip.append_child(&row).ok();
        }
        tip.set_attribute("data-text", &text).ok();
    }
    // Beside the guide line, on the side with more room.
    let scale = fig.client_width() as f64 / width.max(1.0);
    let x = h.x * scale;
    let style = if h.x > width / 2.0 {
        format!("right:{:.0}px", fig.client_width() as f64 - x + 10.0)
    } else {
        format!("left:{:.0}px", x + 10.0)
    };
    if tip.get_attribute("style").as_deref() != Some(style.as_str()) {
        tip.set_attribute("style", &style).ok();
    }
}

/// Hover on the plots (mouse, pen, or a tap), and a redraw when their
/// width changes.
fn bind_plots(app: &Shared) {
    for p in Panel::ALL {
        let fig: HtmlElement = by_id(&format!("plot-{}", p.id()));
        let point = {
            let a = app.clone();
            let fig = fig.clone();
            move |ev: web_sys::PointerEvent| {
                let Some(svg) = fig.query_selector("svg").ok().flatten() else {
                    return;
                };
                let rect = svg.get_bounding_client_rect();
                let vb_width = svg
                    .get_attribute("viewBox")
                    .and_then(|v| v.split(' ').nth(2).and_then(|w| w.parse::<f64>().ok()))
                    .unwrap_or(rect.width());
                let x = (ev.client_x() as f64 - rect.left()) * vb_width / rect.width().max(1.0);
                a.borrow_mut().hover = Some((p, x));
                schedule_redraw(&a);
            }
        };
        on::<web_sys::PointerEvent>(&fig, "pointermove", point.clone());
        on::<web_sys::PointerEvent>(&fig, "pointerdown", point);
        let a = app.clone();
        on::<web_sys::PointerEvent>(&fig, "pointerleave", move |ev| {
            // A tap's read-out stays until the next tap elsewhere.
            if ev.pointer_type() != "touch" {
                a.borrow_mut().hover = None;
                schedule_redraw(&a);
            }
        });
    }
    let a = app.clone();
    on::<web_sys::PointerEvent>(&document(), "pointerdown", move |ev| {
        let inside = ev
            .target()
            .and_then(|t| t.dyn_into::<Element>().ok())
            .and_then(|e| e.closest(".plot").ok().flatten())
            .is_some();
        if !inside && a.borrow().hover.is_some() {
            a.borrow_mut().hover = None;
            schedule_redraw(&a);
        }
    });
    let a = app.clone();
    let resized = Closure::<dyn FnMut()>::new(move || schedule_redraw(&a));
    if let Ok(observer) = web_sys::ResizeObserver::new(resized.as_ref().unchecked_ref()) {
        observer.observe(&by_id::<Element>("plots"));
    }
    resized.forget();
}

fn bind_exports(app: &Shared) {
    let a = app.clone();
    on::<Event>(&by_id::<HtmlElement>("export-json"), "click", move |_| {
        let a = a.borrow();
        let q = a.page.to_query();
        let e = Export {
            curvlab_web: env!("CARGO_PKG_VERSION"),
            query: &q,
            backend: a.backend.as_ref(),
            runs: a
                .runs
                .iter()
                .map(|r| RunExport {
                    info: &r.info,
                    rows: &r.rows,
                })
                .collect(),
        };
        download_text("curvlab-metrics.json", "application/json", &e.to_json());
    });
    let a = app.clone();
    on::<Event>(&by_id::<HtmlElement>("export-csv"), "click", move |_| {
        let a = a.borrow();
        let runs: Vec<(&str, &[MetricsRow])> = a
            .runs
            .iter()
            .map(|r| (r.info.label.as_str(), &r.rows[..]))
            .collect();
        download_text("curvlab-metrics.csv", "text/csv", &to_csv(&runs));
    });
    let a = app.clone();
    on::<Event>(&by_id::<HtmlElement>("export-svg"), "click", move |_| {
        let svg = figure(&a.borrow());
        download_text("curvlab-plots.svg", "image/svg+xml", &svg);
    });
    let a = app.clone();
    on::<Event>(&by_id::<HtmlElement>("export-png"), "click", move |_| {
        let svg = figure(&a.borrow());
        export_png(svg);
    });
}

fn figure(a: &App) -> String {
    let (series, x_max) = series(a);
    let backend = a
        .backend
        .as_ref()
        .map(BackendInfo::describe)
        .unwrap_or_default();
    figure_svg(&series, x_max, &format!("curvlab · {backend}"))
}

/// Renders the figure's SVG onto a canvas at twice its size and downloads it as PNG.
fn export_png(svg: String) {
    let parts = js_sys::Array::of1(&JsValue::from_str(&svg));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type("image/svg+xml");
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts) else {
        return;
    };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
        return;
    };
    let img = HtmlImageElement::new().expect("img");
    let img2 = img.clone();
    let url2 = url.clone();
    let onload = Closure::once_into_js(move || {
        let _ = web_sys::Url::revoke_object_url(&url2);
        let scale = 2.0;
        let (w, h) = (
            img2.natural_width() as f64 * scale,
            img2.natural_height() as f64 * scale,
        );
        let canvas: HtmlCanvasElement = el("canvas", &[], "").unchecked_into();
        canvas.set_width(w as u32);
        canvas.set_height(h as u32);
        let Some(ctx) = canvas
            .get_context("2d")
            .ok()
            .flatten()
            .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
        else {
            return;
        };
        let _ = ctx.scale(scale, scale);
        let _ = ctx.draw_image_with_html_image_element(&img2, 0.0, 0.0);
        let done = Closure::once_into_js(move |b: JsValue| {
            if let Ok(blob) = b.dyn_into::<web_sys::Blob>() {
                download_blob("curvlab-plots.png", &blob);
            }
        });
        let _ = canvas.to_blob(done.unchecked_ref());
    });
    img.set_onload(Some(onload.unchecked_ref()));
    img.set_src(&url);
}
