//! pool-app: a small auth API (issue and verify tokens in Redis) that honours the
//! redis-pool-operator env contract. It runs `WORKERS` workers, each with its own Redis pool of
//! exactly `REDIS_POOL_MAX_CONNECTIONS`, and serves the pool health contract at
//! `GET /health/redis` and Prometheus text at `GET /metrics`. The numbers are the pools' own.

mod config;
mod pools;
mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use deadpool_redis::PoolError;
use serde::Deserialize;

use config::Config;
use pools::{Conn, Pool};
use stats::Stats;

struct Worker {
    pool: Pool,
}

struct App {
    config: Config,
    workers: Vec<Worker>,
    next: AtomicUsize,
    stats: Stats,
}

#[tokio::main]
async fn main() {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pool-app: {e}");
            std::process::exit(2);
        }
    };
    let workers: Result<Vec<Worker>, String> =
        (0..config.workers).map(|i| Ok(Worker { pool: Pool::build(&config, i)? })).collect();
    let workers = match workers {
        Ok(w) => w,
        Err(e) => {
            eprintln!("pool-app: {e}");
            std::process::exit(2);
        }
    };
    let app = Arc::new(App { workers, next: AtomicUsize::new(0), stats: Stats::default(), config });
    for i in 0..app.workers.len() {
        tokio::spawn(health_check(app.clone(), i));
    }
    let router = Router::new()
        .route("/token", post(issue))
        .route("/verify", get(verify))
        .route("/work", get(work))
        .route("/health/redis", get(health))
        .route("/metrics", get(metrics))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind(app.config.listen).await.unwrap_or_else(|e| {
        eprintln!("pool-app: cannot listen on {}: {e}", app.config.listen);
        std::process::exit(1)
    });
    eprintln!(
        "pool-app [{}] on {}: {} workers x {} connections, redis {} ({:?})",
        app.config.environment,
        app.config.listen,
        app.config.workers,
        app.config.max_connections,
        app.config.redis_address,
        app.config.topology
    );
    axum::serve(listener, router).with_graceful_shutdown(shutdown()).await.expect("serve");
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Checks a pooled connection every interval; a failure counts as a Redis connection error.
async fn health_check(app: Arc<App>, worker: usize) {
    let mut tick = tokio::time::interval(app.config.health_check_interval);
    loop {
        tick.tick().await;
        let pool = &app.workers[worker].pool;
        // Only check an idle connection: the check must not take a slot from a request.
        if pool.status().available == 0 {
            continue;
        }
        let failed = match pool.get().await {
            Ok(mut conn) => redis::cmd("PING").query_async::<String>(&mut conn).await.err().map(|e| e.to_string()),
            Err(PoolError::Timeout(_)) => None,
            Err(e) => Some(e.to_string()),
        };
        if let Some(what) = failed {
            app.stats.redis_error(&what);
        }
    }
}

#[derive(Debug)]
enum Failure {
    /// No connection could be checked out in time: the pool is exhausted.
    Exhausted,
    /// Redis failed after every retry.
    Redis(String),
}

impl App {
    fn worker(&self) -> &Worker {
        &self.workers[self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len()]
    }

    /// Runs `op` on one pooled connection, retrying Redis failures with exponential backoff.
    async fn with_connection<T, F>(&self, op: F) -> Result<T, Failure>
    where
        F: for<'c> Fn(
            &'c mut Conn,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = redis::RedisResult<T>> + Send + 'c>>,
    {
        let worker = self.worker();
        let mut backoff = self.config.retry_backoff;
        let mut last = String::new();
        for attempt in 1..=self.config.retry_attempts {
            match worker.pool.get().await {
                Err(PoolError::Timeout(_)) => return Err(Failure::Exhausted),
                Err(e) => last = e.to_string(),
                Ok(mut conn) => {
                    self.stats.observe_in_use(self.in_use());
                    match op(&mut conn).await {
                        Ok(v) => return Ok(v),
                        Err(e) => last = e.to_string(),
                    }
                }
            }
            if attempt < self.config.retry_attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(self.config.retry_backoff_max);
            }
        }
        Err(Failure::Redis(last))
    }

    fn in_use(&self) -> usize {
        self.workers
            .iter()
            .map(|w| {
                let s = w.pool.status();
                s.size.saturating_sub(s.available)
            })
            .sum()
    }

    fn max_connections(&self) -> usize {
        self.config.workers * self.config.max_connections
    }

    /// Times a request and counts its outcome.
    async fn serve<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, Failure>>,
    ) -> Result<T, (StatusCode, String)> {
        let start = Instant::now();
        let r = f.await;
        self.stats.request(start.elapsed(), r.is_ok());
        match r {
            Ok(v) => Ok(v),
            Err(Failure::Exhausted) => {
                self.stats.exhausted();
                Err((StatusCode::SERVICE_UNAVAILABLE, "redis pool exhausted\n".into()))
            }
            Err(Failure::Redis(e)) => {
                self.stats.redis_error(&e);
                Err((StatusCode::BAD_GATEWAY, format!("redis: {e}\n")))
            }
        }
    }
}

async fn issue(State(app): State<Arc<App>>) -> Result<String, (StatusCode, String)> {
    app.serve(issue_token(&app)).await
}

async fn issue_token(app: &App) -> Result<String, Failure> {
    let token = format!("{:x}{:x}", rand_u64(), rand_u64());
    let key = format!("token:{token}");
    app.with_connection(move |c| {
        let key = key.clone();
        Box::pin(async move { redis::cmd("SET").arg(&key).arg("user-1").arg("EX").arg(300).query_async::<()>(c).await })
    })
    .await?;
    Ok(token)
}

#[derive(Deserialize)]
struct VerifyQuery {
    token: String,
}

async fn verify(State(app): State<Arc<App>>, Query(q): Query<VerifyQuery>) -> Result<String, (StatusCode, String)> {
    let key = format!("token:{}", q.token);
    let found = app
        .serve(app.with_connection(move |c| {
            let key = key.clone();
            Box::pin(async move { redis::cmd("GET").arg(&key).query_async::<Option<String>>(c).await })
        }))
        .await?;
    found.map(|user| format!("{user}\n")).ok_or((StatusCode::UNAUTHORIZED, "unknown token\n".into()))
}

/// Issue and verify on one connection, holding it for `REDIS_HOLD_MS` (a slow dependency, such
/// as a rate-limit wait): what the load generator calls.
async fn work(State(app): State<Arc<App>>) -> Result<&'static str, (StatusCode, String)> {
    let hold = app.config.hold;
    app.serve(app.with_connection(move |c| {
        Box::pin(async move {
            let key = format!("token:{:x}", rand_u64());
            redis::cmd("SET").arg(&key).arg("user-1").arg("EX").arg(60).query_async::<()>(c).await?;
            let _: Option<String> = redis::cmd("GET").arg(&key).query_async(c).await?;
            if !hold.is_zero() {
                // BLPOP on an empty list holds this connection without blocking the server.
                let _: Option<(String, String)> =
                    redis::cmd("BLPOP").arg("pool-app:hold").arg(hold.as_secs_f64()).query_async(c).await?;
            }
            Ok(())
        })
    }))
    .await?;
    Ok("ok\n")
}

async fn health(State(app): State<Arc<App>>) -> axum::Json<serde_json::Value> {
    axum::Json(app.stats.contract(app.max_connections(), app.in_use()))
}

async fn metrics(State(app): State<Arc<App>>) -> String {
    app.stats.prometheus(app.max_connections(), app.in_use())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
    h.finish()
}
