//! Checks the function against what the macro can memoize, and the arguments against the
//! function: plain parameter names, a receiver that is `&self` or `self`, what kind of value the
//! function returns, and key and tag templates whose placeholders name parameters. Every problem
//! is reported, each at the tokens that are wrong.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Expr, FnArg, GenericArgument, Ident, ItemFn, LitStr, Pat, PathArguments, Receiver, ReturnType, Type};

use crate::args::{Args, Errors};
use crate::key;

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
    /// The receiver (`&self`, `self`, `self: Box<Self>`...), if any.
    pub(crate) receiver: Option<Receiver>,
    /// Whether the function is an associated function, whose companions are called as
    /// `Self::name`: it has a receiver or mentions `Self` (see [`mentions_self`]).
    pub(crate) associated: bool,
    pub(crate) is_async: bool,
    pub(crate) kind: ReturnKind,
    /// The type stored in the cache, when the macro can name it (not for `result = true` on an
    /// alias), with the span of the user's tokens so a non-serializable type is reported there.
    pub(crate) cached_type: Option<Type>,
    /// The tokens errors about the cached value point at: the cached type (`T` of `Result<T, E>`),
    /// else the return type, else the function's name.
    pub(crate) return_tokens: TokenStream,
}

/// The key, checked against the parameters.
pub(crate) enum Key {
    /// The function's path and its arguments as JSON.
    Default,
    /// A `key` template.
    Template(CheckedTemplate),
}

/// A template checked against the parameters: the `key`, or one of the `tags`.
pub(crate) struct CheckedTemplate {
    /// The template literal, whose span the code that renders it takes.
    pub(crate) literal: LitStr,
    pub(crate) template: key::Template,
    /// The placeholders' expressions, in order.
    pub(crate) arguments: Vec<Expr>,
}

/// A function the macro can memoize, with its arguments.
pub(crate) struct Checked {
    pub(crate) signature: Signature,
    pub(crate) key: Key,
    /// The `tags` templates, in order (none without `tags`).
    pub(crate) tags: Vec<CheckedTemplate>,
    /// A batch function's collection (`many = "ids"`).
    pub(crate) many: Option<Many>,
}

/// The collection parameter of a batch function, and how a part of it is passed to the body.
pub(crate) struct Many {
    pub(crate) param: Ident,
    pub(crate) passing: Passing,
    /// The map's value type `V` (of `HashMap<K, V>`), stored per element.
    pub(crate) value_type: Type,
}

/// How the body is given the elements it has to load (a `Vec<K>` of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Passing {
    /// `ids: &[K]`: a reference to the `Vec`.
    Slice,
    /// `ids: &C`: a reference to a `C` collected from them.
    Reference,
    /// `ids: C`: a `C` collected from them.
    Owned,
}

/// Checks the arguments and the function; the error holds every problem found.
pub(crate) fn check(attr: TokenStream, function: &ItemFn) -> syn::Result<(Args, Checked)> {
    let mut errors = Errors::default();
    let args = errors.push(Args::parse(attr));
    let signature = errors.push(Signature::check(function, args.as_ref().unwrap_or(&Args::default())));
    if let (Some(args), Some(signature)) = (&args, &signature) {
        errors.push(check_background(args, signature));
    }
    let key = match (&args, &signature) {
        (Some(args), Some(signature)) => errors.push(check_key(args, signature)),
        // The key is checked against the parameters, which are not known.
        _ => None,
    };
    let tags = match (&args, &signature) {
        (Some(args), Some(signature)) => errors.push(check_tags(args, signature)),
        _ => None,
    };
    let many = match (&args, &signature, &key) {
        (Some(args), Some(signature), Some(key)) => errors.push(check_many(args, signature, key)),
        _ => None,
    };
    errors.finish()?;
    match (args, signature, key, tags, many) {
        (Some(args), Some(signature), Some(key), Some(tags), Some(many)) => {
            Ok((args, Checked { signature, key, tags, many }))
        }
        _ => Err(syn::Error::new(Span::call_site(), "#[cached_tower]: internal error, no error was reported")),
    }
}

/// `soft_timeout`, `hard_timeout` and `refresh_ahead` hand the body to a background load that may
/// outlive the call: it must own its arguments (no references, no `self`), and a hard timeout is
/// an error only a `Result` can carry. Every problem is reported, each at its own tokens.
fn check_background(args: &Args, signature: &Signature) -> syn::Result<()> {
    let Some((argument, _)) = args.background else { return Ok(()) };
    let mut errors = Errors::default();
    if let Some(receiver) = &signature.receiver {
        errors.push::<()>(Err(syn::Error::new_spanned(
            receiver,
            format!(
                "`{argument}` cannot be used on a method: the computation may outlive the call, and it would \
                 need `self`; memoize a free function taking what it needs by value"
            ),
        )));
    }
    for (name, ty) in &signature.params {
        if quote! { #ty }.to_string().contains('&') {
            errors.push::<()>(Err(syn::Error::new_spanned(
                ty,
                format!(
                    "`{argument}` needs arguments the computation can own, since it may outlive the call: \
                     `{name}` borrows; take it by value (`String` for `&str`, `Vec<T>` for `&[T]`)"
                ),
            )));
        }
    }
    match (signature.kind, args.hard_timeout) {
        (ReturnKind::Option, _) => errors.push::<()>(Err(syn::Error::new(
            args.background.map_or_else(Span::call_site, |(_, span)| span),
            format!("`{argument}` is not supported on a function returning `Option`; return a `Result`"),
        ))),
        (ReturnKind::Plain, Some((_, span))) => errors.push::<()>(Err(syn::Error::new(
            span,
            "`hard_timeout` needs a function returning `Result<T, E>` with `E: From<cache_tower::Error>`: \
             giving up is an error it returns",
        ))),
        _ => None,
    };
    errors.finish()
}

impl Signature {
    pub(crate) fn check(function: &ItemFn, args: &Args) -> syn::Result<Self> {
        let sig = &function.sig;
        let mut errors = Errors::default();
        let mut params = Vec::new();
        let mut receiver = None;
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(found) => {
                    let mutable_reference = found.reference.is_some() && found.mutability.is_some()
                        || matches!(&*found.ty, Type::Reference(reference) if reference.mutability.is_some());
                    if mutable_reference {
                        errors.push::<()>(Err(syn::Error::new_spanned(
                            found,
                            "#[cached_tower] cannot memoize a method taking `&mut self`: a cached result must \
                             not depend on changing the receiver; take `&self`",
                        )));
                    }
                    receiver = Some(found.clone());
                }
                FnArg::Typed(typed) => match &*typed.pat {
                    Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                        params.push((pat.ident.clone(), (*typed.ty).clone()));
                    }
                    other => {
                        errors.push::<()>(Err(syn::Error::new_spanned(
                            other,
                            "#[cached_tower] needs a plain name for each parameter, as in `pair: (u8, u8)`; \
                             destructure it inside the body",
                        )));
                    }
                },
            }
        }
        errors.push(check_not_a_result_alias(&sig.output, args));
        errors.finish()?;
        let (kind, cached_type, return_tokens) = return_kind(&sig.output, args, &sig.ident);
        let associated = receiver.is_some() || mentions_self(&quote! { #function });
        Ok(Self { params, receiver, associated, is_async: sig.asyncness.is_some(), kind, cached_type, return_tokens })
    }
}

/// A return type named like an alias of `Result` (`MyResult<T>`, `io::Result<T>` is `Result`
/// itself) would be cached whole, `Err` values included, since the macro sees names, not types:
/// it must be told which it is.
fn check_not_a_result_alias(output: &ReturnType, args: &Args) -> syn::Result<()> {
    let ReturnType::Type(_, ty) = output else { return Ok(()) };
    let Type::Path(path) = &**ty else { return Ok(()) };
    let Some(last) = path.path.segments.last() else { return Ok(()) };
    let name = last.ident.to_string();
    if name == "Result" || !name.ends_with("Result") || args.result.is_some() || args.option.is_some() {
        return Ok(());
    }
    Err(syn::Error::new_spanned(
        ty,
        format!(
            "`{name}` may be an alias of `Result`, which #[cached_tower] cannot see through: add `result = true` \
             to cache only `Ok` values (an `Err` is returned, never cached), or `result = false` if it is not a \
             `Result` (the whole value is cached)"
        ),
    ))
}

/// Whether `Self` appears in the function: then it is in an `impl` or a trait, and its companions
/// are its siblings there, called as `Self::name_uncached`. A function without a receiver that
/// never says `Self` is taken for a free function.
pub(crate) fn mentions_self(tokens: &TokenStream) -> bool {
    tokens.clone().into_iter().any(|token| match token {
        proc_macro2::TokenTree::Ident(ident) => ident == "Self",
        proc_macro2::TokenTree::Group(group) => mentions_self(&group.stream()),
        _ => false,
    })
}

/// Parses the key template and checks that each placeholder starts from a parameter.
fn check_key(args: &Args, signature: &Signature) -> syn::Result<Key> {
    match &args.key {
        Some(literal) => Ok(Key::Template(check_template(literal, signature, "key")?)),
        None => Ok(Key::Default),
    }
}

/// Checks each of the `tags` as the key is checked; every wrong one is reported.
fn check_tags(args: &Args, signature: &Signature) -> syn::Result<Vec<CheckedTemplate>> {
    let Some(tags) = &args.tags else { return Ok(Vec::new()) };
    let mut errors = Errors::default();
    let checked: Vec<CheckedTemplate> =
        tags.templates.iter().filter_map(|literal| errors.push(check_template(literal, signature, "tag"))).collect();
    errors.finish()?;
    Ok(checked)
}

/// Parses a template, the `key` or one of the `tags` (`what`, for the messages), and checks
/// that each placeholder starts from a parameter.
fn check_template(literal: &LitStr, signature: &Signature, what: &str) -> syn::Result<CheckedTemplate> {
    let template = key::parse(&literal.value(), what).map_err(|message| syn::Error::new(literal.span(), message))?;
    let mut arguments = Vec::with_capacity(template.placeholders.len());
    for placeholder in &template.placeholders {
        let known = if placeholder.root == "self" {
            signature.receiver.is_some()
        } else {
            signature.params.iter().any(|(name, _)| *name == placeholder.root)
        };
        if !known {
            let mut names: Vec<String> = signature.params.iter().map(|(name, _)| name.to_string()).collect();
            if signature.receiver.is_some() {
                names.insert(0, "self".to_owned());
            }
            let names = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
            return Err(syn::Error::new(
                literal.span(),
                format!("unknown placeholder `{{{}}}` in {what}: the parameters are {names}", placeholder.expression),
            ));
        }
        let expression: Expr = syn::parse_str(&placeholder.expression).map_err(|err| {
            syn::Error::new(literal.span(), format!("placeholder `{{{}}}`: {err}", placeholder.expression))
        })?;
        arguments.push(expression);
    }
    Ok(CheckedTemplate { literal: literal.clone(), template, arguments })
}

/// `many = "ids"`: `ids` is a parameter, the key template says where each element goes
/// (`"user:{ids}"`), the function returns a map from element to value (or a `Result` of one), and
/// no option that batches cannot honour is given. Every problem is reported at its tokens.
fn check_many(args: &Args, signature: &Signature, key: &Key) -> syn::Result<Option<Many>> {
    let Some(literal) = &args.many else { return Ok(None) };
    let name = literal.value();
    let mut errors = Errors::default();
    let param = signature.params.iter().find(|(param, _)| *param == name);
    if param.is_none() {
        let names: Vec<String> = signature.params.iter().map(|(name, _)| name.to_string()).collect();
        let names = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
        errors.push::<()>(Err(syn::Error::new(
            literal.span(),
            format!("`many = {name:?}` must name the collection parameter; the parameters are {names}"),
        )));
    }
    match key {
        // An unknown parameter is the one error to report.
        _ if param.is_none() => None,
        Key::Template(key) if key.template.placeholders.iter().any(|p| p.root == name) => None,
        Key::Template(key) => errors.push::<()>(Err(syn::Error::new(
            key.literal.span(),
            format!("with `many = {name:?}` the key must place each element, as in `key = \"user:{{{name}}}\"`"),
        ))),
        Key::Default => errors.push::<()>(Err(syn::Error::new(
            literal.span(),
            format!("`many` needs a key template that places each element, as in `key = \"user:{{{name}}}\"`"),
        ))),
    };
    let unsupported: Vec<&str> = [
        ("ttl", args.ttl_millis.is_some()),
        ("stale", args.stale_millis.is_some()),
        ("fail_safe", args.fail_safe_millis.is_some()),
        ("lock", args.lock_millis.is_some()),
        ("soft_timeout", args.soft_timeout_millis.is_some()),
        ("hard_timeout", args.hard_timeout.is_some()),
        ("refresh_ahead", args.refresh_ahead.is_some()),
        ("option", args.option.is_some()),
        ("cache_none", args.cache_none.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect();
    if !unsupported.is_empty() {
        errors.push::<()>(Err(syn::Error::new(
            literal.span(),
            format!(
                "`many` cannot be combined with {}: a batch is loaded with get_or_set_many, which takes no load \
                 options (each layer keeps the values for its own TTL)",
                unsupported.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
            ),
        )));
    }
    if let Some(tags) = &args.tags {
        errors.push::<()>(Err(syn::Error::new(
            tags.span,
            "`tags` cannot be combined with `many`: a batch is stored with get_or_set_many, which stores its \
             values without tags (forget a batch's entries with its `_invalidate` companion)",
        )));
    }
    if let Some(receiver) = signature.receiver.as_ref().filter(|receiver| receiver.reference.is_none()) {
        errors.push::<()>(Err(syn::Error::new_spanned(
            receiver,
            "`many` needs `&self`: the body may be called again (for elements another caller failed to load)",
        )));
    }
    let value_type = errors.push(map_value_type(signature));
    errors.finish()?;
    let (Some((param, ty)), Some(value_type)) = (param, value_type) else {
        return Err(syn::Error::new(literal.span(), "#[cached_tower]: internal error, no error was reported"));
    };
    let passing = match ty {
        Type::Reference(reference) if matches!(&*reference.elem, Type::Slice(_)) => Passing::Slice,
        Type::Reference(_) => Passing::Reference,
        _ => Passing::Owned,
    };
    Ok(Some(Many { param: param.clone(), passing, value_type }))
}

/// The `V` of a batch function's `…Map<K, V>` (or `Result<…Map<K, V>, E>`) return type.
fn map_value_type(signature: &Signature) -> syn::Result<Type> {
    let wrong = || {
        syn::Error::new_spanned(
            &signature.return_tokens,
            "`many` needs a function returning a map from element to value, such as `HashMap<u64, User>` or \
             `BTreeMap<u64, User>`, or a `Result` of one",
        )
    };
    let map = match signature.kind {
        ReturnKind::Plain | ReturnKind::Result => signature.cached_type.as_ref().ok_or_else(wrong)?,
        ReturnKind::Option => return Err(wrong()),
    };
    let Type::Path(path) = map else { return Err(wrong()) };
    let segment = path.path.segments.last().ok_or_else(wrong)?;
    let PathArguments::AngleBracketed(arguments) = &segment.arguments else { return Err(wrong()) };
    let types: Vec<&Type> = arguments
        .args
        .iter()
        .filter_map(|argument| match argument {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
        .collect();
    match types.as_slice() {
        [_, value, ..] if segment.ident.to_string().ends_with("Map") => Ok((*value).clone()),
        _ => Err(wrong()),
    }
}

/// Reads the return type: `Result<T, _>` and `Option<T>` by the last path segment, unless the
/// arguments say otherwise (`result = true`, `option = true`, `cache_none = true`).
fn return_kind(output: &ReturnType, args: &Args, name: &Ident) -> (ReturnKind, Option<Type>, TokenStream) {
    let ty = match output {
        ReturnType::Default => return (ReturnKind::Plain, Some(syn::parse_quote!(())), quote! { #name }),
        ReturnType::Type(_, ty) => &**ty,
    };
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
    let kind = if result {
        ReturnKind::Result
    } else if option && !Args::flag(&args.cache_none) {
        ReturnKind::Option
    } else {
        return (ReturnKind::Plain, Some(ty.clone()), quote! { #ty });
    };
    let tokens = match &inner {
        Some(inner) => quote! { #inner },
        None => quote! { #ty },
    };
    (kind, inner, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;

    fn check(function: TokenStream, args: TokenStream) -> syn::Result<Signature> {
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
        assert!(method.receiver.is_some() && method.associated);
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
