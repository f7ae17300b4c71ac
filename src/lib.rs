//! cachepot as a library: every module of the binary, so that the fuzz targets (fuzz/) and the
//! benches can reach the decoders and parsers. The binary (main.rs) is only argv[0] dispatch.

pub mod atomic;
pub mod background;
pub mod bad_setting;
pub mod call;
pub mod cli;
pub mod compile;
pub mod compiler;
pub mod config;
pub mod coordinator;
pub mod entry;
pub mod fuzzing;
pub mod identity;
pub mod jobserver;
pub mod key;
pub mod limits;
pub mod locate;
pub mod logging;
pub mod manifest;
pub mod outputs;
pub mod paths;
pub mod remote_exec;
pub mod rust;
pub mod setting;
pub mod shims;
pub mod stats;
pub mod store;
pub mod trust;
