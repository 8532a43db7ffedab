//! The mesh generator (`bowline bench mesh`) and the edits the scenarios make.
//!
//! A mesh of S services in K namespaces (service `svcN` lives in namespace
//! `ns{N mod K}`), each with E WorkloadEntries at distinct loopback addresses,
//! a DestinationRule with subsets v1 and v2, and a VirtualService splitting
//! 90/10 between them. With a Sidecar scope of M, each namespace gets one
//! default Sidecar whose egress admits M services: namespace k admits
//! `svc{kM}` up to `svc{kM+M-1}` (modulo S), so scopes do not overlap while
//! K × M ≤ S and a change to one service is visible to one namespace only.
//!
//! Layout, one object family per file so that an edit rewrites one small file:
//!
//! ```text
//! DIR/bench-mesh.json            the spec (not YAML: the server ignores it)
//! DIR/ns{k}/sidecar.yaml         with --sidecar-scope
//! DIR/ns{k}/svc{s}.yaml          Service + DestinationRule
//! DIR/ns{k}/svc{s}-vs.yaml       VirtualService, carrying the revision marker
//! DIR/ns{k}/svc{s}-wl{e}.yaml    one WorkloadEntry
//! ```
//!
//! Every route of a VirtualService sets the request header
//! [`MARKER_HEADER`] to `svc{s}-r{revision}`; a bump raises the revision and
//! shifts the split, so the harness can tell by content that a proxy holds the
//! new routes. A move flips one WorkloadEntry between its home address and a
//! second address reserved for it. Edits write a hidden temporary file and
//! rename it over the old one, so the server never reads half a file.

use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The request header whose value marks a VirtualService's revision.
pub const MARKER_HEADER: &str = "x-bench-revision";
/// The file in the config directory that records the spec.
pub const SPEC_FILE: &str = "bench-mesh.json";
/// The port every generated service serves on.
pub const SERVICE_PORT: u16 = 8080;

/// First address of the workloads: 127.64.0.1 onwards, inside loopback.
const ADDRESS_BASE: u32 = u32::from_be_bytes([127, 64, 0, 0]);
/// Addresses up to 127.127.255.255 (the 127.64.0.0/10 block).
const ADDRESS_SPACE: u32 = 1 << 22;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a mesh written by `bowline bench mesh`: {reason}")]
    Spec { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {object}: {field}: {reason}")]
    Edit {
        path: PathBuf,
        object: String,
        field: &'static str,
        reason: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Flags of `bowline bench mesh`.
#[derive(clap::Args, Debug, Clone)]
pub struct MeshArgs {
    /// Directory to write (created; existing generated files are overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of services.
    #[arg(long, default_value_t = 10)]
    pub services: usize,
    /// WorkloadEntries per service.
    #[arg(long, default_value_t = 10)]
    pub endpoints: usize,
    /// Namespaces the services are spread over, round-robin.
    #[arg(long, default_value_t = 1)]
    pub namespaces: usize,
    /// Give each namespace a Sidecar admitting about this many services.
    #[arg(long)]
    pub sidecar_scope: Option<usize>,
}

/// The shape of a generated mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshSpec {
    pub services: usize,
    pub endpoints: usize,
    pub namespaces: usize,
    pub sidecar_scope: Option<usize>,
}

/// The identity of one generated workload, as its sidecar declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub name: String,
    pub namespace: String,
    pub address: Ipv4Addr,
    pub service_account: String,
    /// `app` and `version`, as on the WorkloadEntry.
    pub labels: Vec<(String, String)>,
}

/// What an edit changed, for the harness to look for in the proxies' config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Edit {
    /// The routes of `service` now carry `marker` in [`MARKER_HEADER`].
    Routes { service: String, marker: String },
    /// An endpoint of `service` moved from `from` to `to`.
    Endpoint {
        service: String,
        from: Ipv4Addr,
        to: Ipv4Addr,
    },
}

impl Edit {
    /// The FQDN of the service the edit touched.
    pub fn service(&self) -> &str {
        match self {
            Edit::Routes { service, .. } | Edit::Endpoint { service, .. } => service,
        }
    }
}

impl MeshSpec {
    pub fn new(
        services: usize,
        endpoints: usize,
        namespaces: usize,
        sidecar_scope: Option<usize>,
    ) -> Result<Self> {
        let spec = MeshSpec {
            services,
            endpoints,
            namespaces,
            sidecar_scope,
        };
        spec.check()?;
        Ok(spec)
    }

    fn check(&self) -> Result<()> {
        if self.services == 0 || self.endpoints == 0 || self.namespaces == 0 {
            return Err(Error::Invalid(
                "--services, --endpoints and --namespaces must be at least 1".into(),
            ));
        }
        if self.sidecar_scope == Some(0) {
            return Err(Error::Invalid("--sidecar-scope must be at least 1".into()));
        }
        // Every workload has a home and a moved address.
        let needed = self
            .workloads()
            .checked_mul(2)
            .and_then(|n| u32::try_from(n).ok());
        if needed.is_none_or(|n| n >= ADDRESS_SPACE) {
            return Err(Error::Invalid(format!(
                "{} services x {} endpoints do not fit the 127.64.0.0/10 addresses (at most {} workloads)",
                self.services,
                self.endpoints,
                ADDRESS_SPACE / 2 - 1
            )));
        }
        Ok(())
    }

    /// Number of WorkloadEntries.
    pub fn workloads(&self) -> usize {
        self.services.saturating_mul(self.endpoints)
    }

    pub fn service_name(&self, s: usize) -> String {
        format!("svc{s}")
    }

    pub fn namespace(&self, s: usize) -> String {
        format!("ns{}", s % self.namespaces)
    }

    pub fn fqdn(&self, s: usize) -> String {
        format!("svc{s}.{}.svc.cluster.local", self.namespace(s))
    }

    /// The address workload `w` has before any move.
    pub fn home_address(&self, w: usize) -> Ipv4Addr {
        address(w)
    }

    /// The address workload `w` moves to (and back from).
    pub fn moved_address(&self, w: usize) -> Ipv4Addr {
        address(self.workloads() + w)
    }

    /// Workload `w` (service `w / E`, endpoint `w mod E`) at its home address.
    pub fn workload(&self, w: usize) -> Workload {
        let (s, e) = (w / self.endpoints, w % self.endpoints);
        Workload {
            name: format!("svc{s}-{e}"),
            namespace: self.namespace(s),
            address: self.home_address(w),
            service_account: self.service_name(s),
            labels: vec![
                ("app".into(), self.service_name(s)),
                ("version".into(), format!("v{}", 1 + e % 2)),
            ],
        }
    }

    /// The services namespace `k`'s Sidecar admits.
    pub fn scope(&self, k: usize) -> Vec<usize> {
        let m = self.sidecar_scope.unwrap_or(0).min(self.services);
        (0..m).map(|j| (k * m + j) % self.services).collect()
    }

    /// Reads the spec a generated directory records.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(SPEC_FILE);
        let text = fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let spec: MeshSpec = serde_json::from_str(&text).map_err(|e| Error::Spec {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        spec.check().map_err(|e| Error::Spec {
            path,
            reason: e.to_string(),
        })?;
        Ok(spec)
    }

    fn dir_of(&self, root: &Path, s: usize) -> PathBuf {
        root.join(self.namespace(s))
    }

    fn vs_path(&self, root: &Path, s: usize) -> PathBuf {
        self.dir_of(root, s).join(format!("svc{s}-vs.yaml"))
    }

    fn workload_path(&self, root: &Path, w: usize) -> PathBuf {
        let (s, e) = (w / self.endpoints, w % self.endpoints);
        self.dir_of(root, s).join(format!("svc{s}-wl{e}.yaml"))
    }
}

fn address(i: usize) -> Ipv4Addr {
    // `check` keeps every index below ADDRESS_SPACE.
    Ipv4Addr::from(ADDRESS_BASE + 1 + i as u32)
}

/// `bowline bench mesh`: writes the mesh and prints what it wrote.
pub fn run(args: &MeshArgs) -> Result<()> {
    let spec = MeshSpec::new(
        args.services,
        args.endpoints,
        args.namespaces,
        args.sidecar_scope,
    )?;
    let files = generate(&args.out, &spec)?;
    println!(
        "wrote {files} files to {}: {} services x {} endpoints in {} namespaces{}",
        args.out.display(),
        spec.services,
        spec.endpoints,
        spec.namespaces,
        spec.sidecar_scope
            .map(|m| format!(", a Sidecar per namespace admitting {m} services"))
            .unwrap_or_default()
    );
    Ok(())
}

/// Writes the whole mesh into `dir`; returns how many files it wrote.
pub fn generate(dir: &Path, spec: &MeshSpec) -> Result<usize> {
    spec.check()?;
    let mut files = 0;
    for k in 0..spec.namespaces.min(spec.services) {
        create_dir(&dir.join(format!("ns{k}")))?;
    }
    let spec_text = serde_json::to_string_pretty(spec).expect("a plain struct serializes");
    write(&dir.join(SPEC_FILE), &spec_text)?;
    files += 1;
    if spec.sidecar_scope.is_some() {
        for k in 0..spec.namespaces.min(spec.services) {
            write(
                &dir.join(format!("ns{k}")).join("sidecar.yaml"),
                &sidecar_yaml(spec, k),
            )?;
            files += 1;
        }
    }
    for s in 0..spec.services {
        let d = spec.dir_of(dir, s);
        write(&d.join(format!("svc{s}.yaml")), &service_yaml(spec, s))?;
        write(&spec.vs_path(dir, s), &virtual_service_yaml(spec, s, 0))?;
        files += 2;
        for e in 0..spec.endpoints {
            let w = s * spec.endpoints + e;
            write(
                &spec.workload_path(dir, w),
                &workload_yaml(spec, w, spec.home_address(w)),
            )?;
            files += 1;
        }
    }
    Ok(files)
}

fn service_yaml(spec: &MeshSpec, s: usize) -> String {
    let (name, ns) = (spec.service_name(s), spec.namespace(s));
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{app: {name}}}
  ports:
  - {{name: http, port: {SERVICE_PORT}, targetPort: {SERVICE_PORT}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {ns}}}
spec:
  host: {name}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
"
    )
}

/// The VirtualService of service `s` at `revision`: the split moves by one
/// point per revision (90/10, 89/11, ... down to 51/49, then around again).
fn virtual_service_yaml(spec: &MeshSpec, s: usize, revision: u64) -> String {
    let (name, ns) = (spec.service_name(s), spec.namespace(s));
    let v1 = 90 - (revision % 40);
    let v2 = 100 - v1;
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: [{name}]
  http:
  - headers:
      request:
        set: {{{MARKER_HEADER}: {marker}}}
    route:
    - destination: {{host: {name}, subset: v1}}
      weight: {v1}
    - destination: {{host: {name}, subset: v2}}
      weight: {v2}
",
        marker = marker(spec, s, revision),
    )
}

fn marker(spec: &MeshSpec, s: usize, revision: u64) -> String {
    format!("{}-r{revision}", spec.service_name(s))
}

fn workload_yaml(spec: &MeshSpec, w: usize, address: Ipv4Addr) -> String {
    let wl = spec.workload(w);
    let mut labels = String::new();
    for (i, (k, v)) in wl.labels.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(labels, "{sep}{k}: {v}");
    }
    format!(
        "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {}, namespace: {}}}
spec:
  address: {address}
  serviceAccount: {}
  labels: {{{labels}}}
",
        wl.name, wl.namespace, wl.service_account
    )
}

fn sidecar_yaml(spec: &MeshSpec, k: usize) -> String {
    let mut hosts = String::new();
    for s in spec.scope(k) {
        let _ = writeln!(hosts, "    - {}/{}", spec.namespace(s), spec.fqdn(s));
    }
    format!(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: ns{k}}}
spec:
  egress:
  - hosts:
{hosts}"
    )
}

/// Raises the revision of service `s`'s VirtualService (a visible change of
/// its routes: a new marker and a shifted split).
pub fn bump_virtual_service(dir: &Path, spec: &MeshSpec, s: usize) -> Result<Edit> {
    if s >= spec.services {
        return Err(Error::Invalid(format!(
            "service {s} does not exist: the mesh has {} services",
            spec.services
        )));
    }
    let path = spec.vs_path(dir, s);
    let text = read(&path)?;
    let current = current_marker(&text).ok_or_else(|| Error::Edit {
        path: path.clone(),
        object: format!(
            "VirtualService {}/{}",
            spec.namespace(s),
            spec.service_name(s)
        ),
        field: "spec.http[0].headers.request.set",
        reason: format!("no {MARKER_HEADER} marker"),
    })?;
    let prefix = format!("{}-r", spec.service_name(s));
    let revision: u64 = current
        .strip_prefix(&prefix)
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| Error::Edit {
            path: path.clone(),
            object: format!(
                "VirtualService {}/{}",
                spec.namespace(s),
                spec.service_name(s)
            ),
            field: "spec.http[0].headers.request.set",
            reason: format!("marker {current:?} is not {prefix}N"),
        })?;
    let next = revision + 1;
    write_atomic(&path, &virtual_service_yaml(spec, s, next))?;
    Ok(Edit::Routes {
        service: spec.fqdn(s),
        marker: marker(spec, s, next),
    })
}

fn current_marker(text: &str) -> Option<&str> {
    let key = format!("{{{MARKER_HEADER}: ");
    let start = text.find(&key)? + key.len();
    let end = start + text[start..].find('}')?;
    Some(text[start..end].trim())
}

/// Moves workload `w` between its home and its moved address.
pub fn move_endpoint(dir: &Path, spec: &MeshSpec, w: usize) -> Result<Edit> {
    if w >= spec.workloads() {
        return Err(Error::Invalid(format!(
            "endpoint {w} does not exist: the mesh has {} WorkloadEntries",
            spec.workloads()
        )));
    }
    let path = spec.workload_path(dir, w);
    let text = read(&path)?;
    let wl = spec.workload(w);
    let current = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("address:"))
        .map(str::trim)
        .and_then(|a| a.parse::<Ipv4Addr>().ok())
        .ok_or_else(|| Error::Edit {
            path: path.clone(),
            object: format!("WorkloadEntry {}/{}", wl.namespace, wl.name),
            field: "spec.address",
            reason: "missing or not an IPv4 address".into(),
        })?;
    let (home, moved) = (spec.home_address(w), spec.moved_address(w));
    let to = if current == home { moved } else { home };
    write_atomic(&path, &workload_yaml(spec, w, to))?;
    Ok(Edit::Endpoint {
        service: spec.fqdn(w / spec.endpoints),
        from: current,
        to,
    })
}

fn create_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a hidden sibling (which the server skips) and renames it into place.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    write(&tmp, text)?;
    fs::rename(&tmp, path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use discovery::file::FileStore;

    fn yaml_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "yaml") {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    fn load_store(dir: &Path) -> FileStore {
        let mut store = FileStore::default();
        for p in yaml_files(dir) {
            store.apply(&p, &fs::read_to_string(&p).unwrap());
        }
        store
    }

    #[test]
    fn generated_mesh_is_valid_config() {
        let dir = tempfile::tempdir().unwrap();
        let spec = MeshSpec::new(6, 3, 4, None).unwrap();
        let files = generate(dir.path(), &spec).unwrap();
        assert_eq!(files, 1 + 6 * (2 + 3));
        assert_eq!(MeshSpec::load(dir.path()).unwrap(), spec);
        let config = load_store(dir.path()).config();
        let errors: Vec<_> = config.diagnostics.iter().filter(|d| d.is_error()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        // 6 Services, 6 DestinationRules, 6 VirtualServices, 18 WorkloadEntries.
        assert_eq!(config.objects.len(), 36);
    }

    #[test]
    fn services_go_round_robin_over_namespaces_with_distinct_addresses() {
        let spec = MeshSpec::new(5, 4, 2, None).unwrap();
        assert_eq!(spec.fqdn(3), "svc3.ns1.svc.cluster.local");
        let mut addresses: Vec<Ipv4Addr> = (0..spec.workloads())
            .flat_map(|w| [spec.home_address(w), spec.moved_address(w)])
            .collect();
        addresses.sort();
        addresses.dedup();
        assert_eq!(addresses.len(), 2 * spec.workloads());
        let w = spec.workload(13);
        assert_eq!(w.name, "svc3-1");
        assert_eq!(w.namespace, "ns1");
        assert_eq!(w.labels[1], ("version".into(), "v2".into()));
    }

    #[test]
    fn sidecars_admit_disjoint_blocks_of_services() {
        let dir = tempfile::tempdir().unwrap();
        let spec = MeshSpec::new(30, 1, 3, Some(4)).unwrap();
        generate(dir.path(), &spec).unwrap();
        let text = fs::read_to_string(dir.path().join("ns1/sidecar.yaml")).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(doc["apiVersion"], "networking.istio.io/v1");
        assert_eq!(doc["kind"], "Sidecar");
        assert_eq!(doc["metadata"]["namespace"], "ns1");
        let hosts: Vec<&str> = doc["spec"]["egress"][0]["hosts"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        assert_eq!(
            hosts,
            [
                "ns1/svc4.ns1.svc.cluster.local",
                "ns2/svc5.ns2.svc.cluster.local",
                "ns0/svc6.ns0.svc.cluster.local",
                "ns1/svc7.ns1.svc.cluster.local",
            ]
        );
        assert_eq!(spec.scope(0), [0, 1, 2, 3]);
    }

    #[test]
    fn bump_raises_the_marker_and_shifts_the_split() {
        let dir = tempfile::tempdir().unwrap();
        let spec = MeshSpec::new(3, 2, 1, None).unwrap();
        generate(dir.path(), &spec).unwrap();
        let edit = bump_virtual_service(dir.path(), &spec, 2).unwrap();
        assert_eq!(
            edit,
            Edit::Routes {
                service: "svc2.ns0.svc.cluster.local".into(),
                marker: "svc2-r1".into()
            }
        );
        let text = fs::read_to_string(dir.path().join("ns0/svc2-vs.yaml")).unwrap();
        assert!(text.contains("weight: 89") && text.contains("weight: 11"));
        let again = bump_virtual_service(dir.path(), &spec, 2).unwrap();
        assert!(matches!(again, Edit::Routes { marker, .. } if marker == "svc2-r2"));
        let config = load_store(dir.path()).config();
        assert!(config.diagnostics.iter().all(|d| !d.is_error()));
        assert!(bump_virtual_service(dir.path(), &spec, 3).is_err());
    }

    #[test]
    fn move_flips_between_two_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let spec = MeshSpec::new(2, 3, 1, None).unwrap();
        generate(dir.path(), &spec).unwrap();
        let first = move_endpoint(dir.path(), &spec, 4).unwrap();
        assert_eq!(
            first,
            Edit::Endpoint {
                service: "svc1.ns0.svc.cluster.local".into(),
                from: spec.home_address(4),
                to: spec.moved_address(4),
            }
        );
        let back = move_endpoint(dir.path(), &spec, 4).unwrap();
        assert!(matches!(back, Edit::Endpoint { to, .. } if to == spec.home_address(4)));
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("ns0"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }

    #[test]
    fn bad_edits_name_the_file_object_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let spec = MeshSpec::new(1, 1, 1, None).unwrap();
        generate(dir.path(), &spec).unwrap();
        fs::write(
            dir.path().join("ns0/svc0-wl0.yaml"),
            "kind: WorkloadEntry\nspec: {}\n",
        )
        .unwrap();
        let err = move_endpoint(dir.path(), &spec, 0).unwrap_err().to_string();
        assert!(err.contains("ns0/svc0-wl0.yaml"), "{err}");
        assert!(
            err.contains("WorkloadEntry ns0/svc0-0: spec.address"),
            "{err}"
        );
        fs::write(dir.path().join(SPEC_FILE), "{}").unwrap();
        let err = MeshSpec::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(SPEC_FILE), "{err}");
    }

    #[test]
    fn refuses_sizes_beyond_the_address_block() {
        assert!(MeshSpec::new(0, 1, 1, None).is_err());
        assert!(MeshSpec::new(100_000, 100, 1, None).is_err());
        assert!(MeshSpec::new(1, 1, 1, Some(0)).is_err());
    }
}
