//! The deployment examples under `deploy/` are checked here: the systemd unit with
//! `systemd-analyze verify` and a directive-by-directive parse, its example `node.toml`
//! with `keepbit server --check-config`, and the Kubernetes manifest parsed with PyYAML,
//! its structure checked and the node config its init script renders for each pod
//! validated by Keepbit itself. (`deploy/haproxy.cfg` is run by `tests/health.rs`.)

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use keepbit::config::Config;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("keepbit-deploy-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `keepbit server --config <path> --check-config`: Ok, or the reason it was refused.
fn check_config(path: &Path) -> Result<(), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_keepbit"))
        .args(["server", "--config"])
        .arg(path)
        .arg("--check-config")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run keepbit");
    match out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "config ok" {
        true => Ok(()),
        false => Err(text(&out)),
    }
}

const UNIT: &str = "systemd/keepbit.service";
const INSTALLED_BIN: &str = "/usr/local/bin/keepbit";

/// The unit's `Key=value` lines by (section, key), every value of repeated keys in order.
fn unit_directives(unit: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in unit.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with(['#', ';'])) {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("not a directive: {line}"));
        assert!(!section.is_empty(), "{line} is outside any section");
        out.entry((section.clone(), key.trim().to_string())).or_default().push(value.trim().to_string());
    }
    out
}

/// `systemd-analyze verify` on the unit (with `ExecStart` pointed at the keepbit just
/// built, since verify checks the binary exists) finds nothing to say. It exits 0 on an
/// unknown or malformed directive too, only warning, so any output is a failure: a
/// misspelt copy shows the check would notice.
#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    if !support::tool_works("systemd-analyze", &["--version"], "systemd-analyze (Debian package systemd)") {
        return;
    }
    let unit = read(&deploy(UNIT));
    assert!(unit.contains(INSTALLED_BIN), "the unit runs {INSTALLED_BIN}");
    let scratch = Scratch::new("systemd");
    let verify = |name: &str, text: &str| -> Output {
        let path = scratch.0.join(name);
        std::fs::write(&path, text.replace(INSTALLED_BIN, env!("CARGO_BIN_EXE_keepbit"))).expect("write unit");
        Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("run systemd-analyze")
    };
    let out = verify("keepbit.service", &unit);
    assert!(out.status.success() && text(&out).trim().is_empty(), "systemd-analyze verify: {}", text(&out));
    let bad = verify("misspelt.service", &unit.replace("LimitNOFILE=", "LimitNOFIEL="));
    assert!(text(&bad).contains("LimitNOFIEL"), "verify flags an unknown key: {}", text(&bad));
}

/// The unit restarts keepbit when it fails (not after a clean stop), raises the file
/// limit, runs as its own user with a state directory that is the example config's
/// data_dir, keeps the file system read-only elsewhere, and refuses an invalid config
/// before starting; the example config it points at is valid and turns the admin port on.
#[test]
fn the_systemd_unit_restarts_on_failure_and_its_example_config_is_valid() {
    let d = unit_directives(&read(&deploy(UNIT)));
    let one = |key: &str| -> &str {
        let v = d.get(&("Service".to_string(), key.to_string())).unwrap_or_else(|| panic!("[Service] {key} missing"));
        assert_eq!(v.len(), 1, "{key} is set once");
        &v[0]
    };
    assert_eq!(one("Type"), "simple", "keepbit does not speak sd_notify");
    assert_eq!(one("Restart"), "on-failure");
    assert!(!one("RestartSec").is_empty());
    assert!(one("LimitNOFILE").parse::<u64>().expect("LimitNOFILE is a number") > 10_000, "above maxclients");
    assert_eq!(one("User"), "keepbit");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    let config = "/etc/keepbit/node.toml";
    assert_eq!(one("ExecStart"), format!("{INSTALLED_BIN} server --config {config}"));
    assert_eq!(one("ExecStartPre"), format!("{INSTALLED_BIN} server --config {config} --check-config"));
    let state_dir = format!("/var/lib/{}", one("StateDirectory"));
    assert_eq!(one("ReadWritePaths"), state_dir);
    assert!(d.contains_key(&("Install".to_string(), "WantedBy".to_string())));

    let example = deploy("systemd/node.toml");
    check_config(&example).unwrap_or_else(|e| panic!("{} is refused: {e}", example.display()));
    let c = Config::from_toml(&example).expect("parses");
    assert_eq!(c.data_dir, PathBuf::from(&state_dir), "data_dir is the unit's StateDirectory");
    assert!(c.admin_port.is_some(), "the admin port is on");
    let cluster = c.cluster.as_ref().expect("a [cluster] section");
    assert_eq!(cluster.peers.len(), 3);
    assert_eq!(cluster.me().expect("node_id is a peer").client_addr, format!("{}:{}", c.bind, c.port));
}

const MANIFEST: &str = "kubernetes/keepbit.yaml";
const NAMESPACE: &str = "prod";

/// Every document of the manifest, parsed by PyYAML (handed over as JSON).
fn manifest() -> Vec<serde_json::Value> {
    let out = Command::new("python3")
        .args(["-c", "import sys, json, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)"])
        .arg(deploy(MANIFEST))
        .output()
        .expect("run python3");
    assert!(out.status.success(), "PyYAML cannot parse {MANIFEST}: {}", text(&out));
    serde_json::from_slice(&out.stdout).expect("JSON from python")
}

/// The value at a dotted path (`spec.template.spec`); numbers index arrays.
fn at<'a>(v: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    path.split('.').fold(v, |v, k| match k.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[k],
    })
}

fn str_at<'a>(v: &'a serde_json::Value, path: &str) -> &'a str {
    at(v, path).as_str().unwrap_or_else(|| panic!("{path} is not a string in {v}"))
}

/// The one object of `kind`.
fn object<'a>(docs: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    let found: Vec<_> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} in {MANIFEST}");
    found[0]
}

/// A container's port number by name.
fn port(container: &serde_json::Value, name: &str) -> u64 {
    let ports = at(container, "ports").as_array().expect("ports");
    let p = ports.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("no port named {name}"));
    p["containerPort"].as_u64().expect("containerPort")
}

/// The stable DNS name of pod `ordinal` in the test's namespace.
fn pod_name(ordinal: usize) -> String {
    format!("keepbit-{ordinal}.keepbit-peers.{NAMESPACE}.svc.cluster.local")
}

/// Runs the ConfigMap's render.sh for `pod` with the init container's own environment
/// (downward-API and Secret values filled in, `overrides` on top) and the keepbit just
/// built on PATH; nothing is resolved. (exit ok, output, config).
fn render(docs: &[serde_json::Value], pod: &str, overrides: &[(&str, &str)]) -> (bool, String, String) {
    let scratch = Scratch::new("render");
    let bin = scratch.0.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_keepbit"), bin.join("keepbit")).expect("link keepbit");
    let script = scratch.0.join("render.sh");
    let source = object(docs, "ConfigMap")["data"]["render.sh"].as_str().expect("the ConfigMap has render.sh");
    std::fs::write(&script, source).expect("write render.sh");
    let secret = object(docs, "Secret");
    let init = at(object(docs, "StatefulSet"), "spec.template.spec.initContainers.0");
    let out_path = scratch.0.join("node.toml");
    let mut cmd = Command::new("sh");
    cmd.arg(&script).env_clear().env("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    cmd.env("KEEPBIT_CONFIG", &out_path).env("RUST_BACKTRACE", "0");
    for e in at(init, "env").as_array().expect("init env") {
        let name = str_at(e, "name");
        let value = match (e["value"].as_str(), str_at_opt(e, "valueFrom.fieldRef.fieldPath")) {
            (Some(v), _) => v.to_string(),
            (None, Some("metadata.name")) => pod.to_string(),
            (None, Some("metadata.namespace")) => NAMESPACE.to_string(),
            (None, Some(other)) => panic!("unexpected fieldRef {other}"),
            (None, None) => {
                assert_eq!(str_at(e, "valueFrom.secretKeyRef.name"), str_at(secret, "metadata.name"));
                let key = str_at(e, "valueFrom.secretKeyRef.key");
                secret["stringData"][key].as_str().unwrap_or_else(|| panic!("the Secret has no {key}")).to_string()
            }
        };
        cmd.env(name, value);
    }
    cmd.envs(overrides.iter().copied());
    let out = cmd.output().expect("run sh");
    let config = std::fs::read_to_string(&out_path).unwrap_or_default();
    (out.status.success(), text(&out), config)
}

fn str_at_opt<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a str> {
    at(v, path).as_str()
}

fn has_yaml() -> bool {
    support::tool_works("python3", &["-c", "import yaml"], "python3 with PyYAML")
}

/// The labels of `selector` (a map) are all on the pods.
fn selects_pods(selector: &serde_json::Value, pod_labels: &serde_json::Value) -> bool {
    let sel = selector.as_object().expect("a selector map");
    !sel.is_empty() && sel.iter().all(|(k, v)| pod_labels[k] == *v)
}

/// The manifest holds what it says: a headless Service that publishes not-ready pods
/// and is the StatefulSet's serviceName, a client Service, pods started in parallel with
/// liveness on GET /health and readiness on GET /ready at the admin port, a data volume
/// per pod, resources, and a PodDisruptionBudget of one, all selecting the same pods.
#[test]
fn the_kubernetes_manifest_has_the_objects_and_probes_it_claims() {
    if !has_yaml() {
        return;
    }
    let docs = manifest();
    let mut kinds: Vec<&str> = docs.iter().map(|d| str_at(d, "kind")).collect();
    kinds.sort();
    assert_eq!(kinds, ["ConfigMap", "PodDisruptionBudget", "Secret", "Service", "Service", "StatefulSet"]);
    let sts = object(&docs, "StatefulSet");
    let pod_labels = at(sts, "spec.template.metadata.labels");
    assert!(selects_pods(at(sts, "spec.selector.matchLabels"), pod_labels));
    let services: Vec<_> = docs.iter().filter(|d| d["kind"] == "Service").collect();
    let (headless, client): (Vec<_>, Vec<_>) = services.iter().partition(|s| s["spec"]["clusterIP"] == "None");
    let (headless, client) = (headless[0], client[0]);
    assert_eq!(str_at(sts, "spec.serviceName"), str_at(headless, "metadata.name"));
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true, "peers resolve before they are ready");
    for s in [headless, client] {
        assert!(selects_pods(at(s, "spec.selector"), pod_labels), "{} selects the pods", s["metadata"]["name"]);
    }
    assert_eq!(str_at(client, "spec.ports.0.targetPort"), "client");
    assert_eq!(str_at(sts, "spec.podManagementPolicy"), "Parallel");
    assert_eq!(at(sts, "spec.replicas"), 3);

    let c = at(sts, "spec.template.spec.containers.0");
    port(c, "client");
    port(c, "peer");
    let admin = port(c, "admin");
    for (probe, path) in [("livenessProbe", "/health"), ("readinessProbe", "/ready")] {
        assert_eq!(str_at(c, &format!("{probe}.httpGet.path")), path);
        assert_eq!(str_at(c, &format!("{probe}.httpGet.port")), "admin", "{probe} on the admin port ({admin})");
    }
    assert!(at(c, "resources.requests.memory").is_string() && at(c, "resources.limits.memory").is_string());
    let data = str_at(sts, "spec.volumeClaimTemplates.0.metadata.name");
    let mounts = at(c, "volumeMounts").as_array().expect("volumeMounts");
    assert!(mounts.iter().any(|m| m["name"] == data), "the claim {data} is mounted");

    let pdb = object(&docs, "PodDisruptionBudget");
    assert_eq!(str_at(pdb, "apiVersion"), "policy/v1");
    assert_eq!(at(pdb, "spec.maxUnavailable"), 1);
    assert!(selects_pods(at(pdb, "spec.selector.matchLabels"), pod_labels));
}

/// render.sh, run as the init container would for pods 0..2 (its env from the manifest),
/// writes a node.toml that Keepbit accepts (`--check-config`, run by the script and again
/// here): node_id = ordinal + 1, every pod by its stable DNS name (never an IP, so a
/// re-created pod is found again), ports and data dir matching the container's, secrets
/// from the Secret.
#[test]
fn each_pods_rendered_config_is_valid_and_names_its_peers() {
    if !has_yaml() {
        return;
    }
    let docs = manifest();
    let sts = object(&docs, "StatefulSet");
    let c = at(sts, "spec.template.spec.containers.0");
    let mounts = at(c, "volumeMounts").as_array().expect("volumeMounts");
    let mount_of = |name: &str| -> PathBuf {
        let m = mounts.iter().find(|m| m["name"] == name).unwrap_or_else(|| panic!("no mount {name}"));
        PathBuf::from(str_at(m, "mountPath"))
    };
    let command: Vec<&str> = at(c, "command").as_array().expect("command").iter().filter_map(|a| a.as_str()).collect();
    assert_eq!(command[..3], ["keepbit", "server", "--config"]);
    assert_eq!(Path::new(command[3]), mount_of("config").join("node.toml"), "the config the init container wrote");
    let secret = object(&docs, "Secret");
    for ordinal in 0..3 {
        let pod = format!("keepbit-{ordinal}");
        let (ok, output, rendered) = render(&docs, &pod, &[]);
        assert!(ok && output.contains("config ok"), "render.sh for {pod}: {output}");
        let scratch = Scratch::new("rendered");
        let path = scratch.0.join("node.toml");
        std::fs::write(&path, &rendered).expect("write config");
        check_config(&path).unwrap_or_else(|e| panic!("{pod}'s config is refused: {e}\n{rendered}"));
        let config = Config::from_toml(&path).expect("parses");
        assert_eq!(config.port as u64, port(c, "client"));
        assert_eq!(config.admin_port.map(u64::from), Some(port(c, "admin")));
        assert_eq!(config.admin_bind.as_deref(), Some("0.0.0.0"), "the kubelet probes the pod IP");
        assert_eq!(config.data_dir, mount_of(str_at(sts, "spec.volumeClaimTemplates.0.metadata.name")));
        assert_eq!(config.admin_password.as_deref(), secret["stringData"]["admin-password"].as_str());
        let cluster = config.cluster.as_ref().expect("[cluster]");
        assert_eq!(cluster.node_id, ordinal as u64 + 1);
        assert_eq!(Some(cluster.secret.as_str()), secret["stringData"]["secret"].as_str());
        let peers: Vec<(u64, &str, &str)> =
            cluster.peers.iter().map(|p| (p.id, p.addr.as_str(), p.client_addr.as_str())).collect();
        let expected: Vec<(u64, String, String)> = (0..3)
            .map(|i| {
                (
                    i as u64 + 1,
                    format!("{}:{}", pod_name(i), port(c, "peer")),
                    format!("{}:{}", pod_name(i), port(c, "client")),
                )
            })
            .collect();
        let expected: Vec<(u64, &str, &str)> = expected.iter().map(|(i, a, c)| (*i, a.as_str(), c.as_str())).collect();
        assert_eq!(peers, expected, "{pod}'s peers");
    }
}

/// render.sh writes no config that would form a wrong cluster: a cluster domain that is
/// no DNS name (Keepbit's check refuses the peers' addresses, and the config is not put
/// in place), a pod name without an ordinal, or a secret that would break the TOML each
/// stop it with a reason.
#[test]
fn rendering_refuses_a_bad_domain_a_nameless_pod_and_a_quoted_secret() {
    if !has_yaml() {
        return;
    }
    let docs = manifest();
    let (ok, output, rendered) = render(&docs, "keepbit-0", &[("CLUSTER_DOMAIN", "cluster_local")]);
    let why = "is not a host:port address";
    assert!(!ok && output.contains("cluster.peers.addr") && output.contains(why) && output.contains("'_'"), "{output}");
    assert!(rendered.is_empty(), "no config written: {rendered}");
    let (ok, output, _) = render(&docs, "keepbit", &[]);
    assert!(!ok && output.contains("no ordinal"), "{output}");
    let (ok, output, rendered) = render(&docs, "keepbit-0", &[("KEEPBIT_SECRET", "a\"b")]);
    assert!(!ok && output.contains("secrets must be"), "{output}");
    assert!(rendered.is_empty());
}
