//! Why a decision leaves the target alone: typed, so the core can tell them apart, and each
//! with the sentence a person reads (in status and Events).

use crate::core::api::ACTION_ANNOTATION;

/// An action annotation nobody understands.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{ACTION_ANNOTATION}={0:?} ignored: use promote, abort, retry, pause, resume or approve")]
pub struct UnknownAction(pub String);

/// Another policy of the namespace holds the target (see [`super::holder`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "RedisPoolPolicy {namespace}/{holder} already manages Deployment {target}; this policy changes nothing while it \
     does (one policy per Deployment: delete one of them or point it at another Deployment)"
)]
pub struct HeldBy {
    pub namespace: String,
    pub holder: String,
    pub target: String,
}

/// Why there is no target to manage.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoTarget {
    #[error("target Deployment {namespace}/{name} not found")]
    Missing { namespace: String, name: String },
    #[error(transparent)]
    Unplannable(#[from] Unplannable),
}

/// Why the operator cannot manage the target's pool now. A target in this state is still
/// observed: its replicas matter to a rollout in flight, which gives the stable back first.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error(
        "container {wanted:?} not found in Deployment {deployment}; its containers are: {}; fix \
         spec.targetRef.container",
        .found.join(", ")
    )]
    NoSuchContainer { deployment: String, wanted: String, found: Vec<String> },
    #[error("Deployment {deployment} has no containers")]
    NoContainers { deployment: String },
    /// Writing `value` beside another manager's `valueFrom` is refused by the API server.
    #[error(
        "env var {} of container {container} is set with valueFrom (a ConfigMap, Secret or field reference), but \
         the operator writes it as a literal value: remove valueFrom from the Deployment, or name another variable \
         in spec.envNames",
        .vars.join(", ")
    )]
    ValueFrom { container: String, vars: Vec<String> },
    #[error(transparent)]
    Unplannable(#[from] Unplannable),
}

/// The spec cannot be planned: it breaks the CRD's rules (an API server without them admitted
/// it), or names no tier the policy has.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unplannable {
    #[error("invalid spec: {0}")]
    Spec(#[from] crate::core::api::validation::Invalid),
    #[error(transparent)]
    Plan(#[from] crate::core::sizing::PlanError),
}
