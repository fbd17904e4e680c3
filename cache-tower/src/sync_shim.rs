//! The synchronisation primitives of the lock-free pieces (the breaker, the change log, single
//! flight), from one place so the model checks can swap them.
//!
//! In a normal build these are the standard library's atomics and `parking_lot`'s mutex, re-exported
//! as they are: no wrapper, no cost. Built with `--cfg loom` (see docs/adr/0008-model-checking.md)
//! they are loom's, whose scheduler then tries every interleaving, and every outcome the memory
//! model allows, of the tests in the `model` modules. Event-listener, which single flight waits
//! with, has a loom mode of its own, switched on by the same cfg.

#[cfg(not(loom))]
pub(crate) use parking_lot::Mutex;
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Loom's `Arc` tells loom when the last owner drops the value, which std's cannot.
#[cfg(loom)]
pub(crate) use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom_mutex::Mutex;

#[cfg(loom)]
mod loom_mutex {
    use std::sync::PoisonError;

    /// Loom's mutex with `parking_lot`'s interface: `lock` returns the guard (no poisoning).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }
}

/// Runs `test` under loom's model checker: every interleaving of its threads, up to a bound on
/// preemptions that keeps the whole suite well under a minute (loom's finding is that most bugs
/// need very few). `LOOM_MAX_PREEMPTIONS` overrides the bound.
#[cfg(all(test, loom))]
pub(crate) fn model(test: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(test);
}
