//! SVG element trees: the plots are built as a [`Node`] tree, which is
//! either written out as SVG text (the exported figure, the tests) or, in
//! the page, patched into the live DOM in place ([`Live`], wasm32 only):
//! only the attributes and texts that changed since the previous frame are
//! written, so a plot holds still while rows arrive — no flicker, and the
//! element under the pointer stays the same element.
//!
//! Every child has a key, unique among its siblings; the patcher matches
//! old and new children by key, so adding a run or a hover marker moves no
//! other element.

use std::fmt::Write as _;

/// One SVG element: tag, key, attributes, and either text or children.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    pub tag: &'static str,
    /// Identity among its siblings (not written out).
    pub key: String,
    pub attrs: Vec<(&'static str, String)>,
    /// Text content (escaped when written); an element has text or children, not both.
    pub text: String,
    pub children: Vec<Node>,
}

/// `v` with one decimal (coordinates), without a trailing ".0".
pub fn num(v: f64) -> String {
    let s = format!("{v:.1}");
    match s.strip_suffix(".0") {
        Some("-0") => "0".into(),
        Some(t) => t.into(),
        None => s,
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Node {
    pub fn new(tag: &'static str, key: impl Into<String>) -> Node {
        Node {
            tag,
            key: key.into(),
            ..Node::default()
        }
    }

    /// Adds an attribute (replacing one of the same name).
    pub fn attr(mut self, name: &'static str, value: impl ToString) -> Node {
        self.set(name, value);
        self
    }

    /// A coordinate attribute, one decimal.
    pub fn at(self, name: &'static str, v: f64) -> Node {
        self.attr(name, num(v))
    }

    pub fn set(&mut self, name: &'static str, value: impl ToString) {
        let value = value.to_string();
        match self.attrs.iter_mut().find(|(n, _)| *n == name) {
            Some(a) => a.1 = value,
            None => self.attrs.push((name, value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(mut self, t: impl Into<String>) -> Node {
        self.text = t.into();
        self
    }

    pub fn child(mut self, n: Node) -> Node {
        self.push(n);
        self
    }

    pub fn push(&mut self, n: Node) {
        debug_assert!(
            !self.children.iter().any(|c| c.key == n.key),
            "duplicate key {} in <{}>",
            n.key,
            self.tag
        );
        self.children.push(n);
    }

    /// A `<title>` child (the browser's tooltip, and an accessible name).
    pub fn titled(self, t: impl Into<String>) -> Node {
        self.child(Node::new("title", "title").text(t))
    }

    /// This element and its descendants, depth first.
    pub fn walk(&self) -> Vec<&Node> {
        let mut out = vec![self];
        for c in &self.children {
            out.extend(c.walk());
        }
        out
    }

    /// The first descendant (or self) with attribute `class` = `class`.
    pub fn find_class(&self, class: &str) -> Option<&Node> {
        self.walk().into_iter().find(|n| {
            n.get("class")
                .is_some_and(|c| c.split(' ').any(|c| c == class))
        })
    }

    /// All text of this element and its descendants, concatenated.
    pub fn text_content(&self) -> String {
        self.walk().iter().map(|n| n.text.as_str()).collect()
    }

    /// Writes the element as SVG text.
    pub fn write(&self, out: &mut String) {
        let _ = write!(out, "<{}", self.tag);
        for (k, v) in &self.attrs {
            let _ = write!(out, r#" {k}="{}""#, esc(v));
        }
        if self.text.is_empty() && self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        out.push_str(&esc(&self.text));
        for c in &self.children {
            c.write(out);
        }
        let _ = write!(out, "</{}>", self.tag);
    }

    pub fn to_svg(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }
}

#[cfg(target_arch = "wasm32")]
pub use live::Live;

#[cfg(target_arch = "wasm32")]
mod live {
    use std::collections::HashMap;

    use web_sys::Element;

    use super::Node;
    use crate::dom::document;

    const SVG_NS: &str = "http://www.w3.org/2000/svg";

    /// One plot on the page: its host element and the tree last shown in it.
    #[derive(Default)]
    pub struct Live {
        prev: Option<Node>,
    }

    impl Live {
        /// Shows `node` as the first element of `host`: patched in place over
        /// the previous tree when `host` still holds it, built afresh otherwise.
        pub fn show(&mut self, host: &Element, node: Node) {
            match (&self.prev, host.first_element_child()) {
                (Some(old), Some(e))
                    if old.tag == node.tag && e.tag_name().eq_ignore_ascii_case(node.tag) =>
                {
                    patch(&e, old, &node)
                }
                (_, first) => {
                    let fresh = create(&node);
                    match first {
                        Some(f) if f.tag_name().eq_ignore_ascii_case(node.tag) => {
                            let _ = host.replace_child(&fresh, &f);
                        }
                        _ => {
                            host.set_inner_html("");
                            let _ = host.append_child(&fresh);
                        }
                    }
                }
            }
            self.prev = Some(node);
        }

        /// Forgets the tree (the host's content was replaced by other means).
        pub fn reset(&mut self) {
            self.prev = None;
        }
    }

    fn create(n: &Node) -> Element {
        let e = document()
            .create_element_ns(Some(SVG_NS), n.tag)
            .expect("valid SVG tag");
        for (k, v) in &n.attrs {
            let _ = e.set_attribute(k, v);
        }
        if !n.text.is_empty() {
            e.set_text_content(Some(&n.text));
        }
        for c in &n.children {
            let _ = e.append_child(&create(c));
        }
        e
    }

    fn patch(e: &Element, old: &Node, new: &Node) {
        if old == new {
            return;
        }
        for (k, v) in &new.attrs {
            if old.get(k) != Some(v.as_str()) {
                let _ = e.set_attribute(k, v);
            }
        }
        for (k, _) in &old.attrs {
            if new.get(k).is_none() {
                let _ = e.remove_attribute(k);
            }
        }
        if old.text != new.text {
            e.set_text_content(Some(&new.text));
            if new.text.is_empty() {
                // set_text_content removed the children; rebuild them.
                for c in &new.children {
                    let _ = e.append_child(&create(c));
                }
                return;
            }
        }
        patch_children(e, &old.children, &new.children);
    }

    fn element_children(e: &Element) -> Vec<Element> {
        let mut out = Vec::new();
        let mut c = e.first_element_child();
        while let Some(x) = c {
            c = x.next_element_sibling();
            out.push(x);
        }
        out
    }

    fn patch_children(e: &Element, old: &[Node], new: &[Node]) {
        if old.is_empty() && new.is_empty() {
            return;
        }
        let kids = element_children(e);
        if kids.len() != old.len() {
            // Someone else changed this element: rebuild its children.
            for k in &kids {
                k.remove();
            }
            for c in new {
                let _ = e.append_child(&create(c));
            }
            return;
        }
        let same_keys = old.len() == new.len()
            && old
                .iter()
                .zip(new)
                .all(|(o, n)| o.key == n.key && o.tag == n.tag);
        if same_keys {
            for ((k, o), n) in kids.iter().zip(old).zip(new) {
                patch(k, o, n);
            }
            return;
        }
        let mut by_key: HashMap<&str, usize> = old
            .iter()
            .enumerate()
            .map(|(i, o)| (o.key.as_str(), i))
            .collect();
        let placed: Vec<Element> = new
            .iter()
            .map(|n| match by_key.remove(n.key.as_str()) {
                Some(i) if old[i].tag == n.tag => {
                    patch(&kids[i], &old[i], n);
                    kids[i].clone()
                }
                Some(i) => {
                    kids[i].remove();
                    create(n)
                }
                None => create(n),
            })
            .collect();
        for i in by_key.into_values() {
            kids[i].remove();
        }
        let mut cursor = e.first_element_child();
        for p in &placed {
            if cursor.as_ref() == Some(p) {
                cursor = p.next_element_sibling();
            } else {
                let _ = e.insert_before(p, cursor.as_ref().map(|c| c.as_ref()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_svg_text_escaped() {
        let n = Node::new("svg", "root")
            .attr("viewBox", "0 0 10 10")
            .child(Node::new("line", "a").at("x1", 1.25).at("x2", -0.01))
            .child(Node::new("text", "t").text("a < b & \"c\""))
            .child(Node::new("path", "p").attr("d", "M0,0").titled("2/η = 20"));
        assert_eq!(
            n.to_svg(),
            r#"<svg viewBox="0 0 10 10"><line x1="1.2" x2="0"/><text>a &lt; b &amp; &quot;c&quot;</text><path d="M0,0"><title>2/η = 20</title></path></svg>"#
        );
        assert_eq!(n.text_content(), "a < b & \"c\"2/η = 20");
        assert_eq!(n.walk().len(), 5);
    }

    #[test]
    fn attributes_replace_and_classes_are_found() {
        let n = Node::new("g", "g")
            .attr("class", "a b")
            .attr("fill", "red")
            .attr("fill", "blue");
        assert_eq!(n.attrs.len(), 2);
        assert_eq!(n.get("fill"), Some("blue"));
        let root = Node::new("svg", "r").child(n);
        assert_eq!(root.find_class("b").map(|n| n.key.as_str()), Some("g"));
        assert!(root.find_class("c").is_none());
        assert_eq!(num(3.0), "3");
        assert_eq!(num(2.46), "2.5");
    }
}
