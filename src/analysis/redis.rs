//! The Redis server's own view of its clients, and what counts as a Redis connection error.
//! Pure; `crate::providers::redis` asks the server.

use std::time::Duration;

/// What the Redis server says about its connections.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisSignals {
    pub max_clients: Option<i64>,
    pub connected_clients: i64,
    /// Connections refused since the server started (`maxclients` reached).
    pub rejected_connections: i64,
    pub ping: Duration,
}

/// Why the server could not be asked. Typed, because a decision depends on the kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedisFault {
    /// The server refused the operator itself for want of client slots (`maxclients` reached):
    /// the very failure the `redisConnectionErrors` gate looks for.
    #[error("{0}")]
    MaxClients(String),
    /// Unreachable, refused authentication, no answer in time, or no password to send.
    #[error("{0}")]
    Unavailable(String),
}

/// Redis connection errors in one interval: what the canary pods counted, plus the connections
/// the server rejected since the last probe (whoever was refused). A server the operator cannot
/// ask leaves the gate without data (never a Pass), unless it refused the operator itself for
/// want of client slots. Without a previous count of rejections, this probe only sets one.
pub fn connection_errors(
    from_pods: Option<i64>,
    server: Option<&Result<RedisSignals, RedisFault>>,
    rejected_before: Option<i64>,
) -> Option<i64> {
    match server {
        None => from_pods,
        Some(Ok(s)) => {
            let rejected = rejected_before.map_or(0, |b| (s.rejected_connections - b).max(0));
            from_pods.map(|e| e + rejected)
        }
        Some(Err(RedisFault::MaxClients(_))) => Some(from_pods.unwrap_or(0) + 1),
        Some(Err(RedisFault::Unavailable(_))) => None,
    }
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
    fn what_counts_as_a_connection_error() {
        let signals = |rejected| {
            Ok(RedisSignals {
                max_clients: Some(100),
                connected_clients: 3,
                rejected_connections: rejected,
                ping: Duration::ZERO,
            })
        };
        assert_eq!(connection_errors(Some(2), None, None), Some(2), "no server configured: the pods' count");
        assert_eq!(
            connection_errors(Some(0), Some(&signals(7)), Some(4)),
            Some(3),
            "three rejected since the last probe"
        );
        assert_eq!(
            connection_errors(Some(0), Some(&signals(7)), None),
            Some(0),
            "the first probe only sets a baseline"
        );
        assert_eq!(
            connection_errors(Some(0), Some(&signals(2)), Some(4)),
            Some(0),
            "a restarted server never goes negative"
        );
        let full = Err(RedisFault::MaxClients("max number of clients reached".into()));
        assert_eq!(connection_errors(Some(0), Some(&full), Some(4)), Some(1), "refusing the operator counts");
        assert_eq!(connection_errors(None, Some(&full), None), Some(1));
        let down = Err(RedisFault::Unavailable("connection refused".into()));
        assert_eq!(connection_errors(Some(0), Some(&down), Some(4)), None, "an unreachable server is no data");
    }

    #[test]
    fn passwords_never_print() {
        let t = RedisTarget { address: "127.0.0.1:6379".into(), password: Some("s3cret".into()), tls: false };
        assert!(!format!("{t:?}").contains("s3cret"));
        assert_eq!(redact("auth s3cret failed", &t), "auth <redacted> failed");
    }
}
