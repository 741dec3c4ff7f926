//! Small DOM helpers for the page (wasm32 only).

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    Blob, BlobPropertyBag, Document, Element, HtmlAnchorElement, HtmlElement, Url, Window,
};

pub fn window() -> Window {
    web_sys::window().expect("the page has a window")
}

pub fn document() -> Document {
    window().document().expect("the page has a document")
}

/// The element with id `id`, as `T`. Panics when the page lacks it: the
/// elements are in index.html, so a missing one is a build mistake.
pub fn by_id<T: JsCast>(id: &str) -> T {
    document()
        .get_element_by_id(id)
        .unwrap_or_else(|| panic!("index.html has no element #{id}"))
        .dyn_into::<T>()
        .unwrap_or_else(|_| panic!("#{id} has an unexpected element type"))
}

/// A new element `tag` with attributes and text.
pub fn el(tag: &str, attrs: &[(&str, &str)], text: &str) -> Element {
    let e = document().create_element(tag).expect("valid tag");
    for (k, v) in attrs {
        e.set_attribute(k, v).expect("valid attribute");
    }
    if !text.is_empty() {
        e.set_text_content(Some(text));
    }
    e
}

/// Adds an event listener that lives as long as the page.
pub fn on<E: wasm_bindgen::convert::FromWasmAbi + 'static>(
    target: &web_sys::EventTarget,
    event: &str,
    f: impl FnMut(E) + 'static,
) {
    let cb = Closure::<dyn FnMut(E)>::new(f);
    target
        .add_event_listener_with_callback(event, cb.as_ref().unchecked_ref())
        .expect("listener added");
    cb.forget();
}

/// Shows or hides an element (the `hidden` attribute).
pub fn set_hidden(e: &Element, hidden: bool) {
    if let Some(h) = e.dyn_ref::<HtmlElement>() {
        h.set_hidden(hidden);
    }
}

/// Offers `blob` as a download named `name`.
pub fn download_blob(name: &str, blob: &Blob) {
    let Ok(url) = Url::create_object_url_with_blob(blob) else {
        return;
    };
    let a: HtmlAnchorElement = el("a", &[("href", &url), ("download", name)], "").unchecked_into();
    a.style().set_property("display", "none").ok();
    let body = document().body().expect("the page has a body");
    body.append_child(&a).ok();
    a.click();
    body.remove_child(&a).ok();
    // Revoke later: some browsers read the URL after click() returns.
    let revoke = Closure::once_into_js(move || {
        let _ = Url::revoke_object_url(&url);
    });
    let _ = window()
        .set_timeout_with_callback_and_timeout_and_arguments_0(revoke.unchecked_ref(), 10_000);
}

/// Offers `text` as a download named `name` of MIME type `mime`.
pub fn download_text(name: &str, mime: &str, text: &str) {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let opts = BlobPropertyBag::new();
    opts.set_type(mime);
    if let Ok(blob) = Blob::new_with_str_sequence_and_options(&parts, &opts) {
        download_blob(name, &blob);
    }
}
