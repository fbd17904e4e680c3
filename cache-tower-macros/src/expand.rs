//! Writes the memoized function and its two companions. The generated code only builds the key
//! and calls `cache_tower::__private`; all cache logic is ordinary Rust in the runtime crate.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::{Expr, ItemFn, LitStr, ReturnType};

use crate::args::Args;
use crate::key;
use crate::signature::{ReturnKind, Signature};

pub(crate) fn cached_tower(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = Args::parse(attr)?;
    let function: ItemFn = syn::parse2(item.clone()).map_err(|_| {
        syn::Error::new_spanned(item, "#[cached_tower] applies to functions and methods (`fn` or `async fn`)")
    })?;
    let signature = Signature::check(&function, &args)?;
    let key = key_expression(&args, &signature, &function)?;

    let name = &function.sig.ident;
    let name_text = name.to_string();
    // No `config`: the runtime's own default name, so the two can never disagree.
    let config = match &args.config {
        Some(name) => quote! { #name },
        None => quote! { ::cache_tower::registry::DEFAULT_TOWER },
    };
    let site = quote! {
        static __CACHE_TOWER_SITE: ::cache_tower::__private::CallSite = ::cache_tower::__private::CallSite::new(
            #config,
            ::core::concat!(::core::module_path!(), "::", #name_text),
        );
    };
    let assertion = signature.cached_type.as_ref().map(|ty| {
        quote_spanned! { signature.return_span=> let _ = ::cache_tower::__private::assert_cacheable::<#ty>; }
    });

    let memoize = memoize_function(signature.kind, signature.is_async);
    let body = &function.block;
    let call = if signature.is_async {
        quote! { ::cache_tower::__private::#memoize(&__CACHE_TOWER_SITE, __cache_tower_key.as_deref(), move || async move #body).await }
    } else {
        let output = match &function.sig.output {
            ReturnType::Default => quote! { () },
            ReturnType::Type(_, ty) => quote! { #ty },
        };
        quote! { ::cache_tower::__private::#memoize(&__CACHE_TOWER_SITE, __cache_tower_key.as_deref(), move || -> #output #body) }
    };

    let attrs = &function.attrs;
    let vis = &function.vis;
    let sig = &function.sig;
    let memoized = quote! {
        #(#attrs)*
        #vis #sig {
            #assertion
            #site
            #[allow(clippy::needless_borrow)]
            let __cache_tower_key: ::core::option::Option<::cache_tower::__private::MemoKey> = #key;
            #call
        }
    };

    // Companions keep every attribute but the docs (`cfg`, `allow`, ...), and get docs of their own.
    let kept: Vec<_> = attrs.iter().filter(|attr| !attr.path().is_ident("doc")).collect();

    let mut uncached_sig = sig.clone();
    uncached_sig.ident = format_ident!("{}_uncached", name);
    let uncached_doc = format!("Runs [`{name_text}`] without the cache: the body runs, nothing is read or stored.");
    let uncached = quote! {
        #(#kept)*
        #[doc = #uncached_doc]
        // A parameter may serve only the key, which this companion does not build.
        #[allow(dead_code, unused_variables)]
        #vis #uncached_sig #body
    };

    let mut invalidate_sig = sig.clone();
    invalidate_sig.ident = format_ident!("{}_invalidate", name);
    invalidate_sig.output = syn::parse_quote! { -> ::cache_tower::Result<()> };
    let invalidate_doc = format!(
        "Removes the cached result of [`{name_text}`] for these arguments from every layer of its tower.\n\n\
         # Errors\nThe error of the topmost layer that failed to delete; `Ok` when no tower is registered."
    );
    let invalidate_call = if signature.is_async {
        quote! { ::cache_tower::__private::invalidate_async(&__CACHE_TOWER_SITE, __cache_tower_key.as_deref()).await }
    } else {
        quote! { ::cache_tower::__private::invalidate(&__CACHE_TOWER_SITE, __cache_tower_key.as_deref()) }
    };
    let invalidate = quote! {
        #(#kept)*
        #[doc = #invalidate_doc]
        #[allow(dead_code, unused_variables, unused_mut, clippy::unused_async)]
        #vis #invalidate_sig {
            #site
            #[allow(clippy::needless_borrow)]
            let __cache_tower_key: ::core::option::Option<::cache_tower::__private::MemoKey> = #key;
            #invalidate_call
        }
    };

    Ok(quote! { #memoized #uncached #invalidate })
}

fn memoize_function(kind: ReturnKind, is_async: bool) -> syn::Ident {
    let base = match kind {
        ReturnKind::Plain => "memoize",
        ReturnKind::Result => "memoize_result",
        ReturnKind::Option => "memoize_option",
    };
    if is_async { format_ident!("{}_async", base) } else { format_ident!("{}", base) }
}

/// The expression that builds the key, an `Option<MemoKey>`: the template, or the default key
/// (the function's path and its arguments as JSON).
fn key_expression(args: &Args, signature: &Signature, function: &ItemFn) -> syn::Result<TokenStream> {
    let Some(template) = &args.key else {
        let name_text = function.sig.ident.to_string();
        let names: Vec<_> = signature.params.iter().map(|(name, _)| name).collect();
        let checks = signature.params.iter().map(|(name, ty)| {
            quote_spanned! { syn::spanned::Spanned::span(ty)=> ::cache_tower::__private::assert_key_argument(&#name); }
        });
        // A tuple of references is written as a JSON array; `()` would be `null`, so no
        // arguments are an empty array instead.
        let arguments = if names.is_empty() {
            quote! { &[(); 0] }
        } else {
            quote! { &(#(&#names,)*) }
        };
        return Ok(quote! {{
            #(#checks)*
            ::cache_tower::__private::default_key(
                ::core::concat!(::core::module_path!(), "::", #name_text),
                #arguments,
            )
        }});
    };
    let parsed = key::parse(&template.value()).map_err(|message| syn::Error::new(template.span(), message))?;
    let mut arguments = Vec::with_capacity(parsed.placeholders.len());
    for placeholder in &parsed.placeholders {
        let known = if placeholder.root == "self" {
            signature.has_receiver
        } else {
            signature.params.iter().any(|(name, _)| *name == placeholder.root)
        };
        if !known {
            let mut names: Vec<String> = signature.params.iter().map(|(name, _)| name.to_string()).collect();
            if signature.has_receiver {
                names.insert(0, "self".to_owned());
            }
            let names = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
            return Err(syn::Error::new(
                template.span(),
                format!("unknown placeholder `{{{}}}` in key: the parameters are {names}", placeholder.expression),
            ));
        }
        let expression: Expr = syn::parse_str(&placeholder.expression).map_err(|err| {
            syn::Error::new(template.span(), format!("placeholder `{}`: {err}", placeholder.expression))
        })?;
        arguments.push(respan(quote! { #expression }, template.span()));
    }
    if parsed.placeholders.iter().any(|placeholder| placeholder.has_spec) {
        let format = LitStr::new(&parsed.format, template.span());
        // With format specs, `format_args!` writes the key (into the same stack-built `MemoKey`).
        return Ok(quote! {{
            let mut __cache_tower_key = ::cache_tower::__private::MemoKey::new();
            // Writing into a MemoKey cannot fail.
            let _ = ::core::fmt::Write::write_fmt(
                &mut __cache_tower_key,
                ::core::format_args!(#format, #(#arguments),*),
            );
            ::core::option::Option::Some(__cache_tower_key)
        }});
    }
    // Without format specs the key is built piece by piece: text is pushed as it is, a
    // string-like value is copied, anything else is written with `Display` (`KeyPart`).
    // That is the same text `format!` makes, without its machinery on every call, and on the
    // stack when short (`MemoKey`).
    let texts: Vec<LitStr> = parsed.texts.iter().map(|text| LitStr::new(text, template.span())).collect();
    let (first, rest) = texts.split_first().expect("a template has at least one piece of text");
    Ok(quote! {{
        #[allow(unused_imports)]
        use ::cache_tower::__private::{KeyDisplay as _, KeyStr as _};
        let mut __cache_tower_key = ::cache_tower::__private::MemoKey::new();
        __cache_tower_key.push_str(#first);
        #(
            (&::cache_tower::__private::KeyPart(&(#arguments))).push_key(&mut __cache_tower_key);
            __cache_tower_key.push_str(#rest);
        )*
        ::core::option::Option::Some(__cache_tower_key)
    }})
}

/// Gives every token the span of the key template, so errors in a placeholder point at it.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut inner = proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
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

    fn expand(attr: TokenStream, item: TokenStream) -> Result<String, String> {
        cached_tower(attr, item).map(|tokens| tokens.to_string()).map_err(|err| err.to_string())
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
        assert!(out.contains("memoize (& __CACHE_TOWER_SITE"), "{out}");
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
        assert!(pieces.contains(r#"push_str ("user:")"#) && pieces.contains("KeyPart (& (id))"), "{pieces}");
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
        assert!(result.contains("default_key"), "{result}");
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
}
