//! An axum handler over a memoized `async fn`: `GET /products/{id}` answers from the tower
//! `"products"` (memory over Redis at `REDIS_URL`, or memory only, saying so, when it is unset or
//! unusable); `DELETE /products/{id}` forgets one product with the `_invalidate` companion, and
//! answers 503 when a layer (Redis) could not forget it.
//!
//! By default the example binds `127.0.0.1:0` (a port the system chooses, so two runs never
//! collide), starts the server, sends itself a few requests with a bare HTTP/1.1 client (first
//! call slow, second cached; a 404 is not cached; eight concurrent requests for one missing
//! product run the body once), prints each response, whether the body ran and how long it took,
//! and shuts down. With Redis down it serves from memory all the same. It empties its namespace
//! in Redis (`cache-tower-example:axum:`) first, so every run starts cold and prints the same
//! lines; only the `(took …)` timings change. With `--serve [ADDR]` it keeps serving instead
//! (default `127.0.0.1:3000`) until Ctrl-C.
//!
//! ```sh
//! cargo run -p cache-tower-examples --bin axum_handler                                       # memory only
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p cache-tower-examples --bin axum_handler    # memory over Redis
//! cargo run -p cache-tower-examples --bin axum_handler -- --serve                            # then: curl localhost:3000/products/7
//! ```

use std::error::Error;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter, cached_tower, registry};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod support;
use support::{count, took};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
    price_cents: u64,
}

/// How many times `load_product`'s body ran.
static LOOKUPS: AtomicU64 = AtomicU64::new(0);

/// Every key this example writes to Redis is under this prefix.
const NAMESPACE: &str = "cache-tower-example:axum:";

/// Stands in for a slow catalogue query. `None` (no such product) is not cached.
#[cached_tower(config = "products", key = "product:{id}")]
async fn load_product(id: u64) -> Option<Product> {
    LOOKUPS.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(50)).await;
    (id < 1000).then(|| Product { id, name: format!("product {id}"), price_cents: 100 + id })
}

async fn get_product(Path(id): Path<u64>) -> Result<Json<Product>, StatusCode> {
    load_product(id).await.map(Json).ok_or(StatusCode::NOT_FOUND)
}

async fn forget_product(Path(id): Path<u64>) -> StatusCode {
    match load_product_invalidate(id).await {
        Ok(()) => StatusCode::NO_CONTENT,
        // A layer failed to delete (Redis down): the caller may want to retry.
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn app() -> Router {
    Router::new().route("/products/{id}", get(get_product).delete(forget_product))
}

async fn products_tower() -> CacheTower {
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::builder().maxsize(10_000).ttl(Duration::from_secs(60)).build());
    let url = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            println!("REDIS_URL is not set: tower \"products\" runs on memory only");
            return tower;
        }
    };
    // Building does not connect: a server that is down shows on the first call, not here.
    match RedisAdapter::builder().url(url).namespace(NAMESPACE).ttl(Duration::from_secs(300)).build() {
        Ok(redis) => {
            println!("tower \"products\": memory over Redis at {}", redis.endpoint());
            tower.add_layer(redis);
            // Start from an empty namespace, so the first requests below are misses on every run.
            // If Redis is down, say so and go on: the memory layer still caches.
            match tower.flush_async().await {
                Ok(()) => println!("emptied {NAMESPACE:?} in Redis, so this run starts cold"),
                Err(err) => println!("could not empty {NAMESPACE:?} in Redis, going on: {}", err.report()),
            }
        }
        Err(err) => {
            println!("REDIS_URL is set but unusable ({}): tower \"products\" runs on memory only", err.report());
        }
    }
    tower
}

/// A bare HTTP/1.1 client: one request per connection; returns the status line and the body.
async fn request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(String, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    Ok((status, body.to_owned()))
}

/// Sends one request, then prints the response, whether `load_product`'s body ran for it and
/// how long it took.
async fn show(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<()> {
    let (before, started) = (LOOKUPS.load(Ordering::Relaxed), Instant::now());
    let (status, body) = request(addr, method, path).await?;
    let elapsed = started.elapsed();
    let ran = match method {
        "GET" if LOOKUPS.load(Ordering::Relaxed) > before => "body ran",
        "GET" => "cached",
        _ => "",
    };
    let body = if body.is_empty() { String::new() } else { format!("  {body}") };
    println!("{method:<6} {path:<14} {ran:<9} {status}{body} {}", took(elapsed));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let serve = match args.next().as_deref() {
        None => None,
        Some("--serve") => Some(args.next().unwrap_or_else(|| "127.0.0.1:3000".to_owned())),
        Some(other) => return Err(format!("unknown argument {other:?}; usage: axum_handler [--serve [ADDR]]").into()),
    };

    registry::register("products", products_tower().await);

    if let Some(addr) = serve {
        let listener = TcpListener::bind(&addr).await?;
        let addr = listener.local_addr()?;
        println!("serving on http://{addr} until Ctrl-C; try: curl -i http://{addr}/products/7");
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        axum::serve(listener, app()).with_graceful_shutdown(ctrl_c).await?;
        return Ok(());
    }

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app())
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    // The port changes from run to run: it is not printed.
    println!("listening on a port of 127.0.0.1 the system chose\n");

    show(addr, "GET", "/products/7").await?; // miss: the body runs
    show(addr, "GET", "/products/7").await?; // hit
    show(addr, "GET", "/products/4242").await?; // 404: None is not cached...
    show(addr, "GET", "/products/4242").await?; // ...so the body runs again
    show(addr, "DELETE", "/products/7").await?; // load_product_invalidate(7)
    show(addr, "GET", "/products/7").await?; // a miss again

    // Eight clients miss the same product at once: one of them runs the body, all get its value.
    let before = LOOKUPS.load(Ordering::Relaxed);
    let started = Instant::now();
    let clients: Vec<_> = (0..8).map(|_| tokio::spawn(request(addr, "GET", "/products/8"))).collect();
    let mut ok = 0;
    for client in clients {
        if client.await??.0.contains("200") {
            ok += 1;
        }
    }
    println!(
        "8 concurrent GET /products/8: {ok} answered 200 OK, the body ran {} {}",
        count(LOOKUPS.load(Ordering::Relaxed) - before, "time", "times"),
        took(started.elapsed())
    );

    let _ = stop.send(());
    server.await??;
    println!(
        "\nserver stopped; load_product's body ran {} in all",
        count(LOOKUPS.load(Ordering::Relaxed), "time", "times")
    );
    Ok(())
}
