//! The crate root stays a start-here page: at most 13 items — the tower, its two adapters, the
//! macro, the value bound, the errors, stats and get-or-set's `LoadOptions` (the rest lives in
//! the `adapter`, `error`, `clock` and `registry` modules). Counted from `cache-tower/src/lib.rs` itself, every
//! feature's items included, the `#[doc(hidden)]` ones left out.

const MOST_ROOT_ITEMS: usize = 13;

/// The names `lib.rs` makes public at the root: `pub mod name`, `pub use path::name`,
/// `pub use path::{a, b}` and `pub fn`/`struct`/`enum`/`trait`/`type`/`const`/`static name`, at
/// the start of a line (inside a module, a line is indented), unless the line before is
/// `#[doc(hidden)]`; and every `#[macro_export]`.
fn root_items(lib: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut hidden = false;
    for line in lib.lines().map(str::trim_end) {
        if line == "#[doc(hidden)]" {
            hidden = true;
            continue;
        }
        if line == "#[macro_export]" {
            names.push("macro_export".to_owned());
            continue;
        }
        if line.starts_with("#[") {
            continue; // a cfg or doc attribute: the item on the next line counts (or not) as usual
        }
        const ITEMS: [&str; 7] =
            ["pub fn ", "pub struct ", "pub enum ", "pub trait ", "pub type ", "pub const ", "pub static "];
        if let Some(rest) = ITEMS.iter().find_map(|item| line.strip_prefix(item)).filter(|_| !hidden) {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            names.push(name);
            hidden = false;
            continue;
        }
        let public = line.strip_prefix("pub mod ").or_else(|| line.strip_prefix("pub use "));
        if let (Some(item), false) = (public, hidden) {
            let item = item.trim_end_matches([';', '{', ' ']);
            let listed = match item.split_once('{') {
                Some((_, group)) => group.trim_end_matches('}').split(',').map(str::trim).collect(),
                None => vec![item.rsplit("::").next().unwrap_or(item)],
            };
            names.extend(listed.into_iter().filter(|name| !name.is_empty()).map(str::to_owned));
        }
        hidden = false;
    }
    names
}

#[test]
fn the_crate_root_lists_at_most_thirteen_items() {
    let lib = include_str!("../../cache-tower/src/lib.rs");
    let items = root_items(lib);
    assert!(items.len() <= MOST_ROOT_ITEMS, "{} root items: {items:?}", items.len());
    for expected in ["CacheTower", "cached_tower", "registry", "MemoryAdapter", "RedisAdapter", "Error", "adapter"] {
        assert!(items.iter().any(|item| item == expected), "{expected} is at the root: {items:?}");
    }
    assert!(!items.iter().any(|item| item == "__private"), "hidden items do not count: {items:?}");
}
