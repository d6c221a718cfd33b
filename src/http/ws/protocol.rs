//! The two GraphQL-over-WebSocket protocols on the wire: `graphql-transport-ws` (graphql-ws's
//! PROTOCOL.md) and the legacy `graphql-ws` of subscriptions-transport-ws. What they share is
//! one [`ClientMessage`]; what differs is named per [`Protocol`].

use async_graphql::{Response, ServerError};
use serde::Deserialize;
use serde_json::{Value, json};

/// Close codes of `graphql-transport-ws`, used with the legacy protocol too.
pub mod close {
    /// A message that is not one the protocol knows.
    pub const BAD_REQUEST: u16 = 4400;
    /// `subscribe` before the connection was acknowledged (graphql-ws gives up on it).
    pub const UNAUTHORIZED: u16 = 4401;
    /// Credentials refused, expired or ended (graphql-ws retries it, asking for new ones).
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const SUBSCRIBER_EXISTS: u16 = 4409;
    pub const TOO_MANY_INITS: u16 = 4429;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws`.
    TransportWs,
    /// `graphql-ws`, subscriptions-transport-ws's protocol.
    Legacy,
}

impl Protocol {
    /// The first protocol of a `Sec-WebSocket-Protocol` header that is one of ours.
    pub fn choose(header: &str) -> Option<Protocol> {
        header.split(',').find_map(|p| match p.trim() {
            "graphql-transport-ws" => Some(Protocol::TransportWs),
            "graphql-ws" => Some(Protocol::Legacy),
            _ => None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::TransportWs => "graphql-transport-ws",
            Protocol::Legacy => "graphql-ws",
        }
    }

    /// One result of operation `id`.
    pub fn next(self, id: &str, response: &Response) -> String {
        let kind = match self {
            Protocol::TransportWs => "next",
            Protocol::Legacy => "data",
        };
        json!({ "id": id, "type": kind, "payload": response }).to_string()
    }

    /// Operation `id` failed before it produced a result (it did not validate, or its
    /// subscription could not start): no `complete` follows.
    pub fn error(self, id: &str, errors: &[ServerError]) -> String {
        json!({ "id": id, "type": "error", "payload": errors }).to_string()
    }

    pub fn complete(id: &str) -> String {
        json!({ "id": id, "type": "complete" }).to_string()
    }

    pub fn ack() -> String {
        json!({ "type": "connection_ack" }).to_string()
    }

    pub fn pong(payload: Option<Value>) -> String {
        match payload {
            Some(payload) => json!({ "type": "pong", "payload": payload }),
            None => json!({ "type": "pong" }),
        }
        .to_string()
    }

    /// The legacy protocol's refusal of `connection_init` (then the socket closes).
    pub fn connection_error(message: &str) -> String {
        json!({ "type": "connection_error", "payload": { "message": message } }).to_string()
    }
}

/// What a client sends, in either protocol.
#[derive(Debug)]
pub enum ClientMessage {
    ConnectionInit(Option<Value>),
    Subscribe {
        id: String,
        request: Box<async_graphql::Request>,
    },
    Complete(String),
    Ping(Option<Value>),
    Pong,
    /// The legacy protocol's goodbye.
    Terminate,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    payload: Option<Value>,
}

impl ClientMessage {
    /// A text or binary frame; the error says why it is not a message of `protocol`.
    pub fn parse(protocol: Protocol, frame: &[u8]) -> Result<ClientMessage, String> {
        let raw: Raw = serde_json::from_slice(frame).map_err(|e| format!("not a message: {e}"))?;
        let id = |raw: Raw| {
            raw.id
                .filter(|id| !id.is_empty())
                .ok_or_else(|| format!("`{}` needs an `id`", raw.kind))
        };
        use Protocol::{Legacy, TransportWs};
        Ok(match (protocol, raw.kind.as_str()) {
            (_, "connection_init") => ClientMessage::ConnectionInit(raw.payload),
            (TransportWs, "subscribe") | (Legacy, "start") => {
                let payload = raw.payload.clone().unwrap_or(Value::Null);
                let request = serde_json::from_value(payload)
                    .map_err(|e| format!("`{}` needs a GraphQL request: {e}", raw.kind))?;
                ClientMessage::Subscribe {
                    id: id(raw)?,
                    request: Box::new(request),
                }
            }
            (TransportWs, "complete") | (Legacy, "stop") => ClientMessage::Complete(id(raw)?),
            (TransportWs, "ping") => ClientMessage::Ping(raw.payload),
            (TransportWs, "pong") => ClientMessage::Pong,
            (Legacy, "connection_terminate") => ClientMessage::Terminate,
            (_, other) => {
                return Err(format!(
                    "`{}` is not a message of {}",
                    other.chars().take(40).collect::<String>(),
                    protocol.name()
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_speaks_its_own_words() {
        let subscribe = br#"{"id":"1","type":"subscribe","payload":{"query":"{ me { id } }"}}"#;
        assert!(matches!(
            ClientMessage::parse(Protocol::TransportWs, subscribe),
            Ok(ClientMessage::Subscribe { id, .. }) if id == "1"
        ));
        assert!(ClientMessage::parse(Protocol::Legacy, subscribe).is_err());
        let start = br#"{"id":"1","type":"start","payload":{"query":"{ me { id } }"}}"#;
        assert!(ClientMessage::parse(Protocol::Legacy, start).is_ok());
        let no_id = br#"{"type":"subscribe","payload":{"query":"{ me { id } }"}}"#;
        assert!(ClientMessage::parse(Protocol::TransportWs, no_id).is_err());
        let not_a_request = br#"{"id":"1","type":"subscribe","payload":5}"#;
        assert!(ClientMessage::parse(Protocol::TransportWs, not_a_request).is_err());
        assert!(ClientMessage::parse(Protocol::TransportWs, b"[1,2]").is_err());
        assert_eq!(
            Protocol::choose("graphql-ws, graphql-transport-ws"),
            Some(Protocol::Legacy)
        );
        assert_eq!(Protocol::choose("soap"), None);
    }
}
