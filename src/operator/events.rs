//! Events about policies, in the events.k8s.io API. An Event repeated within six minutes is
//! folded into the first as a series (a count and the last time), like client-go and kube's
//! `Recorder` do but only when the message is the same too: a rollback that fails its analysis
//! every interval is one Event, not dozens, and "step 2" is never folded into "step 1".
//!
//! Not kube's `Recorder`: to fold repeats it keeps each recent Event whole, 3-5 KB apiece (a
//! heap profile at 1,000 policies found 4.8 MB of them at the peak, a fifth of the heap), where
//! folding needs only the Event's name and count.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};

use crate::core::api::RedisPoolPolicy;
use crate::core::rollout::EventType;

/// How long a repeat still folds into the Event before it (client-go's window, and kube's).
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// What the Events' `action` says: every Event here reports what a reconcile decided.
const ACTION: &str = "Reconcile";

/// The API server's limits on an Event's note, name and reporting instance.
const MAX_NOTE: usize = 1024;
const MAX_NAME: usize = 253;
const MAX_INSTANCE: usize = 128;

/// What makes two Events one: the same policy (by uid), type, reason and note.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    uid: String,
    kind: EventType,
    reason: String,
    note: String,
}

/// An Event published lately: what folding a repeat into it needs.
#[derive(Clone, Debug, PartialEq)]
struct Recent {
    name: String,
    count: i32,
    last: Timestamp,
}

/// What publishing an Event comes to.
#[derive(Debug, PartialEq)]
enum Publish {
    Create,
    /// The `count`th time of the Event called `name`.
    Repeat {
        name: String,
        count: i32,
    },
}

/// Forgets the Events older than the window, then says whether `key` repeats one of the others.
fn plan(recent: &mut HashMap<Key, Recent>, key: &Key, now: Timestamp) -> Publish {
    recent.retain(|_, r| r.last + SERIES_WINDOW > now);
    match recent.get(key) {
        Some(r) => Publish::Repeat { name: r.name.clone(), count: r.count + 1 },
        None => Publish::Create,
    }
}

pub struct Recorder {
    client: Client,
    /// `reportingController` and `reportingInstance`.
    controller: String,
    instance: String,
    recent: Mutex<HashMap<Key, Recent>>,
}

impl Recorder {
    pub fn new(client: Client, controller: &str, instance: Option<&str>) -> Self {
        Recorder {
            client,
            controller: controller.into(),
            instance: cut(instance.unwrap_or(controller), MAX_INSTANCE).into(),
            recent: Mutex::default(),
        }
    }

    pub async fn publish(
        &self,
        policy: &RedisPoolPolicy,
        kind: EventType,
        reason: &str,
        note: String,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        // A note over the limit would lose the whole Event (it can quote an annotation's value).
        let note = cut(&note, MAX_NOTE).to_string();
        let key = Key { uid: policy.uid().unwrap_or_default(), kind, reason: reason.into(), note };
        let plan = plan(&mut self.recent.lock().expect("not poisoned"), &key, now);
        let events: Api<Event> = Api::namespaced(self.client.clone(), &policy.namespace().unwrap_or_default());
        if let Publish::Repeat { name, count } = plan {
            let patch = serde_json::json!({"series": {"count": count, "lastObservedTime": MicroTime(now)}});
            match events.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    self.remember(key, Recent { name, count, last: now });
                    return Ok(());
                }
                // Deleted meanwhile (Events expire): the repeat starts a new one.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = self.event(policy, &key, now);
        let name = event.metadata.name.clone().unwrap_or_default();
        events.create(&PostParams::default(), &event).await?;
        self.remember(key, Recent { name, count: 1, last: now });
        Ok(())
    }

    fn remember(&self, key: Key, recent: Recent) {
        self.recent.lock().expect("not poisoned").insert(key, recent);
    }

    fn event(&self, policy: &RedisPoolPolicy, key: &Key, now: Timestamp) -> Event {
        let regarding: ObjectReference = policy.object_ref(&());
        // Unique per policy and moment, like client-go's Event names.
        let moment = format!(".{:x}", now.as_nanosecond());
        let name = format!("{}{moment}", cut(&policy.name_any(), MAX_NAME - moment.len()));
        Event {
            metadata: ObjectMeta { name: Some(name), namespace: policy.namespace(), ..Default::default() },
            event_time: Some(MicroTime(now)),
            type_: Some(format!("{:?}", key.kind)),
            reason: Some(key.reason.clone()),
            note: Some(key.note.clone()),
            action: Some(ACTION.into()),
            regarding: Some(regarding),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        }
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let end = (0..=max.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uid: &str, note: &str) -> Key {
        Key { uid: uid.into(), kind: EventType::Warning, reason: "AnalysisFailed".into(), note: note.into() }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn a_repeat_within_six_minutes_folds_into_the_first() {
        let mut recent = HashMap::new();
        let k = key("p-1", "successRate 97% is below 99%");
        assert_eq!(plan(&mut recent, &k, at(0)), Publish::Create);
        recent.insert(k.clone(), Recent { name: "api.1".into(), count: 1, last: at(0) });
        assert_eq!(plan(&mut recent, &k, at(300)), Publish::Repeat { name: "api.1".into(), count: 2 });
        recent.insert(k.clone(), Recent { name: "api.1".into(), count: 2, last: at(300) });
        assert_eq!(
            plan(&mut recent, &k, at(300 + 359)),
            Publish::Repeat { name: "api.1".into(), count: 3 },
            "the window runs from the last time"
        );
        assert_eq!(plan(&mut recent, &k, at(300 + 360)), Publish::Create, "six minutes after the last, a new Event");
        assert!(recent.is_empty(), "and what is older is forgotten");
    }

    #[test]
    fn another_policy_reason_type_or_note_is_another_event() {
        let mut recent = HashMap::new();
        let k = key("p-1", "step 1 of 3");
        recent.insert(k.clone(), Recent { name: "api.1".into(), count: 1, last: at(0) });
        let others = [
            key("p-2", "step 1 of 3"),
            key("p-1", "step 2 of 3"),
            Key { reason: "StepStarted".into(), ..k.clone() },
            Key { kind: EventType::Normal, ..k.clone() },
        ];
        for other in others {
            assert_eq!(plan(&mut recent, &other, at(10)), Publish::Create, "{other:?}");
        }
        assert_eq!(plan(&mut recent, &k, at(10)), Publish::Repeat { name: "api.1".into(), count: 2 });
    }

    #[test]
    fn what_is_too_long_for_the_api_server_is_cut_at_a_character() {
        assert_eq!(cut("step 1", MAX_NOTE), "step 1");
        assert_eq!(cut("ab\u{e9}cd", 3), "ab", "not inside the two bytes of \u{e9}");
        assert_eq!(cut("ab\u{e9}cd", 4), "ab\u{e9}");
        assert_eq!(cut(&"x".repeat(2000), MAX_NOTE).len(), MAX_NOTE);
    }
}
