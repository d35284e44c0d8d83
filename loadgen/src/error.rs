//! The crate's one error: why a run could not start, or could not do what it was asked
//! (a fault it may not or cannot inject, a ledger it cannot read). What a run measured, errors
//! of the service included, is never an error: it is the [`crate::Report`].

/// Why a run could not start or finish as asked.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The target is not on loopback and remote targets were not allowed.
    #[error("refusing to load {0}: not a loopback address (pass --allow-remote to load it anyway)")]
    Remote(String),
    /// The target has no usable host.
    #[error("invalid target {0}: expected a base URL such as http://127.0.0.1:8080")]
    BadTarget(String),
    /// The service did not answer the catalogue requests.
    #[error("could not read {url} from the target: {reason}")]
    Discovery {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A token could not be minted.
    #[error("could not mint a token: {0}")]
    Token(String),
    /// The target refused a minted user token: the secrets differ.
    #[error(
        "the target refused a user token ({status}): set JWT_SECRET (or --jwt-secret) to the service's secret"
    )]
    Rejected {
        /// The answer's status.
        status: reqwest::StatusCode,
    },
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// A `--fault` value that cannot be parsed.
    #[error(
        "invalid fault {0:?}: expected KIND@START+DURATION such as redis@8s+8s (kinds: redis, postgres, cluster-master, origin, origin-N; times such as 8s, 8 or 1500ms; a duration above 0)"
    )]
    BadFault(String),
    /// Options that cannot be run together (a fault past the measured window, two faults of one
    /// service at once, a rate of 0).
    #[error("{0}")]
    Invalid(String),
    /// A service a fault would stop is not identifiably the project's own.
    #[error("refusing to touch {target}: {reason}")]
    NotOurs {
        /// The service, as named in the fault.
        target: String,
        /// What did not match (pid file, port, process).
        reason: String,
    },
    /// PostgreSQL could not be read for the ratings ledger.
    #[error("ratings ledger: {0} (pass --no-ledger to run without it)")]
    Ledger(String),
}
