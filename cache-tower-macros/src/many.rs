//! The bodies of a batch function (`many = "ids"`): memoized per element of its collection
//! parameter through `cache_tower::__private::memoize_many*`, which calls `<name>_uncached` once
//! with the elements no layer had.
//!
//! The key of each element is built by a closure whose parameter has the collection's own name
//! and the template's span, so the template's `{ids}` is the element there and the collection
//! everywhere else. The body gets the elements to load as the collection's type (a `&Vec<K>`
//! for `&[K]`, else collected with `FromIterator`), the other arguments as given (references)
//! or cloned (owned values: the body may be called a second time, for elements whose loading by
//! another caller failed).

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote_spanned};
use syn::{Ident, Signature as FnSignature, Type};

use crate::expand::{Names, call_with, span_range, template_key};
use crate::validate::{Checked, Key, Many, Passing, ReturnKind};

/// The memoized function's body and the `_invalidate` companion's.
pub(crate) fn bodies(
    sig: &FnSignature,
    checked: &Checked,
    many: &Many,
    uncached_name: &Ident,
    names: &Names,
    site_item: &TokenStream,
) -> (TokenStream, TokenStream) {
    let signature = &checked.signature;
    let mixed = Span::mixed_site();
    let site = &names.site;
    let Key::Template(template) = &checked.key else {
        // `validate::check_many` refuses a batch function without a template.
        return (
            quote_spanned! {mixed=> { ::core::unreachable!() }},
            quote_spanned! {mixed=> { ::core::unreachable!() }},
        );
    };
    let param = &many.param;
    // The element, named as the collection and spanned as the template's expressions are, so
    // that `{ids}` resolves to it inside the closure (and nowhere else).
    let element = Ident::new(&param.to_string(), template.literal.span());
    let key = template_key(template, names);
    let key_of = quote_spanned! {mixed=>
        |#element| ::core::option::Option::unwrap_or_default(#key)
    };
    let elements = if matches!(many.passing, Passing::Slice | Passing::Reference) {
        quote_spanned! {mixed=> ::cache_tower::__private::elements(#param) }
    } else {
        quote_spanned! {mixed=> ::cache_tower::__private::elements(&#param) }
    };

    let subset = Ident::new("subset", mixed);
    let collected = Ident::new("collected", mixed);
    let conversion = match many.passing {
        Passing::Slice => quote_spanned! {mixed=> #subset },
        Passing::Reference | Passing::Owned => quote_spanned! {mixed=> ::core::iter::FromIterator::from_iter(#subset) },
    };
    let owned: Vec<&Ident> = signature
        .params
        .iter()
        .filter(|(name, ty)| name != param && !matches!(ty, Type::Reference(_)))
        .map(|(name, _)| name)
        .collect();
    let call_uncached = call_with(sig, signature.associated, uncached_name, |name| {
        if name == param {
            match many.passing {
                Passing::Slice | Passing::Reference => quote_spanned! {mixed=> &#collected },
                Passing::Owned => quote_spanned! {mixed=> #collected },
            }
        } else if owned.contains(&name) && !signature.is_async {
            quote_spanned! {mixed=> ::core::clone::Clone::clone(&#name) }
        } else {
            quote_spanned! {mixed=> #name }
        }
    });
    // An async body owns what its future needs: the elements, and clones of the owned arguments
    // (the references it is given are copied into it).
    let load = if signature.is_async {
        quote_spanned! {mixed=> |#subset| {
            #( let #owned = ::core::clone::Clone::clone(&#owned); )*
            async move {
                let #collected = #conversion;
                #call_uncached.await
            }
        }}
    } else {
        quote_spanned! {mixed=> |#subset| {
            let #collected = #conversion;
            #call_uncached
        }}
    };

    let value_type = &many.value_type;
    let (first, _) = span_range(&value_type.to_token_stream());
    let assertion = quote_spanned! {first=> ::cache_tower::__private::assert_cached::<#value_type>(); };
    let base = match signature.kind {
        ReturnKind::Result => "memoize_many_result",
        ReturnKind::Plain | ReturnKind::Option => "memoize_many",
    };
    let memoize = if signature.is_async { format_ident!("{}_async", base) } else { format_ident!("{}", base) };
    let (memoize_await, invalidate, invalidate_await) = if signature.is_async {
        (quote_spanned! {mixed=> .await }, format_ident!("invalidate_many_async"), quote_spanned! {mixed=> .await })
    } else {
        (TokenStream::new(), format_ident!("invalidate_many"), TokenStream::new())
    };
    let memoized = quote_spanned! {mixed=> {
        #assertion
        {
            #site_item
            ::cache_tower::__private::#memoize(&#site, #elements, #key_of, #load) #memoize_await
        }
    }};
    let invalidate = quote_spanned! {mixed=> {
        #site_item
        ::cache_tower::__private::#invalidate(&#site, #elements, #key_of) #invalidate_await
    }};
    (memoized, invalidate)
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    fn expand(attr: TokenStream, item: TokenStream) -> String {
        crate::expand::cached_tower(attr, item).to_string()
    }

    #[test]
    fn a_batch_function_is_memoized_per_element_with_its_body_written_once() {
        let out = expand(
            quote!(key = "{tenant}:{ids}", many = "ids"),
            quote!(
                fn users(tenant: String, ids: &[u64]) -> HashMap<u64, User> {
                    unique_body_marker(ids)
                }
            ),
        );
        assert!(!out.contains("compile_error"), "{out}");
        assert_eq!(out.matches("unique_body_marker").count(), 1, "{out}");
        assert!(
            out.contains("memoize_many (& SITE , :: cache_tower :: __private :: elements (ids) , | ids |"),
            "{out}"
        );
        assert!(out.contains("users_uncached (:: core :: clone :: Clone :: clone (& tenant) , & collected)"), "{out}");
        assert!(out.contains("assert_cached :: < User >"), "the value type is checked: {out}");
        assert!(out.contains("invalidate_many (& SITE"), "{out}");
        let owned = expand(
            quote!(key = "{ids}", many = "ids"),
            quote!(
                async fn users(ids: Vec<u64>) -> Result<BTreeMap<u64, User>, E> {
                    load(ids).await
                }
            ),
        );
        assert!(
            owned.contains("memoize_many_result_async (& SITE , :: cache_tower :: __private :: elements (& ids)"),
            "{owned}"
        );
        assert!(
            owned.contains("FromIterator :: from_iter (subset)")
                && owned.contains("users_uncached (collected) . await"),
            "{owned}"
        );
    }
}
