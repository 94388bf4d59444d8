//! `dajia serve --flight-sql HOST:PORT`: Arrow Flight SQL over the catalog
//! and the outputs, with every dajia function, for standard clients (ADBC
//! from Python notebooks, the Flight SQL JDBC driver in DBeaver, BI tools).
//!
//! The session is the one `dajia sql` builds (in this process, or a Ballista
//! cluster's client with `--cluster`), so the same tables and functions
//! answer. What a shared endpoint adds: a bearer token on every call
//! (`auth`), read-only statements only, and per-query bounds on rows,
//! bytes, time and concurrency (`limits`); optional TLS; loopback by
//! default, and no other address without TLS unless asked for explicitly.
//!
//! Why not `datafusion-flight-sql-server`: its protocol plumbing is
//! arrow-flight's `FlightSqlService` trait and metadata builders, which this
//! module uses directly (arrow-flight and tonic are already built for
//! Ballista); the crate would add datafusion-substrait, substrait (protoc at
//! build time) and datafusion-federation to a build that CI already spends
//! most of its 90 minutes on, and the guards above would still be ours.

mod auth;
mod limits;
mod service;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use arrow_flight::flight_service_server::FlightServiceServer;
use datafusion::execution::context::SessionContext;

pub use auth::Token;
pub use limits::Limits;
pub use service::FlightSqlEndpoint;

/// TLS certificate chain and private key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What `dajia serve` listens on and how it guards queries, validated
/// before anything is read or opened (the token, read from a file or the
/// environment, is given to `serve` apart).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
}

impl ServeOptions {
    /// An address other than loopback carries the token over the network,
    /// so it needs TLS unless `allow_plaintext`; and the limits must hold.
    pub fn new(
        addr: SocketAddr,
        tls: Option<TlsFiles>,
        allow_plaintext: bool,
        limits: Limits,
    ) -> Result<Self> {
        if !addr.ip().is_loopback() && tls.is_none() && !allow_plaintext {
            bail!(
                "--flight-sql {addr} is not a loopback address: give --tls-cert and --tls-key so that the bearer token is not sent in clear, or --allow-plaintext on a network you trust"
            );
        }
        limits.validate()?;
        Ok(Self { addr, tls, limits })
    }
}

/// Serve `ctx` over Flight SQL to clients that send `token`, until
/// `shutdown` resolves. `on_listening`
/// gets the bound address (the port when 0 was asked for) once clients can
/// connect.
pub async fn serve(
    ctx: SessionContext,
    options: &ServeOptions,
    token: &Token,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let mut server = tonic::transport::Server::builder()
        // A client gone without closing its connection is noticed (and its
        // query dropped) within a minute, not at --query-timeout.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)));
    if let Some(tls) = &options.tls {
        server = server
            .tls_config(tls_config(tls)?)
            .context("TLS configuration")?;
    }
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .with_context(|| format!("listening on {}", options.addr))?;
    let bound = listener.local_addr()?;
    let endpoint = FlightSqlEndpoint::new(ctx, options.limits.clone())?;
    let service = FlightServiceServer::new(endpoint)
        // A batch of long texts (or a listing of many tables' schemas) can
        // pass tonic's 4 MiB default per message.
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(64 << 20);
    let service =
        tonic::service::interceptor::InterceptedService::new(service, token.interceptor());
    on_listening(bound);
    server
        .add_service(service)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .context("Flight SQL server")?;
    Ok(())
}

fn tls_config(tls: &TlsFiles) -> Result<tonic::transport::ServerTlsConfig> {
    // rustls is built with two providers here (ring, and aws-lc-rs through
    // object_store's HTTP client), so it cannot pick one by itself and
    // tonic's server would panic; ring is the one tonic is built for. (An
    // error means a provider is already installed, which is as good.)
    let _ = rustls::crypto::ring::default_provider().install_default();
    let read = |p: &Path, what: &str| {
        std::fs::read(p).with_context(|| format!("reading the TLS {what} {}", p.display()))
    };
    let cert = read(&tls.cert, "certificate")?;
    let key = read(&tls.key, "private key")?;
    for (bytes, what, path) in [
        (&cert, "certificate", &tls.cert),
        (&key, "private key", &tls.key),
    ] {
        if !bytes.windows(10).any(|w| w == b"-----BEGIN") {
            bail!("the TLS {what} {} is not a PEM file", path.display());
        }
    }
    Ok(tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(cert, key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_flight::sql::client::FlightSqlServiceClient;
    use arrow_flight::sql::{CommandGetTables, SqlInfo};
    use arrow_flight::FlightInfo;
    use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use futures::TryStreamExt;
    use std::sync::Arc;
    use tonic::transport::Channel;

    const TOKEN: &str = "test-token-0123456789abcdef";

    async fn server(limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        server_with(limits, None).await
    }

    async fn server_with(
        limits: Limits,
        tls: Option<TlsFiles>,
    ) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let ctx = crate::session::new_session(&Default::default(), None);
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..100))],
        )
        .unwrap();
        ctx.register_batch("numbers", batch).unwrap();
        let opts = ServeOptions::new("127.0.0.1:0".parse().unwrap(), tls, false, limits).unwrap();
        let token = Token::new(TOKEN).unwrap();
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            serve(ctx, &opts, &token, |a| addr_tx.send(a).unwrap(), async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
        });
        (addr_rx.await.unwrap(), stop_tx)
    }

    async fn client(addr: SocketAddr, token: Option<&str>) -> FlightSqlServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut c = FlightSqlServiceClient::new(channel);
        if let Some(t) = token {
            c.set_token(t.to_string());
        }
        c
    }

    async fn fetch(
        c: &mut FlightSqlServiceClient<Channel>,
        info: FlightInfo,
    ) -> Result<Vec<RecordBatch>, String> {
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let stream = c.do_get(ticket).await.map_err(|e| e.to_string())?;
        stream.try_collect().await.map_err(|e| e.to_string())
    }

    async fn query(
        c: &mut FlightSqlServiceClient<Channel>,
        sql: &str,
    ) -> Result<Vec<RecordBatch>, String> {
        let info = c
            .execute(sql.to_string(), None)
            .await
            .map_err(|e| e.to_string())?;
        fetch(c, info).await
    }

    #[tokio::test]
    async fn a_client_with_the_token_queries_dajia_functions_and_browses_tables() {
        let (addr, _stop) = server(Limits::default()).await;

        // No token, a wrong one: refused before anything runs.
        for token in [None, Some("wrong-token-0123456789abcdef")] {
            let mut c = client(addr, token).await;
            let e = query(&mut c, "SELECT 1").await.unwrap_err();
            assert!(e.contains("bearer token"), "{e}");
            assert!(c.get_catalogs().await.is_err());
        }

        let mut c = client(addr, Some(TOKEN)).await;
        let b = query(&mut c, "SELECT normalize_text('高.仿 ＧＵＣＣＩ') AS n")
            .await
            .unwrap();
        assert_eq!(b[0].column(0).as_string::<i32>().value(0), "高仿 gucci");
        let b = query(&mut c, "SELECT sum(x) AS s FROM numbers")
            .await
            .unwrap();
        assert_eq!(
            b[0].column(0)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .value(0),
            4950
        );

        // Prepared statements (what JDBC clients send).
        let mut p = c
            .prepare("SELECT x FROM numbers WHERE x < 3".to_string(), None)
            .await
            .unwrap();
        assert_eq!(p.dataset_schema().unwrap().field(0).name(), "x");
        let info = p.execute().await.unwrap();
        let rows: usize = fetch(&mut c, info)
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, 3);
        p.close().await.unwrap();

        // Metadata: catalogs, tables with their schemas, server info.
        let info = c.get_catalogs().await.unwrap();
        let b = fetch(&mut c, info).await.unwrap();
        assert_eq!(b[0].column(0).as_string::<i32>().value(0), "datafusion");
        let info = c
            .get_tables(CommandGetTables {
                include_schema: true,
                ..Default::default()
            })
            .await
            .unwrap();
        let b = fetch(&mut c, info).await.unwrap();
        let names = b[0]
            .column_by_name("table_name")
            .unwrap()
            .as_string::<i32>();
        let types = b[0]
            .column_by_name("table_type")
            .unwrap()
            .as_string::<i32>();
        let i = (0..names.len())
            .find(|&i| names.value(i) == "numbers")
            .expect("numbers listed");
        assert_eq!(types.value(i), "TABLE");
        assert!(b[0].column_by_name("table_schema").is_some());
        let info = c
            .get_sql_info(vec![SqlInfo::FlightSqlServerReadOnly])
            .await
            .unwrap();
        assert_eq!(fetch(&mut c, info).await.unwrap()[0].num_rows(), 1);

        // Read-only: writes, definitions and SET are refused, nothing changes.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.csv");
        for sql in [
            format!("COPY (SELECT 1) TO '{}' STORED AS CSV", file.display()),
            "CREATE VIEW v AS SELECT 1".to_string(),
            "INSERT INTO numbers VALUES (1)".to_string(),
            "DROP TABLE numbers".to_string(),
            "SET datafusion.execution.batch_size = 1".to_string(),
        ] {
            let e = query(&mut c, &sql).await.unwrap_err();
            assert!(e.contains("read-only"), "{sql}: {e}");
        }
        assert!(!file.exists());
        let e = c
            .execute_update("DELETE FROM numbers".to_string(), None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("read-only"), "{e}");
        assert!(query(&mut c, "SELECT count(*) FROM numbers").await.is_ok());

        // A SQL mistake is the client's, in one line.
        let e = query(&mut c, "SELECT nope FROM numbers").await.unwrap_err();
        assert!(
            e.contains("InvalidArgument") || e.contains("invalid"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn results_over_the_row_bound_fail_naming_it() {
        let (addr, _stop) = server(Limits {
            max_rows: 50,
            ..Default::default()
        })
        .await;
        let mut c = client(addr, Some(TOKEN)).await;
        assert_eq!(
            query(&mut c, "SELECT x FROM numbers LIMIT 50")
                .await
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>(),
            50
        );
        let e = query(&mut c, "SELECT x FROM numbers").await.unwrap_err();
        assert!(e.contains("--max-rows"), "{e}");
    }

    /// With --tls-cert/--tls-key: a client that trusts the certificate
    /// queries; a plaintext client gets nothing. (The certificate is made
    /// with the openssl command; the test skips, saying so, without it.)
    #[tokio::test]
    async fn tls_clients_query_and_plaintext_ones_are_refused() {
        use tonic::transport::{Certificate, ClientTlsConfig};
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        let (cert, key, ca) = (p("cert.pem"), p("key.pem"), p("ca.pem"));
        let (ca_key, csr, ext) = (p("ca.key"), p("leaf.csr"), p("leaf.ext"));
        std::fs::write(
            &ext,
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        // A private CA and a server certificate it signed (rustls refuses a
        // CA certificate as the server's own).
        let steps: [Vec<&str>; 3] = [
            [
                &["req", "-x509"][..],
                &ec,
                &[
                    "-days",
                    "1",
                    "-subj",
                    "/CN=dajia test CA",
                    "-keyout",
                    &ca_key,
                    "-out",
                    &ca,
                ],
            ]
            .concat(),
            [
                &["req"][..],
                &ec,
                &["-subj", "/CN=localhost", "-keyout", &key, "-out", &csr],
            ]
            .concat(),
            vec![
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ],
        ];
        for args in steps {
            let made = std::process::Command::new("openssl").args(&args).output();
            if !made.is_ok_and(|o| o.status.success()) {
                eprintln!(
                    "flight_sql TLS test skipped: the openssl command could not make a certificate"
                );
                return;
            }
        }
        let (cert, key) = (
            std::path::PathBuf::from(cert),
            std::path::PathBuf::from(key),
        );
        let tls = TlsFiles {
            cert: cert.clone(),
            key,
        };
        let (addr, _stop) = server_with(Limits::default(), Some(tls)).await;
        let trust = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(std::fs::read(&ca).unwrap()))
            .domain_name("localhost");
        let channel = Channel::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(trust)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut c = FlightSqlServiceClient::new(channel);
        c.set_token(TOKEN.to_string());
        assert_eq!(
            query(&mut c, "SELECT 1 AS one").await.unwrap()[0].num_rows(),
            1
        );
        let plain = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await;
        if let Ok(ch) = plain {
            let mut c = FlightSqlServiceClient::new(ch);
            c.set_token(TOKEN.to_string());
            assert!(query(&mut c, "SELECT 1").await.is_err());
        }
        // A key that is not PEM is named before the server starts.
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, b"not a key").unwrap();
        let e = tls_config(&TlsFiles { cert, key: bad }).unwrap_err();
        assert!(e.to_string().contains("not a PEM file"), "{e}");
    }

    #[test]
    fn other_addresses_need_tls_or_an_explicit_plaintext() {
        let open: SocketAddr = "0.0.0.0:32010".parse().unwrap();
        let e = ServeOptions::new(open, None, false, Limits::default()).unwrap_err();
        assert!(e.to_string().contains("--tls-cert"), "{e}");
        ServeOptions::new(open, None, true, Limits::default()).unwrap();
        let tls = TlsFiles {
            cert: "c.pem".into(),
            key: "k.pem".into(),
        };
        ServeOptions::new(open, Some(tls), false, Limits::default()).unwrap();
        ServeOptions::new("[::1]:1".parse().unwrap(), None, false, Limits::default()).unwrap();
    }
}
