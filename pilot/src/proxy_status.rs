//! `bowline proxy-status`: every connected proxy's sync state per xDS
//! type, as `istioctl proxy-status` shows it, from `GET /api/v1/proxies` of
//! one control plane or several (each replica serves its own proxies; the
//! answers are merged).
//!
//! ```text
//! --server URL ... ──GET /api/v1/proxies──► [ProxyStatus] ──table()──► NAME CDS LDS EDS RDS SDS SERVER
//!                                                           └─ then one line per NACK, with Envoy's text
//! ```
//!
//! Per type: `SYNCED` (the version sent is the one ACKed), `NACK` (the
//! version sent was rejected), `STALE` (sent, not ACKed yet), `NOT SENT`
//! (asked for, nothing sent yet), `-` (not asked for).

use std::fmt::Write;

use pilot_core::resources::ResourceType;
use pilot_core::xds::status::TypeStatus;
use pilot_server::xds::ProxyStatus;

/// The control plane's admin API when none is named.
pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:15014";

#[derive(clap::Args, Debug)]
pub(crate) struct ProxyStatusArgs {
    /// A control plane's admin API; give it once per replica to merge
    /// their proxies [env: BOWLINE_SERVER; default: http://127.0.0.1:15014]
    #[arg(long = "server", value_name = "URL")]
    pub(crate) servers: Vec<String>,
    /// Bearer token for the admin API [env: BOWLINE_TOKEN]
    #[arg(long)]
    pub(crate) token: Option<String>,
    /// `table`, or `json` (the merged /api/v1/proxies answers, each with its server).
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub(crate) output: Output,
    /// With --kubernetes: ask every replica, found from the ready endpoints
    /// of this Service (NAMESPACE/NAME), at its port http-admin.
    #[arg(
        long,
        value_name = "NAMESPACE/NAME",
        default_value = "istio-system/istiod"
    )]
    pub(crate) control_plane: String,
    #[command(flatten)]
    pub(crate) cluster: crate::config_cli::Cluster,
}

/// The replicas' admin URLs, from the control plane's Service's endpoints.
async fn replicas(args: &ProxyStatusArgs) -> anyhow::Result<Vec<String>> {
    use discovery_kubernetes::replicas::{ControlPlaneService, admin_addresses_of};
    let Some(service) = ControlPlaneService::parse(&args.control_plane) else {
        return Err(crate::config_cli::fail(
            2,
            format!(
                "--control-plane {}: give NAMESPACE/NAME",
                args.control_plane
            ),
        ));
    };
    let client = args.cluster.client().await?;
    let found = admin_addresses_of(client, &service).await.map_err(|e| {
        crate::config_cli::fail(
            1,
            format!(
                "the endpoints of {}/{}: {e}",
                service.namespace, service.name
            ),
        )
    })?;
    if found.is_empty() {
        return Err(crate::config_cli::fail(
            1,
            format!(
                "the Service {}/{} has no ready endpoint at a port named {}",
                service.namespace, service.name, service.port_name
            ),
        ));
    }
    Ok(found.into_iter().map(|a| format!("http://{a}")).collect())
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    Table,
    Json,
}

/// The columns after NAME, in istioctl's order (CDS, LDS, EDS, RDS), then SDS.
const COLUMNS: [(&str, ResourceType); 5] = [
    ("CDS", ResourceType::Cluster),
    ("LDS", ResourceType::Listener),
    ("EDS", ResourceType::Endpoint),
    ("RDS", ResourceType::Route),
    ("SDS", ResourceType::Secret),
];

/// The sync state of one type.
pub(crate) fn state(status: Option<&TypeStatus>) -> &'static str {
    let Some(s) = status else {
        return "-";
    };
    match (&s.sent_version, &s.acked_version, &s.nack) {
        (None, _, _) => "NOT SENT",
        (Some(sent), Some(acked), _) if sent == acked => "SYNCED",
        (Some(sent), _, Some(nack)) if nack.version == *sent => "NACK",
        _ => "STALE",
    }
}

/// The name istioctl shows: `WORKLOAD.NAMESPACE`.
fn name(proxy: &ProxyStatus) -> String {
    format!("{}.{}", proxy.workload, proxy.namespace)
}

/// The table of `proxies` (each with the server that answered for it),
/// sorted by name, then the NACKs with Envoy's error text.
pub(crate) fn table(proxies: &[(String, ProxyStatus)]) -> String {
    let mut rows: Vec<Vec<String>> = vec![
        std::iter::once("NAME")
            .chain(COLUMNS.iter().map(|(c, _)| *c))
            .chain(["SERVER"])
            .map(str::to_string)
            .collect(),
    ];
    let mut sorted: Vec<&(String, ProxyStatus)> = proxies.iter().collect();
    sorted.sort_by(|a, b| (name(&a.1), &a.0).cmp(&(name(&b.1), &b.0)));
    let mut nacks = Vec::new();
    for (server, proxy) in &sorted {
        let mut row = vec![name(proxy)];
        for (column, ty) in COLUMNS {
            let status = proxy.xds.get(ty.type_url());
            let state = state(status);
            if state == "NACK"
                && let Some(nack) = status.and_then(|s| s.nack.as_ref())
            {
                let mut line = format!(
                    "NACK {} {column} version {}: {}",
                    name(proxy),
                    nack.version,
                    nack.message.trim()
                );
                for object in &nack.objects {
                    let at = match (&object.file, object.document) {
                        (Some(file), Some(document)) => format!(" ({file}, document {document})"),
                        (Some(file), None) => format!(" ({file})"),
                        _ => String::new(),
                    };
                    let _ = write!(
                        line,
                        "\n  from {} {}/{}{at}: {}",
                        object.kind, object.namespace, object.name, object.resource
                    );
                }
                nacks.push(line);
            }
            row.push(state.to_string());
        }
        row.push(server.clone());
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("   ").trim_end());
    }
    for nack in nacks {
        let _ = writeln!(out, "\n{nack}");
    }
    out
}

/// Runs the command; an error (exit code 1) when a server could not be
/// asked, after the proxies of those that answered are shown.
pub(crate) async fn run(args: ProxyStatusArgs) -> anyhow::Result<()> {
    let servers = if args.cluster.client_wanted() {
        let mut servers = args.servers.clone();
        servers.extend(replicas(&args).await?);
        servers
    } else if args.servers.is_empty() {
        vec![std::env::var("BOWLINE_SERVER").unwrap_or_else(|_| DEFAULT_SERVER.to_string())]
    } else {
        args.servers.clone()
    };
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var("BOWLINE_TOKEN").ok());
    let client = reqwest::Client::new();
    let mut proxies = Vec::new();
    let mut failed = 0;
    for server in &servers {
        let url = format!("{}/api/v1/proxies", server.trim_end_matches('/'));
        let mut request = client.get(&url);
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let answer = async {
            let response = request.send().await?.error_for_status()?;
            response.json::<Vec<ProxyStatus>>().await
        };
        match answer.await {
            Ok(list) => proxies.extend(list.into_iter().map(|p| (server.clone(), p))),
            Err(error) => {
                eprintln!("error: {url}: {error}");
                failed += 1;
            }
        }
    }
    match args.output {
        Output::Table => print!("{}", table(&proxies)),
        Output::Json => {
            let merged: Vec<serde_json::Value> = proxies
                .iter()
                .map(|(server, p)| {
                    let mut value = serde_json::to_value(p).unwrap_or_default();
                    value["server"] = serde_json::Value::from(server.as_str());
                    value
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&merged)?);
        }
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} control planes could not be asked",
        servers.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::xds::status::Nack;

    fn typed(sent: Option<&str>, acked: Option<&str>, nack: Option<&str>) -> TypeStatus {
        TypeStatus {
            sent_version: sent.map(str::to_string),
            acked_version: acked.map(str::to_string),
            nack: nack.map(|v| Nack {
                version: v.to_string(),
                message: "Error adding/updating listener(s) 127.0.1.2_7777: cannot bind"
                    .to_string(),
                objects: Vec::new(),
            }),
            ..TypeStatus::default()
        }
    }

    #[test]
    fn each_type_reads_as_istioctl_says_it() {
        assert_eq!(state(None), "-");
        assert_eq!(state(Some(&typed(None, None, None))), "NOT SENT");
        assert_eq!(state(Some(&typed(Some("a"), Some("a"), None))), "SYNCED");
        assert_eq!(state(Some(&typed(Some("b"), Some("a"), None))), "STALE");
        assert_eq!(state(Some(&typed(Some("b"), Some("a"), Some("b")))), "NACK");
        // A NACK of an older version, since ACKed over: synced.
        assert_eq!(
            state(Some(&typed(Some("c"), Some("c"), Some("b")))),
            "SYNCED"
        );
        // A NACK of an older version, and the newer one not ACKed yet: stale.
        assert_eq!(
            state(Some(&typed(Some("c"), Some("a"), Some("b")))),
            "STALE"
        );
    }

    fn proxy(workload: &str, xds: &[(ResourceType, TypeStatus)]) -> ProxyStatus {
        let value = serde_json::json!({
            "id": format!("sidecar~127.0.1.1~{workload}.shop~shop.svc.cluster.local"),
            "namespace": "shop",
            "workload": workload,
            "address": "127.0.1.1",
            "mode": "sotw",
            "stream_id": 1,
            "nacks": 0,
            "generation": 3,
            "acked_generation": null,
            "xds": xds
                .iter()
                .map(|(ty, s)| (ty.type_url().to_string(), serde_json::to_value(s).unwrap()))
                .collect::<serde_json::Map<_, _>>(),
        });
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_table_merges_servers_sorts_by_name_and_lists_nacks() {
        let synced = typed(Some("v1"), Some("v1"), None);
        let proxies = vec![
            (
                "http://b:15014".to_string(),
                proxy(
                    "reviews",
                    &[
                        (ResourceType::Cluster, synced.clone()),
                        (
                            ResourceType::Listener,
                            typed(Some("v2"), Some("v1"), Some("v2")),
                        ),
                    ],
                ),
            ),
            (
                "http://a:15014".to_string(),
                proxy("frontend", &[(ResourceType::Cluster, synced)]),
            ),
        ];
        let text = table(&proxies);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..3],
            [
                "NAME            CDS      LDS    EDS   RDS   SDS   SERVER",
                "frontend.shop   SYNCED   -      -     -     -     http://a:15014",
                "reviews.shop    SYNCED   NACK   -     -     -     http://b:15014",
            ],
            "{text}"
        );
        assert!(
            text.contains(
                "NACK reviews.shop LDS version v2: Error adding/updating listener(s) 127.0.1.2_7777: cannot bind"
            ),
            "{text}"
        );
    }
}
