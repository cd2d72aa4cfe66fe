//! `perry-ship-windows service install|uninstall`: the worker as a native Windows service.
//!
//! `install` registers this exe with the Service Control Manager (automatic start,
//! LocalSystem) to be started as `perry-ship-windows.exe service run`; that hidden entry hands
//! the process to the SCM dispatcher, which runs the same worker as `run`. An SCM stop (or
//! system shutdown) drains running jobs exactly like SIGTERM / Ctrl-C. On other OSes the
//! subcommand says it is Windows-only (use systemd there; README "Running as a service").

use std::process::ExitCode;

/// The name the service is registered under (`sc query perry-ship-windows`).
#[cfg(windows)]
const SERVICE_NAME: &str = "perry-ship-windows";
/// What the Services console shows.
#[cfg(windows)]
const DISPLAY_NAME: &str = "Perry Ship Windows build worker";

/// The subcommands of `service`.
#[derive(clap::Subcommand, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceCommand {
    /// Register this exe with the Service Control Manager (automatic start).
    Install,
    /// Stop (draining running jobs) and remove the service.
    Uninstall,
    /// The service's own entry point, started by the Service Control Manager.
    #[command(hide = true)]
    Run,
}

impl ServiceCommand {
    fn as_str(self) -> &'static str {
        match self {
            ServiceCommand::Install => "install",
            ServiceCommand::Uninstall => "uninstall",
            ServiceCommand::Run => "run",
        }
    }
}

/// Runs a `service` subcommand. Blocking: call it outside any async runtime (`service run`
/// gives the main thread to the SCM dispatcher, which starts its own runtime).
pub fn service(command: ServiceCommand) -> ExitCode {
    #[cfg(windows)]
    {
        let result = match command {
            ServiceCommand::Install => scm::install(),
            ServiceCommand::Uninstall => scm::uninstall(),
            ServiceCommand::Run => scm::run_dispatcher(),
        };
        match result {
            Ok(message) => {
                if !message.is_empty() {
                    println!("{message}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: service {}: {e:#}", command.as_str());
                ExitCode::FAILURE
            }
        }
    }
    #[cfg(not(windows))]
    {
        eprintln!(
            "error: `service {}` is Windows-only (it registers with the Windows Service Control Manager); on this OS run `perry-ship-windows run` under systemd (README: Running as a service)",
            command.as_str()
        );
        ExitCode::from(2)
    }
}

#[cfg(windows)]
mod scm {
    use super::{DISPLAY_NAME, SERVICE_NAME};
    use anyhow::Context;
    use std::ffi::OsString;
    use std::time::{Duration, Instant};
    use tokio_util::sync::CancellationToken;
    use windows_service::service::{
        ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode,
        ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
    };
    use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
    use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
    use windows_service::{define_windows_service, service_dispatcher};

    const DESCRIPTION: &str =
        "Takes Perry Hub build jobs and turns them into signed Windows executables and installers.";
    /// While draining, the SCM is told to wait this long between progress reports.
    const STOP_WAIT_HINT: Duration = Duration::from_secs(30);
    /// How long `uninstall` waits for a running service to drain and stop.
    const UNINSTALL_STOP_WAIT: Duration = Duration::from_secs(900);

    define_windows_service!(ffi_service_main, service_main);

    pub(crate) fn install() -> anyhow::Result<String> {
        let manager = ServiceManager::local_computer(
            None::<&str>,
            ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
        )
        .context("opening the Service Control Manager (run as Administrator)")?;
        let exe = std::env::current_exe().context("locating this exe")?;
        let info = ServiceInfo {
            name: OsString::from(SERVICE_NAME),
            display_name: OsString::from(DISPLAY_NAME),
            service_type: ServiceType::OWN_PROCESS,
            start_type: ServiceStartType::AutoStart,
            error_control: ServiceErrorControl::Normal,
            executable_path: exe.clone(),
            launch_arguments: vec![OsString::from("service"), OsString::from("run")],
            dependencies: vec![],
            account_name: None,
            account_password: None,
        };
        let service = manager
            .create_service(&info, ServiceAccess::CHANGE_CONFIG)
            .with_context(|| format!("creating service {SERVICE_NAME}"))?;
        service
            .set_description(DESCRIPTION)
            .context("setting the service description")?;
        Ok(format!(
            "installed service {SERVICE_NAME} ({}) running `{} service run`; set the PERRY_* variables for it, then `sc start {SERVICE_NAME}`",
            DISPLAY_NAME,
            exe.display()
        ))
    }

    pub(crate) fn uninstall() -> anyhow::Result<String> {
        let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
            .context("opening the Service Control Manager (run as Administrator)")?;
        let service = manager
            .open_service(
                SERVICE_NAME,
                ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
            )
            .with_context(|| format!("opening service {SERVICE_NAME}"))?;
        let status = service.query_status().context("querying the service")?;
        if status.current_state != ServiceState::Stopped {
            service.stop().context("stopping the service")?;
            let deadline = Instant::now() + UNINSTALL_STOP_WAIT;
            while service.query_status()?.current_state != ServiceState::Stopped {
                if Instant::now() > deadline {
                    anyhow::bail!("the service did not stop within {UNINSTALL_STOP_WAIT:?}");
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        service.delete().context("deleting the service")?;
        Ok(format!("removed service {SERVICE_NAME}"))
    }

    /// Hands this process to the SCM; returns when the service has stopped.
    pub(crate) fn run_dispatcher() -> anyhow::Result<String> {
        service_dispatcher::start(SERVICE_NAME, ffi_service_main)
            .context("connecting to the Service Control Manager (`service run` is started by the SCM, not by hand)")?;
        Ok(String::new())
    }

    /// Stop and shutdown mean drain: cancel `shutdown`, which the worker treats as SIGTERM.
    fn on_control(
        control: ServiceControl,
        shutdown: &CancellationToken,
    ) -> ServiceControlHandlerResult {
        match control {
            ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
                shutdown.cancel();
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        }
    }

    fn status(state: ServiceState, checkpoint: u32, exit_code: ServiceExitCode) -> ServiceStatus {
        ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: if state == ServiceState::Running {
                ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
            } else {
                ServiceControlAccept::empty()
            },
            exit_code,
            checkpoint,
            wait_hint: if state == ServiceState::StopPending {
                STOP_WAIT_HINT
            } else {
                Duration::ZERO
            },
            process_id: None,
        }
    }

    fn service_main(_arguments: Vec<OsString>) {
        let shutdown = CancellationToken::new();
        let on_stop = shutdown.clone();
        let handle = match service_control_handler::register(SERVICE_NAME, move |control| {
            on_control(control, &on_stop)
        }) {
            Ok(handle) => handle,
            Err(e) => {
                eprintln!("error: cannot register the service control handler: {e}");
                return;
            }
        };
        let report = move |state, checkpoint, exit_code| {
            if let Err(e) = handle.set_service_status(status(state, checkpoint, exit_code)) {
                tracing::warn!("cannot report service state {state:?}: {e}");
            }
        };
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                report(
                    ServiceState::Stopped,
                    0,
                    ServiceExitCode::ServiceSpecific(1),
                );
                return;
            }
        };
        report(ServiceState::Running, 0, ServiceExitCode::NO_ERROR);
        let succeeded = runtime.block_on(async {
            let draining = shutdown.clone();
            tokio::spawn(async move {
                draining.cancelled().await;
                tracing::info!("service stop: draining running jobs");
                // Tell the SCM the drain is progressing so it does not give up on us.
                for checkpoint in 1.. {
                    report(
                        ServiceState::StopPending,
                        checkpoint,
                        ServiceExitCode::NO_ERROR,
                    );
                    tokio::time::sleep(STOP_WAIT_HINT / 3).await;
                }
            });
            super::super::run::serve(Default::default(), shutdown).await
                == std::process::ExitCode::SUCCESS
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
        let exit_code = if succeeded {
            ServiceExitCode::NO_ERROR
        } else {
            ServiceExitCode::ServiceSpecific(1)
        };
        report(ServiceState::Stopped, 0, exit_code);
    }
}
