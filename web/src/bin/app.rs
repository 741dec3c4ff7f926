//! The explainer page: controls, plots, export (see `curvlab_web::app`).

#[cfg(target_arch = "wasm32")]
fn main() {
    curvlab_web::app::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!(
        "curvlab-web app: runs in a browser; build it with `trunk build --release` (see README)"
    );
    std::process::exit(2);
}
