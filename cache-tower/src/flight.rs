//! Single flight: when many callers miss the same key at once, one of them (the *leader*)
//! computes the value and the others (*followers*) wait for it and share it.
//!
//! A leader that fails — its computation returns an error or panics — abandons the flight: its
//! followers wake up and try again, one of them becoming the next leader. Nothing is poisoned
//! and nobody waits for a flight that no one is flying. The tower's
//! [`get_or_set`](crate::CacheTower::get_or_set) is built on this.

use std::collections::HashMap;
use std::fmt;

use event_listener::{Event, Listener};

use crate::sync_shim::{Arc, Mutex};
use crate::value::StoredValue;

/// The flights in progress, one per key.
#[derive(Default)]
pub(crate) struct Flights {
    /// Hashed with foldhash: every miss and every due eager refresh looks its key up here.
    in_flight: Mutex<HashMap<String, Arc<Flight>, foldhash::fast::RandomState>>,
}

/// One computation in progress, which followers wait on, blocking or async.
pub(crate) struct Flight {
    state: Mutex<State>,
    changed: Event,
}

enum State {
    Flying,
    Landed(StoredValue),
    Abandoned,
}

/// What [`Flights::join`] made of the caller.
pub(crate) enum Joined {
    /// Nobody was computing this key: the caller must, then call [`Leader::land`].
    Leader(Leader),
    /// Somebody is: wait with [`Flight::wait`].
    Follower(Arc<Flight>),
}

/// The right and duty to compute one key. Dropping it without landing abandons the flight. It
/// owns a handle on the flights, so it may be handed to a background load that outlives the
/// call that joined.
pub(crate) struct Leader {
    flights: Arc<Flights>,
    key: String,
    flight: Arc<Flight>,
    landed: bool,
}

impl Flights {
    /// Joins the flight for `key` of `flights`, starting it when there is none.
    pub(crate) fn join(flights: &Arc<Flights>, key: &str) -> Joined {
        let mut in_flight = flights.in_flight.lock();
        if let Some(flight) = in_flight.get(key) {
            return Joined::Follower(Arc::clone(flight));
        }
        let flight = Arc::new(Flight { state: Mutex::new(State::Flying), changed: Event::new() });
        in_flight.insert(key.to_owned(), Arc::clone(&flight));
        Joined::Leader(Leader { flights: Arc::clone(flights), key: key.to_owned(), flight, landed: false })
    }

    /// Leads the flight for `key` when nobody is flying it (an eager refresh: `None` means one
    /// is under way already).
    pub(crate) fn try_lead(flights: &Arc<Flights>, key: &str) -> Option<Leader> {
        match Flights::join(flights, key) {
            Joined::Leader(leader) => Some(leader),
            Joined::Follower(_) => None,
        }
    }

    /// How many keys are being computed right now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.in_flight.lock().len()
    }
}

impl Flight {
    /// Blocks until the leader lands (`Some(value)`) or abandons (`None`: try again).
    pub(crate) fn wait(&self) -> Option<StoredValue> {
        loop {
            if let Some(outcome) = self.outcome() {
                return outcome;
            }
            // Listen before looking again, so a landing in between is not missed.
            let listener = self.changed.listen();
            if let Some(outcome) = self.outcome() {
                return outcome;
            }
            listener.wait();
        }
    }

    /// [`wait`](Self::wait) for async callers: the task sleeps, the thread does not.
    #[cfg(any(feature = "tokio", all(test, loom)))]
    pub(crate) async fn wait_async(&self) -> Option<StoredValue> {
        loop {
            if let Some(outcome) = self.outcome() {
                return outcome;
            }
            let listener = self.changed.listen();
            if let Some(outcome) = self.outcome() {
                return outcome;
            }
            listener.await;
        }
    }

    /// [`wait`](Self::wait) until `deadline` at the latest: `None` when it passed first.
    pub(crate) fn wait_until(&self, deadline: std::time::Instant) -> Option<Option<StoredValue>> {
        loop {
            if let Some(outcome) = self.outcome() {
                return Some(outcome);
            }
            let listener = self.changed.listen();
            if let Some(outcome) = self.outcome() {
                return Some(outcome);
            }
            listener.wait_deadline(deadline)?;
        }
    }

    /// `None` while flying; then the value, or `Some(None)` when abandoned.
    fn outcome(&self) -> Option<Option<StoredValue>> {
        match &*self.state.lock() {
            State::Flying => None,
            State::Landed(value) => Some(Some(value.clone())),
            State::Abandoned => Some(None),
        }
    }
}

impl Leader {
    /// Hands `value` to every follower and ends the flight.
    pub(crate) fn land(mut self, value: StoredValue) {
        self.finish(State::Landed(value));
        self.landed = true;
    }

    fn finish(&self, outcome: State) {
        // Callers arriving from now on start a new flight (and usually find the value cached).
        // Unregistered first: a follower released by an abandonment joins again at once, and
        // must not find this flight still there (it would spin on it until it went).
        self.flights.in_flight.lock().remove(&self.key);
        *self.flight.state.lock() = outcome;
        self.flight.changed.notify(usize::MAX);
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if !self.landed {
            // The computation failed or panicked: release the followers so one of them retries.
            self.finish(State::Abandoned);
        }
    }
}

impl fmt::Debug for Flights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flights").field("in_flight", &self.in_flight.lock().len()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn followers_get_the_leaders_value() {
        let flights = Arc::new(Flights::default());
        let Joined::Leader(leader) = Flights::join(&flights, "k") else { panic!("first caller leads") };
        let Joined::Follower(flight) = Flights::join(&flights, "k") else { panic!("second caller follows") };
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| flight.wait().map(|v| v.decode::<i32>().unwrap()));
            leader.land(StoredValue::new(7));
            assert_eq!(waiter.join().unwrap(), Some(7));
        });
        assert_eq!(flights.len(), 0);
    }

    #[test]
    fn dropped_leader_releases_followers() {
        let flights = Arc::new(Flights::default());
        let Joined::Leader(leader) = Flights::join(&flights, "k") else { panic!("first caller leads") };
        let Joined::Follower(flight) = Flights::join(&flights, "k") else { panic!("second caller follows") };
        drop(leader);
        assert!(flight.wait().is_none());
        assert!(matches!(Flights::join(&flights, "k"), Joined::Leader(_)), "a new flight can start");
    }

    #[test]
    fn panicking_leader_releases_followers() {
        let flights = Arc::new(Flights::default());
        let (registered, followed) = (Barrier::new(2), Barrier::new(2));
        let retried = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let leader = scope.spawn(|| {
                let Joined::Leader(_leader) = Flights::join(&flights, "k") else { panic!("leads") };
                registered.wait();
                followed.wait();
                panic!("computation failed");
            });
            registered.wait();
            let Joined::Follower(flight) = Flights::join(&flights, "k") else { panic!("the leader is still flying") };
            followed.wait();
            if flight.wait().is_none() {
                retried.fetch_add(1, Ordering::SeqCst);
            }
            assert!(leader.join().is_err());
        });
        assert_eq!(retried.load(Ordering::SeqCst), 1);
        assert_eq!(flights.len(), 0);
    }
}

/// Model checks (`--cfg loom`, see docs/adr/0008-model-checking.md), with event-listener in its
/// loom mode: the real waits, blocking and async, under every interleaving.
#[cfg(all(test, loom))]
mod model {
    use loom::thread;

    use super::*;
    use crate::sync_shim::{AtomicUsize, Ordering, model};

    const KEY: &str = "k";

    /// What the tower's `compute_and_set` does with the flights (its loop, without the layers):
    /// lead and land `compute`'s value, or abandon when it fails (`None`: an error, a panic or a
    /// dropped future all drop the leader unlanded); or follow, and join again if abandoned.
    /// `leading` counts the leaders computing right now.
    fn get_or_compute(
        flights: &Arc<Flights>,
        leading: &AtomicUsize,
        compute: impl Fn() -> Option<u64>,
        async_wait: bool,
    ) -> Option<u64> {
        loop {
            match Flights::join(&flights, KEY) {
                Joined::Leader(leader) => {
                    assert_eq!(leading.fetch_add(1, Ordering::SeqCst), 0, "two leaders at once");
                    let value = compute();
                    leading.fetch_sub(1, Ordering::SeqCst);
                    let value = value?;
                    leader.land(StoredValue::new(value));
                    return Some(value);
                }
                Joined::Follower(flight) => {
                    let outcome = if async_wait { loom::future::block_on(flight.wait_async()) } else { flight.wait() };
                    if let Some(stored) = outcome {
                        return Some(stored.decode::<u64>().unwrap());
                    }
                }
            }
        }
    }

    /// Callers missing the same key at once: one computes at a time, and each caller ends with
    /// the value of the flight it led or followed, never waiting forever.
    fn callers_share_one_computation(async_wait: bool) {
        model(move || {
            let flights = Arc::new(Flights::default());
            let leading = Arc::new(AtomicUsize::new(0));
            let computed = Arc::new(Mutex::new(Vec::new()));
            let callers: Vec<_> = (1..=2)
                .map(|id| {
                    let (flights, leading, computed) =
                        (Arc::clone(&flights), Arc::clone(&leading), Arc::clone(&computed));
                    thread::spawn(move || {
                        let compute = || {
                            computed.lock().push(id);
                            Some(id)
                        };
                        get_or_compute(&flights, &leading, compute, async_wait)
                    })
                })
                .collect();
            let got: Vec<u64> = callers.into_iter().map(|caller| caller.join().unwrap().unwrap()).collect();
            let computed = computed.lock().clone();
            for value in &got {
                assert!(computed.contains(value), "{value} was never computed");
            }
            if computed.len() == 1 {
                assert_eq!(got, [computed[0]; 2], "followers get the leader's value");
            }
            assert_eq!(flights.len(), 0, "no flight left behind");
        });
    }

    #[test]
    fn callers_share_one_computation_blocking() {
        callers_share_one_computation(false);
    }

    #[test]
    fn callers_share_one_computation_async() {
        callers_share_one_computation(true);
    }

    /// A leader that goes away without landing (its computation failed, panicked or was
    /// cancelled) while others follow: they are released, one of them leads, and all end with
    /// its value.
    fn an_abandoned_flight_is_taken_over(async_wait: bool) {
        model(move || {
            let flights = Arc::new(Flights::default());
            let leading = Arc::new(AtomicUsize::new(0));
            let Joined::Leader(leader) = Flights::join(&flights, KEY) else { panic!("the first caller leads") };
            let followers: Vec<_> = (1..=2)
                .map(|id| {
                    let (flights, leading) = (Arc::clone(&flights), Arc::clone(&leading));
                    thread::spawn(move || get_or_compute(&flights, &leading, || Some(id), async_wait))
                })
                .collect();
            drop(leader);
            let got: Vec<u64> = followers.into_iter().map(|follower| follower.join().unwrap().unwrap()).collect();
            assert!(got.iter().all(|value| [1, 2].contains(value)));
            assert_eq!(flights.len(), 0, "no flight left behind");
        });
    }

    #[test]
    fn an_abandoned_flight_is_taken_over_blocking() {
        an_abandoned_flight_is_taken_over(false);
    }

    #[test]
    fn an_abandoned_flight_is_taken_over_async() {
        an_abandoned_flight_is_taken_over(true);
    }
}
