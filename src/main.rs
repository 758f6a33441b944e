//! rancher-boot's entry point: parse, set up logging, run the boot, print an error once.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use clap::error::ErrorKind;
use rancher_boot::cli::{Cli, Tool, describe_clap_error, log_filter};
use rancher_boot::exit::Exit;
use rancher_boot::{boot, doctor, exec, probe};

fn main() -> ExitCode {
    let started = Instant::now();
    // First of all: while we may be PID 1, SIGTERM/SIGINT/SIGHUP must end the boot.
    exec::end_boot_on_signals();

    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut cli = match Cli::parse_args(argv.clone()) {
        Ok(cli) => cli,
        Err(e) => {
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                _ => {
                    eprint!("{}", describe_clap_error(&e, &argv));
                    ExitCode::from(Exit::Usage.code())
                }
            };
        }
    };
    init_logging(&log_filter(&cli.options, cli.tool.as_ref()));

    let result = match cli.tool.take() {
        Some(Tool::Probe(args)) => probe::run(&cli.options, &args, started),
        Some(Tool::Doctor(args)) => doctor::run(&cli.options, &args, started),
        None => cli.into_config().and_then(|config| boot::run(config, started)),
    };
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        // A probe's verdict is not an error of rancher-boot: `rancher-boot: NODE: why`.
        Err(fail) if fail.exit == Exit::Unhealthy => {
            eprintln!("rancher-boot: {fail}");
            ExitCode::from(fail.exit.code())
        }
        Err(fail) => {
            eprintln!("rancher-boot: error: {fail}");
            ExitCode::from(fail.exit.code())
        }
    }
}

/// `rancher-boot: LEVEL: message` on stderr.
fn init_logging(filter: &str) {
    env_logger::Builder::new()
        .parse_filters(filter)
        .format(|buf, record| {
            let level = record.level().as_str().to_ascii_lowercase();
            writeln!(buf, "rancher-boot: {level}: {}", record.args())
        })
        .target(env_logger::Target::Stderr)
        .init();
}
