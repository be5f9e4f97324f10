//! What each kind of destination is sent about a transition: the generic webhook's versioned
//! body, Slack's message, Alertmanager's alerts. Pure: from the notice as status recorded it.

use jiff::SignedDuration;
use serde_json::{Value, json};

use crate::core::api::Notice;

/// The policy a notice is about.
#[derive(Clone, Debug)]
pub struct About<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

/// The key a receiver drops a repeat by: the policy and the transition's id.
pub fn idempotency_key(about: &About, notice: &Notice) -> String {
    format!("{}/{}", about.uid, notice.id)
}

/// The generic webhook's body, version `redispool.io/v1alpha1`, kind `Notification`.
pub fn webhook_body(about: &About, n: &Notice) -> Value {
    json!({
        "apiVersion": "redispool.io/v1alpha1",
        "kind": "Notification",
        "id": idempotency_key(about, n),
        "sequence": n.id,
        "trigger": n.trigger,
        "at": n.at.0.to_string(),
        "policy": {"namespace": about.namespace, "name": about.name, "uid": about.uid},
        "phase": n.phase,
        "progress": n.progress,
        "message": n.message,
        "configuration": {"canary": n.canary, "stable": n.stable},
        "gates": n.gates,
        "alerts": {"firing": n.firing, "resolved": n.resolved},
    })
}

/// A Slack message: what happened, the step, and the gate table; no links.
pub fn slack_body(about: &About, n: &Notice) -> Value {
    let step = n.progress.as_ref().map(|p| format!(", step {p}")).unwrap_or_default();
    let mut text =
        format!("*{}/{}*: {:?} ({:?}{step})\n{}", about.namespace, about.name, n.trigger, n.phase, n.message);
    if !n.gates.is_empty() {
        text.push_str(&format!("\n```{}```", n.gates.join("\n")));
    }
    json!({"text": text, "unfurl_links": false, "unfurl_media": false})
}

/// How long a firing alert lasts unless a later transition re-sends or resolves it.
pub const ALERT_HOLDS: SignedDuration = SignedDuration::from_hours(24);

/// Alertmanager v2 alerts (`POST /api/v2/alerts`): the policy's alerts firing after the
/// transition, and those it ended, resolved. None when there is neither.
pub fn alertmanager_body(about: &About, n: &Notice) -> Option<Value> {
    if n.firing.is_empty() && n.resolved.is_empty() {
        return None;
    }
    let at = n.at.0;
    let alert = |name: &str, ends: jiff::Timestamp| {
        json!({
            "labels": {
                "alertname": name,
                "namespace": about.namespace,
                "redispoolpolicy": about.name,
                "severity": if name == "RedisPoolApprovalRequested" { "info" } else { "warning" },
            },
            "annotations": {
                "summary": format!("{}/{}: {:?}", about.namespace, about.name, n.phase),
                "description": n.message,
            },
            "startsAt": at.to_string(),
            "endsAt": ends.to_string(),
        })
    };
    let firing = n.firing.iter().map(|a| alert(a, at + ALERT_HOLDS));
    let resolved = n.resolved.iter().map(|a| alert(a, at));
    Some(Value::Array(firing.chain(resolved).collect()))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::core::api::{Phase, Trigger};

    fn notice() -> Notice {
        Notice {
            id: 7,
            trigger: Trigger::RolledBack,
            at: Time("2026-12-05T10:00:00Z".parse().unwrap()),
            phase: Phase::RolledBack,
            progress: Some("2/3".into()),
            message: "rolled back: poolUtilization failed".into(),
            canary: Some("new".into()),
            stable: Some("old".into()),
            gates: vec!["poolUtilization 95.00 Fail".into()],
            firing: vec!["RedisPoolRolledBack".into()],
            resolved: vec!["RedisPoolApprovalRequested".into()],
            pending: vec!["oncall".into()],
        }
    }

    const ABOUT: About = About { namespace: "saas", name: "auth-api", uid: "u-1" };

    #[test]
    fn each_destination_gets_its_shape() {
        let n = notice();
        let body = webhook_body(&ABOUT, &n);
        assert_eq!((body["kind"].as_str(), body["id"].as_str()), (Some("Notification"), Some("u-1/7")));
        assert_eq!(body["trigger"], "RolledBack");
        assert_eq!(body["alerts"]["firing"][0], "RedisPoolRolledBack");
        let slack = slack_body(&ABOUT, &n)["text"].as_str().unwrap().to_string();
        assert_eq!(
            slack,
            "*saas/auth-api*: RolledBack (RolledBack, step 2/3)\nrolled back: poolUtilization failed\n```poolUtilization 95.00 Fail```"
        );
        assert!(!slack.contains("http"), "link-free");
        let alerts = alertmanager_body(&ABOUT, &n).unwrap();
        assert_eq!(alerts[0]["labels"]["alertname"], "RedisPoolRolledBack");
        assert_eq!(alerts[0]["endsAt"], "2026-12-06T10:00:00Z");
        assert_eq!(alerts[1]["labels"]["alertname"], "RedisPoolApprovalRequested");
        assert_eq!(alerts[1]["endsAt"], "2026-12-05T10:00:00Z", "resolved at the transition");
        let quiet = Notice { firing: vec![], resolved: vec![], ..n };
        assert_eq!(alertmanager_body(&ABOUT, &quiet), None);
    }
}
