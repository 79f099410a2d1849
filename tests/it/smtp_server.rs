//! A local SMTP server for the email tests: ESMTP with AUTH (PLAIN and LOGIN), STARTTLS
//! (the 587 way) or TLS from the first byte (the 465 way), with a certificate for
//! `localhost` signed by a CA of its own (written to a file kefu is told to trust). It
//! keeps every message it receives, with whether it came over TLS and who logged in.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine as _;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader},
    net::TcpListener,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// No TLS at all (`security = none`).
    Plain,
    /// Plain, then STARTTLS before anything else is accepted.
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

/// A message as it arrived.
#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
    /// The user who logged in.
    pub user: Option<String>,
    pub tls: bool,
}

impl Received {
    /// The parsed message: headers decoded, and the plain-text and HTML bodies.
    pub fn parsed(&self) -> (String, String, String) {
        let mail = mailparse::parse_mail(&self.data).expect("a well-formed message");
        let subject = mail
            .headers
            .iter()
            .find(|h| h.get_key().eq_ignore_ascii_case("subject"))
            .map(|h| h.get_value())
            .unwrap_or_default();
        let mut text = String::new();
        let mut html = String::new();
        for part in mail.parts() {
            match part.ctype.mimetype.as_str() {
                "text/plain" => text = part.get_body().unwrap_or_default(),
                "text/html" => html = part.get_body().unwrap_or_default(),
                _ => {}
            }
        }
        (subject, text, html)
    }
}

pub struct SmtpServer {
    pub port: u16,
    /// The CA certificate (PEM) to trust for this server.
    pub ca_file: PathBuf,
    received: Arc<Mutex<Vec<Received>>>,
}

pub const USER: &str = "mailer";
pub const PASSWORD: &str = "mail-secret";

impl SmtpServer {
    pub async fn start(security: Security) -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "kefu test mail CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let ca_file = tempfile::Builder::new()
            .suffix(".pem")
            .tempfile()
            .unwrap()
            .into_temp_path()
            .keep()
            .unwrap();
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let tls = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let store = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { return };
                let (acceptor, store) = (acceptor.clone(), store.clone());
                tokio::spawn(async move {
                    let result = match security {
                        Security::Implicit => match acceptor.accept(socket).await {
                            Ok(tls) => session(tls, security, true, &store).await.map(|_| ()),
                            Err(_) => Ok(()),
                        },
                        _ => match session(socket, security, false, &store).await {
                            Ok(Some(plain)) => match acceptor.accept(plain).await {
                                Ok(tls) => session(tls, security, true, &store).await.map(|_| ()),
                                Err(_) => Ok(()),
                            },
                            other => other.map(|_| ()),
                        },
                    };
                    let _ = result;
                });
            }
        });
        SmtpServer { port, ca_file, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (at most 20 s) until `n` messages have arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..200 {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {n} emails, got {}", self.received().len());
    }
}

/// One SMTP conversation over `stream`. Returns the stream when the client asked for
/// STARTTLS (the caller wraps it and goes on with `tls = true`).
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    security: Security,
    tls: bool,
    store: &Mutex<Vec<Received>>,
) -> std::io::Result<Option<S>> {
    let mut io = BufReader::new(stream);
    if !tls || security == Security::Implicit {
        io.get_mut().write_all(b"220 localhost ESMTP kefu-test\r\n").await?;
    }
    let (mut from, mut to, mut user) = (String::new(), Vec::new(), None::<String>);
    // Before TLS nothing but EHLO, STARTTLS and QUIT is accepted, where TLS is offered.
    let tls_first = security == Security::StartTls && !tls;
    let mut line = String::new();
    loop {
        line.clear();
        if io.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let cmd = line.trim_end().to_owned();
        let upper = cmd.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            let mut r = String::from("250-localhost\r\n250-8BITMIME\r\n");
            if tls_first {
                r.push_str("250-STARTTLS\r\n");
            } else {
                r.push_str("250-AUTH PLAIN LOGIN\r\n");
            }
            r.push_str("250 SMTPUTF8\r\n");
            r
        } else if upper == "STARTTLS" && tls_first {
            io.get_mut().write_all(b"220 2.0.0 Ready to start TLS\r\n").await?;
            return Ok(Some(io.into_inner()));
        } else if upper == "QUIT" {
            io.get_mut().write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(None);
        } else if tls_first {
            "530 5.7.0 Must issue a STARTTLS command first\r\n".into()
        } else if let Some(rest) = upper.strip_prefix("AUTH PLAIN") {
            let encoded = cmd[cmd.len() - rest.len()..].trim().to_owned();
            let decoded =
                base64::engine::general_purpose::STANDARD.decode(encoded).unwrap_or_default();
            let parts: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
            if parts.len() == 3 && parts[1] == USER.as_bytes() && parts[2] == PASSWORD.as_bytes() {
                user = Some(USER.into());
                "235 2.7.0 Authentication successful\r\n".into()
            } else {
                "535 5.7.8 Authentication credentials invalid\r\n".into()
            }
        } else if upper == "AUTH LOGIN" {
            let b64 = base64::engine::general_purpose::STANDARD;
            io.get_mut().write_all(b"334 VXNlcm5hbWU6\r\n").await?;
            let mut name = String::new();
            io.read_line(&mut name).await?;
            io.get_mut().write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            let mut pass = String::new();
            io.read_line(&mut pass).await?;
            let (name, pass) = (
                b64.decode(name.trim()).unwrap_or_default(),
                b64.decode(pass.trim()).unwrap_or_default(),
            );
            if name == USER.as_bytes() && pass == PASSWORD.as_bytes() {
                user = Some(USER.into());
                "235 2.7.0 Authentication successful\r\n".into()
            } else {
                "535 5.7.8 Authentication credentials invalid\r\n".into()
            }
        } else if let Some(rest) = upper.strip_prefix("MAIL FROM:") {
            from = cmd[cmd.len() - rest.len()..]
                .trim()
                .trim_matches(|c| c == '<' || c == '>')
                .to_owned();
            to.clear();
            "250 2.1.0 Ok\r\n".into()
        } else if let Some(rest) = upper.strip_prefix("RCPT TO:") {
            let rcpt = cmd[cmd.len() - rest.len()..]
                .trim()
                .trim_matches(|c| c == '<' || c == '>')
                .to_owned();
            if rcpt.starts_with("bounce") {
                "550 5.1.1 No such user here\r\n".into()
            } else {
                to.push(rcpt);
                "250 2.1.5 Ok\r\n".into()
            }
        } else if upper == "DATA" {
            io.get_mut().write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
            let mut data = Vec::new();
            loop {
                let mut l = String::new();
                if io.read_line(&mut l).await? == 0 {
                    return Ok(None);
                }
                if l == ".\r\n" {
                    break;
                }
                // Dot-stuffing: a line starting with a dot was sent with one more.
                let unstuffed = if l.starts_with("..") { &l[1..] } else { l.as_str() };
                data.extend_from_slice(unstuffed.as_bytes());
            }
            store.lock().unwrap().push(Received {
                from: from.clone(),
                to: to.clone(),
                data,
                user: user.clone(),
                tls,
            });
            "250 2.0.0 Ok: queued\r\n".into()
        } else if upper == "RSET" {
            to.clear();
            "250 2.0.0 Ok\r\n".into()
        } else if upper == "NOOP" {
            "250 2.0.0 Ok\r\n".into()
        } else {
            "502 5.5.2 Command not recognized\r\n".into()
        };
        io.get_mut().write_all(reply.as_bytes()).await?;
    }
}

/// Points the platform's email at `server` directly in the database (for suites that only
/// need email to be on, not the console's own settings page).
pub async fn use_for(app: &crate::helpers::TestApp, server: &SmtpServer) {
    let smtp = serde_json::json!({
        "host": "localhost", "port": server.port, "security": "none", "username": USER,
        "password": PASSWORD, "from": "support@kefu.test"
    });
    sqlx::query(
        "insert into public.system_settings (key, value) values ('smtp', $1)
         on conflict (key) do update set value = excluded.value",
    )
    .bind(smtp)
    .execute(app.pool())
    .await
    .unwrap();
    app.state.system.invalidate();
}
