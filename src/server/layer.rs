//! A tower layer from an async function `f(request, next)`, as axum's `from_fn`: the stack's
//! own layers are plain functions of the request and the rest of the stack.
//!
//! A layer is a [`Middleware`] value (a unit struct naming the function, see [`middleware!`]);
//! its future is boxed, so that the type of a stack grows with its depth and not twice per
//! layer (a function generic over the rest of the stack names that rest in its own type).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::{Request, Response};
use tower::{Layer, Service};

use super::http::Body;

/// A boxed, sendable answer.
pub type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// The rest of the stack, as a layer's function sees it.
pub struct Next<S>(S);

impl<S> Next<S> {
    /// Runs the rest of the stack on `req`.
    pub async fn run<B>(mut self, req: Request<B>) -> Response<Body>
    where
        S: Service<Request<B>, Response = Response<Body>, Error = Infallible>,
    {
        match self.0.call(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }
}

/// One layer's function over requests with bodies of type `B`, in front of the rest of the
/// stack `S`.
pub trait Middleware<B, S>: Clone {
    /// Handles `req`, running `next` for the rest of the stack where it goes on.
    fn call(&self, req: Request<B>, next: Next<S>) -> Answer;
}

/// Declares `$name`, the [`Middleware`] of the async fn `$f(Request<$body>, Next<S>)`; with
/// `$body => $inner`, the rest of the stack takes requests of body `$inner`.
macro_rules! middleware {
    ($(#[$doc:meta])* $name:ident, $body:ty, $f:path) => {
        middleware!($(#[$doc])* $name, $body => $body, $f);
    };
    ($(#[$doc:meta])* $name:ident, $body:ty => $inner:ty, $f:path) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name;

        impl<S> $crate::server::layer::Middleware<$body, S> for $name
        where
            S: tower::Service<
                    hyper::Request<$inner>,
                    Response = hyper::Response<$crate::server::http::Body>,
                    Error = std::convert::Infallible,
                > + Send
                + 'static,
            S::Future: Send,
        {
            fn call(
                &self,
                req: hyper::Request<$body>,
                next: $crate::server::layer::Next<S>,
            ) -> $crate::server::layer::Answer {
                Box::pin(async move { Ok($f(req, next).await) })
            }
        }
    };
}
pub(crate) use middleware;

/// The layer running `m` around the inner service.
#[derive(Clone, Copy)]
pub struct FnLayer<M>(pub M);

impl<S, M: Clone> Layer<S> for FnLayer<M> {
    type Service = FnService<M, S>;

    fn layer(&self, inner: S) -> Self::Service {
        FnService {
            m: self.0.clone(),
            inner,
        }
    }
}

/// The service a [`FnLayer`] makes.
#[derive(Clone, Copy)]
pub struct FnService<M, S> {
    m: M,
    inner: S,
}

impl<M, S, B> Service<Request<B>> for FnService<M, S>
where
    M: Middleware<B, S>,
    S: Clone,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Every layer of the stack is always ready: shedding is a layer of its own.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.m.call(req, Next(self.inner.clone()))
    }
}
