//! `bowline serve`'s flags as a user gets them wrong: refused before
//! anything is written.

const BOWLINE: &str = env!("CARGO_BIN_EXE_bowline");

#[test]
fn the_file_registry_without_a_config_dir_is_refused_before_the_state_dir_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = std::process::Command::new(BOWLINE)
        .args(["serve", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--config-dir"), "{stderr}");
    assert!(!state.exists(), "nothing written");
}

#[test]
fn an_unreadable_kubeconfig_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-kubeconfig");
    let out = std::process::Command::new(BOWLINE)
        .args(["serve", "--registry", "kubernetes", "--kubeconfig"])
        .arg(&missing)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args([
            "--admin-addr",
            "127.0.93.250:0",
            "--ca-addr",
            "127.0.93.250:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the Kubernetes API server")
            && stderr.contains(&missing.display().to_string()),
        "{stderr}"
    );
}
