//! `get_or_set` / `try_get_or_set`: a missing value is computed once however many threads ask
//! (single flight); a failed or panicking computation reaches only its own caller and never
//! leaves the others waiting; different keys do not wait for each other; a cached value is
//! returned without computing.
//!
//! Threads that could hang report through channels read with a generous deadline, so a bug
//! fails the test instead of hanging it. The deadlines are not performance assertions.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use cache_tower::CacheTower;
use cache_tower_tests::{User, memory_layers, peek, put, tower_of};

const THREADS: usize = 64;
/// Long enough that every thread has joined the flight while the first computation runs.
const WORK: Duration = Duration::from_millis(50);
/// How long a test waits for a thread before declaring it stuck. Not a performance bound.
const DEADLINE: Duration = Duration::from_secs(10);

fn shared_tower() -> Arc<CacheTower> {
    Arc::new(tower_of(&memory_layers(2)))
}

/// Receives `count` messages, failing the test if any is later than [`DEADLINE`].
fn receive_all<T>(results: &mpsc::Receiver<T>, count: usize) -> Vec<T> {
    (0..count)
        .map(|received| match results.recv_timeout(DEADLINE) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => {
                panic!("only {received} of {count} threads finished: the others are stuck")
            }
            Err(RecvTimeoutError::Disconnected) => panic!("a thread died after {received} of {count} results"),
        })
        .collect()
}

/// Runs `work` on its own thread and returns its result, failing the test if it takes longer than
/// [`DEADLINE`] (a caller left waiting on a flight nobody flies).
fn within_deadline<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, result) = mpsc::channel();
    thread::spawn(move || send.send(work()).unwrap());
    match result.recv_timeout(DEADLINE) {
        Ok(value) => value,
        Err(err) => panic!("the call did not return ({err}): it is stuck"),
    }
}

#[test]
fn many_threads_missing_one_key_run_the_computation_once() {
    let tower = shared_tower();
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let (send, results) = mpsc::channel();
    for _ in 0..THREADS {
        let (tower, runs, barrier, send) = (tower.clone(), runs.clone(), barrier.clone(), send.clone());
        thread::spawn(move || {
            barrier.wait();
            let user = tower.get_or_set("user:7", || {
                thread::sleep(WORK);
                runs.fetch_add(1, Ordering::SeqCst);
                User::sample(7)
            });
            send.send(user).unwrap();
        });
    }

    let users = receive_all(&results, THREADS);

    assert!(users.iter().all(|user| *user == User::sample(7)));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the computation ran more than once");
    for (index, layer) in tower.get_layers().iter().enumerate() {
        assert_eq!(peek::<User>(&**layer, "user:7"), Some(User::sample(7)), "stored in layer {index}");
    }
}

#[test]
fn a_burst_of_callers_reads_the_shared_layer_once_per_process() {
    use cache_tower::{MemoryAdapter, RedisAdapter};
    use cache_tower_tests::redis_server::{RedisServer, unique_namespace};
    let server = RedisServer::start();
    let redis = RedisAdapter::builder().url(server.url()).namespace(unique_namespace("burst")).build().unwrap();
    let writer = CacheTower::new();
    writer.add_layer(redis.clone());
    writer.set("k", 7u32).unwrap();
    let tower = Arc::new(cache_tower_tests::tracking::subscribed_tower(&MemoryAdapter::new(), &redis));
    let computed = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS));
    let (sender, results) = mpsc::channel();
    for _ in 0..THREADS {
        let (tower, computed, start, sender) = (tower.clone(), computed.clone(), start.clone(), sender.clone());
        thread::spawn(move || {
            start.wait();
            let value = tower.get_or_set("k", || {
                computed.fetch_add(1, Ordering::SeqCst);
                0u32
            });
            sender.send(value).unwrap();
        });
    }
    assert!(receive_all(&results, THREADS).iter().all(|value| *value == 7));
    assert_eq!(computed.load(Ordering::SeqCst), 0, "the value was in Redis");
    let stats = tower.stats();
    assert_eq!(stats[1].hits + stats[1].misses, 1, "one Redis read for {THREADS} callers: {stats:?}");
    assert_eq!(stats[0].hits + stats[0].misses, THREADS as u64, "one read of the top layer counted per caller");
}

#[test]
fn a_failed_computation_reaches_only_its_caller_and_the_others_get_a_value() {
    let tower = shared_tower();
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let (send, results) = mpsc::channel();
    for me in 0..THREADS {
        let (tower, runs, barrier, send) = (tower.clone(), runs.clone(), barrier.clone(), send.clone());
        thread::spawn(move || {
            barrier.wait();
            let mut ran = None;
            let outcome = tower.try_get_or_set("k", || {
                thread::sleep(WORK);
                let run = runs.fetch_add(1, Ordering::SeqCst);
                ran = Some(run);
                if run == 0 { Err(format!("run 0 by thread {me} failed")) } else { Ok(run as u64 + 100) }
            });
            send.send((me, ran, outcome)).unwrap();
        });
    }

    let outcomes = receive_all(&results, THREADS);

    // One retry, by one of the waiters, serves every caller but the one that failed.
    assert_eq!(runs.load(Ordering::SeqCst), 2, "computations run");
    let failed: Vec<_> = outcomes.iter().filter(|(_, _, outcome)| outcome.is_err()).collect();
    assert_eq!(failed.len(), 1, "exactly one caller gets the error: {failed:?}");
    let (me, ran, outcome) = failed[0];
    assert_eq!(*ran, Some(0), "the error went to thread {me}, whose computation did not fail");
    assert_eq!(outcome, &Err(format!("run 0 by thread {me} failed")));
    for (me, _, outcome) in &outcomes {
        if outcome.is_ok() {
            assert_eq!(outcome, &Ok(101), "thread {me}");
        }
    }
    assert_eq!(tower.get::<u64>("k"), Some(101), "the successful value is cached");
}

#[test]
fn the_error_is_not_cached() {
    let tower = shared_tower();
    let failed: Result<u32, &str> = tower.try_get_or_set("k", || Err("database down"));
    assert_eq!(failed, Err("database down"));
    assert!(!tower.exists("k"));
    let retry = tower.clone();
    assert_eq!(within_deadline(move || retry.try_get_or_set("k", || Ok::<_, &str>(7))), Ok(7));
    assert_eq!(tower.get::<u32>("k"), Some(7));
}

#[test]
fn a_panicking_leader_does_not_wedge_the_others() {
    let tower = shared_tower();
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let (send, results) = mpsc::channel();
    for me in 0..THREADS {
        let (tower, runs, barrier, send) = (tower.clone(), runs.clone(), barrier.clone(), send.clone());
        thread::spawn(move || {
            barrier.wait();
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                tower.get_or_set("k", || {
                    thread::sleep(WORK);
                    if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                        panic!("the first computation panics (expected by this test)");
                    }
                    "computed".to_string()
                })
            }));
            send.send((me, outcome.ok())).unwrap();
        });
    }

    let outcomes = receive_all(&results, THREADS);

    let panicked = outcomes.iter().filter(|(_, value)| value.is_none()).count();
    assert_eq!(panicked, 1, "only the caller whose computation panicked sees the panic");
    assert!(outcomes.iter().filter_map(|(_, value)| value.as_deref()).all(|value| value == "computed"));
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the panicked computation and one retry");
    assert_eq!(tower.get::<String>("k").as_deref(), Some("computed"));
    // The key is usable afterwards: no flight is left behind.
    tower.delete("k").unwrap();
    let again = tower.clone();
    assert_eq!(within_deadline(move || again.get_or_set("k", || "again".to_string())), "again");
}

#[test]
fn a_panic_on_a_lone_caller_leaves_the_key_usable() {
    let tower = shared_tower();
    let outcome = catch_unwind(AssertUnwindSafe(|| tower.get_or_set::<u8>("k", || panic!("expected by this test"))));
    assert!(outcome.is_err());
    assert!(!tower.exists("k"));
    let later = tower.clone();
    assert_eq!(within_deadline(move || later.get_or_set("k", || 5u8)), 5, "a later caller");
}

/// The computation of `a` waits until the computation of `b` has run. If `b` waited for `a`'s
/// flight, `a` would never see the signal.
#[test]
fn different_keys_are_computed_independently() {
    let tower = shared_tower();
    let (b_ran, b_signal) = mpsc::channel();
    let (a_done, a_result) = mpsc::channel();
    let (a_started, a_started_signal) = mpsc::channel();

    let a_tower = tower.clone();
    thread::spawn(move || {
        let value = a_tower.get_or_set("a", || {
            a_started.send(()).unwrap();
            b_signal.recv_timeout(DEADLINE).is_ok()
        });
        a_done.send(value).unwrap();
    });
    a_started_signal.recv_timeout(DEADLINE).expect("a's computation started");

    let b = tower.get_or_set("b", || {
        b_ran.send(()).unwrap();
        "b".to_string()
    });

    assert_eq!(b, "b");
    assert_eq!(a_result.recv_timeout(DEADLINE), Ok(true), "a's computation did not see b's run while in flight");
}

#[test]
fn many_keys_at_once_each_compute_once() {
    const KEYS: usize = 8;
    let tower = shared_tower();
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
    let barrier = Arc::new(Barrier::new(THREADS));
    let (send, results) = mpsc::channel();
    for me in 0..THREADS {
        let (tower, runs, barrier, send) = (tower.clone(), runs.clone(), barrier.clone(), send.clone());
        thread::spawn(move || {
            barrier.wait();
            let key = me % KEYS;
            let value = tower.get_or_set(&format!("k{key}"), || {
                thread::sleep(WORK);
                runs[key].fetch_add(1, Ordering::SeqCst);
                key
            });
            send.send((key, value)).unwrap();
        });
    }
    for (key, value) in receive_all(&results, THREADS) {
        assert_eq!(key, value);
    }
    for (key, count) in runs.iter().enumerate() {
        assert_eq!(count.load(Ordering::SeqCst), 1, "key k{key}");
    }
}

#[test]
fn a_cached_value_means_the_computation_never_runs() {
    let layers = memory_layers(2);
    let tower = tower_of(&layers);
    tower.set("top", 1u32).unwrap();
    put(&layers[1], "below", 2u32);

    assert_eq!(tower.get_or_set("top", || -> u32 { panic!("computed although cached in layer 0") }), 1);
    assert_eq!(tower.get_or_set("below", || -> u32 { panic!("computed although cached in layer 1") }), 2);
    assert_eq!(peek::<u32>(&layers[0], "below"), Some(2), "the value found below was backfilled");
    assert_eq!(tower.try_get_or_set("top", || Err::<u32, _>("computed although cached")), Ok(1));
}

#[test]
fn a_computed_value_is_stored_in_every_layer() {
    let layers = memory_layers(3);
    let tower = tower_of(&layers);
    let runs = AtomicUsize::new(0);
    let compute = || {
        runs.fetch_add(1, Ordering::SeqCst);
        vec![0u8, 1]
    };
    assert_eq!(tower.get_or_set("k", compute), [0, 1]);
    assert_eq!(tower.get_or_set("k", compute), [0, 1]);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    for layer in &layers {
        assert_eq!(peek::<Vec<u8>>(layer, "k"), Some(vec![0, 1]));
    }
}

/// docs/architecture.md §5: a stored value that no longer decodes (say, after a deploy changed a struct) is a
/// miss, and `get_or_set` overwrites it with the fresh value.
#[test]
fn an_undecodable_cached_value_is_recomputed_and_overwritten() {
    let layers = memory_layers(2);
    let tower = tower_of(&layers);
    for layer in &layers {
        put(layer, "k", "old shape".to_string());
    }
    assert_eq!(tower.get_or_set("k", || 7u32), 7);
    for (index, layer) in layers.iter().enumerate() {
        assert_eq!(peek::<u32>(layer, "k"), Some(7), "layer {index} still holds the old value");
    }
    assert_eq!(tower.get_or_set("k", || -> u32 { panic!("recomputed") }), 7);
}
