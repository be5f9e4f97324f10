//! The manual actions: set `redispool.io/action`, wait (bounded) until the operator has acted on
//! it (it removes the annotation in the same reconcile that decides), then report what it did or
//! why it refused, from the Events it recorded meanwhile. When the operator does not answer in
//! time the annotation is withdrawn, so a stopped operator does not act on it hours later.

use std::collections::BTreeMap;

use kube::api::{Patch, PatchParams};
use kube::runtime::wait::await_condition;

use super::{Error, Kube, Result};
use crate::core::api::{ACTION_ANNOTATION, APPROVED_BY_ANNOTATION, RedisPoolPolicy, remove_action_patch};
use crate::core::rollout::ManualAction;

const MANAGER: &str = "kubectl-redispool";

pub async fn run(kube: &Kube, name: &str, action: ManualAction, timeout: std::time::Duration) -> Result<u8> {
    let verb = action.name();
    let policy = kube.policy(name).await?;
    if policy.spec.suspend {
        // The operator changes nothing while suspended; a request queued now would act later,
        // by surprise.
        return Err(Error::Refused(format!(
            "{name} is suspended (spec.suspend: true): the operator changes nothing until it is false; \
             nothing was asked"
        )));
    }
    let before = event_versions(kube, name).await?;
    let api = kube.api::<RedisPoolPolicy>();
    // An approval is recorded with who gave it, as the API server knows the caller.
    let by = match action {
        ManualAction::Approve => whoami(kube).await,
        _ => None,
    };
    let set = serde_json::json!({"metadata": {"annotations": {ACTION_ANNOTATION: verb, APPROVED_BY_ANNOTATION: by}}});
    api.patch(name, &PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() }, &Patch::Merge(&set))
        .await
        .map_err(kube.error("set the action annotation"))?;
    eprintln!("{verb}: asked; waiting up to {} for the operator", humantime::format_duration(timeout));

    let consumed = |p: Option<&RedisPoolPolicy>| {
        p.is_none_or(|p| p.metadata.annotations.as_ref().is_none_or(|a| !a.contains_key(ACTION_ANNOTATION)))
    };
    let waited = tokio::time::timeout(timeout, await_condition(api.clone(), name, consumed)).await;
    match waited {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(Error::Api { what: "watch the policy".into(), why: e.to_string() }),
        // The operator may have answered just now, after all: then its answer is reported.
        Err(_) if !withdraw(kube, name, verb, by.as_deref()).await => {}
        Err(_) => {
            return Err(Error::Timeout(format!(
                "the operator did not act on {verb} within {}; is it running and watching namespace {}? \
                 The request was withdrawn.",
                humantime::format_duration(timeout),
                kube.namespace
            )));
        }
    }

    // The operator records its answer before it removes the annotation, so the Events are there.
    let answer: Vec<(String, String, String)> = new_events(kube, name, &before).await?;
    let now = kube.policy(name).await?;
    let status = now.status.unwrap_or_default();
    let refused: Vec<_> = answer.iter().filter(|(_, reason, _)| reason == "ManualActionIgnored").collect();
    if let Some((_, _, message)) = refused.first() {
        return Err(Error::Refused(format!("{verb} refused by the operator: {message}")));
    }
    for (kind, reason, message) in &answer {
        println!("{kind} {reason}: {message}");
    }
    println!("{name}: {:?}{}", status.phase, status.message.map(|m| format!(": {m}")).unwrap_or_default());
    Ok(0)
}

/// Each Event's resourceVersion: a new Event, or one whose series grew, is the operator's answer.
async fn event_versions(kube: &Kube, name: &str) -> Result<BTreeMap<String, String>> {
    Ok(kube
        .events(name)
        .await?
        .into_iter()
        .map(|e| (e.metadata.name.unwrap_or_default(), e.metadata.resource_version.unwrap_or_default()))
        .collect())
}

/// (type, reason, message) of the Events recorded since `before`.
async fn new_events(
    kube: &Kube,
    name: &str,
    before: &BTreeMap<String, String>,
) -> Result<Vec<(String, String, String)>> {
    Ok(kube
        .events(name)
        .await?
        .into_iter()
        .filter(|e| {
            let key = e.metadata.name.clone().unwrap_or_default();
            before.get(&key) != e.metadata.resource_version.as_ref()
        })
        .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect())
}

/// Removes the annotation only if it is still ours. False only when it no longer was: the
/// operator took it between the timeout and now.
async fn withdraw(kube: &Kube, name: &str, verb: &str, by: Option<&str>) -> bool {
    let patch = remove_action_patch(verb, by);
    let result = kube.api::<RedisPoolPolicy>().patch(name, &PatchParams::default(), &Patch::Json::<()>(patch)).await;
    !matches!(result, Err(kube::Error::Api(e)) if e.code == 422)
}

/// The caller's user name, as the API server authenticated it (a SelfSubjectReview); None when
/// the server does not say (the operator then records the annotation's field manager).
async fn whoami(kube: &Kube) -> Option<String> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let api: kube::Api<SelfSubjectReview> = kube::Api::all(kube.client.clone());
    let review = api.create(&Default::default(), &SelfSubjectReview::default()).await.ok()?;
    review.status?.user_info?.username.filter(|u| !u.is_empty())
}
