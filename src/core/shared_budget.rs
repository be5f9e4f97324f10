//! One budget per Redis server. Services usually share a Redis, so a rollout's peak is checked
//! together with every other policy that points at the same server: their planned peaks while
//! they roll out, their steady connections otherwise, and the clients nobody accounts for (the
//! server's `connected_clients` beyond everyone's steady connections). Pure.

use crate::core::api::RedisSettings;

/// Which budget a policy draws on: `spec.redis.budgetGroup` when set, else the server's
/// address. Service names are reduced to `name.namespace`: `redis:6379` in namespace `saas`,
/// `redis.saas:6379`, `redis.saas.svc:6379` and `redis.saas.svc.cluster.local.:6379` are one
/// server, and `redis:6379` in two namespaces are two.
pub fn group_key(namespace: &str, redis: &RedisSettings) -> String {
    if let Some(g) = &redis.budget_group {
        return format!("group/{}", g.to_ascii_lowercase());
    }
    let address = redis.address.to_ascii_lowercase();
    let Some((host, port)) = address.rsplit_once(':') else { return address };
    let host = host.trim_end_matches('.');
    let host = host.strip_suffix(".svc.cluster.local").or_else(|| host.strip_suffix(".svc")).unwrap_or(host);
    let ip = host.parse::<std::net::IpAddr>().is_ok();
    match host {
        h if !h.contains('.') && !ip && h != "localhost" => format!("{h}.{namespace}:{port}"),
        h => format!("{h}:{port}"),
    }
}

/// Another policy on the same server, as its status accounts for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// `namespace/name`.
    pub policy: String,
    /// Connections its target holds when nothing rolls out.
    pub steady: i64,
    /// Its plan's peak while it rolls out.
    pub peak: Option<i64>,
}

/// What a policy shares its server with.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Shared {
    pub peers: Vec<Peer>,
    /// The server's `connected_clients`, when it was asked.
    pub connected_clients: Option<i64>,
}

/// The connections the server must hold at this policy's peak, and how they add up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Demand {
    pub total: i64,
    /// `3200 for this rollout + 2400 for saas/payments (rolling out) + 150 other clients`.
    pub breakdown: String,
}

/// This policy's peak plus every peer's (planned peak while rolling out, steady otherwise),
/// plus the clients nobody accounts for: `connected_clients` beyond everyone's steady
/// connections, never below zero. A peer's canary pods already connected count twice (in its
/// peak and in the unaccounted clients): the error is on the safe side.
pub fn demand(own_peak: i64, own_steady: i64, shared: &Shared) -> Demand {
    let others: i64 = shared.peers.iter().map(|p| p.peak.unwrap_or(p.steady)).sum();
    let accounted = own_steady + shared.peers.iter().map(|p| p.steady).sum::<i64>();
    let unaccounted = shared.connected_clients.map_or(0, |c| (c - accounted).max(0));
    let mut parts = vec![format!("{own_peak} for this rollout")];
    let mut peers: Vec<&Peer> = shared.peers.iter().collect();
    peers.sort_by(|a, b| a.policy.cmp(&b.policy));
    for p in peers {
        parts.push(match p.peak {
            Some(peak) => format!("{peak} for {} (rolling out)", p.policy),
            None => format!("{} for {}", p.steady, p.policy),
        });
    }
    if unaccounted > 0 {
        parts.push(format!("{unaccounted} other clients"));
    }
    Demand { total: own_peak + others + unaccounted, breakdown: parts.join(" + ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(address: &str, group: Option<&str>) -> RedisSettings {
        serde_json::from_value(serde_json::json!({"address": address, "budgetGroup": group})).unwrap()
    }

    #[test]
    fn one_server_one_key() {
        assert_eq!(group_key("saas", &redis("Redis.Shared.svc:6379", None)), "redis.shared:6379");
        for same in ["redis:6379", "redis.saas:6379", "redis.saas.svc:6379", "redis.saas.svc.cluster.local.:6379"] {
            assert_eq!(group_key("saas", &redis(same, None)), "redis.saas:6379", "{same}");
        }
        assert_eq!(group_key("a", &redis("x:1", Some("Cache"))), group_key("b", &redis("y:2", Some("cache"))));
        assert_eq!(
            group_key("saas", &redis("redis:6379", None)),
            "redis.saas:6379",
            "relative names are per namespace"
        );
        assert_ne!(group_key("a", &redis("redis:6379", None)), group_key("b", &redis("redis:6379", None)));
        assert_eq!(group_key("a", &redis("127.0.0.1:6379", None)), group_key("b", &redis("127.0.0.1:6379", None)));
        assert_eq!(group_key("a", &redis("x:1", Some("cache"))), group_key("b", &redis("y.z:2", Some("cache"))));
    }

    #[test]
    fn peers_count_their_peak_while_rolling_out_and_unknown_clients_count_too() {
        let shared = Shared {
            peers: vec![
                Peer { policy: "saas/search".into(), steady: 600, peak: None },
                Peer { policy: "saas/payments".into(), steady: 1600, peak: Some(2400) },
            ],
            connected_clients: Some(1600 + 600 + 600 + 150),
        };
        let d = demand(3200, 600, &shared);
        assert_eq!(d.total, 3200 + 2400 + 600 + 150);
        assert_eq!(
            d.breakdown,
            "3200 for this rollout + 2400 for saas/payments (rolling out) + 600 for saas/search + 150 other clients"
        );
        // Fewer clients than accounted for (pods not up yet): nothing negative.
        let quiet = Shared { connected_clients: Some(10), ..shared.clone() };
        assert_eq!(demand(3200, 600, &quiet).total, 3200 + 2400 + 600);
        // Alone on the server, without asking it: just the own peak.
        assert_eq!(
            demand(3200, 600, &Shared::default()),
            Demand { total: 3200, breakdown: "3200 for this rollout".into() }
        );
    }
}
