//! A small protocol client for tests: real WebSockets to the real server.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

use crate::helpers::*;

pub type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Ws {
    pub socket: Socket,
}

/// A visitor of `ent_id`: session token and public id.
pub struct Visitor {
    pub token: String,
    pub id: String,
}

pub async fn visitor_session(app: &TestApp, ent_id: &str) -> Visitor {
    let res = client()
        .post(app.url("/api/v1/visitor/session"))
        .json(&json!({ "ent_id": ent_id }))
        .sent()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let body: Value = res.json().await.unwrap();
    Visitor {
        token: body["token"].as_str().unwrap().into(),
        id: body["visitor_id"].as_str().unwrap().into(),
    }
}

pub async fn visitor_ticket(app: &TestApp, token: &str) -> String {
    let res =
        client().post(app.url("/api/v1/visitor/ticket")).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_owned()
}

pub async fn agent_ticket(app: &TestApp, token: &str) -> String {
    let res = client().post(app.url("/api/v1/ws/ticket")).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_owned()
}

pub fn ws_url(app: &TestApp, path: &str) -> String {
    format!("ws://{}{path}", app.url.trim_start_matches("http://"))
}

impl Ws {
    pub async fn connect(url: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let (socket, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Ws { socket })
    }

    pub async fn visitor(app: &TestApp, token: &str, query: &str) -> Ws {
        let ticket = visitor_ticket(app, token).await;
        Ws::connect(&ws_url(app, &format!("/ws/visitor?ticket={ticket}{query}"))).await.unwrap()
    }

    pub async fn agent(app: &TestApp, token: &str, query: &str) -> Ws {
        let ticket = agent_ticket(app, token).await;
        Ws::connect(&ws_url(app, &format!("/ws/agent?ticket={ticket}{query}"))).await.unwrap()
    }

    pub async fn send(&mut self, frame: Value) {
        self.socket.send(Message::text(frame.to_string())).await.unwrap();
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.unwrap();
    }

    /// The next JSON frame, or `None` when the socket closed or nothing came within 5 s.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.socket.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                _ => return None,
            }
        }
    }

    /// Skips frames until the server closes the socket; returns the close code.
    pub async fn expect_close(&mut self) -> u16 {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.socket.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return frame.map_or(1005, |f| u16::from(f.code));
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Skips frames until one of type `kind` arrives.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let mut skipped = Vec::new();
        loop {
            match self.next().await {
                Some(f) if f["type"] == kind => return f,
                Some(f) => skipped.push(f["type"].to_string()),
                None => panic!("no {kind} frame (skipped {skipped:?})"),
            }
        }
    }

    /// Skips frames until `pred` holds.
    pub async fn expect_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.next().await {
                Some(f) if pred(&f) => return f,
                Some(_) => continue,
                None => panic!("no frame matching {what}"),
            }
        }
    }

    pub async fn send_text(
        &mut self,
        client_msg_id: &str,
        body: &str,
        conversation_id: Option<i64>,
    ) {
        let mut frame =
            json!({ "type": "send", "client_msg_id": client_msg_id, "kind": "text", "body": body });
        if let Some(id) = conversation_id {
            frame["conversation_id"] = json!(id);
        }
        self.send(frame).await;
    }
}
