//! What `#[cached_tower(many = "ids")]` expands to: a function that takes a collection of ids
//! and returns a map from id to value, memoized per element through
//! [`CacheTower::get_or_set_many`](crate::CacheTower::get_or_set_many). The body is called once
//! per call with the elements no layer had (and again only for elements whose computation by
//! another caller failed meanwhile); the result has one entry per element that has a value.

use std::collections::HashMap;
use std::convert::Infallible;
#[cfg(feature = "tokio")]
use std::future::Future;

use super::{CallSite, MemoKey};
use crate::value::Cacheable;

/// The elements of the collection parameter, by reference: `ids.iter()` for a slice, a `Vec`, a
/// set, any collection whose reference iterates over references to its elements.
pub fn elements<'a, C, K>(collection: &'a C) -> <&'a C as IntoIterator>::IntoIter
where
    C: ?Sized,
    &'a C: IntoIterator<Item = &'a K>,
    K: 'a,
{
    collection.into_iter()
}

/// A call's elements with their keys, in the caller's order.
fn keyed<'a, K>(elements: impl IntoIterator<Item = &'a K>, key_of: &impl Fn(&K) -> MemoKey) -> Vec<(MemoKey, &'a K)> {
    elements.into_iter().map(|element| (key_of(element), element)).collect()
}

/// Where each key first appears among a call's elements.
struct Positions<'a>(HashMap<&'a str, usize>);

impl<'a> Positions<'a> {
    fn of<K>(elements: &'a [(MemoKey, &K)]) -> Self {
        let mut position = HashMap::with_capacity(elements.len());
        for (at, (key, _)) in elements.iter().enumerate() {
            position.entry(key.as_str()).or_insert(at);
        }
        Self(position)
    }
}

/// Every element, cloned: what the body gets when no tower is registered.
fn every<K: Clone>(elements: &[(MemoKey, &K)]) -> Vec<K> {
    elements.iter().map(|(_, element)| (*element).clone()).collect()
}

/// The keys of `elements`, for the tower.
fn keys<'a, K>(elements: &'a [(MemoKey, &K)]) -> Vec<&'a str> {
    elements.iter().map(|(key, _)| key.as_str()).collect()
}

/// The elements of the keys the tower asks to load, cloned, for the body.
fn subset<K: Clone, S: AsRef<str>>(elements: &[(MemoKey, &K)], positions: &Positions<'_>, missing: &[S]) -> Vec<K> {
    missing.iter().filter_map(|key| positions.0.get(key.as_ref())).map(|&at| elements[at].1.clone()).collect()
}

/// The body's map with each element replaced by its key, for the tower to store.
fn named<K, V>(loaded: impl IntoIterator<Item = (K, V)>, key_of: &impl Fn(&K) -> MemoKey) -> Vec<(String, V)> {
    loaded.into_iter().map(|(element, value)| (key_of(&element).as_str().to_owned(), value)).collect()
}

/// The caller's map: each element that has a value (an element given twice, once).
fn answer<K: Clone, V, M: FromIterator<(K, V)>>(
    elements: &[(MemoKey, &K)],
    mut values: indexmap::IndexMap<String, V>,
) -> M {
    elements.iter().filter_map(|(key, element)| Some(((*element).clone(), values.swap_remove(key.as_str())?))).collect()
}

/// Memoizes a function from a collection of elements to a map of their values.
pub fn memoize_many<'a, K, V, M, R>(
    site: &CallSite,
    elements: impl IntoIterator<Item = &'a K>,
    key_of: impl Fn(&K) -> MemoKey,
    mut body: impl FnMut(Vec<K>) -> R,
) -> M
where
    K: Clone + 'a,
    V: Cacheable,
    M: FromIterator<(K, V)>,
    R: IntoIterator<Item = (K, V)>,
{
    match memoize_many_result(site, elements, key_of, |subset| Ok::<R, Infallible>(body(subset))) {
        Ok(values) => values,
        Err(never) => match never {},
    }
}

/// Memoizes a function from a collection of elements to `Result` of a map of their values: an
/// `Err` is returned and nothing it was asked for is cached.
///
/// # Errors
/// The body's error.
pub fn memoize_many_result<'a, K, V, M, R, E>(
    site: &CallSite,
    elements: impl IntoIterator<Item = &'a K>,
    key_of: impl Fn(&K) -> MemoKey,
    mut body: impl FnMut(Vec<K>) -> Result<R, E>,
) -> Result<M, E>
where
    K: Clone + 'a,
    V: Cacheable,
    M: FromIterator<(K, V)>,
    R: IntoIterator<Item = (K, V)>,
{
    let elements = keyed(elements, &key_of);
    // Any key will do: `cache_for` finds the tower and warns of a blocking call on a runtime.
    let Some((tower, _)) = site.cache_for(Some(""), true) else {
        return body(every(&elements)).map(|loaded| loaded.into_iter().collect());
    };
    let positions = Positions::of(&elements);
    let load = |missing: &[&str]| body(subset(&elements, &positions, missing)).map(|loaded| named(loaded, &key_of));
    let values = tower.try_get_or_set_many(&keys(&elements), load)?;
    Ok(answer(&elements, values))
}

/// The async twin of [`memoize_many`].
#[cfg(feature = "tokio")]
pub async fn memoize_many_async<'a, K, V, M, R, Fut>(
    site: &CallSite,
    elements: impl IntoIterator<Item = &'a K>,
    key_of: impl Fn(&K) -> MemoKey,
    mut body: impl FnMut(Vec<K>) -> Fut,
) -> M
where
    K: Clone + 'a,
    V: Cacheable,
    M: FromIterator<(K, V)>,
    R: IntoIterator<Item = (K, V)>,
    Fut: Future<Output = R>,
{
    let body = |subset| {
        let loading = body(subset);
        async move { Ok::<R, Infallible>(loading.await) }
    };
    match memoize_many_result_async(site, elements, key_of, body).await {
        Ok(values) => values,
        Err(never) => match never {},
    }
}

/// The async twin of [`memoize_many_result`].
///
/// # Errors
/// The body's error.
#[cfg(feature = "tokio")]
pub async fn memoize_many_result_async<'a, K, V, M, R, E, Fut>(
    site: &CallSite,
    elements: impl IntoIterator<Item = &'a K>,
    key_of: impl Fn(&K) -> MemoKey,
    mut body: impl FnMut(Vec<K>) -> Fut,
) -> Result<M, E>
where
    K: Clone + 'a,
    V: Cacheable,
    M: FromIterator<(K, V)>,
    R: IntoIterator<Item = (K, V)>,
    Fut: Future<Output = Result<R, E>>,
{
    let elements = keyed(elements, &key_of);
    let Some((tower, _)) = site.cache_for(Some(""), false) else {
        return body(every(&elements)).await.map(|loaded| loaded.into_iter().collect());
    };
    let positions = Positions::of(&elements);
    let key_of = &key_of;
    let load = |missing: Vec<String>| {
        let loading = body(subset(&elements, &positions, &missing));
        async move { loading.await.map(|loaded| named(loaded, key_of)) }
    };
    let values = tower.try_get_or_set_many_async(&keys(&elements), load).await?;
    Ok(answer(&elements, values))
}

/// Removes the cached entry of each element (the `<fn>_invalidate` companion of a `many`
/// function).
///
/// # Errors
/// As [`CacheTower::delete_many`](crate::CacheTower::delete_many) (one batch per layer; a
/// layer that fails does not stop the others). `Ok` when no tower is registered.
pub fn invalidate_many<'a, K: 'a>(
    site: &CallSite,
    elements: impl IntoIterator<Item = &'a K>,
    key_of: impl Fn(&K) -> MemoKey,
) -> crate::Result<()> {
    let Some(tower) = site.tower() else { return Ok(()) };
    let keys: Vec<MemoKey> = elements.into_iter().map(key_of).collect();
    tower.delete_many(&keys)
}

/// The async twin of [`invalidate_many`].
///
/// # Errors
/// As [`invalidate_many`].
#[cfg(feature = "tokio")]
pub async fn invalidate_many_async<'a, K: 'a>(
    site: &CallSite,
    elements: impl IntoIterator<Item = &'a K>,
    key_of: impl Fn(&K) -> MemoKey,
) -> crate::Result<()> {
    let Some(tower) = site.tower() else { return Ok(()) };
    // The keys first: the future then holds no borrow of the caller's collection across awaits.
    let keys: Vec<MemoKey> = elements.into_iter().map(key_of).collect();
    tower.delete_many_async(&keys).await
}
