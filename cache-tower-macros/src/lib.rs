//! The `#[cached_tower]` attribute. Use it through the `cache-tower` crate, which re-exports it
//! as `cache_tower::cached_tower` and documents it there; the generated code calls into
//! `cache_tower::__private`.
//!
//! One file per phase: `args` parses the attribute's arguments, `key` the key template,
//! `signature` checks the function, `expand` writes the code.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod args;
mod expand;
mod key;
mod signature;

use proc_macro::TokenStream;

/// Memoizes a function through a registered cache tower. See `cache_tower::cached_tower`.
#[proc_macro_attribute]
pub fn cached_tower(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::cached_tower(attr.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}
