//! A recorder built on a watch: every version of the objects it watches, in the order the API
//! server applied them. A check over its timeline sees every change; a sampler that GETs every
//! few hundred milliseconds can miss one.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

enum Change<K> {
    /// A (re)list: the whole state at once.
    Listed(Vec<K>),
    Applied(K),
    Deleted(String),
    /// The watch broke: versions between the last change and the relist are unknown.
    Gap(String),
}

pub struct Recorder<K> {
    api: Api<K>,
    changes: Arc<Mutex<Vec<Change<K>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl<K> Recorder<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Watches `api` (a namespace's objects of one kind) and returns once the first list is
    /// recorded, so that every change made after this call is in the timeline.
    pub async fn start(api: Api<K>) -> Recorder<K> {
        let watched = api.clone();
        let changes: Arc<Mutex<Vec<Change<K>>>> = Arc::default();
        let (listed, first_list) = tokio::sync::oneshot::channel();
        let task = {
            let changes = changes.clone();
            tokio::spawn(async move {
                let mut listed = Some(listed);
                let mut listing = Vec::new();
                let mut events = watcher(watched, watcher::Config::default()).default_backoff().boxed();
                // Ends when the test drops the recorder (the task is aborted).
                while let Some(event) = events.next().await {
                    let change = match event {
                        Ok(watcher::Event::Init) => {
                            listing.clear();
                            continue;
                        }
                        Ok(watcher::Event::InitApply(o)) => {
                            listing.push(o);
                            continue;
                        }
                        Ok(watcher::Event::InitDone) => Change::Listed(std::mem::take(&mut listing)),
                        Ok(watcher::Event::Apply(o)) => Change::Applied(o),
                        Ok(watcher::Event::Delete(o)) => Change::Deleted(o.name_any()),
                        // The backoff retries, but what changed meanwhile is lost: say so.
                        Err(e) => Change::Gap(e.to_string()),
                    };
                    changes.lock().unwrap().push(change);
                    if let Some(tx) = listed.take() {
                        let _ = tx.send(());
                    }
                }
            })
        };
        tokio::time::timeout(Duration::from_secs(30), first_list)
            .await
            .expect("the recorder's watch listed within 30 s")
            .expect("the recorder's watch task runs");
        Recorder { api, changes, task }
    }

    /// Waits until the recorder has seen the objects as the API server holds them now: every
    /// change made before this call is then in the timeline.
    pub async fn sync(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let listed = self.api.list(&Default::default()).await.expect("list the recorded objects");
            let now: BTreeMap<String, Option<String>> =
                listed.items.iter().map(|o| (o.name_any(), o.resource_version())).collect();
            let seen: BTreeMap<String, Option<String>> = self
                .timeline()
                .last()
                .map(|s| s.iter().map(|(n, o)| (n.clone(), o.resource_version())).collect())
                .unwrap_or_default();
            if now == seen {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the recorder did not catch up within 30 s: {seen:?} vs {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The objects after each change, by name: every state the API server went through. Fails
    /// the test when the watch broke, since states in between are then unknown.
    pub fn timeline(&self) -> Vec<BTreeMap<String, K>> {
        let mut state = BTreeMap::new();
        let mut states = Vec::new();
        for change in self.changes.lock().unwrap().iter() {
            match change {
                Change::Listed(all) => state = all.iter().map(|o| (o.name_any(), o.clone())).collect(),
                Change::Applied(o) => {
                    state.insert(o.name_any(), o.clone());
                }
                Change::Deleted(name) => {
                    state.remove(name);
                }
                Change::Gap(why) => panic!("the recorder's watch broke ({why}): what changed meanwhile is unknown"),
            }
            states.push(state.clone());
        }
        states
    }

    /// Every version of the object `name`, in order (None while it does not exist).
    pub fn versions_of(&self, name: &str) -> Vec<Option<K>> {
        self.timeline().into_iter().map(|s| s.get(name).cloned()).collect()
    }
}

impl<K> Drop for Recorder<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}
