//! The Redis server's own view of its clients, and what counts as a Redis connection error.
//! Pure; `crate::providers::redis` asks the server.

use std::time::Duration;

/// What the Redis server says about its connections.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisSignals {
    pub max_clients: Option<i64>,
    /// Why `max_clients` is unknown, when the server said why (an ACL user without `CONFIG`).
    pub max_clients_note: Option<String>,
    pub connected_clients: i64,
    /// Connections refused since the server started (`maxclients` reached).
    pub rejected_connections: i64,
    pub ping: Duration,
    /// Who the server is and what it serves (None when `INFO` did not say).
    pub identity: Option<ServerIdentity>,
    /// A cluster's nodes that hold the application's pools, each as its own server says it
    /// (empty for a standalone server). The fields above are then of the tightest of them.
    pub nodes: Vec<NodeSignals>,
}

/// One Redis Cluster node and what it says of its clients.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSignals {
    pub node: ClusterNode,
    /// The node's process (`INFO server` `run_id`; empty when it did not say).
    pub run_id: String,
    pub max_clients: Option<i64>,
    pub connected_clients: i64,
    pub rejected_connections: i64,
}

/// A node of `CLUSTER NODES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: String,
    /// `host:port` clients connect to.
    pub address: String,
    pub master: bool,
    /// Flagged `fail` or `noaddr`: not serving.
    pub failed: bool,
}

impl ClusterNode {
    /// How people read a node: its address, its role and the start of its id.
    pub fn label(&self) -> String {
        let role = if self.master { "master" } else { "replica" };
        format!("{} ({role} {})", self.address, self.id_start())
    }

    /// Its address and the start of its id.
    pub fn short(&self) -> String {
        format!("{} ({})", self.address, self.id_start())
    }

    pub fn id_start(&self) -> String {
        self.id.chars().take(8).collect()
    }
}

/// The nodes of a `CLUSTER NODES` reply: `<id> <ip:port@cport[,hostname]> <flags> ...` a line
/// each. Lines that do not read as a node are skipped.
pub fn cluster_nodes(reply: &str) -> Vec<ClusterNode> {
    reply
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let id = fields.next()?.to_string();
            let address = fields.next()?.split(['@', ',']).next()?.to_string();
            let flags: Vec<&str> = fields.next()?.split(',').collect();
            let has = |f: &str| flags.contains(&f);
            // A node without an address yet (`:0`) has not joined: nothing to ask.
            (!address.starts_with(':')).then(|| ClusterNode {
                id,
                address,
                master: has("master"),
                failed: has("fail") || has("noaddr"),
            })
        })
        .collect()
}

/// Who a Redis Cluster is, for telling weather apart: the cluster (its lowest node id) and its
/// serving masters, each with its process. A failover, a reshard onto a new master or a master's
/// restart anywhere in the cluster changes it; which seed answered does not.
pub fn cluster_identity(nodes: &[NodeSignals], loading: bool) -> Option<ServerIdentity> {
    let id = nodes.iter().map(|n| n.node.id.as_str()).min()?;
    let mut masters: Vec<String> = nodes
        .iter()
        .filter(|n| n.node.master)
        .map(|n| format!("{} (run {})", n.node.short(), n.run_id.chars().take(8).collect::<String>()))
        .collect();
    masters.sort();
    Some(ServerIdentity {
        run_id: id.to_string(),
        role: "master".into(),
        replid: String::new(),
        master: None,
        master_link_up: None,
        loading,
        address: String::new(),
        cluster_masters: masters,
    })
}

/// The replicas a sentinel reports (`SENTINEL REPLICAS`, a map per replica) that serve: not
/// down in its eyes (`s_down`, `o_down`) nor disconnected.
pub fn sentinel_replicas(replies: &[std::collections::HashMap<String, String>]) -> Vec<ClusterNode> {
    replies
        .iter()
        .filter_map(|r| {
            let flags = r.get("flags").map_or("", String::as_str);
            let down = flags.split(',').any(|f| matches!(f, "s_down" | "o_down" | "disconnected"));
            let address = format!("{}:{}", r.get("ip")?, r.get("port")?);
            (!down).then(|| ClusterNode {
                id: r.get("runid").cloned().unwrap_or_default(),
                address,
                master: false,
                failed: false,
            })
        })
        .collect()
}

/// The nodes that hold the application's pools: every serving master, and the replicas when
/// the application reads from them.
pub fn pool_nodes(nodes: Vec<ClusterNode>, read_from_replicas: bool) -> Vec<ClusterNode> {
    nodes.into_iter().filter(|n| !n.failed && (n.master || read_from_replicas)).collect()
}

/// The node the budget binds on: the least room for this fleet's pools, each node holding all
/// of them. A node whose `maxclients` is unknown binds first (nothing can be promised there).
pub fn tightest(nodes: &[NodeSignals]) -> Option<&NodeSignals> {
    nodes.iter().min_by_key(|n| n.max_clients.map_or(i64::MIN, |m| m - n.connected_clients))
}

/// Who the Redis server is and what it serves now, from `INFO server`, `replication` and
/// `persistence`: what tells a restart or a failover apart from a configuration's fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerIdentity {
    /// Changes when the process restarts.
    pub run_id: String,
    /// `master` or `replica`.
    pub role: String,
    /// The replication history this server follows; a promoted replica starts a new one.
    pub replid: String,
    /// A replica's master, `host:port`.
    pub master: Option<String>,
    /// A replica's link to its master.
    pub master_link_up: Option<bool>,
    /// Loading its dataset: it answers, but not with data.
    pub loading: bool,
    /// The address it was reached at (set by the probe): a Sentinel failover moves the master,
    /// and the pools with it, to another one.
    pub address: String,
    /// A Redis Cluster's serving masters, `address (id)`, sorted (set by the probe; empty for
    /// one server): a failover or a reshard anywhere in the cluster changes them.
    pub cluster_masters: Vec<String>,
}

impl ServerIdentity {
    /// Reads the identity from `INFO` text; None without a run_id (a proxy may not say).
    pub fn from_info(info: &str) -> Option<ServerIdentity> {
        let text =
            |name: &str| info.lines().find_map(|l| Some(l.strip_prefix(name)?.strip_prefix(':')?.trim().to_string()));
        let role = match text("role").as_deref() {
            Some("slave") | Some("replica") => "replica",
            _ => "master",
        };
        let master = text("master_host").zip(text("master_port")).map(|(h, p)| format!("{h}:{p}"));
        Some(ServerIdentity {
            run_id: text("run_id")?,
            role: role.into(),
            replid: text("master_replid").unwrap_or_default(),
            master_link_up: (role == "replica").then(|| text("master_link_status").as_deref() == Some("up")),
            master: master.filter(|_| role == "replica"),
            loading: info_field(info, "loading") == Some(1),
            address: String::new(),
            cluster_masters: Vec::new(),
        })
    }
}

/// What happened to the Redis server that every pod suffers alike: evidence that a failing
/// analysis judges the environment, not the pool configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedisChange {
    #[error("the master moved from {before} to {now} (a Sentinel failover)")]
    MasterMoved { before: String, now: String },
    #[error("the Redis server restarted (run_id {before} is now {now})")]
    Restarted { before: String, now: String },
    #[error("the Redis server changed role from {before} to {now} (a failover)")]
    RoleChanged { before: String, now: String },
    #[error("the Redis server now follows another replication history ({before} is now {now}): a failover")]
    Failover { before: String, now: String },
    #[error("the Redis replica's link to its master {master} is down")]
    LinkDown { master: String },
    #[error("the Redis server is loading its dataset")]
    Loading,
    #[error("the Redis Cluster's masters changed (a failover, a new master or a restart): {before} are now {now}")]
    ClusterChanged { before: String, now: String },
}

/// How the server changed since the probe before (`before`), or what it is going through now.
pub fn redis_change(before: Option<&ServerIdentity>, now: &ServerIdentity) -> Option<RedisChange> {
    if let Some(b) = before {
        if !b.address.is_empty() && !now.address.is_empty() && b.address != now.address {
            return Some(RedisChange::MasterMoved { before: b.address.clone(), now: now.address.clone() });
        }
        if b.run_id != now.run_id {
            return Some(RedisChange::Restarted { before: b.run_id.clone(), now: now.run_id.clone() });
        }
        if b.role != now.role {
            return Some(RedisChange::RoleChanged { before: b.role.clone(), now: now.role.clone() });
        }
        if b.replid != now.replid {
            return Some(RedisChange::Failover { before: b.replid.clone(), now: now.replid.clone() });
        }
        if !b.cluster_masters.is_empty() && b.cluster_masters != now.cluster_masters {
            return Some(RedisChange::ClusterChanged {
                before: b.cluster_masters.join(", "),
                now: now.cluster_masters.join(", "),
            });
        }
    }
    if now.loading {
        return Some(RedisChange::Loading);
    }
    match (&now.master, now.master_link_up) {
        (Some(master), Some(false)) => Some(RedisChange::LinkDown { master: master.clone() }),
        _ => None,
    }
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

/// Where and how to connect. The password and the client key are held here only, never
/// formatted.
#[derive(Clone, Default)]
pub struct RedisTarget {
    pub address: String,
    /// ACL user; the `default` user when None.
    pub username: Option<String>,
    pub password: Option<String>,
    /// TLS, when the server speaks it.
    pub tls: Option<TlsMaterial>,
}

/// What a TLS connection to the server needs, read from the policy's Secrets and ConfigMaps.
#[derive(Clone, Default)]
pub struct TlsMaterial {
    /// A PEM CA bundle and where it came from (for messages); the system roots when None.
    pub ca: Option<(Vec<u8>, String)>,
    /// The name to verify instead of the address's host.
    pub server_name: Option<String>,
    /// The client certificate chain and key (PEM) for mutual TLS.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password or the client key.
        f.debug_struct("RedisTarget")
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls.as_ref().map(|t| (t.ca.as_ref().map(|c| &c.1), &t.server_name, t.client.is_some())))
            .finish()
    }
}

impl RedisTarget {
    /// `host` and `port` of `address` (6379 when it names none).
    pub fn host_port(&self) -> (&str, u16) {
        match self.address.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().unwrap_or(6379)),
            None => (self.address.as_str(), 6379),
        }
    }

    /// Who the operator authenticates as, for messages.
    pub fn user(&self) -> &str {
        self.username.as_deref().unwrap_or("default")
    }
}

/// What a Redis error reply means for the person who configured the policy. `code` is the
/// reply's first word (`WRONGPASS`, `NOPERM`, `NOAUTH`, ...).
pub fn explain_reply(code: Option<&str>, detail: &str, target: &RedisTarget) -> String {
    let user = target.user();
    match code {
        Some("WRONGPASS") => format!(
            "authentication failed for user {user:?} (WRONGPASS): check spec.redis.username and the password in spec.redis.passwordSecretRef"
        ),
        Some("NOAUTH") => "the server requires a password (NOAUTH): set spec.redis.passwordSecretRef".into(),
        Some("NOPERM") => format!(
            "user {user:?} may not run a command the operator needs (NOPERM): grant it PING, INFO and CLIENT, \
             or CONFIG GET too unless spec.redis.maxClients is set"
        ),
        _ => detail.to_string(),
    }
}

/// Why `maxclients` stays unknown when `CONFIG GET` is refused: what to set instead.
pub fn config_denied(code: Option<&str>, target: &RedisTarget) -> String {
    match code {
        Some("NOPERM") => format!("user {:?} may not run CONFIG GET (NOPERM)", target.user()),
        _ => "the server refused CONFIG GET maxclients".into(),
    }
}

/// The server's `maxclients`: from `CONFIG GET` when it was allowed (`config`: Ok), else from
/// `INFO clients`, which Redis 7 and Valkey report and least-privilege users may read (managed
/// services forbid CONFIG); with a note that says where it came from, or what to set.
pub fn max_clients(config: Result<Option<i64>, String>, info: &str) -> (Option<i64>, Option<String>) {
    match config {
        Ok(Some(m)) => (Some(m), None),
        Ok(None) => match info_field(info, "maxclients") {
            Some(m) => (Some(m), Some("read from INFO clients".into())),
            None => (None, Some("neither CONFIG GET nor INFO reported it: set spec.redis.maxClients".into())),
        },
        Err(denied) => match info_field(info, "maxclients") {
            Some(m) => (Some(m), Some(format!("read from INFO clients; {denied}"))),
            None => (
                None,
                Some(format!(
                    "{denied}: set spec.redis.maxClients to the server's maxclients (Redis 7 and Valkey report it in \
                     INFO clients; this server does not)"
                )),
            ),
        },
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
                max_clients_note: None,
                connected_clients: 3,
                rejected_connections: rejected,
                nodes: Vec::new(),
                ping: Duration::ZERO,
                identity: None,
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
    fn passwords_and_keys_never_print() {
        let t = RedisTarget {
            address: "127.0.0.1:6379".into(),
            password: Some("s3cret".into()),
            tls: Some(TlsMaterial { client: Some((b"CERT".to_vec(), b"PRIVATE-KEY".to_vec())), ..Default::default() }),
            ..Default::default()
        };
        let printed = format!("{t:?}");
        assert!(!printed.contains("s3cret") && !printed.contains("PRIVATE-KEY"), "{printed}");
        assert_eq!(redact("auth s3cret failed", &t), "auth <redacted> failed");
    }

    #[test]
    fn replies_say_what_to_fix() {
        let t = RedisTarget { address: "r:6380".into(), username: Some("pool-operator".into()), ..Default::default() };
        let wrong = explain_reply(Some("WRONGPASS"), "WRONGPASS invalid username-password pair", &t);
        assert!(wrong.contains("user \"pool-operator\"") && wrong.contains("spec.redis.passwordSecretRef"), "{wrong}");
        assert!(explain_reply(Some("NOAUTH"), "", &t).contains("set spec.redis.passwordSecretRef"));
        assert_eq!(explain_reply(Some("ERR"), "ERR something", &t), "ERR something");
        let denied = config_denied(Some("NOPERM"), &t);
        assert_eq!(denied, "user \"pool-operator\" may not run CONFIG GET (NOPERM)");
        // What to set is said only when INFO does not tell maxclients either.
        let (_, note) = max_clients(Err(denied), "");
        assert!(note.unwrap().contains("set spec.redis.maxClients"));
        assert_eq!(t.host_port(), ("r", 6380));
        assert_eq!(RedisTarget { address: "r".into(), ..Default::default() }.host_port(), ("r", 6379));
    }

    /// Sections of `INFO server replication persistence` as redis-server 7 writes them.
    const MASTER: &str = "# Server\r\nredis_version:7.0.15\r\nrun_id:9f1c0a5d2e\r\n\r\n# Replication\r\nrole:master\r\n\
        connected_slaves:1\r\nmaster_replid:aaaa1111\r\nmaster_repl_offset:42\r\n\r\n# Persistence\r\nloading:0\r\n";
    const REPLICA: &str = "# Server\r\nrun_id:77b0c3\r\n# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\n\
        master_port:6380\r\nmaster_link_status:up\r\nmaster_replid:aaaa1111\r\n# Persistence\r\nloading:0\r\n";

    #[test]
    fn identity_from_info() {
        let master = ServerIdentity::from_info(MASTER).unwrap();
        assert_eq!(
            (master.run_id.as_str(), master.role.as_str(), master.replid.as_str()),
            ("9f1c0a5d2e", "master", "aaaa1111")
        );
        assert_eq!((master.master.as_deref(), master.master_link_up, master.loading), (None, None, false));
        let replica = ServerIdentity::from_info(REPLICA).unwrap();
        assert_eq!((replica.role.as_str(), replica.master.as_deref()), ("replica", Some("127.0.0.1:6380")));
        assert_eq!(replica.master_link_up, Some(true));
        assert_eq!(ServerIdentity::from_info("# Clients\r\nconnected_clients:3\r\n"), None, "no run_id, no identity");
    }

    #[test]
    fn a_cluster_is_known_by_its_masters_not_by_the_seed_that_answered() {
        let node = |port: u16, id: &str, master: bool, run: &str| NodeSignals {
            node: ClusterNode { id: id.into(), address: format!("127.0.0.1:{port}"), master, failed: false },
            run_id: run.into(),
            max_clients: Some(1000),
            connected_clients: 0,
            rejected_connections: 0,
        };
        let before = [node(1, "bbbb", true, "r1"), node(2, "aaaa", true, "r2"), node(3, "cccc", false, "r3")];
        let id = cluster_identity(&before, false).unwrap();
        assert_eq!(id.run_id, "aaaa", "the lowest node id");
        assert_eq!(id.cluster_masters, ["127.0.0.1:1 (bbbb) (run r1)", "127.0.0.1:2 (aaaa) (run r2)"]);
        // The replica takes over from node 1.
        let after = [node(1, "bbbb", false, "r1"), node(2, "aaaa", true, "r2"), node(3, "cccc", true, "r3")];
        let change = redis_change(Some(&id), &cluster_identity(&after, false).unwrap()).unwrap();
        assert!(matches!(change, RedisChange::ClusterChanged { .. }), "{change}");
        // A master restarts: its run_id changes.
        let restarted = [node(1, "bbbb", true, "r9"), node(2, "aaaa", true, "r2"), node(3, "cccc", false, "r3")];
        assert!(redis_change(Some(&id), &cluster_identity(&restarted, false).unwrap()).is_some());
        assert_eq!(redis_change(Some(&id), &cluster_identity(&before, false).unwrap()), None);
        assert_eq!(cluster_identity(&[], false), None);
    }

    #[test]
    fn a_sentinels_replicas_that_serve() {
        let replica = |port: &str, flags: &str| {
            [("ip", "127.0.0.1"), ("port", port), ("runid", "r1"), ("flags", flags)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::HashMap<_, _>>()
        };
        let replies = [replica("1", "slave"), replica("2", "s_down,slave,disconnected"), replica("3", "slave")];
        let nodes = sentinel_replicas(&replies);
        let addresses: Vec<&str> = nodes.iter().map(|n| n.address.as_str()).collect();
        assert_eq!(addresses, ["127.0.0.1:1", "127.0.0.1:3"]);
        assert_eq!(nodes[0].label(), "127.0.0.1:1 (replica r1)");
    }

    #[test]
    fn changes_the_pods_all_suffer() {
        let master = ServerIdentity::from_info(MASTER).unwrap();
        assert_eq!(redis_change(Some(&master), &master), None, "the same server, serving");
        assert_eq!(redis_change(None, &master), None, "a first look sees nothing change");
        let restarted = ServerIdentity { run_id: "new".into(), ..master.clone() };
        let said = redis_change(Some(&master), &restarted).unwrap();
        assert_eq!(said.to_string(), "the Redis server restarted (run_id 9f1c0a5d2e is now new)");
        let demoted = ServerIdentity::from_info(REPLICA).map(|r| ServerIdentity { run_id: master.run_id.clone(), ..r });
        let said = redis_change(Some(&master), demoted.as_ref().unwrap()).unwrap();
        assert_eq!(said, RedisChange::RoleChanged { before: "master".into(), now: "replica".into() });
        let promoted_elsewhere = ServerIdentity { replid: "bbbb2222".into(), ..master.clone() };
        assert!(matches!(redis_change(Some(&master), &promoted_elsewhere), Some(RedisChange::Failover { .. })));
        let moved = ServerIdentity { address: "127.0.0.1:6380".into(), run_id: "other".into(), ..master.clone() };
        let was = ServerIdentity { address: "127.0.0.1:6379".into(), ..master.clone() };
        assert_eq!(
            redis_change(Some(&was), &moved).unwrap().to_string(),
            "the master moved from 127.0.0.1:6379 to 127.0.0.1:6380 (a Sentinel failover)"
        );
        let loading = ServerIdentity { loading: true, ..master.clone() };
        assert_eq!(redis_change(Some(&master), &loading), Some(RedisChange::Loading));
        let cluster = |masters: &[&str]| ServerIdentity {
            cluster_masters: masters.iter().map(|m| m.to_string()).collect(),
            ..master.clone()
        };
        let (before, after) = (cluster(&["a:1 (aaaa)", "b:2 (bbbb)"]), cluster(&["a:1 (aaaa)", "c:3 (cccc)"]));
        assert_eq!(
            redis_change(Some(&before), &after).unwrap().to_string(),
            "the Redis Cluster's masters changed (a failover, a new master or a restart): a:1 (aaaa), b:2 (bbbb) are now a:1 (aaaa), c:3 (cccc)"
        );
        assert_eq!(redis_change(Some(&after), &after), None);
        assert_eq!(redis_change(Some(&master), &after), None, "a first look at the cluster sees nothing change");
        let cut_off = ServerIdentity { master_link_up: Some(false), ..ServerIdentity::from_info(REPLICA).unwrap() };
        assert_eq!(
            redis_change(None, &cut_off).unwrap().to_string(),
            "the Redis replica's link to its master 127.0.0.1:6380 is down"
        );
    }

    /// Managed Redis forbids CONFIG; Redis 7 and Valkey still say maxclients in INFO clients.
    #[test]
    fn maxclients_comes_from_config_else_info_else_a_refusal_that_says_what_to_set() {
        let info7 = "# Clients\r\nconnected_clients:3\r\nmaxclients:5000\r\n";
        let info6 = "# Clients\r\nconnected_clients:3\r\n";
        let denied = || Err("user \"pool-operator\" may not run CONFIG GET (NOPERM)".to_string());
        assert_eq!(max_clients(Ok(Some(10000)), info7), (Some(10000), None), "CONFIG wins");
        let (m, note) = max_clients(denied(), info7);
        assert_eq!(m, Some(5000));
        assert_eq!(note.unwrap(), "read from INFO clients; user \"pool-operator\" may not run CONFIG GET (NOPERM)");
        let (m, note) = max_clients(denied(), info6);
        assert_eq!(m, None);
        let note = note.unwrap();
        assert!(note.contains("NOPERM") && note.contains("set spec.redis.maxClients"), "{note}");
        assert_eq!(max_clients(Ok(None), info7).0, Some(5000));
    }

    const NODES: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005,redis-5.local slave 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238316232 5 connected
824fe116063bc5fcf9f4ffd895bc17aee7731ac3 127.0.0.1:30006@31006 master,fail - 1426238316232 0 6 disconnected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
";

    /// The example reply of the Redis documentation's CLUSTER NODES page, with a hostname and
    /// a failed master added.
    #[test]
    fn cluster_nodes_are_read_from_the_reply() {
        let nodes = cluster_nodes(NODES);
        assert_eq!(nodes.len(), 6);
        assert_eq!(nodes[3].address, "127.0.0.1:30005", "the cluster bus port and hostname are not the client's");
        let masters: Vec<String> = pool_nodes(nodes.clone(), false).into_iter().map(|n| n.address).collect();
        assert_eq!(
            masters,
            ["127.0.0.1:30002", "127.0.0.1:30003", "127.0.0.1:30001"],
            "the failed master holds nothing"
        );
        assert_eq!(pool_nodes(nodes.clone(), true).len(), 5, "replicas too when the application reads from them");
        assert_eq!(nodes[5].label(), "127.0.0.1:30001 (master e7d1eecc)");
    }

    #[test]
    fn the_tightest_node_has_the_least_room() {
        let node = |port: u16, max: Option<i64>, connected: i64| NodeSignals {
            run_id: String::new(),
            node: ClusterNode {
                id: format!("id{port}"),
                address: format!("127.0.0.1:{port}"),
                master: true,
                failed: false,
            },
            max_clients: max,
            connected_clients: connected,
            rejected_connections: 0,
        };
        let nodes = [node(1, Some(10000), 10), node(2, Some(2000), 1500), node(3, Some(1000), 10)];
        assert_eq!(tightest(&nodes).unwrap().node.address, "127.0.0.1:2", "2000 - 1500 is less room than 1000 - 10");
        let unknown = [node(1, Some(10000), 10), node(2, None, 0)];
        assert_eq!(tightest(&unknown).unwrap().node.address, "127.0.0.1:2");
    }
}
