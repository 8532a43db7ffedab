//! `bowline diff` and `bowline explain` as a user runs them, against golden
//! output. For diff, each case of
//! `tests/diff/CASE/` is a config directory (`config/`) and a changed file
//! (`change.yaml`); `expected.txt` is what the command prints.
//! `REFRESH_GOLDEN=1 cargo test -p pilot --test diff_cli` rewrites the
//! expected files; review them with `git diff`.

use std::path::Path;
use std::process::Command;

const BOWLINE: &str = env!("CARGO_BIN_EXE_bowline");

fn diff(case: &Path, change: &str) -> std::process::Output {
    Command::new(BOWLINE)
        .args(["diff", "-f"])
        .arg(case.join(change))
        .arg("--config-dir")
        .arg(case.join("config"))
        .output()
        .unwrap()
}

#[test]
fn each_case_prints_its_expected_diff() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diff");
    let refresh = std::env::var("REFRESH_GOLDEN").is_ok_and(|v| v == "1");
    let mut cases = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let case = entry.unwrap().path();
        let out = diff(&case, "change.yaml");
        assert!(out.status.success(), "{}: {out:?}", case.display());
        let text = String::from_utf8(out.stdout).unwrap();
        let expected = case.join("expected.txt");
        if refresh {
            std::fs::write(&expected, &text).unwrap();
        }
        let want = std::fs::read_to_string(&expected).unwrap_or_default();
        assert_eq!(text, want, "{}: the diff changed", case.display());
        cases += 1;
    }
    assert!(cases > 0, "no cases under {}", root.display());
}

#[test]
fn a_change_with_errors_is_refused_with_them_and_exit_code_3() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diff/timeout/config/mesh.yaml"),
        dir.path().join("config/mesh.yaml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad, namespace: shop}\nspec:\n  hosts: [reviews]\n  http:\n  - timeout: soon\n    route:\n    - destination: {host: reviews}\n",
    )
    .unwrap();
    let out = diff(dir.path(), "bad.yaml");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("bad.yaml") && text.contains("spec.http[0].timeout"),
        "{text}"
    );
}

/// `bowline explain` against golden output: each case of
/// `tests/explain/CASE/` is a config directory (`config/`) and `args`, a
/// request a line (the command's arguments, split on spaces);
/// `expected.txt` is what the command prints for them, one after another.
#[test]
fn each_explain_case_prints_its_expected_steps() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/explain");
    let refresh = std::env::var("REFRESH_GOLDEN").is_ok_and(|v| v == "1");
    let mut cases = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let case = entry.unwrap().path();
        let mut text = String::new();
        for line in std::fs::read_to_string(case.join("args")).unwrap().lines() {
            let out = Command::new(BOWLINE)
                .arg("explain")
                .args(line.split_whitespace())
                .arg("--config-dir")
                .arg(case.join("config"))
                .output()
                .unwrap();
            assert!(out.status.success(), "{}: {line}: {out:?}", case.display());
            text.push_str(&format!("$ bowline explain {line}\n"));
            text.push_str(&String::from_utf8(out.stdout).unwrap());
        }
        let expected = case.join("expected.txt");
        if refresh {
            std::fs::write(&expected, &text).unwrap();
        }
        let want = std::fs::read_to_string(&expected).unwrap_or_default();
        assert_eq!(text, want, "{}: the explanation changed", case.display());
        cases += 1;
    }
    assert!(cases > 0, "no cases under {}", root.display());
}
