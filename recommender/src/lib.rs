//! The recommender's mathematics, free of I/O so it is tested and benchmarked on its own.
//!
//! Implicit-feedback matrix factorisation (Hu, Koren and Volinsky, "Collaborative Filtering
//! for Implicit Feedback Datasets", ICDM 2008), trained by alternating least squares. Every
//! rating is a positive interaction whose confidence grows with the rating; unrated movies are
//! weak negatives. The objective ranks (what a user watches next), not rating RMSE.
//!
//! - [`data`]: interactions in compressed rows, by user and by item.
//! - [`als`]: training, deterministic for a seed, with the loss of every epoch.
//! - [`model`]: the served part: item factors, fold-in of a user from their ratings (no
//!   retraining), scoring of every movie and top-N selection without seen movies.
//! - [`user_step`]: one user's fold-in kept as normal equations, updated rating by rating.
//! - [`evaluation`]: the protocol of `origin eval` (75/25 split, validation grid, baseline).
//! - [`metrics`]: per-user splits, precision/recall/NDCG@k, coverage, a popularity baseline.
//! - [`linalg`]: the small dense solve the two steps above need.

pub mod als;
pub mod data;
pub mod evaluation;
pub mod linalg;
pub mod metrics;
pub mod model;
pub mod user_step;
