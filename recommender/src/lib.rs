//! The recommender's mathematics, free of I/O so it is tested and benchmarked on its own.
//!
//! Implicit-feedback matrix factorisation (Hu, Koren and Volinsky, "Collaborative Filtering
//! for Implicit Feedback Datasets", ICDM 2008), trained by alternating least squares. A rating
//! above [`als::NEGATIVE_MAX`] stars is a positive interaction whose confidence grows with the
//! rating, a rating at or below it is negative evidence; unrated movies are weak negatives. The
//! objective ranks (what a user watches next), not rating RMSE. On catalogues up to
//! [`blend::DENSE_ITEM_LIMIT`] movies it is blended with EASE (Steck 2019), a closed-form
//! item-item model.
//!
//! - [`data`]: interactions in compressed rows, by user and by item.
//! - [`als`]: training, deterministic for a seed, with the loss of every epoch.
//! - [`ease`]: EASE training, scoring from a user's ratings, similar items, a byte format.
//! - [`blend`]: the model kind by catalogue size and the ALS + EASE blend, shared by
//!   evaluation and serving.
//! - [`neighbours`]: similar movies by co-loving users, precomputed on small catalogues.
//! - [`model`]: the served part: item factors, fold-in of a user from their ratings (no
//!   retraining), scoring of every movie and top-N selection without seen movies.
//! - [`screen`]: the same top N found through 8-bit factors, reading a quarter of the bytes.
//! - [`user_step`]: one user's fold-in kept as normal equations, updated rating by rating.
//! - [`evaluation`]: the protocol of `origin eval` (75/25 split, validation grid, baseline),
//!   over several splits for every model ([`evaluation::run_seeds`]).
//! - [`metrics`]: per-user splits, precision/recall/NDCG@k, coverage, a popularity baseline.
//! - [`linalg`]: the small dense solve the two steps above need, and EASE's inversion.

pub mod als;
pub mod blend;
pub mod data;
pub mod ease;
pub mod evaluation;
pub mod linalg;
pub mod metrics;
pub mod model;
pub mod neighbours;
pub mod screen;
pub mod user_step;
