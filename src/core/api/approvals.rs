//! Approvals: gates a person (`kubectl redispool approve`) or a webhook (a change-ticket system,
//! an incident bot) must open before a rollout starts, before a step, or before the promotion.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SecretKeyRef;

/// One approval a gate needs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(self.by == 'Webhook') == has(self.webhook)")
    .message("spec.rollout.approvals[].webhook goes with by: Webhook (and by: Webhook needs a webhook); a person approves with kubectl redispool approve"))]
pub struct ApprovalSpec {
    /// The gate: `start` (before the rollout's first write: a pre-rollout check), `step-N`
    /// (before step N begins, 1-based as `kubectl get` counts steps, from 2), or `promotion`.
    #[x_kube(validation = Rule::new("self.matches('^(start|promotion|step-([2-9]|1[0-9]|20))$')")
        .message("spec.rollout.approvals[].before must be start, promotion or step-N with N from 2 (step 1 is start), like step-2"))]
    #[schemars(length(max = 16))]
    pub before: String,
    /// Who opens it: `Person` or `Webhook`.
    pub by: Approver,
    /// With `by: Webhook`: where to ask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<ApprovalWebhook>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approver {
    /// `kubectl redispool approve NAME`, recorded with who approved.
    Person,
    /// A POST the webhook answers with 2xx to approve; any other answer is a no, with its reason.
    Webhook,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalWebhook {
    /// The Secret key holding the URL (it may carry a token): never logged or echoed. Status
    /// and Events name the webhook by this Secret's name.
    pub url_secret_ref: SecretKeyRef,
    /// How long one request may take.
    #[serde(default = "ten")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 60")
        .message("spec.rollout.approvals[].webhook.timeoutSeconds must be between 1 and 60"))]
    pub timeout_seconds: i32,
}

fn ten() -> i32 {
    10
}

/// An approval given, for the configuration it was given for.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The gate it opened: `start`, `step-2`, `promotion`.
    pub gate: String,
    /// The pool configuration it approved.
    pub hash: String,
    pub by: Approver,
    /// Who: the person's user name (or, without one, the field manager that set the
    /// annotation), or `webhook <secret>`.
    pub who: String,
    pub at: Time,
}

/// A gate the rollout waits at.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PendingApproval {
    pub gate: String,
    pub hash: String,
    /// When the rollout first waited here.
    pub since: Time,
    /// Who must still approve: `person`, `webhook change-ticket`.
    pub waiting_for: Vec<String>,
    /// A webhook's last answer that was not 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}
