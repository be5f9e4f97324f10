//! The `Redis` provider: the server's own view of its clients, via the `redis` crate.
//! `CONFIG GET maxclients` sizes the budget; `INFO` gives connected and rejected connections.

use std::time::{Duration, Instant};

use redis::IntoConnectionInfo as _;

/// What the Redis server says about its connections.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisSignals {
    pub max_clients: Option<i64>,
    pub connected_clients: i64,
    /// Connections refused since the server started (`maxclients` reached).
    pub rejected_connections: i64,
    pub ping: Duration,
}

/// Where and how to connect. The password is held here only, never formatted.
#[derive(Clone)]
pub struct RedisTarget {
    pub address: String,
    pub password: Option<String>,
    pub tls: bool,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("RedisTarget")
            .field("address", &self.address)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Asks the server, within `timeout`. Errors name the address and the reason, never the password.
pub async fn probe(target: &RedisTarget, timeout: Duration) -> Result<RedisSignals, String> {
    match tokio::time::timeout(timeout, probe_inner(target)).await {
        Ok(r) => r.map_err(|e| redact(&format!("redis {}: {e}", target.address), target)),
        Err(_) => Err(format!("redis {}: no answer within {timeout:?}", target.address)),
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

/// An integer field of `INFO` output (`name:value` lines).
pub fn info_field(info: &str, name: &str) -> Option<i64> {
    info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
}

/// Removes the password from a message, in case a library echoes it.
pub fn redact(message: &str, target: &RedisTarget) -> String {
    match &target.password {
        Some(p) if !p.is_empty() => message.replace(p.as_str(), "<redacted>"),
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_info() {
        let info = "# Clients\r\nconnected_clients:12\r\nblocked_clients:0\r\n# Stats\r\nrejected_connections:7\r\n";
        assert_eq!(info_field(info, "connected_clients"), Some(12));
        assert_eq!(info_field(info, "rejected_connections"), Some(7));
        assert_eq!(info_field(info, "missing"), None);
    }

    #[test]
    fn passwords_never_print() {
        let t = RedisTarget { address: "127.0.0.1:6379".into(), password: Some("s3cret".into()), tls: false };
        assert!(!format!("{t:?}").contains("s3cret"));
        assert_eq!(redact("auth s3cret failed", &t), "auth <redacted> failed");
    }
}
