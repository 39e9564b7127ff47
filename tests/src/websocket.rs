//! A real WebSocket upstream on loopback, and a client to reach it
//! through the host.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Echoes every text and binary message. The text `close NNNN` is
/// answered with a close frame of code NNNN instead. Records the close
/// codes clients sent and the handshake's headers.
pub struct WsUpstream {
    pub addr: SocketAddr,
    /// Connections whose handshake completed.
    pub opened: Arc<AtomicUsize>,
    /// Close codes received from clients, in order.
    pub closes: Arc<Mutex<Vec<u16>>>,
    /// The last handshake's request headers, lowercase names.
    pub last_headers: Arc<Mutex<Vec<(String, String)>>>,
    _rt: tokio::runtime::Runtime,
}

impl WsUpstream {
    pub fn start() -> WsUpstream {
        let (rt, listener) = crate::server_runtime("127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let opened = Arc::new(AtomicUsize::new(0));
        let closes = Arc::new(Mutex::new(Vec::new()));
        let last_headers = Arc::new(Mutex::new(Vec::new()));
        let (o, c, h) = (opened.clone(), closes.clone(), last_headers.clone());
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (o, c, h) = (o.clone(), c.clone(), h.clone());
                tokio::spawn(async move {
                    // tungstenite's callback type: its error is an HTTP response.
                    #[allow(clippy::result_large_err)]
                    let record = |req: &Request, resp: Response| {
                        *h.lock().unwrap() = crate::header_pairs(req.headers());
                        Ok(resp)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await
                    else {
                        return;
                    };
                    o.fetch_add(1, Ordering::Relaxed);
                    while let Some(Ok(msg)) = ws.next().await {
                        match msg {
                            Message::Text(t) if t.starts_with("close ") => {
                                let code: u16 = t[6..].parse().unwrap_or(1000);
                                let _ = ws
                                    .close(Some(CloseFrame {
                                        code: CloseCode::from(code),
                                        reason: "asked".into(),
                                    }))
                                    .await;
                            }
                            Message::Text(_) | Message::Binary(_) => {
                                let echoed = ws.send(msg).await;
                                if echoed.is_err() {
                                    return;
                                }
                            }
                            Message::Close(frame) => {
                                c.lock()
                                    .unwrap()
                                    .push(frame.map_or(1005, |f| u16::from(f.code)));
                            }
                            _ => {}
                        }
                    }
                });
            }
        });
        WsUpstream {
            addr,
            opened,
            closes,
            last_headers,
            _rt: rt,
        }
    }

    pub fn opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    pub fn closes(&self) -> Vec<u16> {
        self.closes.lock().unwrap().clone()
    }

    /// A header of the last handshake.
    pub fn handshake_header(&self, name: &str) -> Option<String> {
        self.last_headers
            .lock()
            .unwrap()
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to `url` (`ws://…`): the client, or the HTTP status
/// the handshake was refused with.
pub async fn connect(url: &str) -> Result<Client, u16> {
    match tokio_tungstenite::connect_async(url).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("WebSocket handshake with {url}: {e}"),
    }
}

/// Opens a WebSocket to `url` with one more request header: the client,
/// or the HTTP status and body the handshake was answered with instead.
pub async fn connect_with(url: &str, name: &str, value: &str) -> Result<Client, (u16, String)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().expect("a ws:// URL");
    req.headers_mut()
        .insert(http_name(name), value.parse().expect("a header value"));
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("WebSocket handshake with {url}: {e}"),
    }
}

fn http_name(name: &str) -> tokio_tungstenite::tungstenite::http::HeaderName {
    name.parse().expect("a header name")
}

/// The next text or binary message, as text.
pub async fn next_text(ws: &mut Client) -> Option<String> {
    next_text_of(ws).await
}

/// [`next_text`] over any transport (`wss://` too).
pub async fn next_text_of<S>(ws: &mut WebSocketStream<S>) -> Option<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(msg) = ws.next().await {
        match msg.ok()? {
            Message::Text(t) => return Some(t.to_string()),
            Message::Binary(b) => return Some(String::from_utf8_lossy(&b).into_owned()),
            Message::Close(_) => return None,
            _ => {}
        }
    }
    None
}

/// Reads until the peer's close frame: its code.
pub async fn close_code(ws: &mut Client) -> Option<u16> {
    while let Some(msg) = ws.next().await {
        if let Ok(Message::Close(frame)) = msg {
            return Some(frame.map_or(1005, |f| u16::from(f.code)));
        }
    }
    None
}
