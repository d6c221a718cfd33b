//! GraphQL over WebSocket, both protocols (`protocol.rs`), as graphql-ws's PROTOCOL.md and
//! its clients expect: `connection_init` authenticates (and refuses an ended session with
//! 4403), nothing runs before it is acknowledged (4401), it must come in time (4408) and once
//! (4429), ids are unique (4409), an operation that cannot start answers `error`, and a socket
//! holds a bounded number of operations. The server closes the socket itself when the member's
//! token expires or their session ends (`live::sessions`), with 4403, which graphql-ws retries
//! with fresh `connectionParams`.

mod protocol;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::{Data, Response};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response as HttpResponse;
use futures_util::stream::{self, BoxStream, SplitSink};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio_stream::StreamMap;

use self::protocol::{ClientMessage, Protocol, close};
use super::graphql::request_meta;
use super::{HttpState, authenticate};
use crate::auth::Principal;
use crate::db::audit::RequestMeta;
use crate::graphql::request_data;
use crate::live::sessions::Closing;

pub async fn graphql_ws(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> HttpResponse {
    let Some(protocol) = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(Protocol::choose)
    else {
        return super::error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "ask for the graphql-transport-ws or graphql-ws subprotocol",
        );
    };
    let meta = request_meta(&state, &headers, peer);
    upgrade
        .protocols([protocol.name()])
        // The defaults (a 128 KiB read buffer allocated per socket, an unbounded write buffer)
        // cost 1.6 GiB for 10,000 idle subscribers; frames here are small.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(1024 * 1024)
        .on_upgrade(move |socket| async move {
            Connection::new(state, protocol, meta).run(socket).await;
        })
}

/// An operation's results, then `None` when it ends.
type Results = BoxStream<'static, Option<Response>>;

/// Why the loop ended: a close frame to send, or none (the client went away).
type Ending = Option<(u16, String)>;

struct Connection {
    state: HttpState,
    protocol: Protocol,
    meta: RequestMeta,
    /// After an acknowledged `connection_init`: what every operation of the socket carries.
    data: Option<Arc<Data>>,
    init_received: bool,
    operations: StreamMap<String, Results>,
    /// Operations that have not produced a result yet: a failure there is an `error`.
    starting: HashSet<String>,
    /// Told when a member's token expires or their session ends (taken by the loop).
    registered: Option<oneshot::Receiver<Closing>>,
}

impl Connection {
    fn new(state: HttpState, protocol: Protocol, meta: RequestMeta) -> Self {
        Connection {
            state,
            protocol,
            meta,
            data: None,
            init_received: false,
            operations: StreamMap::new(),
            starting: HashSet::new(),
            registered: None,
        }
    }

    async fn run(mut self, socket: WebSocket) {
        let (mut sink, mut incoming) = socket.split();
        let init_timeout = self.state.app.config.ws_init_timeout();
        let init_deadline = tokio::time::sleep(init_timeout);
        tokio::pin!(init_deadline);
        let mut closing = None;
        let ending: Ending = loop {
            let step = tokio::select! {
                frame = incoming.next() => match frame {
                    Some(Ok(Message::Text(text))) => self.receive(text.as_bytes(), &mut sink).await,
                    Some(Ok(Message::Binary(bytes))) => self.receive(&bytes, &mut sink).await,
                    Some(Ok(_)) => Ok(()),
                    Some(Err(_)) | None => break None,
                },
                Some((id, result)) = self.operations.next(), if !self.operations.is_empty() => {
                    self.deliver(id, result, &mut sink).await
                }
                () = &mut init_deadline, if !self.init_received => {
                    Err(Some((close::INIT_TIMEOUT, "Connection initialisation timeout".into())))
                }
                why = told(&mut closing) => match why {
                    Ok(why) => Err(Some((why.code, why.reason.into()))),
                    // The registration is gone: nothing will tell this socket to close.
                    Err(_) => {
                        closing = None;
                        Ok(())
                    }
                },
            };
            if let Err(ending) = step {
                break ending;
            }
            if let Some(registered) = self.registered.take() {
                closing = Some(registered);
            }
        };
        if let Some((code, reason)) = ending {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
    }

    /// Handles one client frame; `Err` ends the connection.
    async fn receive(&mut self, frame: &[u8], sink: &mut Sink) -> Result<(), Ending> {
        let message = ClientMessage::parse(self.protocol, frame)
            .map_err(|why| Some((close::BAD_REQUEST, why)))?;
        match message {
            ClientMessage::ConnectionInit(payload) => self.init(payload, sink).await,
            ClientMessage::Subscribe { id, request } => self.start(id, *request, sink).await,
            ClientMessage::Complete(id) => {
                self.starting.remove(&id);
                let stopped = self.operations.remove(&id).is_some();
                // The legacy protocol confirms a stop; graphql-transport-ws does not.
                if stopped && self.protocol == Protocol::Legacy {
                    send(sink, Protocol::complete(&id)).await?;
                }
                Ok(())
            }
            ClientMessage::Ping(payload) => send(sink, Protocol::pong(payload)).await,
            ClientMessage::Pong => Ok(()),
            ClientMessage::Terminate => Err(None),
        }
    }

    async fn init(
        &mut self,
        payload: Option<serde_json::Value>,
        sink: &mut Sink,
    ) -> Result<(), Ending> {
        if self.init_received {
            return Err(Some((
                close::TOO_MANY_INITS,
                "Too many initialisation requests".into(),
            )));
        }
        self.init_received = true;
        let authorization = payload.as_ref().and_then(|p| {
            p.get("authorization")
                .or_else(|| p.get("Authorization"))
                .and_then(|v| v.as_str())
        });
        let app = &self.state.app;
        let principal = authenticate(app, authorization).await;
        if let Principal::Rejected(reason) = &principal {
            if self.protocol == Protocol::Legacy {
                send(sink, Protocol::connection_error(reason)).await?;
            }
            return Err(Some((close::FORBIDDEN, format!("Forbidden: {reason}"))));
        }
        let registration = match &principal {
            Principal::Member(claims) => {
                let (tx, rx) = oneshot::channel();
                self.registered = Some(rx);
                Some(app.sockets.register(claims.clone(), tx))
            }
            _ => None,
        };
        let mut data = request_data(app, principal, self.meta.clone());
        // Dropped with the connection's data, when the socket ends.
        if let Some(r) = registration {
            data.insert(r);
        }
        self.data = Some(Arc::new(data));
        send(sink, Protocol::ack()).await
    }

    async fn start(
        &mut self,
        id: String,
        mut request: async_graphql::Request,
        sink: &mut Sink,
    ) -> Result<(), Ending> {
        let Some(data) = self.data.clone() else {
            return Err(Some((close::UNAUTHORIZED, "Unauthorized".into())));
        };
        if self.operations.contains_key(&id) {
            let id: String = id.chars().take(64).collect();
            return Err(Some((
                close::SUBSCRIBER_EXISTS,
                format!("Subscriber for {id} already exists"),
            )));
        }
        if let Some(trusted) = &self.state.trusted
            && let Err(err) = trusted.admit(&mut request).await
        {
            return send(sink, self.protocol.error(&id, &[err])).await;
        }
        let limit = self.state.app.config.max_subscriptions_per_socket;
        if self.operations.len() >= limit {
            let refused = crate::error::AppError::TooComplex(format!(
                "this socket already runs {limit} operations; complete one or open another socket"
            ));
            let mut err = async_graphql::ServerError::new(refused.to_string(), None);
            err.source = Some(Arc::new(refused));
            crate::graphql::errors::assign_code(&mut err);
            return send(sink, self.protocol.error(&id, &[err])).await;
        }
        let results = self
            .state
            .schema
            .execute_stream_with_session_data(request, data)
            .map(Some)
            .chain(stream::once(async { None }))
            .boxed();
        self.starting.insert(id.clone());
        self.operations.insert(id, results);
        Ok(())
    }

    /// One result of operation `id`, or its end.
    async fn deliver(
        &mut self,
        id: String,
        result: Option<Response>,
        sink: &mut Sink,
    ) -> Result<(), Ending> {
        let first = self.starting.remove(&id);
        match result {
            Some(response)
                if first && response.data == async_graphql::Value::Null && response.is_err() =>
            {
                self.operations.remove(&id);
                send(sink, self.protocol.error(&id, &response.errors)).await
            }
            Some(response) => send(sink, self.protocol.next(&id, &response)).await,
            None => {
                self.operations.remove(&id);
                send(sink, Protocol::complete(&id)).await
            }
        }
    }
}

type Sink = SplitSink<WebSocket, Message>;

/// Why the server must close this socket, once it is told; never, for a socket not registered.
async fn told(
    closing: &mut Option<oneshot::Receiver<Closing>>,
) -> Result<Closing, oneshot::error::RecvError> {
    match closing {
        Some(rx) => rx.await,
        None => std::future::pending().await,
    }
}

async fn send(sink: &mut Sink, text: String) -> Result<(), Ending> {
    sink.send(Message::Text(text.into()))
        .await
        .map_err(|_| None)
}
