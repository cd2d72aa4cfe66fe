//! Fleet settings: what the worker does when it has been idle (`PERRY_IDLE_TIMEOUT`,
//! `PERRY_IDLE_ACTION`, `PERRY_IDLE_COMMAND`), how many jobs it takes before it exits
//! (`PERRY_MAX_JOBS`), who may pause it over HTTP (`PERRY_CONTROL_ALLOW_REMOTE`), and how
//! it reaches Azure to deallocate its own VM (`PERRY_AZURE_IMDS_URL`, `PERRY_AZURE_ARM_URL`,
//! `AZURE_TENANT_ID` / `AZURE_CLIENT_ID` / `AZURE_CLIENT_SECRET`).

use super::{bad, http_url, parse_bool, parse_int, parse_secs, ConfigError};
use crate::job::credentials::Secret;
use std::time::Duration;

/// What the worker does after `PERRY_IDLE_TIMEOUT` without a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IdleAction {
    /// Exit with status 0.
    Exit,
    /// Deallocate this Azure VM through Azure Resource Manager, then exit 0.
    AzureDeallocate,
    /// Run this program (argv, no shell), then exit 0.
    Command(Vec<String>),
}

impl IdleAction {
    /// The `PERRY_IDLE_ACTION` value naming this action.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            IdleAction::Exit => "exit",
            IdleAction::AzureDeallocate => "azure-deallocate",
            IdleAction::Command(_) => "command",
        }
    }
}

/// A service principal that may deallocate the VM (else its managed identity is used).
#[derive(Clone, Debug)]
pub(crate) struct ServicePrincipal {
    /// `AZURE_TENANT_ID`: the Entra ID tenant.
    pub(crate) tenant_id: String,
    /// `AZURE_CLIENT_ID`: the application's client id.
    pub(crate) client_id: String,
    /// `AZURE_CLIENT_SECRET`: the application's secret.
    pub(crate) client_secret: Secret,
}

/// How the worker reaches Azure for `azure-deallocate`. Real services by default; tests
/// point the URLs at local stand-ins.
#[derive(Clone, Debug)]
pub(crate) struct AzureVmSettings {
    /// `PERRY_AZURE_IMDS_URL`, default `http://169.254.169.254`.
    pub(crate) imds_url: String,
    /// `PERRY_AZURE_ARM_URL`, default `https://management.azure.com`.
    pub(crate) arm_url: String,
    /// `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET`, all three or none.
    pub(crate) service_principal: Option<ServicePrincipal>,
    /// `AZURE_CLIENT_ID` alone: the client id of a user-assigned managed identity.
    pub(crate) managed_identity_client_id: Option<String>,
}

/// Fleet settings: idle timeout and action, job limit, pause control, Azure access.
#[derive(Clone, Debug)]
pub(crate) struct FleetConfig {
    /// `PERRY_IDLE_TIMEOUT`: off (None) by default.
    pub(crate) idle_timeout: Option<Duration>,
    /// `PERRY_IDLE_ACTION`: what to do once idle (default: exit).
    pub(crate) idle_action: IdleAction,
    /// `PERRY_MAX_JOBS` (or `run --max-jobs`): exit 0 after this many jobs ended.
    pub(crate) max_jobs: Option<u64>,
    /// `PERRY_CONTROL_ALLOW_REMOTE`: `POST /pause` and `/resume` from non-loopback clients.
    pub(crate) control_allow_remote: bool,
    /// How to reach Azure for [`IdleAction::AzureDeallocate`].
    pub(crate) azure: AzureVmSettings,
}

/// Reads the fleet variables through `var` (trimmed, empty = unset).
pub(super) fn parse_fleet(
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<FleetConfig, ConfigError> {
    let idle_timeout = match var("PERRY_IDLE_TIMEOUT") {
        None => None,
        Some(v) => Some(parse_secs("PERRY_IDLE_TIMEOUT", Some(v), 0)?),
    };
    let command = var("PERRY_IDLE_COMMAND");
    let idle_action = match var("PERRY_IDLE_ACTION").as_deref() {
        None | Some("exit") => IdleAction::Exit,
        Some("azure-deallocate") => IdleAction::AzureDeallocate,
        Some("command") => {
            let Some(line) = &command else {
                return Err(bad(
                    "PERRY_IDLE_COMMAND",
                    "is required when PERRY_IDLE_ACTION is command",
                ));
            };
            let argv = shlex::split(line)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| {
                    bad(
                        "PERRY_IDLE_COMMAND",
                        "is not a command line (unbalanced quotes?)",
                    )
                })?;
            IdleAction::Command(argv)
        }
        Some(other) => {
            return Err(bad(
                "PERRY_IDLE_ACTION",
                format!("{other:?} is not one of exit, azure-deallocate, command"),
            ))
        }
    };
    if command.is_some() && !matches!(idle_action, IdleAction::Command(_)) {
        return Err(bad(
            "PERRY_IDLE_COMMAND",
            "is set but PERRY_IDLE_ACTION is not command",
        ));
    }
    if idle_timeout.is_none() && var("PERRY_IDLE_ACTION").is_some() {
        return Err(bad(
            "PERRY_IDLE_ACTION",
            "has no effect without PERRY_IDLE_TIMEOUT",
        ));
    }
    let max_jobs = match var("PERRY_MAX_JOBS") {
        None => None,
        Some(v) => Some(parse_int("PERRY_MAX_JOBS", Some(v), 1, 1, 1_000_000)?),
    };
    let azure = parse_azure(var, idle_action == IdleAction::AzureDeallocate)?;
    Ok(FleetConfig {
        idle_timeout,
        idle_action,
        max_jobs,
        control_allow_remote: parse_bool(
            "PERRY_CONTROL_ALLOW_REMOTE",
            var("PERRY_CONTROL_ALLOW_REMOTE"),
            false,
        )?,
        azure,
    })
}

/// The Azure settings; `AZURE_*` (generic names other tools use too) are read only when
/// `deallocating`.
fn parse_azure(
    var: &dyn Fn(&str) -> Option<String>,
    deallocating: bool,
) -> Result<AzureVmSettings, ConfigError> {
    let imds_url = http_url(
        "PERRY_AZURE_IMDS_URL",
        var("PERRY_AZURE_IMDS_URL"),
        "http://169.254.169.254".into(),
    )?;
    let arm_url = http_url(
        "PERRY_AZURE_ARM_URL",
        var("PERRY_AZURE_ARM_URL"),
        "https://management.azure.com".into(),
    )?;
    let azure_var = |name: &str| if deallocating { var(name) } else { None };
    let tenant = azure_var("AZURE_TENANT_ID");
    let client_id = azure_var("AZURE_CLIENT_ID");
    let secret = azure_var("AZURE_CLIENT_SECRET");
    let plain = |name: &'static str, v: &str| {
        if v.len() <= 256
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
        {
            Ok(())
        } else {
            Err(bad(name, "must be an id or domain (letters, digits, - .)"))
        }
    };
    if let Some(t) = &tenant {
        plain("AZURE_TENANT_ID", t)?;
    }
    if let Some(c) = &client_id {
        plain("AZURE_CLIENT_ID", c)?;
    }
    let (service_principal, managed_identity_client_id) = match (tenant, client_id, secret) {
        (None, client_id, None) => (None, client_id),
        (Some(tenant_id), Some(client_id), Some(secret)) => (
            Some(ServicePrincipal {
                tenant_id,
                client_id,
                client_secret: Secret::new(secret),
            }),
            None,
        ),
        (tenant, client_id, _) => {
            let missing = if tenant.is_none() {
                "AZURE_TENANT_ID"
            } else if client_id.is_none() {
                "AZURE_CLIENT_ID"
            } else {
                "AZURE_CLIENT_SECRET"
            };
            return Err(bad(
                missing,
                "is required: a service principal needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET",
            ));
        }
    };
    Ok(AzureVmSettings {
        imds_url,
        arm_url,
        service_principal,
        managed_identity_client_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<FleetConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_fleet(&|k: &str| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_off() {
        let f = parse(&[]).unwrap();
        assert_eq!(f.idle_timeout, None);
        assert_eq!(f.idle_action, IdleAction::Exit);
        assert_eq!(f.max_jobs, None);
        assert!(!f.control_allow_remote);
        assert_eq!(f.azure.imds_url, "http://169.254.169.254");
        assert_eq!(f.azure.arm_url, "https://management.azure.com");
        assert!(f.azure.service_principal.is_none());
    }

    #[test]
    fn idle_command_is_split_without_a_shell() {
        let f = parse(&[
            ("PERRY_IDLE_TIMEOUT", "300"),
            ("PERRY_IDLE_ACTION", "command"),
            ("PERRY_IDLE_COMMAND", "sudo shutdown -h 'now please'"),
        ])
        .unwrap();
        assert_eq!(f.idle_timeout, Some(Duration::from_secs(300)));
        assert_eq!(
            f.idle_action,
            IdleAction::Command(vec![
                "sudo".into(),
                "shutdown".into(),
                "-h".into(),
                "now please".into()
            ])
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let var = |pairs: &[(&str, &str)]| parse(pairs).unwrap_err().var;
        assert_eq!(var(&[("PERRY_IDLE_TIMEOUT", "soon")]), "PERRY_IDLE_TIMEOUT");
        assert_eq!(
            var(&[("PERRY_IDLE_TIMEOUT", "5"), ("PERRY_IDLE_ACTION", "sleep")]),
            "PERRY_IDLE_ACTION"
        );
        assert_eq!(var(&[("PERRY_IDLE_ACTION", "exit")]), "PERRY_IDLE_ACTION");
        assert_eq!(
            var(&[
                ("PERRY_IDLE_TIMEOUT", "5"),
                ("PERRY_IDLE_ACTION", "command")
            ]),
            "PERRY_IDLE_COMMAND"
        );
        assert_eq!(
            var(&[
                ("PERRY_IDLE_TIMEOUT", "5"),
                ("PERRY_IDLE_ACTION", "command"),
                ("PERRY_IDLE_COMMAND", "echo 'unclosed")
            ]),
            "PERRY_IDLE_COMMAND"
        );
        assert_eq!(
            var(&[("PERRY_IDLE_TIMEOUT", "5"), ("PERRY_IDLE_COMMAND", "true")]),
            "PERRY_IDLE_COMMAND"
        );
        assert_eq!(var(&[("PERRY_MAX_JOBS", "0")]), "PERRY_MAX_JOBS");
        assert_eq!(
            var(&[("PERRY_AZURE_ARM_URL", "ftp://x")]),
            "PERRY_AZURE_ARM_URL"
        );
        let dealloc = |extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("PERRY_IDLE_TIMEOUT", "300"),
                ("PERRY_IDLE_ACTION", "azure-deallocate"),
            ];
            pairs.extend_from_slice(extra);
            parse(&pairs).unwrap_err().var
        };
        assert_eq!(
            dealloc(&[("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c")]),
            "AZURE_CLIENT_SECRET"
        );
        assert_eq!(dealloc(&[("AZURE_CLIENT_SECRET", "s")]), "AZURE_TENANT_ID");
        assert_eq!(dealloc(&[("AZURE_TENANT_ID", "a/b")]), "AZURE_TENANT_ID");
    }

    #[test]
    fn azure_variables_are_ignored_unless_deallocating() {
        let f = parse(&[("AZURE_CLIENT_SECRET", "for-another-tool")]).unwrap();
        assert!(f.azure.service_principal.is_none());
    }

    #[test]
    fn a_service_principal_needs_all_three_and_its_secret_stays_hidden() {
        let f = parse(&[
            ("PERRY_IDLE_TIMEOUT", "300"),
            ("PERRY_IDLE_ACTION", "azure-deallocate"),
            ("AZURE_TENANT_ID", "contoso.onmicrosoft.com"),
            ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
            ("AZURE_CLIENT_SECRET", "hunter2-secret"),
        ])
        .unwrap();
        let sp = f.azure.service_principal.as_ref().unwrap();
        assert_eq!(sp.client_secret.expose(), "hunter2-secret");
        assert!(!format!("{f:?}").contains("hunter2"));
        let user_assigned = parse(&[
            ("PERRY_IDLE_TIMEOUT", "300"),
            ("PERRY_IDLE_ACTION", "azure-deallocate"),
            ("AZURE_CLIENT_ID", "abc-123"),
        ])
        .unwrap();
        assert!(user_assigned.azure.service_principal.is_none());
        assert_eq!(
            user_assigned.azure.managed_identity_client_id.as_deref(),
            Some("abc-123")
        );
    }
}
