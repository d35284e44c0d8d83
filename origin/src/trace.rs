//! Request traces: for each of this instance's most recent requests (`TRACE_RECENT_REQUESTS`,
//! 0 turns them off), what each cache layer decided and how long it took, read back by
//! request id with `GET /admin/trace/{request_id}` (`routes::trace`). For the intermittent
//! problem a user reports with the `x-request-id` of one response: was it the local tier, Redis,
//! a computation, a collapsed wait, an outage hold, and where did the time go?
//!
//! How it is recorded, cheaply enough to stay on in production:
//! - `http::frame` starts a [`Trace`] per request and makes it the task's current trace (a
//!   tokio task-local, [`scope`]); when the response is ready it adds the status, latency and
//!   `Cache-Status` and puts the trace in the ring ([`Traces`]). A trace is one allocation of
//!   under 800 bytes, texts included.
//! - The cache (`cache::Cache::get_or_compute`, `peek`, `store`) and every PostgreSQL query
//!   (`db::Db`) record [`Step`]s: a `Copy` enum with two clock readings, stored in the trace
//!   (the first eight in place, more in a `Vec`) under a mutex held for the push only, never
//!   across an await. Nothing is formatted and nothing else is allocated until the trace is
//!   read. Without a current trace each call is one task-local look-up and no clock reading.
//! - Measured with `wrk` on a cached `GET /movies/1`, one debug binary run twice on the
//!   2-core machine: 8 µs more CPU per request (201 against 193 µs, 4%) with 10,000 traces
//!   kept than with `TRACE_RECENT_REQUESTS=0`; by `perf`, most of it is making the trace and
//!   freeing the evicted one (cold memory), the steps themselves under 1%.
//! - A single flight's computation runs in a task of its own: the leader hands it its trace
//!   explicitly ([`Handle::within`]), so the computation's steps (bulkhead, PostgreSQL, store)
//!   are in the leader's trace; a collapsed request records only that it joined another's
//!   flight, and how long it waited. Background refreshes and warming have no trace.
//!
//! The ring is a `VecDeque` of the last N traces behind one std mutex, held for a push and a
//! pop per request (the evicted trace is dropped after the lock is released), and for a scan
//! from the newest when a trace is read (an admin's request, rare). Not `moka`, which is
//! already a dependency: its TinyLFU admission may refuse a new key in favour of an old one,
//! and "the last N requests" wants plain first-in, first-out, which a ring gives for one
//! lock and no hashing. A client may reuse an id: the newest request with it is shown.

use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use shared::cache_key::Family;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// Steps kept per request; past it they are counted, not kept (a request that made
/// thousands of lookups would otherwise hold their memory in the ring).
const MAX_STEPS: usize = 256;

/// Steps kept in the trace itself before a `Vec` is allocated: a hit takes one to three, a
/// computed miss about eight (its PostgreSQL queries included).
const INLINE_STEPS: usize = 8;

/// One decision of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The local tier is off (`LOCAL_CACHE_BYTES=0`).
    LocalOff,
    /// The local tier holds nothing under the key.
    LocalMiss,
    /// Served from the local tier.
    LocalHit,
    /// The local tier holds a value it may not serve.
    LocalNotServable(Why),
    /// What was read or computed was kept in the local tier.
    LocalKept,
    /// What was read or computed was not kept in the local tier.
    LocalNotKept(Why),
    /// The user's generation token was read (with the value, or to confirm a local copy).
    GenerationFound,
    /// The user has no generation token: none of their values is valid.
    GenerationMissing,
    /// The user's generation token was created, or the existing one read (`SET NX GET`),
    /// before a computation.
    GenerationEstablished,
    /// The user's generation token could not be read or created.
    GenerationFailed,
    /// A fresh value was read from Redis.
    RedisHit,
    /// Redis holds nothing under the key.
    RedisMiss,
    /// Redis holds a value this lookup may not serve.
    RedisNotServable(Why),
    /// Redis holds a value past its freshness, inside the grace period: served only if the
    /// computation cannot reach PostgreSQL.
    RedisStale,
    /// The Redis command failed (timeout, lost connection, error answer).
    RedisError,
    /// Redis was not asked.
    RedisSkipped(Why),
    /// This request led the single flight: it ran the computation.
    FlightLeader,
    /// This request waited for another request's computation ("joined flight"): the steps of
    /// that computation are in the leader's trace.
    FlightCollapsed,
    /// Waited for a turn of the family's bulkhead (`COMPUTE_CONCURRENCY`).
    BulkheadWait,
    /// The value was computed.
    Computed,
    /// The computation failed.
    ComputeFailed,
    /// One PostgreSQL query answered.
    Postgres,
    /// One PostgreSQL query failed with an error PostgreSQL gave.
    PostgresFailed,
    /// One PostgreSQL query could not reach PostgreSQL (timeout, refused connection).
    PostgresUnavailable,
    /// PostgreSQL's circuit breaker is open: the query was not sent.
    PostgresRefused,
    /// The value was written to Redis.
    Stored,
    /// The write to Redis failed.
    StoreFailed,
    /// Nothing was written to Redis.
    StoreSkipped(Why),
    /// Redis down: served from what this instance holds for the outage.
    HoldHit,
    /// Redis down: nothing held for the outage.
    HoldMiss,
    /// Redis down: the computed value is held for the outage (`CACHE_OUTAGE_HOLD_SECS`).
    HoldKept,
    /// Redis down: the computed value is not held.
    HoldNotKept(Why),
    /// A stale value was served: the computation could not reach PostgreSQL.
    StaleServed,
    /// An early refresh of the value (its last tenth of life) was started in the background.
    RefreshStarted,
}

/// Why a layer could not serve, keep or ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// A shared value read in another tracking session (or none): a change may have been
    /// missed, so only Redis is trusted.
    OtherSession,
    /// A shared value computed during a Redis outage: served only while Redis is down.
    OutageValue,
    /// The user has no generation token.
    NoGeneration,
    /// The user's generation token could not be read.
    GenerationUnread,
    /// Stored under another generation of the user (a rating since), or another model.
    GenerationMismatch,
    /// Computed in another data set's epoch (an import since).
    EpochMismatch,
    /// Past its freshness, inside the grace period.
    Stale,
    /// Past its freshness and its grace period.
    Expired,
    /// A change was heard of while the value was read or computed, or the tracking session
    /// ended meanwhile (a shared value).
    ChangedMeanwhile,
    /// No tracking session was live (connecting, or reconnecting to Redis): a shared value
    /// is not kept, since its changes would not be heard of.
    NoSession,
    /// Redis's circuit breaker is open.
    BreakerOpen,
    /// Not connected to Redis (yet).
    NotConnected,
    /// An invalidation of this value has not reached Redis yet.
    InvalidationPending,
    /// Redis could not be used for this lookup.
    CacheUnavailable,
    /// The outage hold is off, or the value cannot be shared.
    NotHeld,
}

impl Why {
    /// The reason's name in a trace.
    pub fn as_str(self) -> &'static str {
        match self {
            Why::OtherSession => "other_session",
            Why::OutageValue => "outage_value",
            Why::NoGeneration => "no_generation",
            Why::GenerationUnread => "generation_unread",
            Why::GenerationMismatch => "generation_mismatch",
            Why::EpochMismatch => "epoch_mismatch",
            Why::Stale => "stale",
            Why::Expired => "expired",
            Why::ChangedMeanwhile => "changed_meanwhile",
            Why::NoSession => "no_tracking_session",
            Why::BreakerOpen => "breaker_open",
            Why::NotConnected => "not_connected",
            Why::InvalidationPending => "invalidation_pending",
            Why::CacheUnavailable => "cache_unavailable",
            Why::NotHeld => "not_held",
        }
    }
}

impl Step {
    /// The layer that decided: `local`, `generation`, `redis`, `single_flight`, `bulkhead`,
    /// `compute`, `postgres`, `store`, `outage_hold`, `stale`, `refresh`.
    pub fn layer(self) -> &'static str {
        use Step::*;
        match self {
            LocalOff | LocalMiss | LocalHit | LocalNotServable(_) | LocalKept | LocalNotKept(_) => {
                "local"
            }
            GenerationFound | GenerationMissing | GenerationEstablished | GenerationFailed => {
                "generation"
            }
            RedisHit | RedisMiss | RedisNotServable(_) | RedisStale | RedisError
            | RedisSkipped(_) => "redis",
            FlightLeader | FlightCollapsed => "single_flight",
            BulkheadWait => "bulkhead",
            Computed | ComputeFailed => "compute",
            Postgres | PostgresFailed | PostgresUnavailable | PostgresRefused => "postgres",
            Stored | StoreFailed | StoreSkipped(_) => "store",
            HoldHit | HoldMiss | HoldKept | HoldNotKept(_) => "outage_hold",
            StaleServed => "stale",
            RefreshStarted => "refresh",
        }
    }

    /// What the layer decided.
    pub fn decision(self) -> &'static str {
        use Step::*;
        match self {
            LocalOff => "off",
            LocalMiss | RedisMiss | HoldMiss => "miss",
            LocalHit | RedisHit | HoldHit => "hit",
            LocalNotServable(_) | RedisNotServable(_) => "not_servable",
            LocalKept | HoldKept => "kept",
            LocalNotKept(_) | HoldNotKept(_) => "not_kept",
            GenerationFound => "found",
            GenerationMissing => "missing",
            GenerationEstablished => "established",
            GenerationFailed | RedisError | StoreFailed | ComputeFailed | PostgresFailed => "error",
            RedisStale => "stale",
            RedisSkipped(_) | StoreSkipped(_) => "skipped",
            FlightLeader => "leader",
            FlightCollapsed => "collapsed",
            BulkheadWait => "waited",
            Computed | Postgres | Stored => "ok",
            PostgresUnavailable => "unavailable",
            PostgresRefused => "refused",
            StaleServed => "served",
            RefreshStarted => "started",
        }
    }

    /// Why, where the decision has a reason.
    pub fn reason(self) -> Option<Why> {
        use Step::*;
        match self {
            LocalNotServable(why)
            | LocalNotKept(why)
            | RedisNotServable(why)
            | RedisSkipped(why)
            | StoreSkipped(why)
            | HoldNotKept(why) => Some(why),
            _ => None,
        }
    }
}

/// One recorded step: which lookup of the request, of which family, when (ns since the
/// request started: steps are ordered by it, and a microsecond could hold two) and for how
/// long (µs).
#[derive(Debug, Clone, Copy)]
struct Event {
    lookup: u16,
    family: Option<Family>,
    step: Step,
    start_ns: u64,
    took_us: u32,
}

impl Event {
    /// The filler of unused inline slots.
    const NONE: Event = Event {
        lookup: 0,
        family: None,
        step: Step::LocalOff,
        start_ns: 0,
        took_us: 0,
    };
}

/// A short text kept inline, cut at a character boundary past `N` bytes (at most 255).
///
/// A trace's texts live in its own allocation: a trace is then one allocation to make and
/// one to free when the ring evicts it (its memory is cold by then, and each freed block was
/// measured), and no clone of the request's `Uri` keeps the connection's read buffer alive.
#[derive(Clone, Copy)]
struct Text<const N: usize> {
    bytes: [u8; N],
    len: u8,
    cut: bool,
}

impl<const N: usize> Text<N> {
    fn new(text: &str) -> Self {
        let mut len = text.len().min(N).min(u8::MAX as usize);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; N];
        bytes[..len].copy_from_slice(&text.as_bytes()[..len]);
        Text {
            bytes,
            len: len as u8,
            cut: len < text.len(),
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// The text, with `…` where it was cut.
    fn to_shown(self) -> String {
        match self.cut {
            true => format!("{}…", self.as_str()),
            false => self.as_str().to_owned(),
        }
    }
}

/// One request's trace.
pub struct Trace {
    id: Text<{ shared::request_id::MAX_LEN }>,
    method: Method,
    route: Option<MatchedPath>,
    /// The path and query.
    path: Text<160>,
    start: Instant,
    lookups: AtomicU16,
    // A std mutex, held for one push (or to read the trace), never across an await. The
    // request's task and its single-flight computation's task both write to it.
    record: Mutex<Record>,
}

struct Record {
    // The first steps live in the trace's own allocation (a request's trace is then one
    // allocation, with its path, for the ring to free when it evicts it, and a hit never
    // touches the allocator per step); the rest spill into a `Vec`.
    inline: [Event; INLINE_STEPS],
    len: usize,
    spilled: Vec<Event>,
    dropped: u32,
    outcome: Option<Outcome>,
}

impl Record {
    fn new() -> Record {
        Record {
            inline: [Event::NONE; INLINE_STEPS],
            len: 0,
            spilled: Vec::new(),
            dropped: 0,
            outcome: None,
        }
    }

    fn push(&mut self, event: Event) {
        match self.len {
            n if n < INLINE_STEPS => self.inline[n] = event,
            n if n < MAX_STEPS => self.spilled.push(event),
            _ => {
                self.dropped += 1;
                return;
            }
        }
        self.len += 1;
    }

    fn events(&self) -> impl Iterator<Item = &Event> {
        let inline = self.len.min(INLINE_STEPS);
        self.inline[..inline].iter().chain(&self.spilled)
    }
}

struct Outcome {
    status: u16,
    latency: Duration,
    /// Empty when the response has none.
    cache_status: Text<96>,
}

impl Trace {
    fn push(&self, lookup: u16, family: Option<Family>, step: Step, since: Instant) {
        let now = Instant::now();
        let took = now.saturating_duration_since(since).as_micros();
        let event = Event {
            lookup,
            family,
            step,
            start_ns: since.saturating_duration_since(self.start).as_nanos() as u64,
            took_us: u32::try_from(took).unwrap_or(u32::MAX),
        };
        self.record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }
}

#[derive(Clone)]
struct Current {
    trace: Arc<Trace>,
    /// The lookup whose computation this task runs (a single flight's task), for the steps
    /// recorded without one (PostgreSQL queries).
    lookup: Option<Numbered>,
}

tokio::task_local! {
    static CURRENT: Current;
}

/// Runs a request's handling with `trace` as its current trace (none: nothing recorded).
pub async fn scope<F: Future>(trace: Option<Arc<Trace>>, handling: F) -> F::Output {
    match trace {
        Some(trace) => {
            let current = Current {
                trace,
                lookup: None,
            };
            CURRENT.scope(current, handling).await
        }
        None => handling.await,
    }
}

/// When a step started: `None` when no trace is being recorded (then the clock is not read).
pub type Stamp = Option<Instant>;

/// Now, if the current task records a trace.
pub fn stamp() -> Stamp {
    CURRENT.try_with(|_| Instant::now()).ok()
}

/// Records `step` (started at `since`) in the current trace, under the lookup whose
/// computation the task runs, if any: for PostgreSQL queries, which know no lookup.
pub fn record(step: Step, since: Stamp) {
    let Some(since) = since else { return };
    let _ = CURRENT.try_with(|current| {
        let (lookup, family) = current
            .lookup
            .map_or((0, None), |l| (l.seq, Some(l.family)));
        current.trace.push(lookup, family, step, since);
    });
}

/// One cache lookup (or by-product store) of the request: numbered from 1 in the order they
/// start, so several lookups of one request (a genre's list, then the genre's top movies) are
/// told apart. Free to copy; inert (its records cost nothing) when no trace is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup(Option<Numbered>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Numbered {
    seq: u16,
    family: Family,
}

/// A lookup of `family` in the current trace (inert without one).
pub fn lookup(family: Family) -> Lookup {
    Lookup(
        CURRENT
            .try_with(|current| Numbered {
                seq: current
                    .trace
                    .lookups
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1),
                family,
            })
            .ok(),
    )
}

impl Lookup {
    /// A lookup that records nothing (background refreshes, warming).
    pub const NONE: Lookup = Lookup(None);

    /// Whether its steps are recorded.
    pub fn is_recorded(self) -> bool {
        self.0.is_some()
    }

    /// Now, if this lookup is recorded.
    pub fn start(self) -> Stamp {
        self.0.map(|_| Instant::now())
    }

    /// Records `step`, started at `since`.
    pub fn record(self, step: Step, since: Stamp) {
        let (Some(lookup), Some(since)) = (self.0, since) else {
            return;
        };
        let _ = CURRENT.try_with(|current| {
            current
                .trace
                .push(lookup.seq, Some(lookup.family), step, since)
        });
    }

    /// Records `step`, instantaneous.
    pub fn mark(self, step: Step) {
        self.record(step, self.start());
    }

    /// The handle a single flight's task records this lookup's computation with.
    pub fn handle(self) -> Handle {
        Handle(self.0.and_then(|lookup| {
            CURRENT
                .try_with(|current| Current {
                    trace: Arc::clone(&current.trace),
                    lookup: Some(lookup),
                })
                .ok()
        }))
    }
}

/// The current trace, carried into a task of its own (a single flight's computation).
pub struct Handle(Option<Current>);

impl Handle {
    /// Runs `work` recording into the trace this handle was taken from, under its lookup.
    pub async fn within<F: Future>(self, work: F) -> F::Output {
        match self.0 {
            Some(current) => CURRENT.scope(current, work).await,
            None => work.await,
        }
    }
}

/// The most recent requests' traces, bounded; cloning shares them.
#[derive(Clone)]
pub struct Traces {
    ring: Option<Arc<Ring>>,
}

struct Ring {
    capacity: usize,
    // A std mutex, held for a push and a pop per request or one scan when a trace is read;
    // never across an await.
    traces: Mutex<VecDeque<Arc<Trace>>>,
}

impl Traces {
    /// Keeps the last `capacity` requests' traces; 0 records none.
    pub fn new(capacity: usize) -> Traces {
        Traces {
            ring: (capacity > 0).then(|| {
                Arc::new(Ring {
                    capacity,
                    traces: Mutex::new(VecDeque::with_capacity(capacity)),
                })
            }),
        }
    }

    /// How many requests' traces are kept (0: tracing is off).
    pub fn capacity(&self) -> usize {
        self.ring.as_ref().map_or(0, |ring| ring.capacity)
    }

    /// A trace for the request that started at `start`, or `None` when tracing is off.
    pub fn begin(
        &self,
        id: &HeaderValue,
        method: &Method,
        route: Option<&MatchedPath>,
        uri: &Uri,
        start: Instant,
    ) -> Option<Arc<Trace>> {
        self.ring.as_ref()?;
        Some(Arc::new(Trace {
            id: Text::new(id.to_str().unwrap_or_default()),
            method: method.clone(),
            route: route.cloned(),
            path: Text::new(
                uri.path_and_query()
                    .map_or_else(|| uri.path(), |p| p.as_str()),
            ),
            start,
            lookups: AtomicU16::new(0),
            record: Mutex::new(Record::new()),
        }))
    }

    /// Completes `trace` with the response's status and `Cache-Status` (empty for none) and
    /// keeps it, evicting the oldest past the bound.
    pub fn finish(
        &self,
        trace: Arc<Trace>,
        status: StatusCode,
        cache_status: &str,
        latency: Duration,
    ) {
        let Some(ring) = &self.ring else { return };
        trace
            .record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .outcome = Some(Outcome {
            status: status.as_u16(),
            latency,
            cache_status: Text::new(cache_status),
        });
        let evicted = {
            let mut traces = ring.traces.lock().unwrap_or_else(PoisonError::into_inner);
            let evicted = (traces.len() >= ring.capacity)
                .then(|| traces.pop_front())
                .flatten();
            traces.push_back(trace);
            evicted
        };
        // Freed here, after the lock is released.
        drop(evicted);
    }

    /// The newest kept trace of the request `id`, rendered.
    pub fn find(&self, id: &str) -> Option<TraceReport> {
        let ring = self.ring.as_ref()?;
        let trace = {
            let traces = ring.traces.lock().unwrap_or_else(PoisonError::into_inner);
            traces.iter().rev().find(|t| t.id.as_str() == id).cloned()?
        };
        Some(TraceReport::of(&trace))
    }
}

/// A request's trace as `GET /admin/trace/{request_id}` shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TraceReport {
    /// The request's `x-request-id`.
    pub request_id: String,
    /// The instance that served it (`INSTANCE_NAME`).
    pub instance: String,
    /// The HTTP method.
    pub method: String,
    /// The route template (`/movies/{id}`), `unmatched` for none.
    pub route: String,
    /// The path and query as requested.
    pub path: String,
    /// The response's status.
    pub status: u16,
    /// From the request's arrival to its response being ready, in µs.
    pub latency_us: u64,
    /// The response's `Cache-Status`, if any.
    pub cache_status: Option<String>,
    /// When the request arrived (RFC 3339, UTC).
    pub started_at: String,
    /// Cache lookups (and by-product stores) the request made.
    pub lookups: u16,
    /// Steps not kept, past the bound of 256 per request.
    pub steps_dropped: u32,
    /// Each layer's decisions in the order they started.
    pub steps: Vec<StepReport>,
}

/// One step of a [`TraceReport`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StepReport {
    /// The lookup it belongs to (1, 2, ...); none for a query outside any lookup.
    pub lookup: Option<u16>,
    /// The lookup's cache family.
    pub family: Option<String>,
    /// The layer: `local`, `generation`, `redis`, `single_flight`, `bulkhead`, `compute`,
    /// `postgres`, `store`, `outage_hold`, `stale`, `refresh`.
    pub layer: String,
    /// What it decided: `hit`, `miss`, `not_servable`, `leader`, `collapsed`, `ok`, ...
    pub decision: String,
    /// Why, for `not_servable`, `not_kept` and `skipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it started, in µs since the request arrived.
    pub start_us: u32,
    /// How long it took, in µs.
    pub took_us: u32,
}

impl TraceReport {
    fn of(trace: &Trace) -> TraceReport {
        let record = trace.record.lock().unwrap_or_else(PoisonError::into_inner);
        let mut events: Vec<Event> = record.events().copied().collect();
        // Pushed as each step ends; shown as they started, so a computation's steps follow
        // the flight that ran it.
        events.sort_by_key(|e| e.start_ns);
        let outcome = record.outcome.as_ref();
        TraceReport {
            request_id: trace.id.as_str().to_owned(),
            instance: String::new(),
            method: trace.method.to_string(),
            route: trace
                .route
                .as_ref()
                .map_or("unmatched", |r| r.as_str())
                .to_owned(),
            path: trace.path.to_shown(),
            status: outcome.map_or(0, |o| o.status),
            latency_us: outcome.map_or(0, |o| o.latency.as_micros() as u64),
            cache_status: outcome
                .map(|o| o.cache_status.to_shown())
                .filter(|s| !s.is_empty()),
            // Worked out when read rather than a second clock read per request.
            started_at: chrono::DateTime::<chrono::Utc>::from(
                SystemTime::now() - trace.start.elapsed(),
            )
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            lookups: trace.lookups.load(Ordering::Relaxed),
            steps_dropped: record.dropped,
            steps: events
                .iter()
                .map(|e| StepReport {
                    lookup: (e.lookup > 0).then_some(e.lookup),
                    family: e.family.map(|f| f.as_str().to_owned()),
                    layer: e.step.layer().to_owned(),
                    decision: e.step.decision().to_owned(),
                    reason: e.step.reason().map(|w| w.as_str().to_owned()),
                    start_us: u32::try_from(e.start_ns / 1000).unwrap_or(u32::MAX),
                    took_us: e.took_us,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn begin(traces: &Traces, id: &'static str) -> Arc<Trace> {
        traces
            .begin(
                &HeaderValue::from_static(id),
                &Method::GET,
                None,
                &Uri::from_static("/movies/1?x=1"),
                Instant::now(),
            )
            .expect("tracing is on")
    }

    fn finish(traces: &Traces, trace: Arc<Trace>) {
        let latency = Duration::from_micros(250);
        traces.finish(trace, StatusCode::OK, "origin; hit", latency);
    }

    #[tokio::test]
    async fn steps_are_recorded_in_the_current_trace_only() {
        let traces = Traces::new(4);
        // Outside any request: nothing to record into, and nothing breaks.
        let outside = lookup(Family::Metadata);
        assert!(!outside.is_recorded());
        outside.mark(Step::LocalHit);
        record(Step::Postgres, stamp());

        let trace = begin(&traces, "a");
        scope(Some(Arc::clone(&trace)), async {
            let first = lookup(Family::Genres);
            first.mark(Step::LocalMiss);
            // A computation in a task of its own records into the same trace, under its
            // lookup, through the handle.
            let handle = first.handle();
            tokio::spawn(handle.within(async {
                record(Step::Postgres, stamp());
            }))
            .await
            .unwrap();
            // A task spawned without the handle records nothing.
            tokio::spawn(async { record(Step::Postgres, stamp()) })
                .await
                .unwrap();
            lookup(Family::Genres).mark(Step::LocalHit);
            record(Step::Postgres, stamp());
        })
        .await;
        finish(&traces, trace);

        let report = traces.find("a").expect("kept");
        assert_eq!((report.status, report.latency_us), (200, 250));
        assert_eq!(report.path, "/movies/1?x=1");
        assert_eq!(report.lookups, 2);
        let steps: Vec<_> = report
            .steps
            .iter()
            .map(|s| (s.lookup, s.layer.as_str(), s.decision.as_str()))
            .collect();
        assert_eq!(
            steps,
            [
                (Some(1), "local", "miss"),
                (Some(1), "postgres", "ok"),
                (Some(2), "local", "hit"),
                (None, "postgres", "ok"),
            ]
        );
    }

    #[test]
    fn the_ring_keeps_the_newest_and_is_off_at_zero() {
        let traces = Traces::new(2);
        for id in ["a", "b", "c"] {
            let trace = begin(&traces, id);
            finish(&traces, trace);
        }
        assert!(traces.find("a").is_none(), "evicted");
        assert!(traces.find("b").is_some() && traces.find("c").is_some());
        // A reused id shows the newest request.
        let again = begin(&traces, "c");
        again.push(1, Some(Family::Metadata), Step::LocalHit, Instant::now());
        finish(&traces, again);
        assert_eq!(traces.find("c").unwrap().steps.len(), 1);

        let off = Traces::new(0);
        assert_eq!(off.capacity(), 0);
        assert!(
            off.begin(
                &HeaderValue::from_static("x"),
                &Method::GET,
                None,
                &Uri::from_static("/"),
                Instant::now()
            )
            .is_none()
        );
    }

    #[test]
    fn long_texts_are_cut_at_a_character_boundary() {
        let long = format!("/genres/{}", "é".repeat(100));
        let text = Text::<160>::new(&long);
        assert!(text.as_str().len() <= 160 && long.starts_with(text.as_str()));
        assert!(text.to_shown().ends_with('…'));
        assert_eq!(Text::<160>::new("/movies/1").to_shown(), "/movies/1");
    }

    #[test]
    fn a_trace_fits_in_the_memory_the_settings_announce() {
        // `TRACE_RECENT_REQUESTS` documents under 800 bytes a request (with the `Arc`'s
        // counts), so 10,000 cost under 8 MB.
        assert!(std::mem::size_of::<Trace>() + 16 <= 800);
    }

    #[test]
    fn a_request_keeps_a_bounded_number_of_steps() {
        let traces = Traces::new(1);
        let trace = begin(&traces, "many");
        for _ in 0..MAX_STEPS + 10 {
            trace.push(1, None, Step::Postgres, Instant::now());
        }
        finish(&traces, trace);
        let report = traces.find("many").unwrap();
        assert_eq!((report.steps.len(), report.steps_dropped), (MAX_STEPS, 10));
    }
}
