//! Counts the operator's own requests to the API server by verb, as a layer of the client: what
//! `hack/bench-scale` reads to say how many requests a policy costs (the role of Argo Rollouts'
//! `controller_clientset_k8s_request_total`).

use std::task::{Context, Poll};

use http::{Method, Request};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tower::{Layer, Service};

use super::metrics::VerbLabels;

/// A clone of the metric family: clones share their counters.
#[derive(Clone)]
pub struct CountRequests(pub Family<VerbLabels, Counter>);

impl<S> Layer<S> for CountRequests {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted { inner, counts: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    counts: Family<VerbLabels, Counter>,
}

impl<S, B> Service<Request<B>> for Counted<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let watch = req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
        self.counts.get_or_create(&VerbLabels { verb: verb(req.method(), watch).into() }).inc();
        self.inner.call(req)
    }
}

/// The Kubernetes verb of a request, as far as its method and `watch` say (a GET of one object
/// and a list are both `get`).
fn verb(method: &Method, watch: bool) -> &'static str {
    match *method {
        Method::GET if watch => "watch",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_by_method_and_watch() {
        assert_eq!(verb(&Method::GET, true), "watch");
        assert_eq!(verb(&Method::GET, false), "get");
        assert_eq!(verb(&Method::PATCH, false), "patch");
        assert_eq!(verb(&Method::HEAD, false), "other");
    }
}
