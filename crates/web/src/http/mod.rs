//! HTTP plumbing shared by pages and API: who the client is, cookies, sessions,
//! CSRF defences and the layers every response passes through.

pub mod auth;
pub mod client;
pub mod cookies;
pub mod csrf;
pub mod extract;
mod layers;
pub mod metrics;
pub mod request_id;

pub use layers::layers;
