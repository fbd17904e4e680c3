//! What `#[cached_tower]` checks at compile time, with messages that say what to do: the cached
//! value must be [`Cacheable`], each placeholder of a key or tag template `Display`
//! ([`KeyValue`]), and each argument of a default key `Serialize`. The default key is built
//! argument by argument ([`DefaultKey`]), so a wrong argument is one error, at its type.

use std::fmt;

use serde::Serialize;

use super::key::{MemoKey, push_json};
use crate::value::Cacheable;

// Named here too, so that the compiler's messages name them by their `__private` path.
pub use super::key::{DisplayKind, StrKind};

/// [`Cacheable`], with the message a `#[cached_tower]` function gets when its result is not.
/// As a subtrait, the error for it makes the compiler drop the one for `Cacheable` at the same
/// place (the memoize call).
#[diagnostic::on_unimplemented(
    message = "the result of a #[cached_tower] function must be cacheable, and `{Self}` is not",
    label = "`{Self}` must be Serialize, Deserialize, Clone, Send, Sync and 'static",
    note = "derive them: `#[derive(Clone, serde::Serialize, serde::Deserialize)]`"
)]
pub trait CachedValue: Cacheable {}

impl<T: Cacheable> CachedValue for T {}

/// Compile-time check that a memoized function's result can be cached; the macro calls it with
/// the span of the cached type, so the error points there.
pub fn assert_cached<T: CachedValue>() {}

/// `Serialize`, with the message a `#[cached_tower]` function gets when an argument of its
/// default key is not.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not `Serialize`, so it cannot be part of the default cache key",
    label = "the default key writes every argument as JSON",
    note = "derive `serde::Serialize` for it, or give #[cached_tower] a `key` template that leaves it out"
)]
pub trait KeyArgument: Serialize {}

impl<T: Serialize + ?Sized> KeyArgument for T {}

/// What a placeholder of a key or tag template must be: `Display` (or a string).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be written into a cache key or tag: it is not `Display` (nor a string)",
    label = "a placeholder of this template",
    note = "name a field that is `Display`, as in `{{tenant.id}}`, or implement `Display` for it"
)]
pub trait KeyValue: fmt::Display {}

impl<T: fmt::Display + ?Sized> KeyValue for T {}

/// The default key, written argument by argument: the function's path and its arguments as a
/// JSON array, exactly as the default key of the tuple of them is written.
#[derive(Debug)]
pub struct DefaultKey {
    /// `None` once an argument could not be written as JSON.
    key: Option<MemoKey>,
    first: bool,
}

impl DefaultKey {
    /// Starts the key of a call of `function`.
    pub fn new(function: &str) -> Self {
        let mut key = MemoKey::new();
        key.push_str(function);
        key.push_str(":[");
        Self { key: Some(key), first: true }
    }

    /// Appends one argument.
    pub fn argument<T: KeyArgument + ?Sized>(&mut self, value: &T) {
        if let Some(key) = &mut self.key {
            if !std::mem::take(&mut self.first) {
                key.push_str(",");
            }
            if !push_json(key, value) {
                self.key = None;
            }
        }
    }

    /// The key; `None` when an argument could not be written as JSON.
    pub fn finish(self) -> Option<MemoKey> {
        let mut key = self.key?;
        key.push_str("]");
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the default key must be: the path, then the arguments' tuple as JSON.
    fn expected<A: serde::Serialize>(function: &str, arguments: &A) -> Option<String> {
        serde_json::to_string(arguments).ok().map(|json| format!("{function}:{json}"))
    }

    fn built<const N: usize>(function: &str, arguments: [&dyn erased::Argument; N]) -> Option<String> {
        let mut key = DefaultKey::new(function);
        for argument in arguments {
            argument.add(&mut key);
        }
        key.finish().map(|key| key.to_string())
    }

    /// Lets a test pass arguments of several types in one array.
    mod erased {
        pub(super) trait Argument {
            fn add(&self, key: &mut super::DefaultKey);
        }
        impl<T: serde::Serialize> Argument for T {
            fn add(&self, key: &mut super::DefaultKey) {
                key.argument(self);
            }
        }
    }

    #[test]
    fn is_the_default_key_of_the_tuple_of_arguments() {
        let text = "é \"quoted\" \\ tab\t 🦀 ".repeat(10);
        assert_eq!(
            built("a::f", [&7u32, &"eu", &text, &vec![1.5f64]]).as_deref(),
            expected("a::f", &(7u32, "eu", &text, vec![1.5f64])).as_deref()
        );
        assert_eq!(built("a::g", []).as_deref(), Some("a::g:[]"));
        assert_eq!(built("a::h", [&(1u8,)]).as_deref(), expected("a::h", &((1u8,),)).as_deref());
        let unserializable: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        assert_eq!(built("a::u", [&1u8, &unserializable, &2u8]), None);
    }
}
