//! Sending over SMTP with lettre: implicit TLS (`tls`, usually port 465), STARTTLS
//! (`starttls`, 587; the upgrade is required, never silently skipped) or plain (`none`,
//! for a relay on the same host). Certificates are checked against the public roots, plus
//! the CA in `smtp_ca_file` when a private relay uses its own.

use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor,
    message::{Mailbox, MultiPart, SinglePart, header::ContentType},
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    },
};

use crate::platform::system::{Smtp, SmtpSecurity};

/// How long one SMTP conversation may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Why an email was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The address or the settings cannot work; retrying will not help.
    #[error("{0}")]
    Permanent(String),
    /// The server could not be reached, or refused for now.
    #[error("{0}")]
    Transient(String),
}

/// The platform's SMTP server, ready to send.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// A mailer for `smtp`, trusting the PEM certificates in `extra_ca` besides the public
    /// roots. `site` names the sender.
    pub fn new(smtp: &Smtp, extra_ca: Option<&[u8]>, site: &str) -> Result<Self, SendError> {
        let host = smtp.host.trim();
        let from = smtp
            .from
            .trim()
            .parse::<lettre::Address>()
            .map(|address| Mailbox::new(Some(site.to_owned()), address))
            .map_err(|e| SendError::Permanent(format!("the sender address is invalid: {e}")))?;
        let tls = || {
            let mut params = TlsParameters::builder(host.to_owned());
            if let Some(pem) = extra_ca {
                let cert = Certificate::from_pem(pem)
                    .map_err(|e| SendError::Permanent(format!("smtp_ca_file: {e}")))?;
                params = params.add_root_certificate(cert);
            }
            params.build_rustls().map_err(|e| SendError::Permanent(format!("TLS setup: {e}")))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(smtp.port)
            .timeout(Some(TIMEOUT))
            .tls(match smtp.security {
                SmtpSecurity::Tls => Tls::Wrapper(tls()?),
                SmtpSecurity::Starttls => Tls::Required(tls()?),
                SmtpSecurity::None => Tls::None,
            });
        if !smtp.username.is_empty() {
            builder =
                builder.credentials(Credentials::new(smtp.username.clone(), smtp.password.clone()));
        }
        Ok(Self { transport: builder.build(), from })
    }

    /// Sends one email (plain text and HTML alternatives).
    pub async fn send(
        &self,
        to: &str,
        subject: &str,
        text: &str,
        html: &str,
    ) -> Result<(), SendError> {
        let to: Mailbox = to
            .trim()
            .parse()
            .map_err(|e| SendError::Permanent(format!("the recipient {to:?} is invalid: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text.to_owned()),
                    )
                    .singlepart(
                        SinglePart::builder().header(ContentType::TEXT_HTML).body(html.to_owned()),
                    ),
            )
            .map_err(|e| SendError::Permanent(format!("the email could not be built: {e}")))?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| {
            if e.is_permanent() {
                SendError::Permanent(e.to_string())
            } else {
                SendError::Transient(e.to_string())
            }
        })
    }
}

/// The extra CA certificate configured for SMTP (`smtp_ca_file`), read once per use.
pub fn extra_ca(config: &crate::config::Config) -> Result<Option<Vec<u8>>, SendError> {
    match &config.smtp_ca_file {
        Some(path) => std::fs::read(path).map(Some).map_err(|e| {
            SendError::Permanent(format!("reading smtp_ca_file {}: {e}", path.display()))
        }),
        None => Ok(None),
    }
}

/// A mailer for the platform's current settings.
pub fn mailer(
    config: &crate::config::Config,
    settings: &crate::platform::system::SystemSettings,
) -> Result<Mailer, SendError> {
    let ca = extra_ca(config)?;
    Mailer::new(&settings.smtp, ca.as_deref(), super::site_name(settings))
}
