//! The `Redis` provider: asks the server, via the `redis` crate. `CONFIG GET maxclients` sizes
//! the budget; `INFO` gives connected and rejected connections; `PING` proves the round trip.

use std::time::{Duration, Instant};

use redis::IntoConnectionInfo as _;

use crate::analysis::redis::{RedisFault, RedisSignals, RedisTarget, info_field, redact};

/// Asks the server, within `timeout`. Errors name the address and the reason, never the password.
pub async fn probe(target: &RedisTarget, timeout: Duration) -> Result<RedisSignals, RedisFault> {
    match tokio::time::timeout(timeout, probe_inner(target)).await {
        Ok(Ok(signals)) => Ok(signals),
        Ok(Err(e)) => {
            let message = redact(&format!("redis {}: {e}", target.address), target);
            // The one place the server's words are read: it says "max number of clients reached".
            if e.to_string().contains("max number of clients") {
                Err(RedisFault::MaxClients(message))
            } else {
                Err(RedisFault::Unavailable(message))
            }
        }
        Err(_) => Err(RedisFault::Unavailable(format!("redis {}: no answer within {timeout:?}", target.address))),
    }
}

async fn probe_inner(target: &RedisTarget) -> Result<RedisSignals, redis::RedisError> {
    let (host, port) = target.address.rsplit_once(':').unwrap_or((&target.address, "6379"));
    let port: u16 = port.parse().unwrap_or(6379);
    if target.tls {
        return Err(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "TLS to Redis is not supported by this build",
        )));
    }
    let mut settings = redis::RedisConnectionInfo::default();
    if let Some(p) = &target.password {
        settings = settings.set_password(p);
    }
    let info = redis::ConnectionAddr::Tcp(host.to_string(), port).into_connection_info()?.set_redis_settings(settings);
    let client = redis::Client::open(info)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let start = Instant::now();
    let _: String = redis::cmd("PING").query_async(&mut conn).await?;
    let ping = start.elapsed();
    // Some managed Redis forbid CONFIG; then spec.redis.maxClients must say it.
    let max_clients =
        match redis::cmd("CONFIG").arg("GET").arg("maxclients").query_async::<Vec<String>>(&mut conn).await {
            Ok(pair) => pair.get(1).and_then(|v| v.parse().ok()),
            Err(_) => None,
        };
    let info: String = redis::cmd("INFO").arg("clients").arg("stats").query_async(&mut conn).await?;
    Ok(RedisSignals {
        max_clients,
        connected_clients: info_field(&info, "connected_clients").unwrap_or(0),
        rejected_connections: info_field(&info, "rejected_connections").unwrap_or(0),
        ping,
    })
}
