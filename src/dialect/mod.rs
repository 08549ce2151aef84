//! The generic runtime for what a mapping file declares about HTTP: routes, how the
//! credential is presented, and the shapes of success and error answers. No dialect is
//! named here; each mapping file fills these in.

pub mod auth;
pub mod route;
pub mod template;
