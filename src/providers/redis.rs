//! The `Redis` provider: asks the server, via the `redis` crate over a connection we open
//! ourselves (plain TCP, or TLS with rustls), so that certificate failures can be told apart
//! and explained. `CONFIG GET maxclients` (or, where CONFIG is forbidden, `INFO clients`) sizes
//! the budget; `INFO` gives connected and rejected connections; `PING` proves the round trip.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::core::analysis::redis::{
    ClusterNode, NodeSignals, RedisFault, RedisSignals, RedisTarget, ServerIdentity, TlsMaterial, cluster_identity,
    cluster_nodes, config_denied, explain_reply, info_field, max_clients, pool_nodes, redact, sentinel_replicas,
    tightest,
};

/// Asks the server, within `timeout`. Errors name the address and the reason, never the password.
pub async fn probe(target: &RedisTarget, timeout: Duration) -> Result<RedisSignals, RedisFault> {
    match tokio::time::timeout(timeout, probe_inner(target)).await {
        Ok(Ok(signals)) => Ok(signals),
        Ok(Err(fault)) => Err(match fault {
            RedisFault::MaxClients(m) => {
                RedisFault::MaxClients(redact(&format!("redis {}: {m}", target.address), target))
            }
            RedisFault::Unavailable(m) => {
                RedisFault::Unavailable(redact(&format!("redis {}: {m}", target.address), target))
            }
        }),
        Err(_) => Err(RedisFault::Unavailable(format!("redis {}: no answer within {timeout:?}", target.address))),
    }
}

/// Asks a Redis Cluster through the first of `seeds` that answers (then through any node a probe
/// has seen in it): the seed itself, then `CLUSTER NODES`, then every node that holds the
/// application's pools (masters, and replicas with `read_from_replicas`), with the same
/// credentials and TLS. The signals are those of the node with the least room, and every such
/// node is listed. A seed that is not a cluster node is refused, naming the field.
pub async fn probe_cluster(
    seeds: &[RedisTarget],
    timeout: Duration,
    read_from_replicas: bool,
) -> Result<RedisSignals, RedisFault> {
    let Some(like) = seeds.first() else {
        return Err(RedisFault::Unavailable("spec.redis.address names no seed".into()));
    };
    let given: Vec<&str> = seeds.iter().map(|s| s.address.as_str()).collect();
    let seen = seen_nodes(&like.address).into_iter().filter(|a| !given.contains(&a.as_str()));
    let candidates = seeds.iter().cloned().chain(seen.map(|address| RedisTarget { address, ..like.clone() }));
    let mut why = Vec::new();
    for seed in candidates {
        let answer = match probe(&seed, timeout).await {
            Ok(first) => cluster_nodes_reply(&seed, timeout).await.map(|reply| (first, reply)),
            Err(e) => Err(e),
        };
        match answer {
            Ok((first, reply)) => return cluster_signals(&seed, first, &reply, timeout, read_from_replicas).await,
            Err(RedisFault::Unavailable(m)) if !m.contains("is not a cluster node") => why.push(m),
            Err(e) => return Err(e),
        }
    }
    Err(RedisFault::Unavailable(why.join("; ")))
}

/// The cluster's signals, from `seed`'s answers and its nodes'.
async fn cluster_signals(
    seed: &RedisTarget,
    first: RedisSignals,
    reply: &str,
    timeout: Duration,
    read_from_replicas: bool,
) -> Result<RedisSignals, RedisFault> {
    let all = cluster_nodes(reply);
    remember_cluster(&seed.address, &all);
    let nodes = pool_nodes(all, read_from_replicas);
    if nodes.is_empty() {
        return Err(RedisFault::Unavailable(format!(
            "redis {}: CLUSTER NODES names no serving node that holds pools",
            seed.address
        )));
    }
    let signals = probe_nodes(nodes, seed, timeout, "cluster node").await?;
    let tight = tightest(&signals).expect("at least one node").clone();
    let note =
        format!("cluster node {} has the least room of the {} that hold pools", tight.node.label(), signals.len());
    Ok(RedisSignals {
        max_clients: tight.max_clients,
        max_clients_note: Some(match &first.max_clients_note {
            Some(n) => format!("{note}; {n}"),
            None => note,
        }),
        connected_clients: tight.connected_clients,
        rejected_connections: signals.iter().map(|n| n.rejected_connections).sum(),
        ping: first.ping,
        identity: cluster_identity(&signals, first.identity.is_some_and(|i| i.loading)),
        nodes: signals,
    })
}

/// Asks each of `nodes` (with `like`'s credentials and TLS) for its clients. A node that cannot
/// be asked cannot be promised a budget.
async fn probe_nodes(
    nodes: Vec<ClusterNode>,
    like: &RedisTarget,
    timeout: Duration,
    kind: &str,
) -> Result<Vec<NodeSignals>, RedisFault> {
    let asked = nodes.into_iter().map(|node| async move {
        let target = RedisTarget { address: node.address.clone(), ..like.clone() };
        (node, probe(&target, timeout).await)
    });
    let mut signals = Vec::new();
    for (node, answer) in futures::future::join_all(asked).await {
        match answer {
            Ok(s) => signals.push(NodeSignals {
                run_id: s.identity.as_ref().map_or(String::new(), |i| i.run_id.clone()),
                node,
                max_clients: s.max_clients,
                connected_clients: s.connected_clients,
                rejected_connections: s.rejected_connections,
            }),
            Err(RedisFault::MaxClients(m)) => return Err(RedisFault::MaxClients(m)),
            Err(RedisFault::Unavailable(m)) => {
                return Err(RedisFault::Unavailable(format!("{kind} {}: {m}", node.label())));
            }
        }
    }
    Ok(signals)
}

/// Asks the sentinels (in turn, until one answers) where the master of `master_name` is now,
/// then asks that master (with `data`'s credentials and TLS). A name no sentinel knows is
/// refused, naming the field.
pub async fn probe_sentinel(
    sentinels: &[RedisTarget],
    master_name: &str,
    data: &RedisTarget,
    timeout: Duration,
    read_from_replicas: bool,
) -> Result<RedisSignals, RedisFault> {
    let mut why = Vec::new();
    for sentinel in sentinels {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("GET-MASTER-ADDR-BY-NAME").arg(master_name);
        match command::<Option<(String, String)>>(sentinel, cmd, timeout).await {
            Ok(Some((host, port))) => {
                let master = RedisTarget { address: format!("{host}:{port}"), ..data.clone() };
                let mut signals = probe(&master, timeout).await?;
                let note = format!(
                    "master of {master_name:?} at {}, per the sentinel at {}",
                    master.address, sentinel.address
                );
                signals.max_clients_note = Some(match signals.max_clients_note {
                    Some(n) => format!("{note}; {n}"),
                    None => note,
                });
                if read_from_replicas {
                    return with_replicas(signals, sentinel, master_name, &master, timeout).await;
                }
                return Ok(signals);
            }
            Ok(None) => {
                return Err(RedisFault::Unavailable(format!(
                    "spec.redis.sentinel.masterName {master_name:?} is not a master the sentinel at {} monitors: \
                     use the name of its 'sentinel monitor' line",
                    sentinel.address
                )));
            }
            Err(e) => why.push(format!("sentinel {}: {e}", sentinel.address)),
        }
    }
    Err(RedisFault::Unavailable(format!("no sentinel answered: {}", why.join("; "))))
}

/// The master's signals with its replicas' (`SENTINEL REPLICAS`, those the sentinel sees up):
/// the application reads from them, so each holds pools and has a budget of its own.
async fn with_replicas(
    master_signals: RedisSignals,
    sentinel: &RedisTarget,
    master_name: &str,
    master: &RedisTarget,
    timeout: Duration,
) -> Result<RedisSignals, RedisFault> {
    let mut cmd = redis::cmd("SENTINEL");
    cmd.arg("REPLICAS").arg(master_name);
    let replies: Vec<HashMap<String, String>> = command(sentinel, cmd, timeout).await?;
    let replicas = sentinel_replicas(&replies);
    let id = master_signals.identity.as_ref().map_or(String::new(), |i| i.run_id.clone());
    let master_node = ClusterNode { id, address: master.address.clone(), master: true, failed: false };
    let replica_count = replicas.len();
    let mut nodes = vec![NodeSignals {
        run_id: master_signals.identity.as_ref().map_or(String::new(), |i| i.run_id.clone()),
        node: master_node,
        max_clients: master_signals.max_clients,
        connected_clients: master_signals.connected_clients,
        rejected_connections: master_signals.rejected_connections,
    }];
    nodes.extend(probe_nodes(replicas, master, timeout, "replica").await?);
    let tight = tightest(&nodes).expect("the master at least").clone();
    let note = format!(
        "{}; {} has the least room of the master and its {replica_count} replicas",
        master_signals.max_clients_note.clone().unwrap_or_default(),
        tight.node.label()
    );
    Ok(RedisSignals {
        max_clients: tight.max_clients,
        max_clients_note: Some(note),
        connected_clients: tight.connected_clients,
        rejected_connections: nodes.iter().map(|n| n.rejected_connections).sum(),
        nodes,
        ..master_signals
    })
}

/// Asks a proxy: only `PING` (twemproxy closes the connection on `INFO` and `CONFIG`). The
/// budget is the proxy's client limit, which the spec gives.
pub async fn probe_proxy(target: &RedisTarget, timeout: Duration) -> Result<RedisSignals, RedisFault> {
    let start = Instant::now();
    let _: String = command(target, redis::cmd("PING"), timeout).await.map_err(|e| match e {
        RedisFault::Unavailable(m) => {
            RedisFault::Unavailable(redact(&format!("proxy {}: {m}", target.address), target))
        }
        other => other,
    })?;
    Ok(RedisSignals {
        max_clients: None,
        max_clients_note: None,
        connected_clients: 0,
        rejected_connections: 0,
        ping: start.elapsed(),
        identity: None,
        nodes: Vec::new(),
    })
}

/// One command over the probe's connection to `target` (opened, and kept, when there is none).
async fn command<T: redis::FromRedisValue>(
    target: &RedisTarget,
    cmd: redis::Cmd,
    timeout: Duration,
) -> Result<T, RedisFault> {
    let key = connection_key(target);
    let kept = CONNECTIONS.lock().await.get(&key).cloned();
    let mut conn = match kept {
        Some(c) => c,
        None => {
            let c = tokio::time::timeout(timeout, connect(target))
                .await
                .map_err(|_| RedisFault::Unavailable(format!("no answer within {timeout:?}")))??;
            CONNECTIONS.lock().await.insert(key, c.clone());
            c
        }
    };
    match tokio::time::timeout(timeout, cmd.query_async::<T>(&mut conn)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            // A server's error reply leaves the connection as good as it was; only a broken
            // one makes way for a new one.
            if e.is_io_error() || e.is_connection_dropped() {
                CONNECTIONS.lock().await.remove(&key);
            }
            Err(reply_fault(&e, target))
        }
        Err(_) => {
            CONNECTIONS.lock().await.remove(&key);
            Err(RedisFault::Unavailable(format!("no answer within {timeout:?}")))
        }
    }
}

/// The Redis Clusters the probes have seen: each node's address -> the cluster's identity (its
/// lowest node id). Two policies that name different seeds of one cluster draw on one budget.
static CLUSTERS: std::sync::LazyLock<std::sync::Mutex<HashMap<String, String>>> =
    std::sync::LazyLock::new(Default::default);

/// The identity of the Redis Cluster `address` is a node of, once a probe has seen it.
pub fn cluster_of(address: &str) -> Option<String> {
    CLUSTERS.lock().expect("cluster identities").get(address).cloned()
}

/// Every node a probe has seen in the cluster `address` belongs to, sorted.
fn seen_nodes(address: &str) -> Vec<String> {
    let Some(id) = cluster_of(address) else { return Vec::new() };
    let clusters = CLUSTERS.lock().expect("cluster identities");
    let mut nodes: Vec<String> = clusters.iter().filter(|(_, c)| **c == id).map(|(a, _)| a.clone()).collect();
    nodes.sort();
    nodes
}

/// Remembers which cluster each of `nodes` belongs to.
fn remember_cluster(seed: &str, nodes: &[ClusterNode]) {
    let Some(id) = nodes.iter().map(|n| n.id.as_str()).min() else { return };
    let mut clusters = CLUSTERS.lock().expect("cluster identities");
    for address in nodes.iter().map(|n| n.address.as_str()).chain([seed]) {
        clusters.insert(address.to_string(), id.to_string());
    }
}

/// `CLUSTER NODES` of the seed, over the probe's connection to it (fresh from [`probe`]).
async fn cluster_nodes_reply(seed: &RedisTarget, timeout: Duration) -> Result<String, RedisFault> {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("NODES");
    command::<String>(seed, cmd, timeout).await.map_err(|fault| match fault {
        RedisFault::Unavailable(m) if m.contains("cluster support disabled") => RedisFault::Unavailable(format!(
            "spec.redis.topology is Cluster but {} is not a cluster node (cluster support disabled): point \
             spec.redis.address at a node of the cluster, or set topology: Standalone",
            seed.address
        )),
        RedisFault::Unavailable(m) => {
            RedisFault::Unavailable(redact(&format!("redis {}: CLUSTER NODES: {m}", seed.address), seed))
        }
        other => other,
    })
}

/// Open probe connections, one per server and credentials: a server at its `maxclients`
/// refuses new connections, and the probe must still see it then (a connection storm at deploy
/// time is exactly when the budget matters). Keyed by a digest, so no credential is a key.
static CONNECTIONS: std::sync::LazyLock<tokio::sync::Mutex<HashMap<u64, MultiplexedConnection>>> =
    std::sync::LazyLock::new(Default::default);

/// Whom a connection is for: the address, the user, the password and the TLS material.
fn connection_key(target: &RedisTarget) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&target.address, &target.username, &target.password).hash(&mut h);
    if let Some(tls) = &target.tls {
        (&tls.ca.as_ref().map(|c| &c.0), &tls.server_name, &tls.client).hash(&mut h);
    }
    h.finish()
}

async fn probe_inner(target: &RedisTarget) -> Result<RedisSignals, RedisFault> {
    let key = connection_key(target);
    let kept = CONNECTIONS.lock().await.get(&key).cloned();
    if let Some(mut conn) = kept {
        // Bounded apart from the whole probe's timeout: a half-open connection that never answers
        // must make way for a new one within this probe, not hold every later probe up.
        match tokio::time::timeout(Duration::from_secs(1), ask(&mut conn, target)).await {
            Ok(Ok(signals)) => return Ok(signals),
            // A broken connection (the server restarted, the network dropped it): a new one.
            _ => {
                CONNECTIONS.lock().await.remove(&key);
            }
        }
    }
    let mut conn = connect(target).await?;
    let signals = ask(&mut conn, target).await?;
    CONNECTIONS.lock().await.insert(key, conn);
    Ok(signals)
}

/// A new connection to the server, authenticated.
async fn connect(target: &RedisTarget) -> Result<MultiplexedConnection, RedisFault> {
    let unavailable = RedisFault::Unavailable;
    let (host, port) = target.host_port();
    let tcp = TcpStream::connect((host, port)).await.map_err(|e| unavailable(format!("cannot connect: {e}")))?;
    if target.tls.is_none() {
        turned_away(&tcp).await?;
    }
    let mut settings = redis::RedisConnectionInfo::default();
    if let Some(u) = &target.username {
        settings = settings.set_username(u);
    }
    if let Some(p) = &target.password {
        settings = settings.set_password(p);
    }
    // Only the commands the probe needs: a proxy (twemproxy) closes the connection on any it
    // does not know, CLIENT SETINFO among them.
    settings = settings.set_skip_set_lib_name();
    match &target.tls {
        None => multiplexed(&settings, tcp, target).await,
        Some(tls) => {
            let stream = tls_handshake(tcp, host, tls).await.map_err(|e| unavailable(e.0))?;
            multiplexed(&settings, stream, target).await
        }
    }
}

/// A server at its `maxclients` says so the moment it accepts, then closes: read before a word
/// is sent, or the close arrives as a reset that hides its reason. A server with room says
/// nothing until asked, so the wait is short.
async fn turned_away(tcp: &TcpStream) -> Result<(), RedisFault> {
    let mut said = [0u8; 128];
    match tokio::time::timeout(Duration::from_millis(100), tcp.peek(&mut said)).await {
        Ok(Ok(n)) if n > 0 => {
            let said = String::from_utf8_lossy(&said[..n]);
            match said.contains("max number of clients") {
                true => Err(RedisFault::MaxClients(said.trim().trim_start_matches('-').to_string())),
                false => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// What the server says over `conn`.
async fn ask(conn: &mut MultiplexedConnection, target: &RedisTarget) -> Result<RedisSignals, RedisFault> {
    let mut conn = conn.clone();
    let start = Instant::now();
    let _: String = redis::cmd("PING").query_async(&mut conn).await.map_err(|e| reply_fault(&e, target))?;
    let ping = start.elapsed();
    // Managed Redis and least-privilege ACL users often forbid CONFIG; INFO then says it (Redis
    // 7, Valkey), or spec.redis.maxClients must, and the condition says which.
    let config = match redis::cmd("CONFIG").arg("GET").arg("maxclients").query_async::<Vec<String>>(&mut conn).await {
        Ok(pair) => Ok(pair.get(1).and_then(|v| v.parse().ok())),
        Err(e) => Err(config_denied(e.code(), target)),
    };
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .arg("stats")
        .arg("server")
        .arg("replication")
        .arg("persistence")
        .query_async(&mut conn)
        .await
        .map_err(|e| reply_fault(&e, target))?;
    let (max_clients, max_clients_note) = max_clients(config, &info);
    Ok(RedisSignals {
        max_clients,
        max_clients_note,
        connected_clients: info_field(&info, "connected_clients").unwrap_or(0),
        rejected_connections: info_field(&info, "rejected_connections").unwrap_or(0),
        ping,
        identity: ServerIdentity::from_info(&info).map(|i| ServerIdentity { address: target.address.clone(), ..i }),
        nodes: Vec::new(),
    })
}

/// Redis over `stream` (plain or TLS), authenticated as `settings` says. The connection's I/O
/// runs in its own task and ends when the connection is dropped.
async fn multiplexed<S>(
    settings: &redis::RedisConnectionInfo,
    stream: S,
    target: &RedisTarget,
) -> Result<MultiplexedConnection, RedisFault>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (conn, driver) = MultiplexedConnection::new_with_config(settings, stream, redis::AsyncConnectionConfig::new())
        .await
        .map_err(|e| reply_fault(&e, target))?;
    tokio::spawn(driver);
    Ok(conn)
}

/// The system's CA certificates, read once: a probe runs at every analysis of every policy.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// A failed command or handshake as a fault; the one place the server's words are read:
/// it says "max number of clients reached" when it refuses a connection for want of slots.
fn reply_fault(e: &redis::RedisError, target: &RedisTarget) -> RedisFault {
    let detail = e.to_string();
    if detail.contains("max number of clients") {
        return RedisFault::MaxClients(detail);
    }
    // TLS 1.3 sends the server's verdict on the client certificate after the handshake, so it
    // arrives as a failed read here rather than as a handshake error.
    if detail.contains("CertificateRequired") || detail.contains("UnknownCA") || detail.contains("BadCertificate") {
        return RedisFault::Unavailable(format!(
            "the server refused the client certificate ({detail}): set spec.redis.tlsOptions.clientCertSecret \
             to a kubernetes.io/tls Secret signed by a CA the server trusts"
        ));
    }
    // A TLS-only server drops a plain-text client at its first bytes.
    if target.tls.is_none() && (detail.contains("reset by peer") || detail.contains("Broken pipe")) {
        return RedisFault::Unavailable(format!(
            "{detail}: the server closed a plain-text connection; if it speaks only TLS, set spec.redis.tls: true"
        ));
    }
    // The crate reports a refused AUTH as its own kind, without the server's WRONGPASS.
    let code = if e.kind() == redis::ErrorKind::AuthenticationFailed {
        Some("WRONGPASS")
    } else {
        e.code().or_else(|| ["WRONGPASS", "NOAUTH", "NOPERM"].into_iter().find(|c| detail.contains(c)))
    };
    RedisFault::Unavailable(explain_reply(code, &detail, target))
}

/// Why the TLS handshake failed, in words a person can act on (never quoting the key).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TlsFailure(String);

impl From<String> for TlsFailure {
    fn from(why: String) -> Self {
        TlsFailure(why)
    }
}

/// The TLS handshake, with the CA, server name and client certificate of `tls`. One crypto
/// provider (ring, as kube uses) for the whole binary, chosen here explicitly.
async fn tls_handshake(
    tcp: TcpStream,
    host: &str,
    tls: &TlsMaterial,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsFailure> {
    let mut roots = rustls::RootCertStore::empty();
    let trusted_by = match &tls.ca {
        Some((pem, source)) => {
            let certs: Vec<CertificateDer> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{source} is not a PEM certificate bundle: {e}"))?;
            if certs.is_empty() {
                return Err(format!("{source} holds no PEM certificate").into());
            }
            for c in certs {
                roots.add(c).map_err(|e| format!("{source}: {e}"))?;
            }
            source.clone()
        }
        None => {
            for c in system_roots() {
                let _ = roots.add(c.clone());
            }
            "the system's CA certificates".to_string()
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots);
    let config = match &tls.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("the client certificate (tls.crt) is not PEM: {e}"))?;
            // Never echo the key: only say that it did not parse.
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|_| "the client key (tls.key) is not a PEM private key".to_string())?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("the client certificate: {e}"))?
        }
    };
    let name = tls.server_name.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|_| format!("{name:?} is not a valid TLS server name; fix spec.redis.tlsOptions.serverName"))?;
    let connector = TlsConnector::from(Arc::new(config));
    connector.connect(server_name, tcp).await.map_err(|e| TlsFailure(explain_tls(&e, name, &trusted_by)))
}

/// A failed handshake in words a person can act on.
fn explain_tls(e: &std::io::Error, name: &str, trusted_by: &str) -> String {
    use rustls::{CertificateError, Error as Tls};
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<Tls>());
    match inner {
        Some(Tls::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature)) => format!(
            "the server's TLS certificate is not trusted by {trusted_by}: set spec.redis.tlsOptions.caRef to the CA that signed it"
        ),
        Some(Tls::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => format!(
            "the server's TLS certificate is not valid for the name {name:?}: set spec.redis.tlsOptions.serverName to a name it carries"
        ),
        Some(Tls::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. })) => {
            "the server's TLS certificate has expired".to_string()
        }
        Some(Tls::InvalidCertificate(other)) => format!("the server's TLS certificate was refused: {other:?}"),
        Some(Tls::AlertReceived(alert)) => {
            format!(
                "the server refused the TLS handshake ({alert:?}): does it require a client certificate (spec.redis.tlsOptions.clientCertSecret)?"
            )
        }
        Some(other) => format!("TLS handshake failed: {other}"),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof || e.kind() == std::io::ErrorKind::InvalidData => {
            format!("TLS handshake failed ({e}): is this a TLS port? (spec.redis.tls is true)")
        }
        None => format!("TLS handshake failed: {e}"),
    }
}
