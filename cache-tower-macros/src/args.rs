//! The attribute's arguments: `config = "…"`, `key = "…"`, `result = bool`, `option = bool`,
//! `cache_none = bool`.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitBool, LitStr, Meta, Token};

const KNOWN: &str = "config, key, result, option, cache_none";

/// The parsed arguments.
#[derive(Default)]
pub(crate) struct Args {
    /// The registered tower's name.
    pub(crate) config: Option<LitStr>,
    /// The key template.
    pub(crate) key: Option<LitStr>,
    /// Treat the return type as a `Result` (for aliases).
    pub(crate) result: Option<LitBool>,
    /// Treat the return type as an `Option` (for aliases).
    pub(crate) option: Option<LitBool>,
    /// Cache `None` results too.
    pub(crate) cache_none: Option<LitBool>,
}

impl Args {
    /// Parses the arguments. Every wrong argument is reported, each at its own tokens.
    pub(crate) fn parse(attr: TokenStream) -> syn::Result<Self> {
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
        let mut args = Args::default();
        let mut errors = Errors::default();
        for meta in metas {
            errors.push(args.parse_one(meta));
        }
        if let (Some(result), Some(option)) = (&args.result, &args.option) {
            if result.value && option.value {
                errors.push::<()>(Err(syn::Error::new(
                    option.span,
                    "a return type cannot be both a Result and an Option: give `result = true` or `option = true`",
                )));
            }
        }
        errors.finish()?;
        Ok(args)
    }

    fn parse_one(&mut self, meta: Meta) -> syn::Result<()> {
        let name_value = match meta {
            Meta::NameValue(name_value) => name_value,
            Meta::Path(path) => {
                let name = path_name(&path);
                return Err(syn::Error::new_spanned(
                    path,
                    format!("argument `{name}` needs a value, such as `{name} = {}`", example(&name)),
                ));
            }
            Meta::List(list) => {
                return Err(syn::Error::new_spanned(list, format!("expected `name = value` arguments ({KNOWN})")));
            }
        };
        let name = path_name(&name_value.path);
        let path = &name_value.path;
        match name.as_str() {
            "config" => set(&mut self.config, path, string(&name_value.value, &name)?),
            "key" => set(&mut self.key, path, string(&name_value.value, &name)?),
            "result" => set(&mut self.result, path, boolean(&name_value.value, &name)?),
            "option" => set(&mut self.option, path, boolean(&name_value.value, &name)?),
            "cache_none" => set(&mut self.cache_none, path, boolean(&name_value.value, &name)?),
            _ => Err(syn::Error::new_spanned(path, format!("unknown argument `{name}`; expected one of {KNOWN}"))),
        }
    }

    pub(crate) fn flag(flag: &Option<LitBool>) -> bool {
        flag.as_ref().is_some_and(|lit| lit.value)
    }
}

/// Errors gathered over several checks, so that each is reported and not only the first.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Keeps the error of `result`, if any.
    pub(crate) fn push<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                match &mut self.0 {
                    Some(errors) => errors.combine(err),
                    None => self.0 = Some(err),
                }
                None
            }
        }
    }

    /// `Err` with every error pushed, if there was one.
    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

fn set<T>(slot: &mut Option<T>, path: &syn::Path, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(path, format!("duplicate argument `{}`", path_name(path))));
    }
    *slot = Some(value);
    Ok(())
}

fn path_name(path: &syn::Path) -> String {
    path.segments.iter().map(|segment| segment.ident.to_string()).collect::<Vec<_>>().join("::")
}

fn example(name: &str) -> &'static str {
    match name {
        "config" => "\"users\"",
        "key" => "\"user:{id}\"",
        "result" | "option" | "cache_none" => "true",
        _ => "...",
    }
}

fn string(value: &Expr, name: &str) -> syn::Result<LitStr> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => Ok(lit.clone()),
        other => {
            Err(syn::Error::new_spanned(other, format!("`{name}` takes a string literal, such as {}", example(name))))
        }
    }
}

fn boolean(value: &Expr, name: &str) -> syn::Result<LitBool> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Bool(lit), .. }) => Ok(lit.clone()),
        other => Err(syn::Error::new_spanned(other, format!("`{name}` takes `true` or `false`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn error(attr: TokenStream) -> String {
        match Args::parse(attr) {
            Ok(_) => panic!("should be rejected"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn parses_every_argument() {
        let args = Args::parse(quote!(config = "users", key = "user:{id}", result = true, cache_none = false)).unwrap();
        assert_eq!(args.config.unwrap().value(), "users");
        assert_eq!(args.key.unwrap().value(), "user:{id}");
        assert!(Args::flag(&args.result));
        assert!(!Args::flag(&args.cache_none));
        assert!(args.option.is_none());
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(error(quote!(ttl = 5)).contains("unknown argument `ttl`"));
        assert!(error(quote!(key = "a", key = "b")).contains("duplicate argument `key`"));
        assert!(error(quote!(config)).contains("needs a value"));
        assert!(error(quote!(config = users)).contains("string literal"));
        assert!(error(quote!(result = "yes")).contains("`true` or `false`"));
        assert!(error(quote!(result = true, option = true)).contains("both"));
        let both = error(quote!(ttl = 5, config = users));
        assert!(both.contains("unknown argument `ttl`"), "{both}");
        let all: Vec<String> = match Args::parse(quote!(ttl = 5, config = users)) {
            Ok(_) => panic!("should be rejected"),
            Err(err) => err.into_iter().map(|err| err.to_string()).collect(),
        };
        assert_eq!(all.len(), 2, "every wrong argument is reported: {all:?}");
    }
}
