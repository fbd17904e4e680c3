//! The attribute's arguments: `config = "…"`, `key = "…"`, `ttl = "…"`, `stale = "…"`,
//! `fail_safe = "…"`, `soft_timeout = "…"`, `hard_timeout = "…"`, `refresh_ahead = 0.8`,
//! `result = bool`, `option = bool`, `cache_none = bool`, `many = "ids"`, `tags = ["user:{id}"]`.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitBool, LitStr, Meta, Token};

const KNOWN: &str = "config, key, ttl, stale, fail_safe, soft_timeout, hard_timeout, refresh_ahead, lock, result, option, cache_none, many, tags";

/// The parsed arguments.
#[derive(Default)]
pub(crate) struct Args {
    /// The registered tower's name.
    pub(crate) config: Option<LitStr>,
    /// The key template.
    pub(crate) key: Option<LitStr>,
    /// The results' own TTL, in milliseconds (from `ttl = "30s"`).
    pub(crate) ttl_millis: Option<u64>,
    /// The results' own stale window, in milliseconds (from `stale = "10m"`).
    pub(crate) stale_millis: Option<u64>,
    /// The fail-safe's throttle period, in milliseconds (from `fail_safe = "30s"`).
    pub(crate) fail_safe_millis: Option<u64>,
    /// The soft timeout, in milliseconds.
    pub(crate) soft_timeout_millis: Option<u64>,
    /// The hard timeout, in milliseconds, and where it was written.
    pub(crate) hard_timeout: Option<(u64, proc_macro2::Span)>,
    /// The eager-refresh fraction (`0 < f < 1`).
    pub(crate) refresh_ahead: Option<f64>,
    /// The distributed lock's timeout, in milliseconds (from `lock = "5s"`).
    pub(crate) lock_millis: Option<u64>,
    /// The name and place of the first argument that makes the body a background load.
    pub(crate) background: Option<(&'static str, proc_macro2::Span)>,
    /// Treat the return type as a `Result` (for aliases).
    pub(crate) result: Option<LitBool>,
    /// Treat the return type as an `Option` (for aliases).
    pub(crate) option: Option<LitBool>,
    /// Cache `None` results too.
    pub(crate) cache_none: Option<LitBool>,
    /// The collection parameter of a batch function (`many = "ids"`): memoized per element.
    pub(crate) many: Option<LitStr>,
    /// The tag templates (`tags = ["user:{id}", "tenant:{tenant}"]`).
    pub(crate) tags: Option<Tags>,
}

/// The `tags` argument: its templates, at least one, and where `tags` was written.
pub(crate) struct Tags {
    pub(crate) span: proc_macro2::Span,
    pub(crate) templates: Vec<LitStr>,
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
            "ttl" => set(&mut self.ttl_millis, path, duration(&name_value.value, &name)?),
            "stale" => set(&mut self.stale_millis, path, duration(&name_value.value, &name)?),
            "fail_safe" => set(&mut self.fail_safe_millis, path, duration(&name_value.value, &name)?),
            "soft_timeout" => {
                self.background.get_or_insert(("soft_timeout", path_span(path)));
                set(&mut self.soft_timeout_millis, path, duration(&name_value.value, &name)?)
            }
            "hard_timeout" => {
                self.background.get_or_insert(("hard_timeout", path_span(path)));
                let millis = duration(&name_value.value, &name)?;
                set(&mut self.hard_timeout, path, (millis, path_span(path)))
            }
            "lock" => set(&mut self.lock_millis, path, duration(&name_value.value, &name)?),
            "refresh_ahead" => {
                self.background.get_or_insert(("refresh_ahead", path_span(path)));
                set(&mut self.refresh_ahead, path, fraction(&name_value.value, &name)?)
            }
            "result" => set(&mut self.result, path, boolean(&name_value.value, &name)?),
            "option" => set(&mut self.option, path, boolean(&name_value.value, &name)?),
            "cache_none" => set(&mut self.cache_none, path, boolean(&name_value.value, &name)?),
            "many" => set(&mut self.many, path, string(&name_value.value, &name)?),
            "tags" => {
                let templates = strings(&name_value.value, &name)?;
                set(&mut self.tags, path, Tags { span: path_span(path), templates })
            }
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

fn path_span(path: &syn::Path) -> proc_macro2::Span {
    path.segments.first().map_or_else(proc_macro2::Span::call_site, |segment| segment.ident.span())
}

/// A fraction strictly between 0 and 1 (`refresh_ahead = 0.8`), or an error at the literal.
fn fraction(value: &Expr, name: &str) -> syn::Result<f64> {
    let wrong =
        |span| syn::Error::new(span, format!("`{name}` takes a fraction of the TTL between 0 and 1, such as 0.8"));
    match value {
        Expr::Lit(ExprLit { lit: Lit::Float(lit), .. }) => match lit.base10_parse::<f64>() {
            Ok(fraction) if fraction > 0.0 && fraction < 1.0 => Ok(fraction),
            _ => Err(wrong(lit.span())),
        },
        other => Err(wrong(syn::spanned::Spanned::span(other))),
    }
}

fn path_name(path: &syn::Path) -> String {
    path.segments.iter().map(|segment| segment.ident.to_string()).collect::<Vec<_>>().join("::")
}

fn example(name: &str) -> &'static str {
    match name {
        "config" => "\"users\"",
        "key" => "\"user:{id}\"",
        "ttl" | "fail_safe" => "\"30s\"",
        "stale" => "\"10m\"",
        "soft_timeout" => "\"100ms\"",
        "lock" => "\"5s\"",
        "hard_timeout" => "\"2s\"",
        "refresh_ahead" => "0.8",
        "result" | "option" | "cache_none" => "true",
        "many" => "\"ids\"",
        "tags" => "[\"user:{id}\"]",
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

/// A list of string literals (`tags = ["user:{id}", "tenant:{tenant}"]`), not empty. Every
/// element that is not a string literal is reported, each at its tokens.
fn strings(value: &Expr, name: &str) -> syn::Result<Vec<LitStr>> {
    let Expr::Array(array) = value else {
        return Err(syn::Error::new_spanned(
            value,
            format!("`{name}` takes a list of string literals, such as {}", example(name)),
        ));
    };
    if array.elems.is_empty() {
        return Err(syn::Error::new_spanned(
            array,
            format!("`{name} = []` gives no tags: leave `{name}` out, or list templates such as {}", example(name)),
        ));
    }
    let mut errors = Errors::default();
    let literals: Vec<LitStr> = array
        .elems
        .iter()
        .filter_map(|element| match element {
            Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => Some(lit.clone()),
            other => errors.push(Err(syn::Error::new_spanned(
                other,
                "each tag is a template in a string literal, such as \"user:{id}\"",
            ))),
        })
        .collect();
    errors.finish()?;
    Ok(literals)
}

/// The duration argument `name` (a string literal), in milliseconds, or an error at the literal.
fn duration(value: &Expr, name: &str) -> syn::Result<u64> {
    let literal = string(value, name)?;
    parse_duration(name, &literal.value()).map_err(|message| syn::Error::new(literal.span(), message))
}

/// A TTL as people write it (see [`parse_duration`]).
#[cfg(test)]
pub(crate) fn parse_ttl(text: &str) -> Result<u64, String> {
    parse_duration("ttl", text)
}

/// A duration as people write it, for the argument `name`: one or more numbers each with a
/// unit, `ms`, `s`, `m`, `h` or `d` (`"30s"`, `"5m"`, `"1h30m"`, `"500ms"`), in milliseconds;
/// more than zero and at most cache-tower's `MAX_TTL` (9×10¹² s).
pub(crate) fn parse_duration(name: &str, text: &str) -> Result<u64, String> {
    const MAX_TTL_MILLIS: u128 = 9_000_000_000_000_000;
    let wrong = || {
        format!(
            "`{name}` takes a duration such as \"30s\", \"5m\", \"1h30m\" or \"500ms\" (units ms, s, m, h, d), not {text:?}"
        )
    };
    let mut total: u128 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(wrong());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit_len = rest[digits..].bytes().take_while(u8::is_ascii_alphabetic).count();
        let (number, unit) = (&rest[..digits], &rest[digits..digits + unit_len]);
        let millis_per_unit: u128 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(wrong()),
        };
        let number: u128 = number.parse().map_err(|_| wrong())?;
        total = total.saturating_add(number.saturating_mul(millis_per_unit));
        rest = &rest[digits + unit_len..];
    }
    if total == 0 {
        let instead = match name {
            "ttl" => "use each layer's TTL",
            "stale" => "use each layer's stale window",
            _ => "turn it off",
        };
        return Err(format!("`{name}` must be more than zero, not {text:?} (leave `{name}` out to {instead})"));
    }
    if total > MAX_TTL_MILLIS {
        return Err(format!(
            "`{name}` {text:?} is more than the largest TTL, 9000000000000 seconds (cache_tower::adapter::MAX_TTL)"
        ));
    }
    u64::try_from(total).map_err(|_| wrong())
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
        let tags = Args::parse(quote!(tags = ["user:{id}", "tenant:{tenant}"])).unwrap().tags.unwrap();
        let templates: Vec<String> = tags.templates.iter().map(LitStr::value).collect();
        assert_eq!(templates, ["user:{id}", "tenant:{tenant}"]);
    }

    #[test]
    fn reads_ttls_as_people_write_them() {
        assert_eq!(parse_ttl("30s"), Ok(30_000));
        assert_eq!(parse_ttl("5m"), Ok(300_000));
        assert_eq!(parse_ttl("1h30m"), Ok(5_400_000));
        assert_eq!(parse_ttl("500ms"), Ok(500));
        assert_eq!(parse_ttl("2d"), Ok(172_800_000));
        for wrong in ["", "30", "s", "1.5s", "-1s", "30 s", "1w", "10000000000000000d"] {
            assert!(parse_ttl(wrong).is_err(), "{wrong:?}");
        }
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(error(quote!(expires = 5)).contains("unknown argument `expires`"));
        assert!(error(quote!(ttl = 5)).contains("string literal"));
        assert!(error(quote!(ttl = "5 minutes")).contains("units ms, s, m, h, d"));
        assert!(error(quote!(ttl = "0s")).contains("more than zero"));
        assert!(error(quote!(key = "a", key = "b")).contains("duplicate argument `key`"));
        assert!(error(quote!(config)).contains("needs a value"));
        assert!(error(quote!(config = users)).contains("string literal"));
        assert!(error(quote!(result = "yes")).contains("`true` or `false`"));
        assert!(error(quote!(result = true, option = true)).contains("both"));
        assert!(error(quote!(tags = "user:{id}")).contains("list of string literals"));
        assert!(error(quote!(tags = [])).contains("gives no tags"));
        assert!(error(quote!(tags)).contains(r#"such as `tags = ["user:{id}"]`"#));
        let elements: Vec<String> = match Args::parse(quote!(tags = ["a", id, 7])) {
            Ok(_) => panic!("should be rejected"),
            Err(err) => err.into_iter().map(|err| err.to_string()).collect(),
        };
        assert_eq!(elements.len(), 2, "each element that is not a string literal: {elements:?}");
        assert!(elements.iter().all(|message| message.contains("string literal")), "{elements:?}");
        let both = error(quote!(expires = 5, config = users));
        assert!(both.contains("unknown argument `expires`"), "{both}");
        let all: Vec<String> = match Args::parse(quote!(expires = 5, config = users)) {
            Ok(_) => panic!("should be rejected"),
            Err(err) => err.into_iter().map(|err| err.to_string()).collect(),
        };
        assert_eq!(all.len(), 2, "every wrong argument is reported: {all:?}");
    }
}
