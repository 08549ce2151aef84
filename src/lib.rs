//! userbridge: a gateway that accepts user create/update requests in several vendor
//! dialects, translates each into one canonical (SCIM 2.0 shaped) operation through
//! declarative mapping files, and answers in the caller's own dialect.
//!
//! The translation core is usable offline: [`config`] loads the layered configuration,
//! [`mapping`] compiles the mapping files and translates requests both ways.

pub mod audit;
pub mod authoring;
pub mod backend;
pub mod bootstrap;
pub mod canonical;
pub mod cli;
pub mod config;
pub mod diagnostic;
pub mod dialect;
pub mod exchange;
pub mod filter;
pub mod json;
pub mod load;
pub mod mapping;
pub mod migrate;
pub mod openapi;
pub mod password;
pub mod private_fs;
pub mod redact;
pub mod rejection;
pub mod sealed;
pub mod server;
