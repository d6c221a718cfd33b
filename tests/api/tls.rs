//! HTTPS: `fahwa serve --tls-cert --tls-key` answers over TLS with HSTS, and SIGHUP puts a new
//! certificate in place for new connections without dropping the open ones.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use uuid::Uuid;

use crate::harness::fresh_database;

struct Certificate {
    pem: String,
    key: String,
    der: Vec<u8>,
}

fn certificate() -> Certificate {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    Certificate {
        pem: cert.pem(),
        key: signing_key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

fn install(dir: &Path, c: &Certificate) {
    std::fs::write(dir.join("cert.pem"), &c.pem).unwrap();
    std::fs::write(dir.join("key.pem"), &c.key).unwrap();
}

/// A client that trusts both certificates, pins `localhost` to the server and keeps its
/// connections open between requests.
fn client(port: u16, roots: &[&Certificate]) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_info(true)
        .resolve("localhost", ([127, 0, 0, 1], port).into());
    for c in roots {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(c.pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// The certificate the server showed on the connection that carried `response`.
fn shown(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("a TLS connection")
        .to_vec()
}

fn hang_up(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn https_sends_hsts_and_sighup_swaps_the_certificate_without_dropping_connections() {
    let dir = std::env::temp_dir().join(format!("fahwa-tls-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (certificate(), certificate());
    install(&dir, &a);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_fahwa"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--tls-cert")
        .arg(dir.join("cert.pem"))
        .arg("--tls-key")
        .arg(dir.join("key.pem"))
        .env("FAHWA_DATABASE_URL", fresh_database().await)
        .env("FAHWA_LIVE_CAPTURE", "false")
        .env("FAHWA_WORKER", "false")
        .env_remove("FAHWA_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("https://localhost:{port}/healthz");

    let kept = client(port, &[&a, &b]);
    let mut first = None;
    for _ in 0..300 {
        if let Ok(r) = kept.get(&url).send().await {
            first = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = first.expect("the server answers over HTTPS");
    assert_eq!(first.status(), 200);
    assert_eq!(shown(&first), a.der);
    let hsts = first.headers()["strict-transport-security"]
        .to_str()
        .unwrap();
    assert!(hsts.starts_with("max-age="), "{hsts}");
    assert_eq!(first.headers()["x-content-type-options"], "nosniff");
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_err(),
        "plain HTTP is not answered on the HTTPS port"
    );

    install(&dir, &b);
    hang_up(server.id().unwrap());
    let mut swapped = false;
    for _ in 0..100 {
        let fresh = client(port, &[&a, &b]);
        if let Ok(r) = fresh.get(&url).send().await
            && shown(&r) == b.der
        {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        swapped,
        "new connections get the new certificate after SIGHUP"
    );

    // The connection opened before the swap still serves, with the certificate it began with.
    let again = kept
        .get(&url)
        .send()
        .await
        .expect("the open connection still serves");
    assert_eq!(again.status(), 200);
    assert_eq!(shown(&again), a.der, "the same connection, not a new one");

    // A file that cannot be read keeps the certificate in use.
    std::fs::write(dir.join("cert.pem"), "not a certificate").unwrap();
    hang_up(server.id().unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fresh = client(port, &[&a, &b]);
    let r = fresh.get(&url).send().await.expect("still served");
    assert_eq!(shown(&r), b.der);
    assert!(server.try_wait().unwrap().is_none(), "the server runs on");
    let _ = std::fs::remove_dir_all(&dir);
}
