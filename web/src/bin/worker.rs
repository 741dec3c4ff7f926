//! The training worker (see `curvlab_web::worker`).

#[cfg(target_arch = "wasm32")]
fn main() {
    curvlab_web::worker::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!(
        "curvlab-web worker: runs in a browser's Web Worker; build it with `trunk build --release`"
    );
    std::process::exit(2);
}
