//! The budget on every node that holds pools: each node of a Redis Cluster (or a Sentinel master
//! and the replicas the application reads from). Cluster clients keep a pool per node (go-redis
//! `PoolSize`, Jedis, redis-py-cluster's `max_connections_per_node`), so every node that serves
//! the application holds the whole fleet's pools, each against its own `maxclients`; a client
//! that spreads one pool over the nodes puts an even share on each. A rollout fits only if it
//! fits on every node, and the node it binds on is named. Pure.

use serde::{Deserialize, Serialize};

use crate::core::analysis::redis::NodeSignals;
use crate::core::api::ClusterPools;
use crate::core::shared_budget::{self, Peer, Shared};
use crate::core::sizing::Budget;

/// One node's row of the budget table.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeBudget {
    /// `host:port`.
    pub address: String,
    /// The start of its node id.
    pub id: String,
    /// `master` or `replica`.
    pub role: String,
    pub max_clients: Option<i64>,
    /// `floor(maxclients x maxClientsUtilization)`.
    pub limit: Option<i64>,
    /// What others hold there at this rollout's peak: other policies' pools (their peaks while
    /// they roll out) and the clients nobody accounts for.
    pub others: i64,
    /// This rollout's peak on this node.
    pub peak: i64,
    pub ok: bool,
}

/// What this policy's pools put on one node, out of `total` over the fleet: all of it with a
/// pool per node, else its share of the `nodes` that hold pools (rounded up). A share of no
/// known nodes is the whole (the safe side).
pub fn on_each_node(total: i64, pools: ClusterPools, nodes: usize) -> i64 {
    match pools {
        ClusterPools::PerNode => total,
        ClusterPools::Spread if nodes == 0 => total,
        ClusterPools::Spread => (total + nodes as i64 - 1) / nodes as i64,
    }
}

/// What this policy asks of the cluster.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ask {
    /// The rollout's peak over the fleet.
    pub peak: i64,
    /// What the target's pods hold now over the fleet.
    pub steady: i64,
    pub pools: ClusterPools,
    /// `spec.redis.maxClients`: every node's limit when given.
    pub pinned: Option<i64>,
    pub utilization: f64,
}

/// The budget on each of `nodes`, counting `peers` (whose `steady` and `peak` are already per
/// node) and each node's unaccounted clients, unless `alone` (a rollout in flight: its own pods
/// are among the connected clients by now). The result is the budget of the node it binds on,
/// named (the first over its limit, else the one with least room), carrying the whole table.
pub fn per_node(ask: &Ask, peers: &[Peer], nodes: &[NodeSignals], alone: bool) -> Budget {
    let peak = on_each_node(ask.peak, ask.pools, nodes.len());
    let steady = on_each_node(ask.steady, ask.pools, nodes.len());
    let budgets: Vec<(Budget, &NodeSignals)> = nodes
        .iter()
        .map(|n| {
            let own = Budget::check(peak, ask.pinned.or(n.max_clients), ask.utilization);
            let b = if alone {
                own
            } else {
                let shared = Shared { peers: peers.to_vec(), connected_clients: Some(n.connected_clients) };
                own.shared(shared_budget::demand(peak, steady, &shared))
            };
            (b, n)
        })
        .collect();
    let table = budgets
        .iter()
        .map(|(b, n)| NodeBudget {
            address: n.node.address.clone(),
            id: n.node.id_start(),
            role: if n.node.master { "master" } else { "replica" }.into(),
            max_clients: b.max_clients,
            limit: b.limit,
            others: b.peak_connections - peak,
            peak,
            ok: b.ok && b.max_clients.is_some(),
        })
        .collect();
    // A node whose maxclients is unknown binds first: nothing can be promised there.
    let room = |b: &Budget| b.limit.map_or(i64::MIN, |l| l - b.peak_connections);
    let binding = budgets.iter().min_by_key(|(b, _)| room(b));
    match binding {
        Some((b, n)) => {
            let mut b = b.clone().on_node(Some(n.node.label()));
            if b.max_clients.is_none() {
                b = b
                    .unknown(format!("node {} does not say its maxclients; set spec.redis.maxClients", n.node.label()));
            }
            b.nodes = table;
            b
        }
        None => Budget::check(peak, ask.pinned, ask.utilization),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::analysis::redis::ClusterNode;

    fn node(port: u16, master: bool, max: Option<i64>, connected: i64) -> NodeSignals {
        NodeSignals {
            run_id: String::new(),
            node: ClusterNode {
                id: format!("{port:0>40}"),
                address: format!("127.0.0.1:{port}"),
                master,
                failed: false,
            },
            max_clients: max,
            connected_clients: connected,
            rejected_connections: 0,
        }
    }

    fn ask(peak: i64, pools: ClusterPools) -> Ask {
        Ask { peak, steady: 0, pools, pinned: None, utilization: 0.8 }
    }

    #[test]
    fn spread_shares_round_up_and_per_node_is_the_whole() {
        assert_eq!(on_each_node(100, ClusterPools::PerNode, 3), 100);
        assert_eq!(on_each_node(100, ClusterPools::Spread, 3), 34);
        assert_eq!(on_each_node(99, ClusterPools::Spread, 3), 33);
        assert_eq!(on_each_node(100, ClusterPools::Spread, 0), 100, "no nodes known: the whole");
    }

    #[test]
    fn the_small_node_binds_and_is_named_with_its_numbers() {
        let nodes =
            [node(7000, true, Some(10000), 10), node(7001, true, Some(1000), 10), node(7002, true, Some(10000), 10)];
        let b = per_node(&ask(900, ClusterPools::PerNode), &[], &nodes, false);
        assert!(!b.ok, "900 + 10 others is over 800 on the small node");
        assert_eq!(b.node.as_deref(), Some("127.0.0.1:7001 (master 00000000)"));
        assert!(b.explain().contains("on node 127.0.0.1:7001"), "{}", b.explain());
        assert!(b.explain().contains("1000 maxclients"), "{}", b.explain());
        assert_eq!(b.nodes.len(), 3);
        let verdicts: Vec<bool> = b.nodes.iter().map(|n| n.ok).collect();
        assert_eq!(verdicts, [true, false, true]);
        assert_eq!((b.nodes[1].peak, b.nodes[1].others, b.nodes[1].limit), (900, 10, Some(800)));
        // Spread over three nodes, each holds 300: it fits everywhere; the small node has least room.
        let b = per_node(&ask(900, ClusterPools::Spread), &[], &nodes, false);
        assert!(b.ok, "{}", b.explain());
        assert_eq!(b.nodes[1].peak, 300);
        assert!(b.node.unwrap().starts_with("127.0.0.1:7001"));
    }

    #[test]
    fn others_count_on_every_node_unless_the_rollout_is_in_flight() {
        let nodes = [node(7000, true, Some(1000), 500), node(7001, true, Some(1000), 0)];
        let peer = Peer { policy: "saas/search".into(), steady: 100, peak: None };
        let b = per_node(&ask(400, ClusterPools::PerNode), std::slice::from_ref(&peer), &nodes, false);
        // 7000: 400 + 100 (search) + 400 unaccounted = 900 > 800.
        assert!(!b.ok);
        assert_eq!(b.nodes[0].others, 500);
        assert_eq!(b.nodes[1].others, 100, "the peer's pools are on every node");
        assert!(b.explain().contains("saas/search"), "{}", b.explain());
        let b = per_node(&ask(400, ClusterPools::PerNode), &[peer], &nodes, true);
        assert!(b.ok, "a rollout in flight keeps its own budget");
        assert_eq!(b.nodes[0].others, 0);
    }

    #[test]
    fn an_unknown_maxclients_refuses_naming_the_node_unless_pinned() {
        let nodes = [node(7000, true, Some(10000), 0), node(7001, true, None, 0)];
        let b = per_node(&ask(10, ClusterPools::PerNode), &[], &nodes, false);
        assert!(!b.ok);
        assert!(
            b.explain().contains("127.0.0.1:7001") && b.explain().contains("spec.redis.maxClients"),
            "{}",
            b.explain()
        );
        let pinned = Ask { pinned: Some(100), ..ask(10, ClusterPools::PerNode) };
        let b = per_node(&pinned, &[], &nodes, false);
        assert!(b.ok, "{}", b.explain());
        assert!(b.nodes.iter().all(|n| n.max_clients == Some(100)));
    }

    #[test]
    fn replicas_are_budgeted_when_listed() {
        let nodes = [node(7000, true, Some(10000), 0), node(7003, false, Some(100), 0)];
        let b = per_node(&ask(200, ClusterPools::PerNode), &[], &nodes, false);
        assert!(!b.ok);
        assert_eq!(b.nodes[1].role, "replica");
        assert!(b.node.unwrap().contains("replica"));
    }
}
