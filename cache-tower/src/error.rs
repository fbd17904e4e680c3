//! The crate's error type.
//!
//! Every fallible public call returns [`Result<T>`](Result). An [`Error`] says what went wrong in
//! its message and carries a [`kind`](Error::kind) a caller can branch on, plus, for configuration
//! and layer faults, *where*: the layer index and the configuration field.

use std::error::Error as StdError;
use std::fmt;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] reports.
///
/// ```
/// use cache_tower::{CacheTower, error::ErrorKind};
///
/// let err = CacheTower::from_json(r#"[{"adapter": "memcached"}]"#).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Config);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is wrong: unknown adapter or field, a value of the wrong type, bad JSON.
    Config,
    /// A layer position passed to a layer-management call does not exist.
    Position,
    /// A layer failed to carry out an operation (I/O, timeout, a server error).
    Layer,
    /// A value could not be encoded for a layer that stores encoded values.
    Encode,
    /// A stored value could not be decoded as the requested type.
    Decode,
    /// A get-or-load gave up waiting for its computation: its hard timeout passed with no stale
    /// value to answer with ([`LoadOptions::hard_timeout`](crate::LoadOptions::hard_timeout)).
    Timeout,
}

/// What went wrong in a layer, for an error of kind [`ErrorKind::Layer`]: branch on it (or on
/// [`Error::is_timeout`] and the other predicates) instead of matching message text.
///
/// ```
/// use cache_tower::{Error, error::Fault};
///
/// let err = Error::layer_fault(Fault::Timeout, "redis get timed out after 250ms");
/// assert!(err.is_timeout());
/// assert_eq!(err.fault(), Some(Fault::Timeout));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// The layer did not answer within its timeout.
    Timeout,
    /// The layer could not be reached, or the connection to it broke.
    Connection,
    /// The layer answered, with an error or a reply that makes no sense for the request.
    Reply,
    /// The layer was not called: its circuit breaker is open after repeated failures.
    Skipped,
    /// Any other failure of the layer.
    Other,
}

/// The error of every fallible call in this crate.
///
/// ```
/// use cache_tower::CacheTower;
///
/// let err = CacheTower::from_json(r#"[{"adapter": "memory", "ttl": -5}]"#).unwrap_err();
/// assert_eq!(err.layer(), Some(0));
/// assert_eq!(err.field(), Some("ttl"));
/// assert!(err.to_string().contains("layer 0"));
/// ```
pub struct Error {
    // Boxed: results pass through the read path by value, and a small `Err` keeps every
    // `Result` the size of its `Ok`.
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: String,
    tower: Option<String>,
    layer: Option<usize>,
    field: Option<String>,
    fault: Option<Fault>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with a message.
    ///
    /// Adapters written outside this crate use this (and [`with_source`](Self::with_source)) to
    /// report their failures.
    ///
    /// ```
    /// use cache_tower::{Error, error::ErrorKind};
    ///
    /// let err = Error::new(ErrorKind::Layer, "disk full");
    /// assert_eq!(err.to_string(), "disk full");
    /// ```
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                tower: None,
                layer: None,
                field: None,
                fault: None,
                source: None,
            }),
        }
    }

    /// The error of a get-or-load whose hard timeout passed ([`ErrorKind::Timeout`]).
    pub(crate) fn load_timeout(message: &str) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }

    /// A layer failure ([`ErrorKind::Layer`]) of the given [`Fault`].
    ///
    /// ```
    /// use cache_tower::{Error, error::{ErrorKind, Fault}};
    ///
    /// let err = Error::layer_fault(Fault::Connection, "connection refused");
    /// assert_eq!(err.kind(), ErrorKind::Layer);
    /// assert!(err.is_connection());
    /// ```
    pub fn layer_fault(fault: Fault, message: impl Into<String>) -> Self {
        let mut err = Self::new(ErrorKind::Layer, message);
        err.inner.fault = Some(fault);
        err
    }

    /// What went wrong in the layer, for a layer error that says (`None` otherwise).
    pub fn fault(&self) -> Option<Fault> {
        self.inner.fault
    }

    /// Whether a layer did not answer in time.
    pub fn is_timeout(&self) -> bool {
        self.inner.fault == Some(Fault::Timeout)
    }

    /// Whether a layer could not be reached or its connection broke.
    pub fn is_connection(&self) -> bool {
        self.inner.fault == Some(Fault::Connection)
    }

    /// Whether a layer answered with an error (or a reply that made no sense).
    pub fn is_reply(&self) -> bool {
        self.inner.fault == Some(Fault::Reply)
    }

    /// Whether a layer was skipped because its circuit breaker is open.
    pub fn is_skipped(&self) -> bool {
        self.inner.fault == Some(Fault::Skipped)
    }

    /// Whether a stored value could not be decoded as the requested type.
    pub fn is_decode(&self) -> bool {
        self.inner.kind == ErrorKind::Decode
    }

    /// A configuration error about `field` of the layer at `layer`.
    pub(crate) fn config(layer: Option<usize>, field: Option<&str>, message: impl Into<String>) -> Self {
        let mut err = Self::new(ErrorKind::Config, message);
        err.inner.layer = layer;
        err.inner.field = field.map(str::to_owned);
        err
    }

    /// Sets or replaces the configuration field concerned (the configuration loader names a
    /// builder's setting as the field of its file).
    #[cfg(feature = "redis")]
    #[must_use]
    pub(crate) fn with_field(mut self, field: Option<String>) -> Self {
        self.inner.field = field;
        self
    }

    /// Attaches the underlying error. `Display` shows the message only; the cause is
    /// [`source()`](StdError::source), for a reporter that walks the chain.
    ///
    /// ```
    /// use cache_tower::{Error, error::ErrorKind};
    /// use std::error::Error as _;
    ///
    /// let io = std::io::Error::other("connection reset");
    /// let err = Error::new(ErrorKind::Layer, "write failed").with_source(io);
    /// assert!(err.source().is_some());
    /// ```
    #[must_use]
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Box::new(source));
        self
    }

    /// Records which layer of a tower the error came from (the tower does this for you).
    #[must_use]
    pub fn at_layer(mut self, layer: usize) -> Self {
        self.inner.layer = Some(layer);
        self
    }

    /// Records which named tower of a configuration the error is about (the registry does this).
    #[must_use]
    pub(crate) fn in_tower(mut self, tower: &str) -> Self {
        self.inner.tower = Some(tower.to_owned());
        self
    }

    /// The name of the tower concerned, for errors from a configuration of named towers.
    pub fn tower(&self) -> Option<&str> {
        self.inner.tower.as_deref()
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The index of the layer concerned, when there is one.
    pub fn layer(&self) -> Option<usize> {
        self.inner.layer
    }

    /// The configuration field concerned (for example `ttl` or `params.maxsize`), when there is one.
    pub fn field(&self) -> Option<&str> {
        self.inner.field.as_deref()
    }

    /// The message alone, without the location prefix that `Display` adds (and, like `Display`,
    /// without the [`source`](StdError::source)).
    pub fn message(&self) -> &str {
        &self.inner.message
    }
}

/// An [`Error`] with its causes, as [`Error::report`] shows it.
#[derive(Debug)]
pub struct Report<'a>(&'a Error);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = StdError::source(self.0);
        while let Some(err) = cause {
            write!(f, ": {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

impl Error {
    /// The error and every cause in its [`source`](StdError::source) chain, on one line: what
    /// a log line or a `main` that prints the error wants (`Display` shows the error alone).
    ///
    /// ```
    /// use cache_tower::{Error, error::ErrorKind};
    ///
    /// let err = Error::new(ErrorKind::Layer, "write failed").with_source(std::io::Error::other("disk full"));
    /// assert_eq!(err.to_string(), "write failed");
    /// assert_eq!(err.report().to_string(), "write failed: disk full");
    /// ```
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut place = Vec::new();
        if let Some(tower) = &self.inner.tower {
            place.push(format!("tower `{tower}`"));
        }
        if let Some(layer) = self.inner.layer {
            place.push(format!("layer {layer}"));
        }
        if let Some(field) = &self.inner.field {
            place.push(format!("field `{field}`"));
        }
        if !place.is_empty() {
            write!(f, "{}: ", place.join(", "))?;
        }
        // The cause is not repeated here: it is `source()`, for a reporter that walks the chain.
        f.write_str(&self.inner.message)
    }
}

/// `Debug` reads like a sentence, since that is what `fn main() -> cache_tower::Result<()>` prints
/// when it fails: the kind in words, then the [`report`](Error::report) (the error and its causes).
/// `{:#?}` shows the fields.
///
/// ```
/// let err = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory", "ttl": -5}]"#).unwrap_err();
/// assert_eq!(
///     format!("{err:?}"),
///     "configuration error: layer 0, field `ttl`: expected a whole number of seconds, 0 or more, got -5"
/// );
/// assert!(format!("{err:#?}").contains("kind: Config"));
/// ```
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            let kind = match self.inner.kind {
                ErrorKind::Config => "configuration error",
                ErrorKind::Position => "layer position error",
                ErrorKind::Layer => "layer error",
                ErrorKind::Encode => "encode error",
                ErrorKind::Decode => "decode error",
                ErrorKind::Timeout => "timeout",
            };
            return write!(f, "{kind}: {}", self.report());
        }
        f.debug_struct("Error")
            .field("kind", &self.inner.kind)
            .field("message", &self.inner.message)
            .field("tower", &self.inner.tower)
            .field("layer", &self.inner.layer)
            .field("field", &self.inner.field)
            .field("fault", &self.inner.fault)
            .field("source", &self.inner.source)
            .finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source.as_deref().map(|s| s as &(dyn StdError + 'static))
    }
}

/// The error as a line of text with its causes ([`Error::report`]), for computations whose
/// error type is `String` and that a get-or-load may answer with a timeout
/// ([`LoadOptions::hard_timeout`](crate::LoadOptions::hard_timeout)).
///
/// ```
/// let err = cache_tower::Error::new(cache_tower::error::ErrorKind::Timeout, "too slow");
/// assert_eq!(String::from(err), "too slow");
/// ```
impl From<Error> for String {
    fn from(err: Error) -> Self {
        err.report().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_layer_and_field() {
        let err = Error::config(Some(2), Some("params.maxsize"), "expected an integer");
        assert_eq!(err.to_string(), "layer 2, field `params.maxsize`: expected an integer");
        assert_eq!(err.kind(), ErrorKind::Config);
    }

    #[test]
    fn display_leaves_the_source_to_source() {
        let err =
            Error::new(ErrorKind::Layer, "get failed").at_layer(1).with_source(std::io::Error::other("timed out"));
        assert_eq!(err.to_string(), "layer 1: get failed");
        assert_eq!(err.source().map(ToString::to_string).as_deref(), Some("timed out"));
    }
}
