//! What the attribute expands to when its arguments or the function are wrong: the function as
//! written, uncached, and both companions, next to the errors. Code that calls the function or
//! its companions then compiles as it would, so the errors shown are the macro's own and not a
//! cascade of "cannot find function `name_uncached`".

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ItemFn;

pub(crate) fn expand(function: &ItemFn, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    let sig = &function.sig;
    let name = &sig.ident;
    let vis = &function.vis;
    let kept: Vec<_> = function.attrs.iter().filter(|attr| !attr.path().is_ident("doc")).collect();

    // The companions are never run (the crate does not compile): they only stand in for the
    // real ones, with the same signatures, so that their callers are not errors too.
    let mut uncached = sig.clone();
    uncached.ident = format_ident!("{}_uncached", name, span = name.span());
    let mut invalidate = sig.clone();
    invalidate.ident = format_ident!("{}_invalidate", name, span = name.span());
    invalidate.output = syn::parse_quote! { -> ::cache_tower::Result<()> };
    quote! {
        #function

        #(#kept)*
        #[allow(dead_code, unused_variables, unused_mut, clippy::unused_async)]
        #vis #uncached {
            ::core::unimplemented!("#[cached_tower] was given wrong arguments")
        }

        #(#kept)*
        #[allow(dead_code, unused_variables, unused_mut, clippy::unused_async)]
        #vis #invalidate {
            ::core::unimplemented!("#[cached_tower] was given wrong arguments")
        }

        #error
    }
}
