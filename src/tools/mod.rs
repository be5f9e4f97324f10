//! The tools people run: the command line (`run`, `crd`, `plan`) and the kubectl plugin. They
//! use the core and talk to the cluster with their own client; the operator is started through
//! its front door (`operator::run`) and nothing else of it is imported.

pub mod cli;
pub mod output;
pub mod plan_files;
pub mod plugin;
