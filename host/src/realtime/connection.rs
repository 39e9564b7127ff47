//! One client of a realtime route, from its upgrade request to its close.
//!
//! The backend is asked about the open before the handshake is answered,
//! so it can refuse a client (its non-2xx answer goes to the client in
//! place of the 101). Once upgraded, the connection's bytes are pumped
//! between Pingora's session and an in-memory pipe, and tokio-tungstenite
//! speaks the WebSocket protocol on the pipe's other end, in a task of its
//! own: framing, fragments, ping and pong, the close handshake, and the
//! protocol errors (1002, 1007, 1009) are the library's.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http::{header, Method};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::protocol::{self, Answer};
use super::{ClientId, Hub, RealtimeRoute};
use crate::actions::Produced;
use crate::upstream::client::Exchange;

/// The largest backend answer read.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// What the pump reads from the pipe at a time.
const PUMP_CHUNK: usize = 4096;

/// How long a closing client has to answer the close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The upgrade, accepted by the backend: the 101 to write, then [`run`].
pub struct Accepted {
    pub head: Box<ResponseHeader>,
    id: ClientId,
    answer: Answer,
    event: Event,
}

/// The upgrade request as the backend sees it with each event.
#[derive(Clone)]
struct Event {
    route: Arc<RealtimeRoute>,
    id: ClientId,
    headers: Vec<(String, String)>,
}

/// What a backend's refusal of an open keeps of its headers, besides its
/// Content-Type.
const REFUSAL_HEADERS: [header::HeaderName; 4] = [
    header::LOCATION,
    header::WWW_AUTHENTICATE,
    header::SET_COOKIE,
    header::RETRY_AFTER,
];

/// Request headers passed on to the backend with every event.
const PASSED_ON: [header::HeaderName; 5] = [
    header::SEC_WEBSOCKET_PROTOCOL,
    header::COOKIE,
    header::AUTHORIZATION,
    header::ORIGIN,
    header::USER_AGENT,
];

/// Checks the upgrade request and asks the backend about the open.
pub async fn open(
    hub: &Hub,
    route: &Arc<RealtimeRoute>,
    req: &RequestHeader,
    http2: bool,
    client_ip: Option<IpAddr>,
    request_id: &str,
) -> Result<Accepted, Produced> {
    let key = handshake_key(req, http2).map_err(|p| *p)?;
    let id = hub.new_id();
    let mut headers: Vec<(String, String)> = PASSED_ON
        .iter()
        .filter_map(|name| {
            let v = req.headers.get(name)?.to_str().ok()?;
            Some((name.to_string(), v.to_string()))
        })
        .collect();
    headers.push(("x-request-id".into(), request_id.into()));
    if let Some(ip) = client_ip {
        headers.push(("x-forwarded-for".into(), ip.to_string()));
    }
    if let Some(uri) = req.uri.path_and_query() {
        headers.push(("x-forwarded-uri".into(), uri.to_string()));
    }
    headers.push(("sec-websocket-client".into(), id.to_string()));
    let event = Event {
        route: route.clone(),
        id: id.clone(),
        headers,
    };
    let mut subprotocol = None;
    let answer = match event.call(hub, "open", Bytes::new()).await {
        Called::Answer(a, chosen) => {
            subprotocol = chosen;
            a
        }
        Called::Refused(p) => {
            hub.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(p);
        }
        Called::Failed(why) => {
            tracing::warn!(event = "realtime_backend_error", client = %id, "open: {why}");
            return Err(Produced::text(
                502,
                format!("502 Bad Gateway: the realtime backend could not be asked: {why}\n"),
            ));
        }
        Called::Unreadable(why) => {
            // The backend accepted the client; only its answer is lost.
            tracing::warn!(event = "realtime_backend_error", client = %id, "open: {why}");
            Answer::default()
        }
    };
    let mut head = ResponseHeader::build(101, Some(4)).expect("101 is a valid status");
    let _ = head.insert_header(header::UPGRADE, "websocket");
    let _ = head.insert_header(header::CONNECTION, "Upgrade");
    let _ = head.insert_header(header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(key));
    // The backend picks among the client's subprotocols, if it offered any.
    if let Some(chosen) = subprotocol {
        let _ = head.insert_header(header::SEC_WEBSOCKET_PROTOCOL, chosen);
    }
    Ok(Accepted {
        head: Box::new(head),
        id,
        answer,
        event,
    })
}

/// The client's `Sec-WebSocket-Key`, or the answer to a request that is
/// not a WebSocket upgrade Kavro can take.
fn handshake_key(req: &RequestHeader, http2: bool) -> Result<&[u8], Box<Produced>> {
    let upgrade_required = |why: &str| {
        let mut p = Produced::text(426, format!("426 Upgrade Required: {why}\n"));
        if !http2 {
            let _ = p.head.insert_header(header::UPGRADE, "websocket");
        }
        Box::new(p)
    };
    if http2 {
        return Err(upgrade_required(
            "this is a WebSocket endpoint; connect with HTTP/1.1 (ws:// or wss://)",
        ));
    }
    if req.method != Method::GET || !crate::actions::proxy::is_websocket_upgrade(&req.headers) {
        return Err(upgrade_required(
            "this is a WebSocket endpoint; send GET with Upgrade: websocket and Connection: Upgrade",
        ));
    }
    if req
        .headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        let mut p = upgrade_required("Kavro speaks WebSocket version 13");
        let _ = p.head.insert_header(header::SEC_WEBSOCKET_VERSION, "13");
        return Err(p);
    }
    match req.headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) if !key.is_empty() => Ok(key.as_bytes()),
        _ => Err(Box::new(Produced::text(
            400,
            "400 Bad Request: a WebSocket handshake needs Sec-WebSocket-Key\n",
        ))),
    }
}

enum Called {
    /// A 2xx's answer, and the subprotocol the backend chose, if any.
    Answer(Answer, Option<http::HeaderValue>),
    /// The backend's non-2xx answer, for the client.
    Refused(Produced),
    /// No answer: the backend could not be reached or timed out.
    Failed(String),
    /// A 2xx that is not a valid answer.
    Unreadable(String),
}

impl Event {
    /// POSTs one event (`open`, `text`, `close`) to the backend.
    async fn call(&self, hub: &Hub, frame: &'static str, body: Bytes) -> Called {
        let route = &self.route;
        let mut headers = self.headers.clone();
        headers.push(("sec-websocket-frame".into(), frame.into()));
        if !body.is_empty() {
            headers.push(("content-type".into(), "text/plain; charset=utf-8".into()));
        }
        let sent = Exchange {
            method: Method::POST,
            path_and_query: &route.path_on_backend,
            headers,
            body,
            budget: route.backend.timeouts.read,
            max_body: MAX_ANSWER_BYTES,
        }
        .send(&hub.client, &route.backend)
        .await;
        let answer = match sent {
            Ok(a) => a,
            Err(e) => {
                hub.stats.backend_errors.fetch_add(1, Ordering::Relaxed);
                return Called::Failed(e.to_string());
            }
        };
        if !answer.status.is_success() {
            hub.stats.backend_errors.fetch_add(1, Ordering::Relaxed);
            let mut p = Produced::text(answer.status.as_u16(), answer.body);
            if let Some(ct) = answer.headers.get(header::CONTENT_TYPE) {
                let _ = p.head.insert_header(header::CONTENT_TYPE, ct.clone());
            }
            for name in REFUSAL_HEADERS {
                for v in answer.headers.get_all(&name) {
                    let _ = p.head.append_header(name.clone(), v.clone());
                }
            }
            return Called::Refused(p);
        }
        match protocol::parse(&answer.body) {
            Ok(a) => Called::Answer(
                a,
                answer.headers.get(header::SEC_WEBSOCKET_PROTOCOL).cloned(),
            ),
            Err(why) => {
                hub.stats.backend_errors.fetch_add(1, Ordering::Relaxed);
                Called::Unreadable(why)
            }
        }
    }

    /// A text message's event; what goes wrong is logged, and the
    /// connection stays.
    async fn text(&self, hub: &Hub, text: String) {
        let why = match self.call(hub, "text", Bytes::from(text)).await {
            Called::Answer(a, _) => {
                hub.apply(Some(&self.id), &a);
                return;
            }
            Called::Refused(p) => format!("the backend answered {}", p.head.status),
            Called::Failed(why) | Called::Unreadable(why) => why,
        };
        tracing::warn!(
            event = "realtime_backend_error",
            client = %self.id,
            "message dropped: {why}"
        );
    }
}

impl Accepted {
    /// The backend accepted a client that will not be served (package
    /// refused the 101, or the client left): it hears of the close.
    pub fn abandon(self, hub: Arc<Hub>) {
        Accepted::closed(hub, self.event);
    }

    fn closed(hub: Arc<Hub>, event: Event) {
        tokio::spawn(async move { event.call(&hub, "close", Bytes::new()).await });
    }

    /// Serves the connection until it closes; the 101 is written first.
    pub async fn run(
        self,
        hub: Arc<Hub>,
        session: &mut Session,
        idle: Duration,
    ) -> pingora_core::Result<()> {
        let Accepted {
            head,
            id,
            answer,
            event,
        } = self;
        if let Err(e) = session.write_response_header(head, false).await {
            Accepted::closed(hub, event);
            return Err(e);
        }
        // An upgraded client idles as long as any WebSocket may, and one
        // that stops reading is let go after as long.
        session.set_read_timeout(Some(idle));
        session.set_write_timeout(Some(idle));
        let queue = hub.register(id.clone());
        hub.apply(Some(&id), &answer);
        let (edge, socket) = tokio::io::duplex(64 * 1024);
        let max = event.route.max_message_bytes;
        let config = WebSocketConfig {
            max_message_size: Some(max),
            max_frame_size: Some(max),
            ..Default::default()
        };
        let ws = WebSocketStream::from_raw_socket(socket, Role::Server, Some(config)).await;
        // The conversation ends by itself once the pipe closes; its close
        // event to the backend does not hold the connection.
        tokio::spawn(converse(hub.clone(), event, ws, queue, idle));
        pump(session, edge).await;
        Ok(())
    }
}

/// Moves bytes between the client and the pipe until the pipe closes.
async fn pump(session: &mut Session, mut edge: DuplexStream) {
    // Grown as reads need it: an idle client holds no more than this.
    let mut buf = BytesMut::with_capacity(PUMP_CHUNK);
    let mut client_open = true;
    loop {
        tokio::select! {
            read = session.read_request_body(), if client_open => match read {
                Ok(Some(bytes)) => {
                    if edge.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                // The client went away, or idled past its timeout.
                Ok(None) | Err(_) => {
                    client_open = false;
                    let _ = edge.shutdown().await;
                }
            },
            n = edge.read_buf(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let bytes = buf.split().freeze();
                    buf.reserve(PUMP_CHUNK);
                    if session.write_response_body(Some(bytes), false).await.is_err() {
                        // The client cannot be written to: nothing more to pump.
                        return;
                    }
                }
            },
        }
    }
    if client_open {
        let _ = session.write_response_body(None, true).await;
    }
}

/// Why the hub ends a connection: the close frame it sends, if any.
type Ending = Option<(CloseCode, &'static str)>;

/// The WebSocket side of one client. Its reader and writer run side by
/// side, so that neither waits on the other (nor on the pump), and the
/// backend is called by a worker of its own, one event at a time, so that
/// a slow backend holds up neither the client's messages nor its pings.
async fn converse(
    hub: Arc<Hub>,
    event: Event,
    ws: WebSocketStream<DuplexStream>,
    queue: mpsc::Receiver<Arc<str>>,
    idle: Duration,
) {
    let (mut sink, mut stream) = ws.split();
    let (texts, pending) = mpsc::channel(EVENTS_QUEUE);
    tokio::spawn(call_backend(hub.clone(), event.clone(), pending));
    let ending = tokio::select! {
        e = read(&hub, &mut stream, texts) => e,
        e = write(&mut sink, queue, idle) => e,
    };
    hub.unregister(&event.id);
    let Ok(mut ws) = stream.reunite(sink) else {
        return;
    };
    match ending {
        Some((code, reason)) => {
            let frame = CloseFrame {
                code,
                reason: Cow::Borrowed(reason),
            };
            let _ = tokio::time::timeout(CLOSE_WAIT, ws.close(Some(frame))).await;
            // The client's close frame, or its hang-up, ends the handshake.
            let _ = tokio::time::timeout(CLOSE_WAIT, async {
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
        }
        // The client closed: tungstenite has queued the reply.
        None => {
            let _ = tokio::time::timeout(CLOSE_WAIT, ws.flush()).await;
        }
    }
}

/// Text events waiting for the backend, per client, beyond which the
/// client's messages are read no faster than the backend answers.
const EVENTS_QUEUE: usize = 64;

/// Reads the client's messages until it closes or breaks the protocol.
async fn read(
    hub: &Hub,
    stream: &mut futures_util::stream::SplitStream<WebSocketStream<DuplexStream>>,
    texts: mpsc::Sender<String>,
) -> Ending {
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => {
                hub.stats.messages.fetch_add(1, Ordering::Relaxed);
                if texts.send(text).await.is_err() {
                    return None;
                }
            }
            Some(Ok(Message::Binary(_))) => {
                return Some((
                    CloseCode::Unsupported,
                    "the realtime protocol carries text messages",
                ))
            }
            Some(Ok(Message::Close(_))) | None => return None,
            Some(Ok(_)) => {}
            Some(Err(WsError::Capacity(_))) => {
                return Some((
                    CloseCode::Size,
                    "the message is over the route's max_message_bytes",
                ))
            }
            Some(Err(WsError::Utf8)) => {
                return Some((CloseCode::Invalid, "a text message that is not UTF-8"))
            }
            Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)))
            | Some(Err(WsError::ConnectionClosed))
            | Some(Err(WsError::AlreadyClosed))
            | Some(Err(WsError::Io(_))) => return None,
            Some(Err(_)) => return Some((CloseCode::Protocol, "a malformed frame")),
        }
    }
}

/// Writes the hub's messages and the pings, until the hub lets go of the
/// client, the client stops reading, or the process is going away.
async fn write(
    sink: &mut futures_util::stream::SplitSink<WebSocketStream<DuplexStream>, Message>,
    mut queue: mpsc::Receiver<Arc<str>>,
    idle: Duration,
) -> Ending {
    let mut going_away = crate::shutdown::going_away();
    // A ping in each half of the idle timeout keeps a listening client's
    // connection alive: its pong counts as traffic.
    let mut ping = tokio::time::interval(idle / 2);
    ping.tick().await;
    let stalled = Some((CloseCode::Policy, "the client did not read its messages"));
    loop {
        let message = tokio::select! {
            out = queue.recv() => match out {
                Some(text) => Message::Text(text.to_string()),
                // The hub let go of this client: it did not read its messages.
                None => return stalled,
            },
            _ = ping.tick() => Message::Ping(Vec::new()),
            _ = async { going_away.wait_for(|&away| away).await.map(|_| ()) } => {
                return Some((CloseCode::Away, "the server is shutting down"));
            }
        };
        match tokio::time::timeout(idle, sink.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return None,
            Err(_) => return stalled,
        }
    }
}

/// Calls the backend with the client's messages in order, then with its
/// close, whose `@` message goes to the others.
async fn call_backend(hub: Arc<Hub>, event: Event, mut texts: mpsc::Receiver<String>) {
    while let Some(text) = texts.recv().await {
        event.text(&hub, text).await;
    }
    if let Called::Answer(a, _) = event.call(&hub, "close", Bytes::new()).await {
        hub.apply(None, &a);
    }
}
