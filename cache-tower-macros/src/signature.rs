//! What the macro needs to know about the function it memoizes, checked: plain parameter names,
//! a receiver that is `&self` or `self`, and what kind of value the function returns.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Type};

use crate::args::Args;

/// How the function's result is cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReturnKind {
    /// Any value: always cached.
    Plain,
    /// `Result<T, E>`: only `Ok(T)` is cached.
    Result,
    /// `Option<T>`: only `Some(T)` is cached.
    Option,
}

/// The checked facts about the function.
pub(crate) struct Signature {
    /// Parameter names with their types, in order, receiver excluded.
    pub(crate) params: Vec<(Ident, Type)>,
    /// Whether the function takes `self` (as `&self` or `self`).
    pub(crate) has_receiver: bool,
    pub(crate) is_async: bool,
    pub(crate) kind: ReturnKind,
    /// The type stored in the cache, when the macro can name it (not for `result = true` on an
    /// alias), with the span of the user's tokens so a non-serializable type is reported there.
    pub(crate) cached_type: Option<Type>,
    /// The span of the return type (or of the name when there is none).
    pub(crate) return_span: Span,
}

impl Signature {
    pub(crate) fn check(function: &ItemFn, args: &Args) -> syn::Result<Self> {
        let sig = &function.sig;
        let mut params = Vec::new();
        let mut has_receiver = false;
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(receiver) => {
                    if receiver.mutability.is_some() && receiver.reference.is_some() {
                        return Err(syn::Error::new_spanned(
                            receiver,
                            "#[cached_tower] cannot memoize a method taking `&mut self`: a cached result must \
                             not depend on changing the receiver; take `&self`",
                        ));
                    }
                    has_receiver = true;
                }
                FnArg::Typed(typed) => match &*typed.pat {
                    Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                        params.push((pat.ident.clone(), (*typed.ty).clone()));
                    }
                    other => {
                        return Err(syn::Error::new_spanned(
                            other,
                            "#[cached_tower] needs a plain name for each parameter (destructure inside the body)",
                        ));
                    }
                },
            }
        }
        let (kind, cached_type, return_span) = return_kind(&sig.output, args, sig.ident.span());
        Ok(Self { params, has_receiver, is_async: sig.asyncness.is_some(), kind, cached_type, return_span })
    }
}

/// Reads the return type: `Result<T, _>` and `Option<T>` by the last path segment, unless the
/// arguments say otherwise (`result = true`, `option = true`, `cache_none = true`).
fn return_kind(output: &ReturnType, args: &Args, name_span: Span) -> (ReturnKind, Option<Type>, Span) {
    let ty = match output {
        ReturnType::Default => return (ReturnKind::Plain, Some(syn::parse_quote!(())), name_span),
        ReturnType::Type(_, ty) => &**ty,
    };
    let span = ty.span();
    let (last, first_argument) = match ty {
        Type::Path(path) if path.qself.is_none() => match path.path.segments.last() {
            Some(segment) => {
                let first = match &segment.arguments {
                    PathArguments::AngleBracketed(arguments) => arguments.args.iter().find_map(|arg| match arg {
                        GenericArgument::Type(ty) => Some(ty.clone()),
                        _ => None,
                    }),
                    _ => None,
                };
                (segment.ident.to_string(), first)
            }
            None => (String::new(), None),
        },
        _ => (String::new(), None),
    };
    let result = Args::flag(&args.result) || (args.result.is_none() && args.option.is_none() && last == "Result");
    let option = Args::flag(&args.option) || (args.option.is_none() && args.result.is_none() && last == "Option");
    // `result = true` on an alias: the macro cannot see T, the compiler checks it at the call.
    let inner = if matches!(last.as_str(), "Result" | "Option") { first_argument } else { None };
    if result {
        (ReturnKind::Result, inner, span)
    } else if option && !Args::flag(&args.cache_none) {
        (ReturnKind::Option, inner, span)
    } else {
        (ReturnKind::Plain, Some(ty.clone()), span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::{ToTokens, quote};

    fn check(function: proc_macro2::TokenStream, args: proc_macro2::TokenStream) -> syn::Result<Signature> {
        Signature::check(&syn::parse2(function).unwrap(), &Args::parse(args).unwrap())
    }

    fn cached(sig: &Signature) -> String {
        sig.cached_type.as_ref().map(|ty| ty.to_token_stream().to_string()).unwrap_or_default()
    }

    #[test]
    fn recognises_return_kinds() {
        let plain = check(
            quote!(
                fn f(id: u64) -> User {
                    todo()
                }
            ),
            quote!(),
        )
        .unwrap();
        assert_eq!((plain.kind, cached(&plain).as_str()), (ReturnKind::Plain, "User"));
        let result = check(
            quote!(
                fn f() -> io::Result<User> {
                    todo()
                }
            ),
            quote!(),
        )
        .unwrap();
        assert_eq!((result.kind, cached(&result).as_str()), (ReturnKind::Result, "User"));
        let option = check(
            quote!(
                async fn f() -> Option<u8> {
                    todo()
                }
            ),
            quote!(),
        )
        .unwrap();
        assert_eq!((option.kind, option.is_async), (ReturnKind::Option, true));
        let none_cached = check(
            quote!(
                fn f() -> Option<u8> {
                    todo()
                }
            ),
            quote!(cache_none = true),
        )
        .unwrap();
        assert_eq!((none_cached.kind, cached(&none_cached).as_str()), (ReturnKind::Plain, "Option < u8 >"));
        let alias = check(
            quote!(
                fn f() -> Fallible {
                    todo()
                }
            ),
            quote!(result = true),
        )
        .unwrap();
        assert_eq!((alias.kind, alias.cached_type.is_none()), (ReturnKind::Result, true));
        let unit = check(
            quote!(
                fn f() {
                    todo()
                }
            ),
            quote!(),
        )
        .unwrap();
        assert_eq!(cached(&unit), "()");
    }

    #[test]
    fn checks_parameters_and_receiver() {
        let method = check(
            quote!(
                fn f(&self, mut id: u64, name: &str) -> u8 {
                    0
                }
            ),
            quote!(),
        )
        .unwrap();
        assert!(method.has_receiver);
        let names: Vec<String> = method.params.iter().map(|(name, _)| name.to_string()).collect();
        assert_eq!(names, ["id", "name"]);
        assert!(
            check(
                quote!(
                    fn f(&mut self) -> u8 {
                        0
                    }
                ),
                quote!()
            )
            .is_err()
        );
        assert!(
            check(
                quote!(
                    fn f((a, b): (u8, u8)) -> u8 {
                        a + b
                    }
                ),
                quote!()
            )
            .is_err()
        );
    }
}
