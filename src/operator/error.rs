//! The controller's error type: one enum, each variant with a metric label.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{what}: {source}")]
    Write { what: String, source: kube::Error },
    #[error("the policy has no namespace")]
    NoNamespace,
    /// The target went, or cannot be managed, between deciding and acting: the next reconcile
    /// decides on what it finds.
    #[error("cannot write the target or the canary: {0}")]
    Target(#[from] crate::core::rollout::NoTarget),
    #[error("cannot write the target or the canary: {0}")]
    Unusable(#[from] crate::core::rollout::Unusable),
    /// The policy is being deleted and its target is not given back yet (not a failure).
    #[error("releasing the target: {0}")]
    Releasing(String),
    /// A cache has not listed for 30 s: its watch is failing (the operator log says why).
    #[error("the {0} cache has not listed yet: check that the operator may list and watch {0}")]
    CacheNotListed(&'static str),
    /// A cache's watch ended: only when the operator shuts down.
    #[error("the {0} cache stopped: the operator is shutting down")]
    CacheStopped(&'static str),
    /// Cannot happen: the cache reads back only what it wrote itself. Where, not what: the
    /// parser's message could quote a value of the Deployment.
    #[error("the Deployment cache cannot read back {name} (line {line}, column {column})")]
    Thaw { name: String, line: usize, column: usize },
}

impl Error {
    pub fn write(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| Error::Write { what, source }
    }

    /// A bounded label for the errors metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            // 422: a JSON patch's test failed (the finalizers changed since they were read).
            Error::Write { source: kube::Error::Api(s), .. } if s.code == 409 || s.code == 422 => "conflict",
            Error::Kube(_) => "kube",
            Error::Write { .. } => "write",
            Error::NoNamespace => "no_namespace",
            Error::Target(_) | Error::Unusable(_) => "target",
            Error::Releasing(_) => "releasing",
            Error::CacheStopped(_) => "cache_stopped",
            Error::CacheNotListed(_) => "cache_not_listed",
            Error::Thaw { .. } => "cache",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
