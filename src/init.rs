//! `--init`: rancher-boot stays PID 1, supervises the program, forwards signals, reaps zombies.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};

use crate::exit::{Exit, Fail};

pub fn run(program: &OsStr, args: &[OsString], env: &BTreeMap<OsString, OsString>) -> Result<Exit, Fail> {
    let _ = (program, args, env);
    Err(crate::fail!(Exit::Usage, "--init is not available yet"))
}
