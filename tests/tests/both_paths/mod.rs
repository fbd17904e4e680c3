//! The two ways of calling a tower, so a behaviour is written once and tested on both: the
//! blocking methods ([`Blocking`]) and the `*_async` ones awaited on tokio ([`OnTokio`]).
//! [`on_both_paths!`] turns a list of behaviours into a `blocking::*` and an `on_tokio::*` test each.
//!
//! Shared by several test files (`mod both_paths;`); each uses only some of the calls.
#![allow(dead_code)]

use std::time::Duration;

use indexmap::IndexMap;

use cache_tower::{
    CacheTower, Cacheable, LoadOptions, RedisAdapter, Result,
    adapter::{CacheAdapter, Entry, Request},
};

/// For each behaviour `fn name(api: &impl Calls)` of the test file, a test `blocking::name` and a
/// test `on_tokio::name`.
macro_rules! on_both_paths {
    ($($behaviour:ident),+ $(,)?) => {
        mod blocking {
            $( #[test] fn $behaviour() { super::$behaviour(&$crate::both_paths::Blocking) } )+
        }
        mod on_tokio {
            $( #[test] fn $behaviour() { super::$behaviour(&$crate::both_paths::OnTokio::new()) } )+
        }
    };
}

pub(crate) use on_both_paths;

/// The tower operations a behaviour uses, made either blocking or async.
pub(crate) trait Calls {
    fn get<T: Cacheable>(&self, tower: &CacheTower, key: &str) -> Option<T>;
    fn mget<T: Cacheable, K: AsRef<str>>(&self, tower: &CacheTower, keys: &[K]) -> IndexMap<String, Option<T>>;
    fn set<T: Cacheable>(&self, tower: &CacheTower, key: &str, value: T) -> Result<()>;
    fn mset<T: Cacheable>(&self, tower: &CacheTower, items: &[(String, T)]) -> Result<()>;
    fn set_with_ttl<T: Cacheable>(&self, tower: &CacheTower, key: &str, value: T, ttl: Duration) -> Result<()>;
    fn mset_with_ttl<T: Cacheable>(&self, tower: &CacheTower, items: &[(String, T)], ttl: Duration) -> Result<()>;
    fn delete(&self, tower: &CacheTower, key: &str) -> Result<()>;
    fn exists(&self, tower: &CacheTower, key: &str) -> bool;
    fn flush(&self, tower: &CacheTower) -> Result<()>;
    fn clear(&self, tower: &CacheTower) -> Result<()>;
    fn set_with<T: Cacheable>(&self, tower: &CacheTower, key: &str, value: T, options: &LoadOptions) -> Result<()>;
    fn invalidate_tag(&self, tower: &CacheTower, tag: &str) -> Result<()>;
    fn get_or_set_with<T: Cacheable>(
        &self,
        tower: &CacheTower,
        key: &str,
        options: &LoadOptions,
        compute: impl FnOnce() -> T,
    ) -> T;
    fn delete_many(&self, tower: &CacheTower, keys: &[&str]) -> Result<()>;
    fn get_or_set<T: Cacheable>(&self, tower: &CacheTower, key: &str, compute: impl FnOnce() -> T) -> T;
    /// `try_get_or_set_many`, the loader given the missing keys as `&str`s on both paths.
    fn try_get_or_set_many<T: Cacheable>(
        &self,
        tower: &CacheTower,
        keys: &[&str],
        load: impl FnMut(&[&str]) -> std::result::Result<Vec<(String, T)>, String>,
    ) -> std::result::Result<IndexMap<String, T>, String>;
    /// The adapter's own read (value and remaining TTL), bypassing the tower.
    fn adapter_get(&self, adapter: &RedisAdapter, key: &str) -> Result<Option<Entry>>;
}

/// The blocking methods.
pub(crate) struct Blocking;

impl Calls for Blocking {
    fn get<T: Cacheable>(&self, tower: &CacheTower, key: &str) -> Option<T> {
        tower.get(key)
    }
    fn mget<T: Cacheable, K: AsRef<str>>(&self, tower: &CacheTower, keys: &[K]) -> IndexMap<String, Option<T>> {
        tower.mget(keys)
    }
    fn set<T: Cacheable>(&self, tower: &CacheTower, key: &str, value: T) -> Result<()> {
        tower.set(key, value)
    }
    fn mset<T: Cacheable>(&self, tower: &CacheTower, items: &[(String, T)]) -> Result<()> {
        tower.mset(items.iter().map(|(key, value)| (key.as_str(), value.clone())))
    }
    fn set_with_ttl<T: Cacheable>(&self, tower: &CacheTower, key: &str, value: T, ttl: Duration) -> Result<()> {
        tower.set_with_ttl(key, value, ttl)
    }
    fn mset_with_ttl<T: Cacheable>(&self, tower: &CacheTower, items: &[(String, T)], ttl: Duration) -> Result<()> {
        tower.mset_with_ttl(items.iter().map(|(key, value)| (key.as_str(), value.clone())), ttl)
    }
    fn delete(&self, tower: &CacheTower, key: &str) -> Result<()> {
        tower.delete(key)
    }
    fn exists(&self, tower: &CacheTower, key: &str) -> bool {
        tower.exists(key)
    }
    fn flush(&self, tower: &CacheTower) -> Result<()> {
        tower.flush()
    }
    fn clear(&self, tower: &CacheTower) -> Result<()> {
        tower.clear()
    }
    fn set_with<T: Cacheable>(&self, tower: &CacheTower, key: &str, value: T, options: &LoadOptions) -> Result<()> {
        tower.set_with(key, value, options)
    }
    fn invalidate_tag(&self, tower: &CacheTower, tag: &str) -> Result<()> {
        tower.invalidate_tag(tag)
    }
    fn get_or_set_with<T: Cacheable>(
        &self,
        tower: &CacheTower,
        key: &str,
        options: &LoadOptions,
        compute: impl FnOnce() -> T,
    ) -> T {
        tower.get_or_set_with(key, options, compute)
    }
    fn delete_many(&self, tower: &CacheTower, keys: &[&str]) -> Result<()> {
        tower.delete_many(keys)
    }
    fn get_or_set<T: Cacheable>(&self, tower: &CacheTower, key: &str, compute: impl FnOnce() -> T) -> T {
        tower.get_or_set(key, compute)
    }
    fn try_get_or_set_many<T: Cacheable>(
        &self,
        tower: &CacheTower,
        keys: &[&str],
        load: impl FnMut(&[&str]) -> std::result::Result<Vec<(String, T)>, String>,
    ) -> std::result::Result<IndexMap<String, T>, String> {
        tower.try_get_or_set_many(keys, load)
    }
    fn adapter_get(&self, adapter: &RedisAdapter, key: &str) -> Result<Option<Entry>> {
        CacheAdapter::get(adapter, key)
    }
}

/// The `*_async` methods, awaited on a multi-threaded tokio runtime.
pub(crate) struct OnTokio(tokio::runtime::Runtime);

impl OnTokio {
    pub(crate) fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
        Self(runtime.expect("building a tokio runtime"))
    }
}

impl Calls for OnTokio {
    fn get<T: Cacheable>(&self, tower: &CacheTower, key: &str) -> Option<T> {
        self.0.block_on(tower.get_async(key))
    }
    fn mget<T: Cacheable, K: AsRef<str>>(&self, tower: &CacheTower, keys: &[K]) -> IndexMap<String, Option<T>> {
        self.0.block_on(tower.mget_async(keys))
    }
    fn set<T: Cacheable>(&self, tower: &CacheTower, key: &str, value: T) -> Result<()> {
        self.0.block_on(tower.set_async(key, value))
    }
    fn mset<T: Cacheable>(&self, tower: &CacheTower, items: &[(String, T)]) -> Result<()> {
        self.0.block_on(tower.mset_async(items.iter().map(|(key, value)| (key.as_str(), value.clone()))))
    }
    fn set_with_ttl<T: Cacheable>(&self, tower: &CacheTower, key: &str, value: T, ttl: Duration) -> Result<()> {
        self.0.block_on(tower.set_with_ttl_async(key, value, ttl))
    }
    fn mset_with_ttl<T: Cacheable>(&self, tower: &CacheTower, items: &[(String, T)], ttl: Duration) -> Result<()> {
        let items = items.iter().map(|(key, value)| (key.as_str(), value.clone()));
        self.0.block_on(tower.mset_with_ttl_async(items, ttl))
    }
    fn delete(&self, tower: &CacheTower, key: &str) -> Result<()> {
        self.0.block_on(tower.delete_async(key))
    }
    fn exists(&self, tower: &CacheTower, key: &str) -> bool {
        self.0.block_on(tower.exists_async(key))
    }
    fn flush(&self, tower: &CacheTower) -> Result<()> {
        self.0.block_on(tower.flush_async())
    }
    fn clear(&self, tower: &CacheTower) -> Result<()> {
        self.0.block_on(tower.clear_async())
    }
    fn set_with<T: Cacheable>(&self, tower: &CacheTower, key: &str, value: T, options: &LoadOptions) -> Result<()> {
        self.0.block_on(tower.set_with_async(key, value, options))
    }
    fn invalidate_tag(&self, tower: &CacheTower, tag: &str) -> Result<()> {
        self.0.block_on(tower.invalidate_tag_async(tag))
    }
    fn get_or_set_with<T: Cacheable>(
        &self,
        tower: &CacheTower,
        key: &str,
        options: &LoadOptions,
        compute: impl FnOnce() -> T,
    ) -> T {
        self.0.block_on(tower.get_or_set_with_async(key, options, move || async move { compute() }))
    }
    fn delete_many(&self, tower: &CacheTower, keys: &[&str]) -> Result<()> {
        self.0.block_on(tower.delete_many_async(keys))
    }
    fn get_or_set<T: Cacheable>(&self, tower: &CacheTower, key: &str, compute: impl FnOnce() -> T) -> T {
        self.0.block_on(tower.get_or_set_async(key, move || async move { compute() }))
    }
    fn try_get_or_set_many<T: Cacheable>(
        &self,
        tower: &CacheTower,
        keys: &[&str],
        mut load: impl FnMut(&[&str]) -> std::result::Result<Vec<(String, T)>, String>,
    ) -> std::result::Result<IndexMap<String, T>, String> {
        let load = |missing: Vec<String>| {
            let loaded = load(&missing.iter().map(String::as_str).collect::<Vec<_>>());
            async move { loaded }
        };
        self.0.block_on(tower.try_get_or_set_many_async(keys, load))
    }
    fn adapter_get(&self, adapter: &RedisAdapter, key: &str) -> Result<Option<Entry>> {
        let adapter = adapter.as_async().expect("the redis adapter has async operations");
        self.0.block_on(async { adapter.call(Request::Get(key)).await?.into_entry() })
    }
}
