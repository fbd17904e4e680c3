//! `#[cached_tower(many = "…")]`: a function from a collection of ids to a map of values,
//! memoized per element. One body call per call, with the elements no layer had; the result
//! has every element that has a value; each element is stored under its own key, so single-key
//! functions and `get_or_set` of the same keys share the entries. Slices, owned and borrowed
//! collections, `Result` bodies, async bodies, methods, extra parameters, and the companions.
//!
//! Each function uses a tower name of its own (tests run in parallel in one process and the
//! registry is process-wide) and records what its body was asked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use cache_tower::cached_tower;
use cache_tower_tests::User;
use cache_tower_tests::memoized::register_memory;

/// What a body was asked, call by call.
fn asked(log: &Mutex<Vec<Vec<u64>>>) -> Vec<Vec<u64>> {
    log.lock().unwrap().clone()
}

static USERS_ASKED: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

#[cached_tower(config = "many_slice", key = "user:{ids}", many = "ids")]
fn users(ids: &[u64]) -> HashMap<u64, User> {
    USERS_ASKED.lock().unwrap().push(ids.to_vec());
    // Id 0 does not exist: no value, so not cached and left out.
    ids.iter().filter(|&&id| id != 0).map(|&id| (id, User::sample(id))).collect()
}

#[test]
fn a_slice_of_ids_loads_only_the_missing_ones_in_one_call() {
    let tower = register_memory("many_slice");
    tower.set("user:2", User::sample(2)).unwrap();

    let got = users(&[1, 2, 3, 0, 1]);

    assert_eq!(asked(&USERS_ASKED), vec![vec![1, 3, 0]], "one call, the ids no layer had, once each");
    assert_eq!(got.len(), 3);
    assert_eq!(got[&2], User::sample(2), "from the cache");
    assert_eq!(got[&3], User::sample(3));
    assert!(!got.contains_key(&0), "no value for 0");
    assert_eq!(tower.get::<User>("user:1"), Some(User::sample(1)), "each element under its own key");
    assert_eq!(tower.get::<User>("user:0"), None);

    let again = users(&[3, 1]);
    assert_eq!(again.len(), 2);
    assert_eq!(asked(&USERS_ASKED).len(), 1, "all cached: the body does not run");

    users_invalidate(&[1, 3]).unwrap();
    assert_eq!(tower.get::<User>("user:1"), None, "the companion removes each element's entry");
    assert_eq!(users_uncached(&[5]).len(), 1, "the uncached companion runs the body");
}

static NAMES_ASKED: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

/// An owned set, a parameter in the key besides the element, a `Result`, and a `BTreeMap`.
#[cached_tower(config = "many_owned", key = "{tenant}:name:{ids}", many = "ids")]
fn names(tenant: String, ids: BTreeSet<u64>) -> Result<BTreeMap<u64, String>, String> {
    NAMES_ASKED.lock().unwrap().push(ids.iter().copied().collect());
    if ids.contains(&13) {
        return Err("unlucky".to_owned());
    }
    Ok(ids.into_iter().map(|id| (id, format!("{tenant}-{id}"))).collect())
}

#[test]
fn an_owned_collection_with_a_result_caches_only_what_loaded() {
    let tower = register_memory("many_owned");

    let got = names("acme".to_owned(), BTreeSet::from([1, 2])).unwrap();
    assert_eq!(got, BTreeMap::from([(1, "acme-1".to_owned()), (2, "acme-2".to_owned())]));
    assert_eq!(tower.get::<String>("acme:name:2").as_deref(), Some("acme-2"));

    let failed = names("acme".to_owned(), BTreeSet::from([2, 13]));
    assert_eq!(failed, Err("unlucky".to_owned()));
    assert_eq!(tower.get::<String>("acme:name:13"), None, "an Err caches nothing");
    assert_eq!(asked(&NAMES_ASKED), vec![vec![1, 2], vec![13]], "2 came from the cache");
}

struct Directory {
    region: &'static str,
}

static IN_REGION_ASKED: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

impl Directory {
    /// A method over a borrowed set, async.
    #[cached_tower(config = "many_method", key = "{self.region}:{ids}", many = "ids")]
    async fn in_region(&self, ids: &BTreeSet<u64>) -> HashMap<u64, String> {
        IN_REGION_ASKED.lock().unwrap().push(ids.iter().copied().collect());
        ids.iter().map(|id| (*id, format!("{}#{id}", self.region))).collect()
    }
}

#[test]
fn an_async_method_over_a_borrowed_set() {
    let tower = register_memory("many_method");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let directory = Directory { region: "eu" };

    let first = runtime.block_on(directory.in_region(&BTreeSet::from([4, 5])));
    let second = runtime.block_on(directory.in_region(&BTreeSet::from([5, 6])));

    assert_eq!(first[&4], "eu#4");
    assert_eq!(second[&6], "eu#6");
    assert_eq!(asked(&IN_REGION_ASKED), vec![vec![4, 5], vec![6]]);
    assert_eq!(tower.get::<String>("eu:5").as_deref(), Some("eu#5"));
    runtime.block_on(directory.in_region_invalidate(&BTreeSet::from([5]))).unwrap();
    assert_eq!(tower.get::<String>("eu:5"), None);
}

/// A batch function and a single-key function over the same keys (a tower of their own: tests
/// run in parallel in one process).
#[cached_tower(config = "many_shared", key = "user:{ids}", many = "ids")]
fn shared_users(ids: &[u64]) -> HashMap<u64, User> {
    ids.iter().map(|&id| (id, User::sample(id))).collect()
}

#[cached_tower(config = "many_shared", key = "user:{id}")]
fn user(id: u64) -> User {
    User::sample(id + 1_000)
}

#[test]
fn a_single_key_function_over_the_same_keys_reads_the_batch_entries() {
    register_memory("many_shared");
    let _ = shared_users(&[42]);
    assert_eq!(user(42), User::sample(42), "stored by the batch, read by the single-key function");
}
