//! The controller's error type: one enum, each variant with a metric label.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{what}: {source}")]
    Write { what: String, source: kube::Error },
    #[error("the policy has no namespace")]
    NoNamespace,
    #[error("cannot build the canary: {0}")]
    Build(String),
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
            Error::Write { source: kube::Error::Api(s), .. } if s.code == 409 => "conflict",
            Error::Kube(_) => "kube",
            Error::Write { .. } => "write",
            Error::NoNamespace => "no_namespace",
            Error::Build(_) => "build",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
