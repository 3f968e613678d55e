//! Plugins: loading `.so` files into checked plugins ([`loader`]) and their components by name,
//! built from user configuration ([`registry`]).

pub mod loader;
pub mod registry;
