//! Outgoing mail over SMTP (lettre, rustls). Host, port, credentials, sender and transport
//! security come from configuration; without a host there is no mailer, and what would have
//! been mailed is only stored.

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{Config, SmtpSecurity};

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// A file to attach.
pub struct File {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl Mailer {
    /// The mailer the configuration describes; `None` when no SMTP host is set.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Mailer>> {
        let Some(host) = config.smtp_host.as_deref().filter(|h| !h.is_empty()) else {
            return Ok(None);
        };
        let mut builder = match config.smtp_security {
            SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        }
        .port(config.smtp_port)
        .timeout(Some(std::time::Duration::from_secs(30)));
        if let Some(user) = &config.smtp_username {
            let password = config.smtp_password.clone().unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let from: Mailbox = config.smtp_from.parse().map_err(|e| {
            anyhow::anyhow!("smtp_from {:?} is not a mailbox: {e}", config.smtp_from)
        })?;
        Ok(Some(Mailer {
            transport: builder.build(),
            from,
        }))
    }

    /// Sends one message to one recipient.
    pub async fn send(
        &self,
        to: Mailbox,
        subject: &str,
        text: String,
        file: Option<File>,
    ) -> anyhow::Result<()> {
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject);
        let message = match file {
            None => builder.singlepart(SinglePart::plain(text))?,
            Some(f) => {
                let content_type = ContentType::parse(&f.content_type)?;
                builder.multipart(
                    MultiPart::mixed()
                        .singlepart(SinglePart::plain(text))
                        .singlepart(Attachment::new(f.name).body(f.bytes, content_type)),
                )?
            }
        };
        self.transport.send(message).await?;
        Ok(())
    }
}
