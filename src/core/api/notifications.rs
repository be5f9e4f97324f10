//! Notifications: who is told about a rollout's transitions, and what status remembers of
//! telling them (an outbox of transitions, so that a restart or a new leader neither loses nor
//! repeats one).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Phase, SecretKeyRef};

/// One destination and the transitions it is told about.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.webhook), has(self.slack), has(self.alertmanager)].filter(x, x).size() == 1")
    .message("spec.notifications[] needs exactly one of webhook, slack or alertmanager"))]
pub struct Subscription {
    /// Names the destination in status, Events and the plugin (never its URL).
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("spec.notifications[].name must be lowercase letters, digits and '-', like 'oncall'"))]
    #[schemars(length(max = 63))]
    pub name: String,
    /// A generic webhook: a versioned JSON body, an idempotency key, an HMAC-SHA256 signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookDestination>,
    /// A Slack incoming webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackDestination>,
    /// Alertmanager's v2 API: alerts that fire while a condition lasts and resolve when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertmanager: Option<AlertmanagerDestination>,
    /// The transitions to tell; every one when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub on: Vec<Trigger>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.urlSecretRef)")
    .message("spec.notifications[].webhook.urlSecretRef is required: the Secret key that holds the URL (never written in the policy)"))]
pub struct WebhookDestination {
    /// The Secret key holding the URL. Never logged or echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretKeyRef>,
    /// The Secret key holding the HMAC-SHA256 key the body is signed with
    /// (`X-RedisPool-Signature: sha256=<hex>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_secret_ref: Option<SecretKeyRef>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.urlSecretRef)")
    .message("spec.notifications[].slack.urlSecretRef is required: the Secret key that holds the incoming webhook's URL"))]
pub struct SlackDestination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretKeyRef>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.urlSecretRef)")
    .message("spec.notifications[].alertmanager.urlSecretRef is required: the Secret key that holds Alertmanager's URL, like http://alertmanager.monitoring:9093"))]
pub struct AlertmanagerDestination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretKeyRef>,
}

/// A transition people may be told about.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    RolloutStarted,
    StepAdvanced,
    Paused,
    Resumed,
    /// The first failing analysis of a step.
    AnalysisFailed,
    /// A spell of analyses that blame the environment began (or found new evidence).
    Inconclusive,
    RolledBack,
    Succeeded,
    /// Blocked (the budget, a verdict, a pre-rollout check): once per cause.
    Blocked,
    /// Waiting for a verdict another environment must give.
    Waiting,
    Degraded,
    VerdictSoaked,
    VerdictFailed,
    FreezeEntered,
    FreezeLeft,
    ApprovalRequested,
    /// For Alertmanager destinations only (whatever their `on`): the alerts a policy fires
    /// changed without a transition that says so (an environment fault ended, say).
    AlertsChanged,
}

/// What status remembers of telling people.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NotificationStatus {
    /// The id of the last transition recorded for telling (ids count up per policy).
    pub sequence: i64,
    /// Transitions not yet delivered to every destination, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<Notice>,
    /// The last deliveries, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<Delivery>,
    /// The alerts firing as the last notice recorded them: what Alertmanager destinations were
    /// told, so that an alert that ends is resolved whatever ends it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<String>,
}

/// A transition to tell, as it was recorded.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    pub id: i64,
    pub trigger: Trigger,
    pub at: Time,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// What happened, as the Event says it.
    pub message: String,
    /// The configuration rolled out, and the one the target ran before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<String>,
    /// The gates of the latest analysis: `poolUtilization 95 Fail`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<String>,
    /// The policy's alerts firing after this transition, and those it ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firing: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved: Vec<String>,
    /// Destinations not told yet.
    pub pending: Vec<String>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    Delivered,
    Failed,
}

/// How telling one destination about one transition ended.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: i64,
    pub trigger: Trigger,
    pub destination: String,
    pub state: DeliveryState,
    pub attempts: i32,
    pub at: Time,
    /// Why it failed (the answer's status, or that none came), never the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
