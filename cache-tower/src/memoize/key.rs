//! The keys of memoized calls: built from a `key` template piece by piece, or the default key
//! (the function's path and its arguments as JSON).

use std::fmt;
use std::ops::Deref;

use arrayvec::ArrayString;
use serde::Serialize;

use super::checks::KeyValue;

/// Keys up to this many bytes are built on the stack.
const INLINE: usize = 80;

/// The key of one memoized call. Short keys (most are) live on the stack, so a cache hit
/// allocates nothing for its key; longer ones move to the heap as they grow.
///
/// ```
/// use std::fmt::Write;
/// use cache_tower::__private::MemoKey;
///
/// let mut key = MemoKey::new();
/// key.push_str("user:");
/// write!(key, "{}", 42).unwrap();
/// assert_eq!(&*key, "user:42");
/// ```
#[derive(Clone)]
pub struct MemoKey(Repr);

#[derive(Clone)]
enum Repr {
    Inline(ArrayString<INLINE>),
    Heap(String),
}

impl MemoKey {
    /// An empty key.
    pub const fn new() -> Self {
        Self(Repr::Inline(ArrayString::new_const()))
    }

    /// Appends `text`. Always inlined: the template's text pieces are literals, whose copies
    /// then compile to a few moves.
    #[inline(always)]
    pub fn push_str(&mut self, text: &str) {
        match &mut self.0 {
            Repr::Inline(inline) => {
                if inline.try_push_str(text).is_err() {
                    let mut heap = String::with_capacity((inline.len() + text.len()).max(2 * INLINE));
                    heap.push_str(inline);
                    heap.push_str(text);
                    self.0 = Repr::Heap(heap);
                }
            }
            Repr::Heap(heap) => heap.push_str(text),
        }
    }

    /// The key as text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(inline) => inline,
            Repr::Heap(heap) => heap,
        }
    }
}

impl Default for MemoKey {
    fn default() -> Self {
        Self::new()
    }
}

impl AsRef<str> for MemoKey {
    fn as_ref(&self) -> &str {
        self
    }
}

impl Deref for MemoKey {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Write for MemoKey {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.push_str(text);
        Ok(())
    }
}

impl From<String> for MemoKey {
    fn from(key: String) -> Self {
        Self(Repr::Heap(key))
    }
}

impl fmt::Debug for MemoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Appends `value` as JSON; `false` when it cannot be written as JSON.
pub(super) fn push_json<T: Serialize + ?Sized>(key: &mut MemoKey, value: &T) -> bool {
    serde_json::to_writer(JsonInto(key), value).is_ok()
}

/// Lets serde_json write a key's JSON straight into it (on the stack when it is short).
struct JsonInto<'a>(&'a mut MemoKey);

impl std::io::Write for JsonInto<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        // serde_json writes whole UTF-8 text: it splits its output only at ASCII characters.
        let text =
            std::str::from_utf8(bytes).map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))?;
        self.0.push_str(text);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A value placed in a template key. Method resolution picks [`KeyStr`] for string-like values
/// (copied as they are) and [`KeyDisplay`] for the rest (written with `Display`): the expansion
/// writes `(&KeyPart(part)).key_kind().push(part, &mut key)`, which adds exactly what
/// `format!("{}", part)` would. `KeyDisplay` applies to every type, and its `push` asks for
/// [`KeyValue`], so a value that is neither is one error that says so, at the key template.
#[derive(Debug)]
pub struct KeyPart<'a, T: ?Sized>(pub &'a T);

/// Picks [`StrKind`] for a string-like key part.
pub trait KeyStr {
    /// How to write the part.
    fn key_kind(&self) -> StrKind;
}

impl<T: AsRef<str> + ?Sized> KeyStr for KeyPart<'_, T> {
    #[inline(always)]
    fn key_kind(&self) -> StrKind {
        StrKind
    }
}

/// Picks [`DisplayKind`] for any other key part.
pub trait KeyDisplay {
    /// How to write the part.
    fn key_kind(&self) -> DisplayKind;
}

impl<T: ?Sized> KeyDisplay for &KeyPart<'_, T> {
    #[inline(always)]
    fn key_kind(&self) -> DisplayKind {
        DisplayKind
    }
}

/// Writes a string-like key part as it is.
#[derive(Debug)]
pub struct StrKind;

impl StrKind {
    /// Appends `part` to `key`.
    #[inline]
    pub fn push<T: AsRef<str> + ?Sized>(self, part: &T, key: &mut MemoKey) {
        key.push_str(part.as_ref());
    }
}

/// Writes a key part with its `Display`.
#[derive(Debug)]
pub struct DisplayKind;

impl DisplayKind {
    /// Appends `part` to `key`.
    pub fn push<T: KeyValue + ?Sized>(self, part: &T, key: &mut MemoKey) {
        use std::fmt::Write;
        // Writing into a MemoKey cannot fail.
        let _ = write!(key, "{part}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adds `part` as the expansion does.
    macro_rules! push_part {
        ($key:expr, $part:expr) => {{
            let part = $part;
            (&KeyPart(part)).key_kind().push(part, $key);
        }};
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the form #[cached_tower] expands to
    fn key_parts_write_what_format_would() {
        let mut key = MemoKey::new();
        let owned = String::from("eu");
        push_part!(&mut key, &"a:");
        push_part!(&mut key, &owned);
        push_part!(&mut key, &42u64);
        push_part!(&mut key, &-1.5f64);
        assert_eq!(&*key, format!("{}{}{}{}", "a:", owned, 42u64, -1.5f64));
    }

    #[test]
    fn a_long_key_moves_to_the_heap_intact() {
        let mut key = MemoKey::new();
        let mut expected = String::new();
        for piece in ["é", "user:", &"x".repeat(INLINE - 3), "ü", &"y".repeat(3 * INLINE)] {
            key.push_str(piece);
            expected.push_str(piece);
            assert_eq!(key.as_str(), expected);
        }
        assert!(matches!(key.0, Repr::Heap(_)));
    }

    #[test]
    fn a_key_that_fills_the_buffer_exactly_stays_inline() {
        let mut key = MemoKey::new();
        key.push_str(&"k".repeat(INLINE));
        assert!(matches!(key.0, Repr::Inline(_)));
        assert_eq!(key.len(), INLINE);
    }
}
