//! The `#[cached_tower]` attribute. Use it through the `cache-tower` crate, which re-exports it
//! as `cache_tower::cached_tower` and documents it there; the generated code calls into
//! `cache_tower::__private`.
//!
//! One file per phase: `args` parses the attribute's arguments and `key` the key and tag
//! templates, `validate` checks the function and the templates against each other, `expand` writes
//! the code (`many` for a batch function), and
//! `fallback` writes the function unmemoized, next to the errors, when something is wrong.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod args;
mod expand;
mod fallback;
mod key;
mod many;
mod validate;

use proc_macro::TokenStream;

/// Memoizes a function through a registered cache tower. See `cache_tower::cached_tower`, which
/// documents every argument (`config`, `key`, `tags`, `ttl`, `many`, ...) with examples.
#[proc_macro_attribute]
pub fn cached_tower(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::cached_tower(attr.into(), item.into()).into()
}
