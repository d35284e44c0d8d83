//! One worker's HTTP/1.1 connection to the target, driven by the worker's own task.
//!
//! The load generator shares the machine with what it measures, so its cost per request is
//! taken from the service's throughput. A pooled client (`reqwest`) spends a good part of a
//! request on what a closed-loop worker does not need: a URL parse, the pool's lock, a proxy
//! check and a hand-over to a connection task on another thread and back. Here each worker
//! owns one keep-alive connection (`hyper`'s client connection) and polls it itself, together
//! with the request: no pool, no second task, no cross-thread wake-up per request.
//!
//! What the ratings ledger needs is kept: an answer says whether the request may have reached
//! the target ([`Failure::sent`]). A request is written only on a connection that is ready; if
//! the target closed an idle connection meanwhile, the request comes back unsent and goes once
//! more on a fresh connection, as a pooled client retries it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::net::TcpStream;

/// The request body type (empty for reads, JSON for ratings).
pub type Body = Full<Bytes>;

/// Where the connections go: the target's host and port, as `connect` takes them.
#[derive(Debug, Clone)]
pub struct Target {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// What the target answered: the status and whether the nearest cache served it.
#[derive(Debug, Clone, Copy)]
pub struct Answered {
    /// The response's status.
    pub status: StatusCode,
    /// The last `Cache-Status` member says hit (see `shared::cache_status`).
    pub hit: bool,
}

/// Why a request has no complete answer.
#[derive(Debug, Clone, Copy)]
pub struct Failure {
    /// The deadline passed.
    pub timeout: bool,
    /// The request may have reached the target (it was written, or may have been).
    pub sent: bool,
    /// The status, if it came before the failure (the body did not).
    pub status: Option<StatusCode>,
}

/// A worker's connection, opened on first use and again after any failure.
#[derive(Default)]
pub struct Link {
    open: Option<Open>,
}

struct Open {
    sender: SendRequest<Body>,
    /// `None` once its future has finished: the link is then dropped, never reused.
    connection: Option<Connection<TokioIo<TcpStream>, Body>>,
}

impl Link {
    /// Sends `request` and reads its whole answer within `timeout`.
    pub async fn exchange(
        &mut self,
        target: &Target,
        request: Request<Body>,
        timeout: Duration,
    ) -> Result<Answered, Failure> {
        match tokio::time::timeout(timeout, self.exchange_once(target, request)).await {
            Ok(answer) => answer,
            Err(_) => {
                // Whatever state the connection is in, it is not reused.
                self.open = None;
                Err(Failure {
                    timeout: true,
                    sent: true,
                    status: None,
                })
            }
        }
    }

    async fn exchange_once(
        &mut self,
        target: &Target,
        request: Request<Body>,
    ) -> Result<Answered, Failure> {
        let mut request = request;
        // A kept connection the target closed gives the request back unsent: once more on a
        // fresh one.
        for fresh in [self.open.is_none(), true] {
            if fresh {
                self.open = Some(connect(target).await?);
            }
            let open = self.open.as_mut().expect("opened above");
            let sent = open.send(request).await;
            if open.connection.is_none() {
                self.open = None;
            }
            match sent {
                Ok(answered) => return Ok(answered),
                Err(Sent::No(back)) if !fresh => {
                    self.open = None;
                    request = *back;
                }
                Err(Sent::No(_)) => {
                    self.open = None;
                    return Err(Failure {
                        timeout: false,
                        sent: false,
                        status: None,
                    });
                }
                Err(Sent::Maybe(status)) => {
                    self.open = None;
                    return Err(Failure {
                        timeout: false,
                        sent: true,
                        status,
                    });
                }
            }
        }
        unreachable!("the second try is on a fresh connection")
    }
}

/// How a send failed: before the request was written (it comes back, boxed: this is the rare
/// path), or after.
enum Sent {
    No(Box<Request<Body>>),
    Maybe(Option<StatusCode>),
}

impl Open {
    /// The request and its whole answer, polling the connection alongside.
    async fn send(&mut self, request: Request<Body>) -> Result<Answered, Sent> {
        let Open { sender, connection } = self;
        let work = async {
            if sender.ready().await.is_err() {
                return Err(Sent::No(Box::new(request)));
            }
            let response = match sender.try_send_request(request).await {
                Ok(response) => response,
                Err(mut err) => {
                    return Err(match err.take_message() {
                        Some(back) => Sent::No(Box::new(back)),
                        None => Sent::Maybe(None),
                    });
                }
            };
            let status = response.status();
            // The cache closest to this client appended the last member (RFC 9211 2); with
            // several field lines, it is in the last one.
            let hit = response
                .headers()
                .get_all("cache-status")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .next_back()
                .is_some_and(shared::cache_status::client_side_hit);
            // The whole body, as a client would read it.
            match response.into_body().collect().await {
                Ok(_) => Ok(Answered { status, hit }),
                Err(_) => Err(Sent::Maybe(Some(status))),
            }
        };
        tokio::pin!(work);
        let Some(driven) = connection.as_mut() else {
            return Err(Sent::Maybe(None));
        };
        tokio::select! {
            biased;
            answer = &mut work => return answer,
            _ = driven => {}
        }
        // The connection ended (the target closed it, or it failed). Dropping it resolves what
        // the request still waits for: what it delivered first, else an error.
        *connection = None;
        work.await
    }
}

async fn connect(target: &Target) -> Result<Open, Failure> {
    let refused = Failure {
        timeout: false,
        sent: false,
        status: None,
    };
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|_| refused)?;
    stream.set_nodelay(true).map_err(|_| refused)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| refused)?;
    Ok(Open {
        sender,
        connection: Some(connection),
    })
}
