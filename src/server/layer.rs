//! How the stack's own layers are made: each is an async function `f(request, next)` (as
//! axum's `from_fn`), declared as a [`Middleware`] with [`middleware!`] and put in the stack
//! by [`Then`], one `ServiceBuilder` line each.
//!
//! The layers are composed statically: [`Chain`]s nest, every layer's future lies inside the
//! one above it, and the whole of them is one state machine, boxed once per request where it
//! meets tower ([`IntoTower`]). A tower service per layer would box a future per layer per
//! request (and, generic over the rest of the stack, double its type's name at each layer).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::{Request, Response};
use tower::{Layer, Service};

use super::http::Body;

/// A request as the layers pass it on: boxed, so that each layer's future holds a pointer and
/// not a copy of the request (an async function keeps its arguments for its whole life, and
/// the layers' futures nest: unboxed, the request took a few hundred bytes at every level).
pub type Req<B> = Box<Request<B>>;

/// What answers a request with a body of type `B`: a chain of layers, or the handler under it.
pub trait Handler<B>: Clone + Send + Sync + 'static {
    /// The answer to `req`.
    fn handle(&self, req: Req<B>) -> impl Future<Output = Response<Body>> + Send;
}

/// One layer's function over requests with bodies of type `B`, in front of the rest of the
/// stack `S`.
pub trait Middleware<B, S>: Clone + Send + Sync + 'static {
    /// Handles `req`, calling `next` for the rest of the stack where it goes on.
    fn call(&self, req: Req<B>, next: &S) -> impl Future<Output = Response<Body>> + Send;
}

/// Declares `$name`, the [`Middleware`] of the async fn `$f(Req<$body>, &S)`; with
/// `$body => $inner`, the rest of the stack takes requests of body `$inner`.
macro_rules! middleware {
    ($(#[$doc:meta])* $name:ident, $body:ty, $f:path) => {
        middleware!($(#[$doc])* $name, $body => $body, $f);
    };
    ($(#[$doc:meta])* $name:ident, $body:ty => $inner:ty, $f:path) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name;

        impl<S: $crate::server::layer::Handler<$inner>> $crate::server::layer::Middleware<$body, S>
            for $name
        {
            fn call(
                &self,
                req: $crate::server::layer::Req<$body>,
                next: &S,
            ) -> impl std::future::Future<Output = hyper::Response<$crate::server::http::Body>> + Send
            {
                $f(req, next)
            }
        }
    };
}
pub(crate) use middleware;

/// The layer putting `M` in front of the rest of the stack.
#[derive(Clone, Copy)]
pub struct Then<M>(pub M);

impl<M: Clone, S> Layer<S> for Then<M> {
    type Service = Chain<M, S>;

    fn layer(&self, rest: S) -> Self::Service {
        Chain {
            m: self.0.clone(),
            rest,
        }
    }
}

/// `M` in front of `S`.
#[derive(Clone, Copy)]
pub struct Chain<M, S> {
    m: M,
    rest: S,
}

impl<B, M, S> Handler<B> for Chain<M, S>
where
    M: Middleware<B, S>,
    S: Clone + Send + Sync + 'static,
{
    fn handle(&self, req: Req<B>) -> impl Future<Output = Response<Body>> + Send {
        self.m.call(req, &self.rest)
    }
}

/// An async function as the handler at the bottom of the stack.
#[derive(Clone, Copy)]
pub struct HandlerFn<F>(pub F);

impl<B, F, Fut> Handler<B> for HandlerFn<F>
where
    F: Fn(Req<B>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send,
{
    fn handle(&self, req: Req<B>) -> impl Future<Output = Response<Body>> + Send {
        (self.0)(req)
    }
}

/// The layer making the chain under it a tower service.
#[derive(Clone, Copy)]
pub struct IntoTower;

impl<H> Layer<H> for IntoTower {
    type Service = Tower<H>;

    fn layer(&self, h: H) -> Self::Service {
        Tower(h)
    }
}

/// A chain as a tower service: its whole future boxed once.
#[derive(Clone, Copy)]
pub struct Tower<H>(H);

impl<B: Send + 'static, H: Handler<B>> Service<Request<B>> for Tower<H> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Finishing;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Always ready: shedding is a layer of its own.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let h = self.0.clone();
        let write = !matches!(*req.method(), http::Method::GET | http::Method::HEAD);
        let req = Box::new(req);
        Finishing {
            future: Some(Box::pin(async move { Ok(h.handle(req).await) })),
            write,
        }
    }
}

/// A request's whole future, boxed.
type Answering = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// The boxed future of a request, which a write does not leave half done: hyper drops a
/// request's future when its client goes away, and a write's — its backend call, its audit
/// record, a mirror's copy — then goes on to its end on a task of its own. Nothing is spent on
/// this while the client stays (no task, no second allocation).
pub struct Finishing {
    future: Option<Answering>,
    /// Whether the request may write (any method but `GET` and `HEAD`).
    write: bool,
}

impl Future for Finishing {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(f) = self.future.as_mut() else {
            // Polled after it answered: there is nothing more.
            return Poll::Pending;
        };
        let answer = std::task::ready!(f.as_mut().poll(cx));
        self.future = None;
        Poll::Ready(answer)
    }
}

impl Drop for Finishing {
    fn drop(&mut self) {
        if let (Some(f), true) = (self.future.take(), self.write)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // The box moves, not the future in it: it stays pinned.
            runtime.spawn(f);
        }
    }
}
