//! Libraries the host must refuse, at start and when dropped in while running: the
//! server keeps serving and the admin listing says why.

use crate::common;

use common::*;
use serde_json::Value;

/// Deterministic bytes that are not an ELF file.
fn garbage_bytes() -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

fn assert_refused(entry: &Value, needles: &[&str]) {
    assert_eq!(entry["status"], "refused", "{entry}");
    let err = entry["error"]
        .as_str()
        .unwrap_or_else(|| panic!("a refused entry needs a readable error: {entry}"));
    let lower = err.to_lowercase();
    for n in needles {
        assert!(
            lower.contains(&n.to_lowercase()),
            "refusal message should mention {n:?}: {err}"
        );
    }
}

fn assert_listing_shape(listing: &Value) {
    assert_eq!(listing["object"], "list", "{listing}");
    for e in listing["data"].as_array().expect("data array") {
        for key in [
            "file",
            "status",
            "error",
            "name",
            "version",
            "abi_version",
            "prefixes",
            "loaded_from",
        ] {
            assert!(e.get(key).is_some(), "entry lacks {key:?}: {e}");
        }
        assert!(e["file"].is_string(), "{e}");
        assert!(e["prefixes"].is_array(), "{e}");
        match e["status"].as_str() {
            Some("loaded") => {
                assert!(e["error"].is_null(), "{e}");
                assert!(e["name"].is_string(), "{e}");
                assert!(e["version"].is_string(), "{e}");
                assert!(e["abi_version"].is_number(), "{e}");
                assert!(e["loaded_from"].is_string(), "{e}");
            }
            Some("refused") => assert!(e["error"].is_string(), "{e}"),
            other => panic!("unknown status {other:?}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn random_bytes_library_is_refused_at_start() {
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .file("garbage.so", garbage_bytes()),
    )
    .await;
    let listing = server.plugin_listing().await;
    assert_listing_shape(&listing);
    let garbage = plugin_entry(&listing, "garbage.so")
        .unwrap_or_else(|| panic!("garbage.so missing from the listing: {listing:#}"));
    assert_refused(&garbage, &["not a loadable shared library"]);
    assert!(garbage["name"].is_null(), "{garbage}");
    assert_eq!(
        plugin_entry(&listing, ECHO).expect("echo listed")["status"],
        "loaded"
    );
    server.assert_echo_still_works().await;
    assert!(
        server.logs().contains("garbage.so"),
        "the refusal should be logged\n{}",
        server.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn random_bytes_library_dropped_in_is_refused() {
    let server = TestServer::start(ServerOptions::new().plugin(ECHO)).await;
    std::fs::write(server.plugin_dir().join("garbage.so"), garbage_bytes()).unwrap();
    let entry = server
        .wait_for_plugin_entry("garbage.so", HOT_ADD_TIMEOUT, |e| e["status"] == "refused")
        .await;
    assert_refused(&entry, &["not a loadable shared library"]);
    server.assert_echo_still_works().await;
}

/// What a library built against the previous plugin ABI is told.
const REBUILD: [&str; 2] = [
    "incompatible",
    "built against plugin ABI 1; this aihub needs ABI 2: rebuild it against the current aihub-plugin-api",
];

#[tokio::test(flavor = "multi_thread")]
async fn library_built_for_another_abi_is_refused() {
    let server = TestServer::start(ServerOptions::new().plugin(ECHO).plugin(OLD_ABI)).await;
    let listing = server.plugin_listing().await;
    assert_listing_shape(&listing);
    let old = plugin_entry(&listing, OLD_ABI)
        .unwrap_or_else(|| panic!("{OLD_ABI} missing from the listing: {listing:#}"));
    assert_refused(&old, &REBUILD);
    // Its prefix is not routable.
    let resp = server.post_chat(&chat_body("oldabi/x", "hi")).await;
    let err = expect_error(resp, 404, "invalid_request_error").await;
    assert_eq!(err["code"], "model_not_found");
    server.assert_echo_still_works().await;

    // Dropped in at run time: refused the same way.
    let other = "libcopy_of_old_abi.so";
    std::fs::copy(plugin_lib(OLD_ABI), server.plugin_dir().join(other)).unwrap();
    let entry = server
        .wait_for_plugin_entry(other, HOT_ADD_TIMEOUT, |e| e["status"] == "refused")
        .await;
    assert_refused(&entry, &REBUILD);
    server.assert_echo_still_works().await;
}

/// testing/abi1-plugin, really built against the ABI 1 `aihub-plugin-api` (its types
/// have the old layout, so this also shows the number is read before the layout check).
fn abi1_lib() -> std::path::PathBuf {
    let p = lib_dir()
        .join("test-plugins")
        .join("libaihub_abi1_plugin.so");
    assert!(
        p.is_file(),
        "{} is missing: run `make test-fixtures` (it builds testing/abi1-plugin against the \
         ABI 1 aihub-plugin-api)",
        p.display()
    );
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn library_built_against_abi_1_is_refused_with_the_rebuild_message() {
    let abi1 = std::fs::read(abi1_lib()).unwrap();
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .file("libaihub_abi1_plugin.so", abi1),
    )
    .await;
    let listing = server.plugin_listing().await;
    assert_listing_shape(&listing);
    let entry = plugin_entry(&listing, "libaihub_abi1_plugin.so")
        .unwrap_or_else(|| panic!("the ABI 1 library is missing from the listing: {listing:#}"));
    assert_refused(&entry, &REBUILD);
    assert!(entry["name"].is_null(), "nothing of it was used: {entry}");
    let resp = server.post_chat(&chat_body("abione/m", "hi")).await;
    let err = expect_error(resp, 404, "invalid_request_error").await;
    assert_eq!(err["code"], "model_not_found");
    assert!(
        server
            .logs()
            .contains("rebuild it against the current aihub-plugin-api"),
        "the refusal should be logged\n{}",
        server.logs()
    );

    // Dropped in at run time: refused the same way.
    std::fs::copy(abi1_lib(), server.plugin_dir().join("libabi1_again.so")).unwrap();
    let entry = server
        .wait_for_plugin_entry("libabi1_again.so", HOT_ADD_TIMEOUT, |e| {
            e["status"] == "refused"
        })
        .await;
    assert_refused(&entry, &REBUILD);
    server.assert_echo_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_prefix_dropped_in_is_refused() {
    let server = TestServer::start(ServerOptions::new().plugin(ECHO)).await;
    server.install_plugin(DUPE);
    let entry = server
        .wait_for_plugin_entry(DUPE, HOT_ADD_TIMEOUT, |e| e["status"] == "refused")
        .await;
    assert_refused(&entry, &["prefix", "echo"]);
    // echo keeps working, served by echo (dupe answers every call with an error).
    server.assert_echo_still_works().await;
    let mut req = chat_body("echo/echo-1", "a b c");
    req["stream"] = serde_json::json!(true);
    let sse = collect_sse(server.post_chat(&req).await).await;
    assert!(sse.done, "{sse:?}");
    assert_eq!(sse.content(), "a b c");
    let listing = server.plugin_listing().await;
    assert_listing_shape(&listing);
    assert_eq!(plugin_entry(&listing, ECHO).unwrap()["status"], "loaded");
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_prefix_at_start_is_refused() {
    // Files are scanned in sorted order: libaihub_echo.so loads before the dupe.
    let server = TestServer::start(ServerOptions::new().plugin(ECHO).plugin(DUPE)).await;
    let listing = server.plugin_listing().await;
    assert_listing_shape(&listing);
    let dupe = plugin_entry(&listing, DUPE).expect("dupe listed");
    assert_refused(&dupe, &["prefix", "echo"]);
    server.assert_echo_still_works().await;
}

/// A real shared library that is not an aihub plugin (no root module).
fn system_library() -> Option<std::path::PathBuf> {
    [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
        "/usr/lib/aarch64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
        "/usr/lib64/libm.so.6",
        "/usr/lib/libm.so.6",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.is_file())
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_library_without_root_module_is_refused() {
    let Some(lib) = system_library() else {
        eprintln!("no system libm found; skipping");
        return;
    };
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .file("libnotaplugin.so", std::fs::read(lib).unwrap()),
    )
    .await;
    let listing = server.plugin_listing().await;
    assert_listing_shape(&listing);
    let entry = plugin_entry(&listing, "libnotaplugin.so").expect("listed");
    assert_refused(&entry, &[]);
    server.assert_echo_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hidden_files_are_ignored() {
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .file(".hidden-partial.so", garbage_bytes()),
    )
    .await;
    let listing = server.plugin_listing().await;
    assert!(
        plugin_entry(&listing, ".hidden-partial.so").is_none(),
        "files starting with '.' are ignored: {listing:#}"
    );
    server.assert_echo_still_works().await;
}
