//! The `dajia` command line: arguments (`args`) and the jobs they run
//! (`run`). The binary (`src/main.rs`) only sets up logging and prints the
//! one-line error.

mod args;
mod run;

pub use args::{BenchCmd, Cli, ClusterArg, Cmd, LearnCmd};
pub use run::run;
