//! The least any wrapper can cost: a static musl binary that only execs its arguments.
//! `exec-floor /bin/true` minus `/bin/true` is the price of one extra static exec.
use std::os::unix::process::CommandExt;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else { std::process::exit(64) };
    let error = std::process::Command::new(program).args(args).exec();
    eprintln!("exec-floor: {error}");
    std::process::exit(127);
}
