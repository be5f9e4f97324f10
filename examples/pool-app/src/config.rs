//! The env contract, read once at start.

use std::net::SocketAddr;
use std::time::Duration;

pub struct Config {
    pub environment: String,
    pub workers: usize,
    /// Pool size of each worker.
    pub max_connections: usize,
    pub health_check_interval: Duration,
    pub retry_attempts: u32,
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    pub socket_timeout: Duration,
    pub connect_timeout: Duration,
    /// `REDIS_ADDRESS` as given: one server, a cluster's seeds or the sentinels (comma-separated).
    pub redis_address: String,
    /// `(host, port)` of each address in `REDIS_ADDRESS`.
    pub redis_addresses: Vec<(String, u16)>,
    pub topology: Topology,
    pub listen: SocketAddr,
    /// How long a request waits for a pooled connection before it counts as pool exhaustion.
    pub checkout_timeout: Duration,
    /// How long `/work` holds its connection.
    pub hold: Duration,
    pub pod_name: String,
}

/// What `REDIS_ADDRESS` names (`REDIS_TOPOLOGY`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topology {
    /// One server.
    Standalone,
    /// Seeds of a Redis Cluster: each worker's pool holds a connection to every node per slot
    /// (a pool per node, as go-redis and Jedis keep), reading from replicas if asked.
    Cluster { read_from_replicas: bool },
    /// Sentinels, asked for the master of `master` (`REDIS_SENTINEL_MASTER`).
    Sentinel { master: String },
}

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn num<T: std::str::FromStr>(name: &str, default: &str) -> Result<T, String> {
    let v = var(name, default);
    v.parse().map_err(|_| format!("{name}={v:?} is not a valid number"))
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        let redis_address = var("REDIS_ADDRESS", "127.0.0.1:6379");
        let redis_addresses = redis_address
            .split(',')
            .map(|a| {
                let (host, port) = a
                    .trim()
                    .rsplit_once(':')
                    .ok_or(format!("REDIS_ADDRESS={redis_address:?} must be host:port[,host:port...]"))?;
                let port = port.parse().map_err(|_| format!("REDIS_ADDRESS={redis_address:?} has no valid port"))?;
                Ok((host.to_string(), port))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let topology = match var("REDIS_TOPOLOGY", "standalone").as_str() {
            "standalone" if redis_addresses.len() == 1 => Topology::Standalone,
            "standalone" => {
                return Err(format!(
                    "REDIS_ADDRESS={redis_address:?} names several servers; set REDIS_TOPOLOGY=cluster or sentinel"
                ));
            }
            "cluster" => Topology::Cluster { read_from_replicas: var("REDIS_READ_FROM_REPLICAS", "false") == "true" },
            "sentinel" => match std::env::var("REDIS_SENTINEL_MASTER") {
                Ok(master) if !master.is_empty() => Topology::Sentinel { master },
                _ => return Err("REDIS_TOPOLOGY=sentinel needs REDIS_SENTINEL_MASTER (the monitored name)".into()),
            },
            other => return Err(format!("REDIS_TOPOLOGY={other:?} must be standalone, cluster or sentinel")),
        };
        let workers: usize = num("WORKERS", "1")?;
        let max_connections: usize = num("REDIS_POOL_MAX_CONNECTIONS", "10")?;
        if workers == 0 || max_connections == 0 {
            return Err("WORKERS and REDIS_POOL_MAX_CONNECTIONS must be at least 1".into());
        }
        Ok(Config {
            environment: var("DEPLOYMENT_ENV", "development"),
            workers,
            max_connections,
            health_check_interval: Duration::from_secs(num::<u64>("REDIS_HEALTH_CHECK_INTERVAL", "30")?.max(1)),
            retry_attempts: num::<u32>("REDIS_RETRY_ATTEMPTS", "3")?.max(1),
            retry_backoff: Duration::from_millis(num("REDIS_RETRY_BACKOFF_MS", "100")?),
            retry_backoff_max: Duration::from_millis(num("REDIS_RETRY_BACKOFF_MAX_MS", "2000")?),
            socket_timeout: Duration::from_secs(num::<u64>("REDIS_SOCKET_TIMEOUT", "5")?.max(1)),
            connect_timeout: Duration::from_secs(num::<u64>("REDIS_SOCKET_CONNECT_TIMEOUT", "5")?.max(1)),
            redis_addresses,
            topology,
            redis_address,
            listen: var("LISTEN_ADDR", "127.0.0.1:8000")
                .parse()
                .map_err(|_| "LISTEN_ADDR must be ip:port".to_string())?,
            checkout_timeout: Duration::from_millis(num("POOL_CHECKOUT_TIMEOUT_MS", "250")?),
            hold: Duration::from_millis(num("REDIS_HOLD_MS", "0")?),
            pod_name: var("POD_NAME", "local"),
        })
    }
}
