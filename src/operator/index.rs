//! Which policies name which Deployment: an index kept by the policy watch's own events, so that
//! a Deployment's event and a reconcile's claim check look up the few policies of one target
//! instead of scanning (and copying) every policy the operator watches. At 10,000 policies such
//! scans were most of the CPU it took to converge.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;

use crate::core::api::RedisPoolPolicy;

/// A Deployment: its namespace and name.
type Target = (String, String);
type Policy = ObjectRef<RedisPoolPolicy>;

#[derive(Default)]
struct Map {
    by_target: HashMap<Target, HashSet<Policy>>,
    /// Each policy's target as last seen, to move it when its spec names another.
    target_of: HashMap<Policy, Target>,
}

impl Map {
    fn insert(&mut self, p: &RedisPoolPolicy) {
        let key = ObjectRef::from_obj(p);
        let target = (p.namespace().unwrap_or_default(), p.spec.target_ref.name.clone());
        if self.target_of.get(&key) == Some(&target) {
            return;
        }
        self.remove(&key);
        self.by_target.entry(target.clone()).or_default().insert(key.clone());
        self.target_of.insert(key, target);
    }

    fn remove(&mut self, key: &Policy) {
        let Some(old) = self.target_of.remove(key) else { return };
        if let Some(set) = self.by_target.get_mut(&old) {
            set.remove(key);
            if set.is_empty() {
                self.by_target.remove(&old);
            }
        }
    }
}

/// The (namespace, target) index of the policies.
#[derive(Default)]
pub struct TargetIndex {
    map: RwLock<Map>,
    /// A relist in progress: it replaces the index when complete.
    relist: std::sync::Mutex<Option<Map>>,
}

impl TargetIndex {
    /// Takes in one event of the policy watch.
    pub fn apply(&self, event: &Event<RedisPoolPolicy>) {
        match event {
            Event::Apply(p) => self.map.write().expect("not poisoned").insert(p),
            Event::Delete(p) => self.map.write().expect("not poisoned").remove(&ObjectRef::from_obj(p)),
            Event::Init => *self.relist.lock().expect("not poisoned") = Some(Map::default()),
            Event::InitApply(p) => {
                if let Some(m) = self.relist.lock().expect("not poisoned").as_mut() {
                    m.insert(p);
                }
            }
            Event::InitDone => {
                if let Some(m) = self.relist.lock().expect("not poisoned").take() {
                    *self.map.write().expect("not poisoned") = m;
                }
            }
        }
    }

    /// The policies that name Deployment `ns/name`.
    pub fn targeting(&self, ns: &str, name: &str) -> Vec<Policy> {
        let map = self.map.read().expect("not poisoned");
        map.by_target.get(&(ns.to_string(), name.to_string())).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// Policies indexed.
    #[cfg(test)]
    fn indexed(&self) -> usize {
        self.map.read().expect("not poisoned").target_of.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(ns: &str, name: &str, target: &str) -> RedisPoolPolicy {
        let mut p: RedisPoolPolicy =
            serde_yaml::from_str(include_str!("../../examples/auth-api.yaml")).expect("the example");
        p.metadata.namespace = Some(ns.into());
        p.metadata.name = Some(name.into());
        p.spec.target_ref.name = target.into();
        p
    }

    fn names(refs: Vec<Policy>) -> Vec<String> {
        let mut n: Vec<String> = refs.into_iter().map(|r| r.name).collect();
        n.sort();
        n
    }

    #[test]
    fn follows_applies_deletes_moves_and_relists() {
        let index = TargetIndex::default();
        index.apply(&Event::Apply(policy("a", "p1", "api")));
        index.apply(&Event::Apply(policy("a", "p2", "api")));
        index.apply(&Event::Apply(policy("b", "p3", "api")));
        assert_eq!(names(index.targeting("a", "api")), ["p1", "p2"]);
        assert_eq!(names(index.targeting("b", "api")), ["p3"]);
        // p2 now names another Deployment.
        index.apply(&Event::Apply(policy("a", "p2", "web")));
        assert_eq!(names(index.targeting("a", "api")), ["p1"]);
        assert_eq!(names(index.targeting("a", "web")), ["p2"]);
        index.apply(&Event::Delete(policy("a", "p1", "api")));
        assert!(index.targeting("a", "api").is_empty());
        // A relist replaces the whole index only once complete.
        index.apply(&Event::Init);
        index.apply(&Event::InitApply(policy("c", "p4", "api")));
        assert_eq!(names(index.targeting("a", "web")), ["p2"], "still the old index mid-relist");
        index.apply(&Event::InitDone);
        assert!(index.targeting("a", "web").is_empty());
        assert_eq!(names(index.targeting("c", "api")), ["p4"]);
        assert_eq!(index.indexed(), 1);
    }

    #[test]
    fn a_lookup_does_not_grow_with_unrelated_policies() {
        let index = TargetIndex::default();
        for i in 0..10_000 {
            index.apply(&Event::Apply(policy("bulk", &format!("p{i}"), &format!("api-{i}"))));
        }
        index.apply(&Event::Apply(policy("saas", "auth", "auth-api")));
        // One bucket of one entry, whatever else is indexed.
        let map = index.map.read().unwrap();
        let bucket = map.by_target.get(&("saas".to_string(), "auth-api".to_string())).unwrap();
        assert_eq!(bucket.len(), 1);
        drop(map);
        assert_eq!(names(index.targeting("saas", "auth-api")), ["auth"]);
        assert_eq!(index.indexed(), 10_001);
    }
}
