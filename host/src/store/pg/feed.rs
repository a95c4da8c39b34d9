//! The change feed's Postgres side: `NOTIFY` on one channel through the pool, and a
//! connection of its own (a pooled one cannot be kept listening) that `LISTEN`s and
//! hands each notification's payload on.

use super::PgDb;
use crate::store::StoreError;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Socket};

/// The channel every instance on one database listens on.
pub const CHANNEL: &str = "aihub_changes";

/// A listening connection: payloads arrive on `payloads`, which ends when the connection
/// does; `client` answers the liveness checks.
pub struct Listener {
    pub client: tokio_postgres::Client,
    pub payloads: mpsc::UnboundedReceiver<String>,
}

impl PgDb {
    /// Sends `payload` to every listener (this instance's own included), once the
    /// statement's implicit transaction commits.
    pub async fn notify(&self, payload: &str) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
            .await?;
        Ok(())
    }

    /// Opens a connection outside the pool and listens on [`CHANNEL`].
    pub async fn listen(&self) -> Result<Listener, StoreError> {
        let password = self.direct.config.get_password().map(<[u8]>::to_vec);
        let opened = if self.direct.tls {
            open(&self.direct.config, super::tls::MakeRustls::new()?).await
        } else {
            open(&self.direct.config, tokio_postgres::NoTls).await
        };
        opened.map_err(|e| {
            StoreError::Unavailable(super::scrub(
                format!("change feed: cannot listen on {}: {e}", self.shown),
                password.as_deref(),
            ))
        })
    }
}

async fn open<T>(config: &tokio_postgres::Config, tls: T) -> Result<Listener, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await?;
    let (tx, payloads) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "change feed: the listening connection failed");
                    break;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok(Listener { client, payloads })
}
