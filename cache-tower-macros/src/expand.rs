//! Writes the memoized function and its two companions. The generated code only builds the key
//! and calls `cache_tower::__private`; all cache logic is ordinary Rust in the runtime crate.
//!
//! The body is written once, as `<name>_uncached`; the memoized function and the cache call it.
//! Every name the expansion introduces (locals, the call site's `static`) is spanned at
//! [`Span::mixed_site`] or lives in a block of its own, so it neither sees nor shadows the user's
//! names, and the user's parameters keep their own spans, so they resolve as written.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::{FnArg, GenericParam, Ident, ItemFn, LitStr, Pat, Signature as FnSignature};

use crate::args::Args;
use crate::fallback;
use crate::validate::{self, Checked, CheckedTemplate, Key, ReturnKind};

/// The attribute's expansion: the memoized function and its companions, or, when the arguments
/// or the function are wrong, the function as written, its companions, and the errors.
pub(crate) fn cached_tower(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error =
                syn::Error::new_spanned(&item, "#[cached_tower] applies to functions and methods (`fn` or `async fn`)")
                    .into_compile_error();
            // The item itself stays, so that its uses are not errors too.
            return quote! { #item #error };
        }
    };
    match validate::check(attr, &function) {
        Ok((args, checked)) => memoized(&function, &args, &checked),
        Err(error) => fallback::expand(&function, error),
    }
}

/// The names the expansion gives its own locals and items.
pub(crate) struct Names {
    pub(crate) key: Ident,
    pub(crate) tags: Ident,
    pub(crate) body: Ident,
    pub(crate) site: Ident,
}

impl Names {
    fn new() -> Self {
        let mixed = Span::mixed_site();
        Self {
            key: Ident::new("key", mixed),
            tags: Ident::new("tags", mixed),
            body: Ident::new("body", mixed),
            site: Ident::new("SITE", mixed),
        }
    }
}

fn memoized(function: &ItemFn, args: &Args, checked: &Checked) -> TokenStream {
    let names = Names::new();
    let site = &names.site;
    let mixed = Span::mixed_site();
    let sig = &function.sig;
    let name = &sig.ident;
    let name_text = name.to_string();
    let attrs = &function.attrs;
    let vis = &function.vis;

    // No `config`: the runtime's own default name, so the two can never disagree.
    let config = match &args.config {
        Some(name) => quote! { #name },
        None => quote! { ::cache_tower::registry::DEFAULT_TOWER },
    };
    // The call site's load options, built in a `static`: the builder's methods are `const`.
    let option = |name: &str, millis: Option<u64>| {
        let method = format_ident!("{}", name);
        millis.map(|millis| quote! { .#method(::core::time::Duration::from_millis(#millis)) })
    };
    let (ttl, stale, fail_safe) = (
        option("ttl", args.ttl_millis),
        option("stale", args.stale_millis),
        option("fail_safe", args.fail_safe_millis),
    );
    let soft_timeout = option("soft_timeout", args.soft_timeout_millis);
    let hard_timeout = option("hard_timeout", args.hard_timeout.map(|(millis, _)| millis));
    let refresh_ahead = args.refresh_ahead.map(|fraction| quote! { .refresh_ahead(#fraction) });
    let lock = option("lock", args.lock_millis);
    let options = quote! {
        ::cache_tower::LoadOptions::new() #ttl #stale #fail_safe #soft_timeout #hard_timeout #refresh_ahead #lock
    };
    let site_item = quote_spanned! {mixed=>
        static #site: ::cache_tower::__private::CallSite = ::cache_tower::__private::CallSite::new(
            #config,
            ::core::concat!(::core::module_path!(), "::", #name_text),
            #options,
        );
    };
    let uncached_name = format_ident!("{}_uncached", name, span = name.span());
    let (memoized_body, invalidate_body) = match &checked.many {
        Some(many) => crate::many::bodies(sig, checked, many, &uncached_name, &names, &site_item),
        None => one_key_bodies(sig, args, checked, &name_text, &uncached_name, &names, &site_item),
    };
    let memoized_sig = without_mut(sig);
    let memoized = quote_spanned! {mixed=>
        #(#attrs)*
        #vis #memoized_sig #memoized_body
    };

    // Companions keep every attribute but the docs (`cfg`, `allow`, ...), and get docs of their own.
    let kept: Vec<_> = attrs.iter().filter(|attr| !attr.path().is_ident("doc")).collect();

    let mut uncached_sig = sig.clone();
    uncached_sig.ident = uncached_name.clone();
    let uncached_doc = format!("Runs [`{name_text}`] without the cache: the body runs, nothing is read or stored.");
    let block = &function.block;
    let uncached = quote! {
        #(#kept)*
        #[doc = #uncached_doc]
        // A parameter may serve only the key, which this companion does not build.
        #[allow(dead_code, unused_variables)]
        #vis #uncached_sig #block
    };

    let mut invalidate_sig = without_mut(sig);
    invalidate_sig.ident = format_ident!("{}_invalidate", name, span = name.span());
    invalidate_sig.output = syn::parse_quote! { -> ::cache_tower::Result<()> };
    let invalidate_doc = format!(
        "Removes the cached result of [`{name_text}`] for these arguments from every layer of its tower.\n\n\
         # Errors\nThe error of the topmost layer that failed to delete; `Ok` when no tower is registered."
    );
    let invalidate = quote_spanned! {mixed=>
        #(#kept)*
        #[doc = #invalidate_doc]
        #[allow(dead_code, unused_variables, clippy::unused_async)]
        #vis #invalidate_sig #invalidate_body
    };

    quote! { #memoized #uncached #invalidate }
}

/// The bodies of the memoized function and of its `_invalidate` companion for a function cached
/// under one key.
fn one_key_bodies(
    sig: &FnSignature,
    args: &Args,
    checked: &Checked,
    name_text: &str,
    uncached_name: &Ident,
    names: &Names,
    site_item: &TokenStream,
) -> (TokenStream, TokenStream) {
    let signature = &checked.signature;
    let Names { key, tags, body, site } = names;
    let mixed = Span::mixed_site();
    let key_expression = key_expression(&checked.key, signature, name_text, names);
    // The call's tags, each built as a key is (on the stack when short): the runtime makes them
    // the computed value's only on a miss. Without `tags`, none.
    let (tags_item, tags_argument) = if checked.tags.is_empty() {
        (None, quote_spanned! {mixed=> &[] })
    } else {
        let rendered = checked.tags.iter().map(|tag| {
            let tag = template_key(tag, names);
            quote_spanned! {mixed=> ::core::option::Option::unwrap_or_default(#tag) }
        });
        let item = quote_spanned! {mixed=>
            #[allow(clippy::needless_borrow)]
            let #tags = [#(#rendered),*];
        };
        (Some(item), quote_spanned! {mixed=> &#tags })
    };
    let call_uncached = call(sig, signature.associated, uncached_name);

    // Errors about the cached type point at it: the check says what to derive, and the memoize
    // call, spanned exactly as the check's type argument, adds no second error for it.
    let (first, last) = span_range(&signature.return_tokens);
    let assertion = signature.cached_type.as_ref().map(|ty| {
        quote_spanned! {first=> ::cache_tower::__private::assert_cached::<#ty>(); }
    });
    let memoize = memoize_function(signature.kind, signature.is_async, args.background.is_some(), first);
    let memoize = quote_spanned! {first=> ::cache_tower::__private::#memoize };
    let mut memoize_arguments =
        Group::new(Delimiter::Parenthesis, quote_spanned! {mixed=> &#site, #key.as_deref(), #tags_argument, #body });
    memoize_arguments.set_span(last);
    let await_memoize = signature.is_async.then(|| quote_spanned! {mixed=> .await });
    let memoized = quote_spanned! {mixed=> {
        #assertion
        #[allow(clippy::needless_borrow)]
        let #key: ::core::option::Option<::cache_tower::__private::MemoKey> = #key_expression;
        #tags_item
        let #body = move || #call_uncached;
        {
            #site_item
            #memoize #memoize_arguments #await_memoize
        }
    }};
    let invalidate_call = if signature.is_async {
        quote_spanned! {mixed=> ::cache_tower::__private::invalidate_async(&#site, #key.as_deref()).await }
    } else {
        quote_spanned! {mixed=> ::cache_tower::__private::invalidate(&#site, #key.as_deref()) }
    };
    let invalidate = quote_spanned! {mixed=> {
        #[allow(clippy::needless_borrow)]
        let #key: ::core::option::Option<::cache_tower::__private::MemoKey> = #key_expression;
        {
            #site_item
            #invalidate_call
        }
    }};
    (memoized, invalidate)
}

/// The call of a sibling of the function (`name_uncached`) with the function's own arguments:
/// `Self::name_uncached::<T>(self, id)` for an associated function, `name_uncached::<T>(id)`
/// otherwise. The arguments are the user's own tokens, so they resolve to the parameters.
pub(crate) fn call(sig: &FnSignature, associated: bool, sibling: &Ident) -> TokenStream {
    call_with(sig, associated, sibling, |name| name.to_token_stream())
}

/// [`call`] with each parameter's argument written by `argument` (from the parameter's name).
pub(crate) fn call_with(
    sig: &FnSignature,
    associated: bool,
    sibling: &Ident,
    argument: impl Fn(&Ident) -> TokenStream,
) -> TokenStream {
    let path = if associated {
        quote! { Self::#sibling }
    } else {
        quote! { #sibling }
    };
    let generics: Vec<&Ident> = sig
        .generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Type(param) => Some(&param.ident),
            GenericParam::Const(param) => Some(&param.ident),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    let turbofish = (!generics.is_empty()).then(|| quote! { ::<#(#generics),*> });
    let arguments = sig.inputs.iter().filter_map(|input| match input {
        FnArg::Receiver(receiver) => Some(receiver.self_token.to_token_stream()),
        FnArg::Typed(typed) => match &*typed.pat {
            Pat::Ident(pat) => Some(argument(&pat.ident)),
            _ => None,
        },
    });
    quote! { #path #turbofish (#(#arguments),*) }
}

/// The signature without `mut` on its parameters, for the functions that only pass them on.
fn without_mut(sig: &FnSignature) -> FnSignature {
    let mut sig = sig.clone();
    for input in &mut sig.inputs {
        match input {
            FnArg::Receiver(receiver) if receiver.reference.is_none() => receiver.mutability = None,
            FnArg::Receiver(_) => {}
            FnArg::Typed(typed) => {
                if let Pat::Ident(pat) = &mut *typed.pat {
                    pat.mutability = None;
                }
            }
        }
    }
    sig
}

fn memoize_function(kind: ReturnKind, is_async: bool, background: bool, span: Span) -> Ident {
    let base = match (kind, background) {
        (ReturnKind::Plain, false) => "memoize",
        (ReturnKind::Result, false) => "memoize_result",
        (ReturnKind::Option, false) => "memoize_option",
        // `Option` functions are refused by `validate::check_background`.
        (ReturnKind::Plain | ReturnKind::Option, true) => "memoize_load",
        (ReturnKind::Result, true) => "memoize_load_result",
    };
    if is_async { format_ident!("{}_async", base, span = span) } else { format_ident!("{}", base, span = span) }
}

/// The spans of the first and the last token of `tokens`: code spanned from one to the other
/// covers the same text as they do.
pub(crate) fn span_range(tokens: &TokenStream) -> (Span, Span) {
    let first = tokens.clone().into_iter().next().map_or_else(Span::call_site, |token| token.span());
    let last = tokens.clone().into_iter().last().map_or(first, |token| token.span());
    (first, last)
}

/// The expression that builds the key, an `Option<MemoKey>`: the template, or the default key
/// (the function's path and its arguments as JSON).
fn key_expression(key: &Key, signature: &validate::Signature, name_text: &str, names: &Names) -> TokenStream {
    match key {
        Key::Default => default_key(signature, name_text, names),
        Key::Template(template) => template_key(template, names),
    }
}

/// The default key, written argument by argument, each spanned at its parameter's type: a type
/// that is not `Serialize` is reported there.
fn default_key(signature: &validate::Signature, name_text: &str, names: &Names) -> TokenStream {
    let mixed = Span::mixed_site();
    let key = &names.key;
    let arguments = signature.params.iter().map(|(name, ty)| {
        let (first, last) = span_range(&ty.to_token_stream());
        let reference = quote_spanned! {first=> & };
        let mut group = Group::new(Delimiter::Parenthesis, quote_spanned! {mixed=> &mut #key, #reference #name });
        group.set_span(last);
        quote_spanned! {first=> ::cache_tower::__private::DefaultKey::argument #group; }
    });
    quote_spanned! {mixed=> {
        let mut #key = ::cache_tower::__private::DefaultKey::new(
            ::core::concat!(::core::module_path!(), "::", #name_text),
        );
        #(#arguments)*
        ::cache_tower::__private::DefaultKey::finish(#key)
    }}
}

/// The key (or tag) of a template, an `Option<MemoKey>`. Its placeholders' expressions are
/// spanned at the template, so an error about one (no such field, not `Display`) points there.
pub(crate) fn template_key(checked: &CheckedTemplate, names: &Names) -> TokenStream {
    let CheckedTemplate { literal, template, arguments } = checked;
    let mixed = Span::mixed_site();
    let key = &names.key;
    let span = literal.span();
    let arguments: Vec<TokenStream> =
        arguments.iter().map(|argument| respan(argument.to_token_stream(), span)).collect();
    if template.placeholders.iter().any(|placeholder| placeholder.has_spec) {
        let format = LitStr::new(&template.format, span);
        // With format specs, `format_args!` writes the key (into the same stack-built `MemoKey`).
        return quote_spanned! {mixed=> {
            let mut #key = ::cache_tower::__private::MemoKey::new();
            // Writing into a MemoKey cannot fail.
            let _ = ::core::fmt::Write::write_fmt(&mut #key, ::core::format_args!(#format, #(#arguments),*));
            ::core::option::Option::Some(#key)
        }};
    }
    // Without format specs the key is built piece by piece: text is pushed as it is, a
    // string-like value is copied, anything else is written with `Display` (`KeyPart`).
    // That is the same text `format!` makes, without its machinery on every call, and on the
    // stack when short (`MemoKey`).
    let at_template = span.resolved_at(mixed);
    let part = Ident::new("part", at_template);
    let parts = arguments.iter().map(|argument| {
        quote_spanned! {at_template=> {
            let #part = &(#argument);
            (&::cache_tower::__private::KeyPart(#part)).key_kind().push(#part, &mut #key);
        }}
    });
    let texts: Vec<LitStr> = template.texts.iter().map(|text| LitStr::new(text, span)).collect();
    let (first, rest) = match texts.split_first() {
        Some((first, rest)) => (first.clone(), rest.to_vec()),
        None => (LitStr::new("", span), Vec::new()),
    };
    quote_spanned! {mixed=> {
        #[allow(unused_imports)]
        use ::cache_tower::__private::{KeyDisplay as _, KeyStr as _};
        let mut #key = ::cache_tower::__private::MemoKey::new();
        #key.push_str(#first);
        #(
            #parts
            #key.push_str(#rest);
        )*
        ::core::option::Option::Some(#key)
    }}
}

/// Gives every token the span of the key template, so errors in a placeholder point at it.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut inner = Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                return TokenTree::Group(inner);
            }
            token.set_span(span);
            token
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expansion, or the errors when it has any.
    fn expand(attr: TokenStream, item: TokenStream) -> Result<String, String> {
        let out = cached_tower(attr, item).to_string();
        if out.contains("compile_error") { Err(out) } else { Ok(out) }
    }

    #[test]
    fn expands_to_calls_into_the_runtime() {
        let out = expand(
            quote!(config = "users", key = "user:{id:08}"),
            quote!(
                fn load(id: u64) -> User {
                    db(id)
                }
            ),
        )
        .unwrap();
        assert!(out.contains("memoize (& SITE"), "{out}");
        assert!(out.contains(r#"format_args ! ("user:{:08}" , id)"#), "{out}");
        let pieces = expand(
            quote!(key = "user:{id}"),
            quote!(
                fn load(id: u64) -> User {
                    db(id)
                }
            ),
        )
        .unwrap();
        assert!(pieces.contains(r#"push_str ("user:")"#) && pieces.contains("let part = & (id)"), "{pieces}");
        assert!(out.contains("fn load_uncached (id : u64) -> User"), "{out}");
        assert!(out.contains("fn load_invalidate (id : u64) -> :: cache_tower :: Result < () >"), "{out}");
        assert!(out.contains(r#"CallSite :: new ("users""#), "{out}");
    }

    #[test]
    fn picks_the_runtime_function_by_return_kind_and_asyncness() {
        let result = expand(
            quote!(),
            quote!(
                async fn f(id: u8) -> Result<u8, E> {
                    Ok(id)
                }
            ),
        )
        .unwrap();
        assert!(result.contains("memoize_result_async"), "{result}");
        assert!(result.contains("invalidate_async"), "{result}");
        assert!(result.contains("CallSite :: new (:: cache_tower :: registry :: DEFAULT_TOWER"), "{result}");
        assert!(result.contains("DefaultKey :: argument (& mut key , & id)"), "{result}");
        let option = expand(
            quote!(key = "{id}"),
            quote!(
                fn f(id: u8) -> Option<u8> {
                    Some(id)
                }
            ),
        )
        .unwrap();
        assert!(option.contains("memoize_option ("), "{option}");
    }

    #[test]
    fn reports_unknown_placeholders_and_non_functions() {
        let err = expand(
            quote!(key = "{nope}"),
            quote!(
                fn f(id: u8) -> u8 {
                    id
                }
            ),
        )
        .unwrap_err();
        assert!(err.contains("unknown placeholder `{nope}`") && err.contains("parameters are id"), "{err}");
        let err = expand(
            quote!(key = "{self.x}"),
            quote!(
                fn f(id: u8) -> u8 {
                    id
                }
            ),
        )
        .unwrap_err();
        assert!(err.contains("unknown placeholder"), "{err}");
        let err = expand(
            quote!(),
            quote!(
                struct S;
            ),
        )
        .unwrap_err();
        assert!(err.contains("applies to functions"), "{err}");
    }

    #[test]
    fn tags_are_built_as_keys_are_and_passed_to_the_runtime() {
        let out = expand(
            quote!(key = "user:{id}", tags = ["user:{id}", "tenant:{tenant.id:>4}"]),
            quote!(
                fn load(id: u64, tenant: Tenant) -> User {
                    db(id)
                }
            ),
        )
        .unwrap();
        assert!(out.contains("let tags = [:: core :: option :: Option :: unwrap_or_default ({"), "{out}");
        assert!(out.contains(r#"format_args ! ("tenant:{:>4}" , tenant . id)"#), "{out}");
        assert!(out.contains("memoize (& SITE , key . as_deref () , & tags , body)"), "{out}");
        let untagged = expand(
            quote!(key = "user:{id}", refresh_ahead = 0.5),
            quote!(
                fn load(id: u64) -> User {
                    db(id)
                }
            ),
        )
        .unwrap();
        assert!(untagged.contains("memoize_load (& SITE , key . as_deref () , & [] , body)"), "{untagged}");
        assert!(!untagged.contains("let tags"), "{untagged}");
    }

    #[test]
    fn tags_are_checked_as_the_key_is() {
        let function = quote!(
            fn f(id: u8) -> u8 {
                id
            }
        );
        let err = expand(quote!(tags = ["user:{id}", "{nope}", "a}"]), function.clone()).unwrap_err();
        assert!(err.contains("unknown placeholder `{nope}` in tag: the parameters are id"), "{err}");
        assert!(err.contains("unmatched `}` in tag template"), "every wrong tag is reported: {err}");
        let err = expand(
            quote!(key = "user:{ids}", many = "ids", tags = ["user:{ids}"]),
            quote!(
                fn users(ids: &[u64]) -> HashMap<u64, String> {
                    todo!()
                }
            ),
        )
        .unwrap_err();
        assert!(err.contains("`tags` cannot be combined with `many`"), "{err}");
    }

    #[test]
    fn a_wrong_argument_still_defines_the_function_and_its_companions() {
        let out = expand(
            quote!(ttl = 5, config = users),
            quote!(
                fn load(id: u64) -> u64 {
                    id
                }
            ),
        )
        .unwrap_err();
        assert!(out.contains("fn load (id : u64) -> u64 { id }"), "the function as written: {out}");
        assert!(out.contains("fn load_uncached (id : u64) -> u64"), "{out}");
        assert!(out.contains("fn load_invalidate (id : u64) -> :: cache_tower :: Result < () >"), "{out}");
        assert!(!out.contains("memoize"), "nothing is memoized: {out}");
        assert_eq!(out.matches("compile_error").count(), 2, "both wrong arguments are reported: {out}");
    }

    #[test]
    fn the_body_is_written_once_and_called_by_the_memoized_function() {
        let out = expand(
            quote!(key = "{self.region}:{id}"),
            quote!(
                fn price<T: Into<u32>, const N: usize>(&self, mut id: T) -> u32 {
                    unique_body_marker(id)
                }
            ),
        )
        .unwrap();
        assert_eq!(out.matches("unique_body_marker").count(), 1, "{out}");
        assert!(out.contains("Self :: price_uncached :: < T , N > (self , id)"), "{out}");
        assert!(
            out.contains("fn price_uncached < T : Into < u32 > , const N : usize > (& self , mut id : T)"),
            "{out}"
        );
        assert!(out.contains("fn price < T : Into < u32 > , const N : usize > (& self , id : T)"), "{out}");
        let free = expand(
            quote!(),
            quote!(
                fn f(id: u8) -> u8 {
                    id
                }
            ),
        )
        .unwrap();
        assert!(free.contains("move || f_uncached (id)"), "{free}");
        let associated = expand(
            quote!(),
            quote!(
                fn f(id: u8) -> u8 {
                    id * Self::FACTOR
                }
            ),
        )
        .unwrap();
        assert!(associated.contains("move || Self :: f_uncached (id)"), "{associated}");
    }
}
