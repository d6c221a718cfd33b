//! GraphQL over WebSocket (both protocols), authenticated by `connection_init`. Unlike
//! async-graphql-axum's own loop, this one can close the socket from the server's side: when
//! the member's access token expires or their session ends (`live::sessions`).

use std::net::SocketAddr;

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocket, WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message};
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt, future};
use tokio::sync::oneshot;

use super::graphql::request_meta;
use super::{HttpState, authenticate};
use crate::auth::Principal;
use crate::graphql::request_data;
use crate::live::sessions::Closing;

pub async fn graphql_ws(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(protocol) = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|p| p.trim().parse::<WebSocketProtocols>().ok())
        })
    else {
        return super::error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "ask for the graphql-transport-ws or graphql-ws subprotocol",
        );
    };
    let meta = request_meta(&state, &headers, peer);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // The defaults (a 128 KiB read buffer allocated per socket, an unbounded write buffer)
        // cost 1.6 GiB for 10,000 idle subscribers; frames here are small.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(1024 * 1024)
        .on_upgrade(move |socket| async move {
            let app = state.app.clone();
            let (close_tx, mut close_rx) = oneshot::channel::<Closing>();
            let (mut sink, stream) = socket.split();
            let input = stream
                .take_while(|m| future::ready(m.is_ok()))
                .filter_map(|m| {
                    future::ready(match m {
                        Ok(m @ (Message::Text(_) | Message::Binary(_))) => Some(m.into_data()),
                        _ => None,
                    })
                });
            let output = WebSocket::new(state.schema.clone(), input, protocol).on_connection_init(
                move |payload| async move {
                    let authorization = payload
                        .get("authorization")
                        .or_else(|| payload.get("Authorization"))
                        .and_then(|v| v.as_str())
                        .map(str::to_string);
                    let principal = authenticate(&app, authorization.as_deref()).await;
                    if let Principal::Rejected(reason) = &principal {
                        return Err(async_graphql::Error::new(reason.clone()));
                    }
                    let registration = match &principal {
                        Principal::Member(claims) => {
                            Some(app.sockets.register(claims.clone(), close_tx))
                        }
                        _ => None,
                    };
                    let mut data = request_data(&app, principal, meta);
                    // Dropped with the connection's data, when the socket ends.
                    if let Some(r) = registration {
                        data.insert(r);
                    }
                    Ok(data)
                },
            );
            futures_util::pin_mut!(output);
            // Only a registered member socket can be told to close.
            let mut closable = true;
            loop {
                tokio::select! {
                    next = output.next() => {
                        let message = match next {
                            Some(WsMessage::Text(text)) => Message::Text(text.into()),
                            Some(WsMessage::Close(code, reason)) => {
                                let _ = sink.send(close_frame(code, reason)).await;
                                break;
                            }
                            None => break,
                        };
                        if sink.send(message).await.is_err() {
                            break;
                        }
                    }
                    why = &mut close_rx, if closable => match why {
                        Ok(why) => {
                            let _ = sink.send(close_frame(why.code, why.reason.to_string())).await;
                            break;
                        }
                        Err(_) => closable = false,
                    },
                }
            }
        })
}

fn close_frame(code: u16, reason: String) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}
