//! Key templates: `"user:{id}"`, `"{tenant.id}:{page}"`, `"{self.region}:{id}"`, `"{id:08}"`.
//! The `tags` are templates of the same kind, parsed here too.
//!
//! A placeholder is a parameter name (or `self`) followed by field accesses, and optionally a
//! format spec after `:` as in `format!`. `{{` and `}}` stand for literal braces.

/// A parsed template: the `format!` string and the placeholders' expressions, in order, and the
/// literal text around them (one more piece than placeholders, braces unescaped).
#[derive(Debug, PartialEq)]
pub(crate) struct Template {
    pub(crate) format: String,
    pub(crate) placeholders: Vec<Placeholder>,
    pub(crate) texts: Vec<String>,
}

/// One `{…}` of a template.
#[derive(Debug, PartialEq)]
pub(crate) struct Placeholder {
    /// The parameter (or `self`) it starts from.
    pub(crate) root: String,
    /// The whole expression, such as `tenant.id`.
    pub(crate) expression: String,
    /// Whether it has a format spec (`{id:08}`).
    pub(crate) has_spec: bool,
}

/// Parses a template, a `key` or one of the `tags` (`what`, for the messages: `"key"`, `"tag"`);
/// the error says what is wrong with it.
pub(crate) fn parse(template: &str, what: &str) -> Result<Template, String> {
    let mut format = String::with_capacity(template.len());
    let mut placeholders = Vec::new();
    let mut texts = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                format.push_str("{{");
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                format.push_str("}}");
                text.push('}');
            }
            '}' => return Err(format!("unmatched `}}` in {what} template (write `}}}}` for a literal brace)")),
            '{' => {
                let mut inside = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some('{') => return Err("a placeholder cannot contain `{`".to_owned()),
                        Some(c) => inside.push(c),
                        None => {
                            return Err(format!("unclosed `{{` in {what} template (write `{{{{` for a literal brace)"));
                        }
                    }
                }
                let (expression, spec) = match inside.split_once(':') {
                    Some((expression, spec)) => (expression.trim(), Some(spec)),
                    None => (inside.trim(), None),
                };
                let root = check_expression(expression, what)?;
                format.push('{');
                if let Some(spec) = spec {
                    format.push(':');
                    format.push_str(spec);
                }
                format.push('}');
                placeholders.push(Placeholder { root, expression: expression.to_owned(), has_spec: spec.is_some() });
                texts.push(std::mem::take(&mut text));
            }
            c => {
                format.push(c);
                text.push(c);
            }
        }
    }
    texts.push(text);
    Ok(Template { format, placeholders, texts })
}

/// Checks `a.b.0` shapes and returns the root name.
fn check_expression(expression: &str, what: &str) -> Result<String, String> {
    if expression.is_empty() {
        return Err(format!("empty placeholder `{{}}` in {what} template: name a parameter, as in `{{id}}`"));
    }
    let mut segments = expression.split('.');
    let root = segments.next().unwrap_or_default();
    if !(root == "self" || is_identifier(root)) {
        return Err(format!("placeholder `{{{expression}}}` must start with a parameter name (or `self`)"));
    }
    for segment in segments {
        if !(is_identifier(segment) || (!segment.is_empty() && segment.chars().all(|c| c.is_ascii_digit()))) {
            return Err(format!("placeholder `{{{expression}}}`: `{segment}` is not a field name"));
        }
    }
    Ok(root.to_owned())
}

/// A Rust identifier that can name a parameter or a field: not a keyword (`r#type` is fine).
fn is_identifier(text: &str) -> bool {
    syn::parse_str::<syn::Ident>(text).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholder(root: &str, expression: &str, has_spec: bool) -> Placeholder {
        Placeholder { root: root.to_owned(), expression: expression.to_owned(), has_spec }
    }

    #[test]
    fn parses_placeholders_fields_and_specs() {
        let template = parse("{tenant.id}:{page}/{id:08}/{self.region}", "key").unwrap();
        assert_eq!(template.format, "{}:{}/{:08}/{}");
        assert_eq!(
            template.placeholders,
            vec![
                placeholder("tenant", "tenant.id", false),
                placeholder("page", "page", false),
                placeholder("id", "id", true),
                placeholder("self", "self.region", false),
            ]
        );
        assert_eq!(template.texts, vec!["", ":", "/", "/", ""]);
    }

    #[test]
    fn keeps_escaped_braces() {
        let template = parse("{{literal}}:{id}", "key").unwrap();
        assert_eq!(template.format, "{{literal}}:{}");
        assert_eq!(template.texts, vec!["{literal}:", ""]);
        assert_eq!(template.placeholders.len(), 1);
    }

    #[test]
    fn rejects_malformed_templates() {
        for bad in ["{", "}", "{}", "{ }", "{1abc}", "{a.}", "{a.b-c}", "{a{b}}", "{self.match}", "{Self}", "{_}"] {
            assert!(parse(bad, "key").is_err(), "{bad}");
        }
        assert!(parse("{pair.0}", "key").is_ok());
        assert_eq!(parse("a}", "tag").unwrap_err(), "unmatched `}` in tag template (write `}}` for a literal brace)");
        assert_eq!(parse("{a", "key").unwrap_err(), "unclosed `{` in key template (write `{{` for a literal brace)");
        assert!(parse("{}", "tag").unwrap_err().starts_with("empty placeholder `{}` in tag template"));
        assert_eq!(parse("{r#type.id}", "key").unwrap().placeholders[0].root, "r#type");
    }
}
