//! Where finished runs live: the suite directory and its run folders.

pub mod store;

pub use store::*;
