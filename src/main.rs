//! `perry-ship-windows`: the command line. `run` (the default) serves a Perry Hub,
//! `build` runs one local build with no hub, `doctor` checks that this host can build,
//! `service` registers the worker as a Windows service.

use clap::{Parser, Subcommand};
use perry_ship_windows::cli;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "perry-ship-windows", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to the hub (PERRY_HUB_URL) and serve build jobs until stopped (the default).
    Run(cli::run::RunArgs),
    /// Build a project locally, with no hub, and print the artifact path.
    Build(cli::build::BuildArgs),
    /// Check this host's configuration, engine, images and tools; exit non-zero when it cannot build.
    Doctor(cli::doctor::DoctorArgs),
    /// Windows only: install or uninstall the worker as a Windows service (runs `run`).
    #[command(subcommand)]
    Service(cli::service::ServiceCommand),
    /// Check an artifact's signatures and build record; rebuild and compare with --project.
    Verify(cli::verify::VerifyArgs),
    /// Internal: one job's child process (started by the worker, talks on stdin/stdout).
    #[command(name = "__job", hide = true)]
    Job,
    /// Internal: unpacks one untrusted archive from stdin (started by the worker).
    #[command(name = "__unpack", hide = true)]
    Unpack,
}

fn main() -> ExitCode {
    let args = Cli::parse();
    match args.command {
        Some(Command::Job) => return perry_ship_windows::isolation::child_main(),
        Some(Command::Unpack) => return perry_ship_windows::isolation::unpack_main(),
        _ => {}
    }
    if let Ok(program) = std::env::current_exe() {
        perry_ship_windows::isolation::register_job_program(program);
    }
    if let Err(e) = cli::core_dumps::disable_core_dumps() {
        eprintln!("warning: cannot turn core dumps off: {e}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match args
            .command
            .unwrap_or(Command::Run(cli::run::RunArgs::default()))
        {
            Command::Run(run) => cli::run::run(run).await,
            Command::Build(build) => cli::build::build(build).await,
            Command::Doctor(args) => cli::doctor::doctor(args).await,
            // Blocking: under the SCM the dispatcher owns this thread until the service stops.
            Command::Service(service) => {
                tokio::task::block_in_place(|| cli::service::service(service))
            }
            Command::Verify(args) => cli::verify::verify(args).await,
            Command::Job | Command::Unpack => {
                unreachable!("child processes return before the runtime starts")
            }
        }
    })
}
