//! One budget per Redis server, shell side. Policies on the same server decide one at a time
//! (a lock per budget group, held from deciding to recording), and each sees what the others
//! recorded last, from memory: the policy cache may not have their newest status yet, and two
//! rollouts that both read "nobody else rolls out" could together overrun the server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::Store;

use crate::core::api::{RedisConnections, RedisPoolPolicy, RedisTopology};
use crate::core::shared_budget::{Peer, group_key};

#[derive(Default)]
pub struct Budgets {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Policy uid -> (budget group, what it recorded last).
    recorded: Mutex<HashMap<String, (String, Peer)>>,
}

/// The budget group of a policy with `spec.redis`. A Redis Cluster is one budget whichever seed
/// a policy names: once a probe has seen the cluster, its identity is the group.
pub fn group_of(policy: &RedisPoolPolicy) -> Option<String> {
    let redis = policy.spec.redis.as_ref()?;
    let cluster = (redis.topology == RedisTopology::Cluster && redis.budget_group.is_none())
        .then(|| crate::providers::redis::cluster_of(&redis.address))
        .flatten();
    Some(match cluster {
        Some(id) => format!("cluster/{id}"),
        None => group_key(&policy.namespace().unwrap_or_default(), redis),
    })
}

fn peer(policy: &RedisPoolPolicy, c: &RedisConnections, active: bool) -> Peer {
    Peer {
        policy: format!("{}/{}", policy.namespace().unwrap_or_default(), policy.name_any()),
        steady: c.steady,
        peak: c.peak.filter(|_| active),
    }
}

impl Budgets {
    /// The lock of a budget group: held by whichever of its policies is deciding.
    pub fn lock(&self, group: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().expect("budget locks").entry(group.to_string()).or_default().clone()
    }

    /// What a policy's decision recorded (its status's `redisConnections`).
    pub fn record(&self, policy: &RedisPoolPolicy, connections: Option<&RedisConnections>, active: bool) {
        let uid = policy.uid().unwrap_or_default();
        let mut recorded = self.recorded.lock().expect("budget records");
        match (group_of(policy), connections) {
            (Some(group), Some(c)) => {
                recorded.insert(uid, (group, peer(policy, c, active)));
            }
            _ => {
                recorded.remove(&uid);
            }
        }
    }

    pub fn forget(&self, uid: &str) {
        self.recorded.lock().expect("budget records").remove(uid);
    }

    /// The other policies on `me`'s server: every policy in the cache with the same budget
    /// group, each as this process recorded it last, else as its cached status says.
    pub fn peers(&self, store: Option<&Store<RedisPoolPolicy>>, me: &RedisPoolPolicy) -> Vec<Peer> {
        let Some(group) = group_of(me) else { return Vec::new() };
        let Some(store) = store else { return Vec::new() };
        let recorded = self.recorded.lock().expect("budget records");
        store
            .state()
            .iter()
            .filter(|p| p.spec.redis.is_some() && p.metadata.uid != me.metadata.uid)
            .filter(|p| group_of(p).as_deref() == Some(group.as_str()))
            .filter_map(|p| {
                let uid = p.metadata.uid.as_deref().unwrap_or_default();
                match recorded.get(uid) {
                    Some((g, peer)) if *g == group => Some(peer.clone()),
                    _ => {
                        let status = p.status.as_ref()?;
                        Some(peer(p, status.redis_connections.as_ref()?, status.phase.is_active()))
                    }
                }
            })
            .collect()
    }
}
