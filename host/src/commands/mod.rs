//! What each `pn-host` command does once its flags are parsed: load the plugins, call the
//! library, print results and say whether everything succeeded.
//!
//! `main.rs` only turns flags into these functions' arguments and their results into exit codes,
//! so the flows here can be read (and called) without the command line: [`plugins`] (`plugins
//! list`, `check`, `test` and where plugins are looked for), [`run`] (`pn-host run`), [`suite`]
//! (`suite run`, `report`, `slurm`, `worker` and the default comparison), [`bench`] and [`new`].
//!
//! Functions that end in a verdict return `Ok(true)` when everything succeeded and `Ok(false)`
//! when something failed and was already reported (exit code 1); `Err` is a one-line message.

pub mod bench;
pub mod new;
pub mod plugins;
pub mod run;
pub mod suite;
