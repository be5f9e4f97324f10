//! The Deployment cache's compact form. Every Deployment of the watched namespaces is held in
//! memory, and a parsed `Deployment` is large even when it says little: k8s-openapi keeps every
//! optional field inline, so one container is about 3 KB and one Deployment about 8 KB before a
//! single string (a heap profile at 1,000 Deployments: 11 MB, half the operator's heap). The cache
//! keeps each one as its metadata (what the store and the watch's mapper read) and the rest as
//! the JSON it came in, a kilobyte or two; a reconcile thaws the two it reads.

use std::borrow::Cow;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::ObjectMeta;
use serde::{Deserialize, Deserializer};

/// A Deployment, slimmed (see [`crate::core::deployments::slim`]) and frozen: metadata parsed, spec and
/// status as JSON.
#[derive(Clone)]
pub struct FrozenDeployment {
    metadata: ObjectMeta,
    rest: Box<[u8]>,
}

/// Not the JSON bytes, one number each.
impl std::fmt::Debug for FrozenDeployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrozenDeployment")
            .field("namespace", &self.metadata.namespace)
            .field("name", &self.metadata.name)
            .field("resource_version", &self.metadata.resource_version)
            .field("frozen_bytes", &self.rest.len())
            .finish()
    }
}

impl FrozenDeployment {
    pub fn freeze(mut deploy: Deployment) -> Result<Self, serde_json::Error> {
        crate::core::deployments::slim(&mut deploy);
        let metadata = std::mem::take(&mut deploy.metadata);
        let rest = serde_json::to_vec(&deploy)?.into_boxed_slice();
        Ok(FrozenDeployment { metadata, rest })
    }

    /// The Deployment it was made from, slimmed.
    pub fn thaw(&self) -> Result<Deployment, serde_json::Error> {
        let rest: Deployment = serde_json::from_slice(&self.rest)?;
        Ok(Deployment { metadata: self.metadata.clone(), ..rest })
    }
}

/// What the watch delivers is frozen as it is read: the whole Deployment is parsed only for the
/// moment it takes to slim it.
impl<'de> Deserialize<'de> for FrozenDeployment {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let deploy = Deployment::deserialize(deserializer)?;
        FrozenDeployment::freeze(deploy).map_err(serde::de::Error::custom)
    }
}

/// Watched and stored as the Deployments they are.
impl kube::Resource for FrozenDeployment {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        <Deployment as k8s_openapi::Resource>::KIND.into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        <Deployment as k8s_openapi::Resource>::GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        <Deployment as k8s_openapi::Resource>::VERSION.into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        <Deployment as k8s_openapi::Resource>::URL_PATH_SEGMENT.into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    fn deployment() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "api", "namespace": "shop", "resourceVersion": "42", "generation": 3, "uid": "u-1",
                "labels": {"app": "api"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "team": "payments"},
                "ownerReferences": [{"apiVersion": "redispool.io/v1alpha1", "kind": "RedisPoolPolicy", "name": "api", "uid": "p-1"}],
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
                    "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
            },
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": {"app": "api"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": {"app": "api"}},
                    "spec": {"containers": [{
                        "name": "api", "image": "registry.example/api:1.2",
                        "env": [{"name": "WORKERS", "value": "4"}, {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                        "resources": {"limits": {"memory": "256Mi"}}
                    }]}
                }
            },
            "status": {"replicas": 4, "availableReplicas": 4, "observedGeneration": 3,
                "conditions": [{"type": "Available", "status": "True"}]}
        })
    }

    #[test]
    fn a_frozen_deployment_thaws_to_the_slimmed_deployment() {
        let whole: Deployment = serde_json::from_value(deployment()).unwrap();
        let mut slimmed = whole.clone();
        crate::core::deployments::slim(&mut slimmed);
        let frozen: FrozenDeployment = serde_json::from_value(deployment()).unwrap();
        assert_eq!(frozen.thaw().unwrap(), slimmed, "everything a decision or a canary reads comes back");
        assert_eq!(frozen.meta().resource_version.as_deref(), Some("42"), "the store and the mapper read the metadata");
        assert_eq!(frozen.meta().owner_references.as_ref().map(Vec::len), Some(1));
        assert_ne!(slimmed, whole, "slimming dropped what nothing reads");
    }

    #[test]
    fn it_is_watched_at_the_deployments_url() {
        assert_eq!(FrozenDeployment::url_path(&(), Some("shop")), "/apis/apps/v1/namespaces/shop/deployments");
        assert_eq!(FrozenDeployment::kind(&()), "Deployment");
    }
}
