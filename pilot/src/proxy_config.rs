//! `bowline proxy-config ID`: what the control plane last sent a proxy,
//! beside what its Envoy runs. After a NACK the two differ: Envoy keeps
//! what it had and rejects the rest.
//!
//! ```text
//! --server URL ... ──GET /api/v1/proxies/{id}/config──► the sent set, per type (JSON, keys redacted)
//! --envoy-admin URL (default http://ADDRESS:15000) ──GET /config_dump──► the running set, per type
//! table: TYPE NAME SENT-VERSION RUNNING (active, rejected: Envoy's text, missing)
//! then the certificates Envoy holds (its admin's /certs: identity, serial, expiry; never keys)
//! ```

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

use crate::proxy_status::DEFAULT_SERVER;

#[derive(clap::Args, Debug)]
pub(crate) struct ProxyConfigArgs {
    /// The proxy: its node id, or `WORKLOAD.NAMESPACE`.
    pub(crate) id: String,
    /// One type only.
    #[arg(long = "type", value_name = "TYPE",
          value_parser = ["listener", "route", "cluster", "endpoint", "secret"])]
    pub(crate) ty: Option<String>,
    /// `table`, or `json` (the sent and the running sets in full).
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub(crate) output: crate::proxy_status::Output,
    /// A control plane's admin API; give it once per replica: the one the
    /// proxy is connected to answers [env: BOWLINE_SERVER; default:
    /// http://127.0.0.1:15014]
    #[arg(long = "server", value_name = "URL")]
    pub(crate) servers: Vec<String>,
    /// Bearer token for the admin API [env: BOWLINE_TOKEN]
    #[arg(long)]
    pub(crate) token: Option<String>,
    /// The proxy's Envoy admin, for the running set [default:
    /// http://ADDRESS:15000, the proxy's address]; `none` leaves it out.
    #[arg(long, value_name = "URL")]
    pub(crate) envoy_admin: Option<String>,
}

/// Runs the command: exit 1 when no control plane has the proxy.
pub(crate) async fn run(args: ProxyConfigArgs) -> anyhow::Result<()> {
    let servers = if args.servers.is_empty() {
        vec![std::env::var("BOWLINE_SERVER").unwrap_or_else(|_| DEFAULT_SERVER.to_string())]
    } else {
        args.servers.clone()
    };
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var("BOWLINE_TOKEN").ok());
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let mut sent = None;
    let mut errors = Vec::new();
    for server in &servers {
        let mut url = format!(
            "{}/api/v1/proxies/{}/config",
            server.trim_end_matches('/'),
            args.id
        );
        if let Some(ty) = &args.ty {
            url.push_str(&format!("?type={ty}"));
        }
        let mut request = client.get(&url);
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => {
                sent = Some(r.json::<Value>().await?);
                break;
            }
            Ok(r) => {
                let status = r.status();
                let body: Value = r.json().await.unwrap_or_default();
                errors.push(format!(
                    "{server}: {status}: {}",
                    body["error"].as_str().unwrap_or("")
                ));
            }
            Err(error) => errors.push(format!("{server}: {error}")),
        }
    }
    let Some(sent) = sent else {
        anyhow::bail!(
            "no control plane has proxy {}: {}",
            args.id,
            errors.join("; ")
        );
    };
    let admin = match args.envoy_admin.as_deref() {
        Some("none") => None,
        Some(url) => Some(url.trim_end_matches('/').to_string()),
        None => sent["address"]
            .as_str()
            .map(|address| format!("http://{address}:15000")),
    };
    let running = match &admin {
        None => Err("not asked for".to_string()),
        Some(admin) => {
            let url = format!("{admin}/config_dump?include_eds");
            match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                    Ok(dump) => Ok(running_set(&dump)),
                    Err(error) => Err(format!("{url}: {error}")),
                },
                Ok(r) => Err(format!("{url}: {}", r.status())),
                Err(error) => Err(format!("{url}: {error}")),
            }
        }
    };
    // The certificates Envoy holds (its admin's `/certs`: no key material),
    // with the secrets.
    let certificates = match (&admin, args.ty.as_deref()) {
        (Some(admin), None | Some("secret")) => {
            match client.get(format!("{admin}/certs")).send().await {
                Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
                _ => None,
            }
        }
        _ => None,
    };
    match args.output {
        crate::proxy_status::Output::Json => {
            let running = match &running {
                Ok(set) => serde_json::to_value(set)?,
                Err(error) => serde_json::json!({"error": error}),
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "proxy": sent["proxy"],
                    "sent": sent["types"],
                    "running": running,
                    "certificates": certificates.as_ref().map(|c| c["certificates"].clone()),
                }))?
            );
        }
        crate::proxy_status::Output::Table => {
            print!("{}", table(&sent, running.as_ref().ok()));
            if let Some(certificates) = &certificates {
                print!("{}", certificate_lines(certificates));
            }
            if let Err(error) = &running {
                eprintln!("the running set is left out: {error}");
            }
        }
    }
    Ok(())
}

/// One resource Envoy runs, or tried to and rejected.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub(crate) struct Running {
    /// `active`, `warming`, or `rejected` (with Envoy's text).
    pub(crate) state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    pub(crate) config: Value,
}

/// Type → name → what runs, from Envoy's `/config_dump`.
pub(crate) type RunningSet = BTreeMap<String, BTreeMap<String, Running>>;

/// The dynamic resources of an Envoy config dump, by the config view's
/// type names. Envoy writes its dump with the protos' own field names.
pub(crate) fn running_set(dump: &Value) -> RunningSet {
    let mut out = RunningSet::new();
    let mut put = |ty: &str, name: &str, running: Running| {
        out.entry(ty.to_string())
            .or_default()
            .insert(name.to_string(), running);
    };
    let ok = |state: &str, config: &Value| Running {
        state: state.to_string(),
        error: None,
        config: config.clone(),
    };
    for config in dump["configs"].as_array().into_iter().flatten() {
        let kind = config["@type"].as_str().unwrap_or_default();
        let list = |field: &str| config[field].as_array().cloned().unwrap_or_default();
        if kind.ends_with("ClustersConfigDump") {
            for c in list("dynamic_active_clusters") {
                put(
                    "cluster",
                    c["cluster"]["name"].as_str().unwrap_or(""),
                    ok("active", &c["cluster"]),
                );
            }
            for c in list("dynamic_warming_clusters") {
                put(
                    "cluster",
                    c["cluster"]["name"].as_str().unwrap_or(""),
                    ok("warming", &c["cluster"]),
                );
            }
        } else if kind.ends_with("ListenersConfigDump") {
            for l in list("dynamic_listeners") {
                let name = l["name"].as_str().unwrap_or("");
                if !l["active_state"].is_null() {
                    put(
                        "listener",
                        name,
                        ok("active", &l["active_state"]["listener"]),
                    );
                } else if !l["warming_state"].is_null() {
                    put(
                        "listener",
                        name,
                        ok("warming", &l["warming_state"]["listener"]),
                    );
                }
                if !l["error_state"].is_null() && l["active_state"].is_null() {
                    put(
                        "listener",
                        name,
                        Running {
                            state: "rejected".to_string(),
                            error: l["error_state"]["details"].as_str().map(str::to_string),
                            config: l["error_state"]["failed_configuration"].clone(),
                        },
                    );
                }
            }
        } else if kind.ends_with("RoutesConfigDump") {
            for r in list("dynamic_route_configs") {
                let config = &r["route_config"];
                put(
                    "route",
                    config["name"].as_str().unwrap_or(""),
                    ok("active", config),
                );
            }
        } else if kind.ends_with("EndpointsConfigDump") {
            for e in list("dynamic_endpoint_configs") {
                let config = &e["endpoint_config"];
                put(
                    "endpoint",
                    config["cluster_name"].as_str().unwrap_or(""),
                    ok("active", config),
                );
            }
        } else if kind.ends_with("SecretsConfigDump") {
            for s in list("dynamic_active_secrets") {
                put(
                    "secret",
                    s["name"].as_str().unwrap_or(""),
                    ok("active", &s["secret"]),
                );
            }
        }
    }
    out
}

/// The sent resources, a row each, with what runs of each (when known).
pub(crate) fn table(sent: &Value, running: Option<&RunningSet>) -> String {
    let mut rows = vec![vec![
        "TYPE".to_string(),
        "NAME".to_string(),
        "SENT VERSION".to_string(),
        "RUNNING".to_string(),
    ]];
    for (ty, set) in sent["types"].as_object().into_iter().flatten() {
        let version = set["version"].as_str().unwrap_or("");
        for resource in set["resources"].as_array().into_iter().flatten() {
            let name = resource["name"].as_str().unwrap_or("");
            let state = match running {
                None => "-".to_string(),
                Some(running) => match running.get(ty.as_str()).and_then(|m| m.get(name)) {
                    None => "missing".to_string(),
                    Some(r) => match &r.error {
                        Some(error) => format!("{}: {}", r.state, error.trim()),
                        None => r.state.clone(),
                    },
                },
            };
            rows.push(vec![
                ty.clone(),
                name.to_string(),
                version.to_string(),
                state,
            ]);
        }
    }
    let widths: Vec<usize> = (0..3)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let _ = writeln!(
            out,
            "{:<w0$}   {:<w1$}   {:<w2$}   {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    out
}

/// A line per certificate of Envoy's `/certs`: which chain (the workload's
/// or a CA's), its identity, serial number and expiry.
pub(crate) fn certificate_lines(certs: &Value) -> String {
    let mut out = String::new();
    for entry in certs["certificates"].as_array().into_iter().flatten() {
        for (what, field) in [("certificate", "cert_chain"), ("ca", "ca_cert")] {
            for cert in entry[field].as_array().into_iter().flatten() {
                let ids: Vec<&str> = cert["subject_alt_names"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|san| san["uri"].as_str().or(san["dns"].as_str()))
                    .collect();
                let _ = writeln!(
                    out,
                    "{what}   {}   serial {}   expires {}",
                    if ids.is_empty() {
                        cert["subject"].as_str().unwrap_or("-").to_string()
                    } else {
                        ids.join(",")
                    },
                    cert["serial_number"].as_str().unwrap_or("-"),
                    cert["expiration_time"].as_str().unwrap_or("-"),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_set_reads_envoys_dump_and_a_rejected_listener_shows() {
        let dump = serde_json::json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
             "dynamic_listeners": [
                {"name": "outbound", "active_state": {"version_info": "a", "listener": {"name": "outbound"}}},
                {"name": "inbound|10.0.0.1|7777", "error_state": {
                    "failed_configuration": {"name": "inbound|10.0.0.1|7777"},
                    "details": "cannot bind '10.0.0.1:7777': Address already in use"}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
             "dynamic_active_clusters": [{"cluster": {"name": "outbound|80||a"}}]}]});
        let running = running_set(&dump);
        assert_eq!(running["listener"]["outbound"].state, "active");
        let rejected = &running["listener"]["inbound|10.0.0.1|7777"];
        assert_eq!(rejected.state, "rejected");
        assert!(
            rejected
                .error
                .as_deref()
                .unwrap()
                .contains("Address already in use")
        );

        let sent = serde_json::json!({"types": {
            "cluster": {"version": "v1", "resources": [{"name": "outbound|80||a"}, {"name": "outbound|80||b"}]},
            "listener": {"version": "v2", "resources": [{"name": "inbound|10.0.0.1|7777"}, {"name": "outbound"}]}}});
        let text = table(&sent, Some(&running));
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().take(4).collect())
            .collect();
        assert_eq!(lines[0], ["TYPE", "NAME", "SENT", "VERSION"]);
        assert_eq!(lines[1], ["cluster", "outbound|80||a", "v1", "active"]);
        assert_eq!(lines[2], ["cluster", "outbound|80||b", "v1", "missing"]);
        assert_eq!(
            lines[3],
            ["listener", "inbound|10.0.0.1|7777", "v2", "rejected:"]
        );
        assert!(text.contains("Address already in use"), "{text}");
        assert_eq!(lines[4], ["listener", "outbound", "v2", "active"]);
    }
}
