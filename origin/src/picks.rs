//! A user's recommendations as the cache stores them: movie ids, scores and the liked movie
//! each is explained by ([`Picks`], about 10 bytes an item in `postcard`'s encoding), rendered
//! into the response with titles and genres from the in-memory catalogue when read.
//!
//! Why: at the MovieLens-25M shape the design's 256 MB of Redis cannot hold every user's
//! recommendations as JSON (about 1.9 KB each for ten items, titles, genres and reasons
//! repeated in every user's entry); as picks they take about 130 bytes, so the same memory
//! holds about ten times as many users. The rendering is the one the computation did before
//! (same catalogue, same epoch: an entry of another epoch is never served), so a response and
//! its ETag are byte for byte what they were; each instance's local tier keeps the rendered
//! body, so it is made once per value and instance.
//!
//! Only the model strategies' answers are picks; the others (and a cold start) are stored as
//! their JSON, which starts with `{`, never with [`MAGIC`].

use crate::model::Catalogue;
use crate::recommend;
use serde::{Deserialize, Serialize};
use shared::dto::{Recommendation, Recommendations};
use shared::params::Strategy;

/// The first bytes of an encoded [`Picks`] (and its format's version).
pub const MAGIC: &[u8; 4] = b"PCK1";

/// One recommended movie, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pick {
    /// The movie.
    pub movie_id: i32,
    /// Its score as the model computed it (the response rounds it to four places when
    /// rendering, as the computation did: a rounded `-0.0` stays `-0.0`).
    pub score: f32,
    /// The liked movie it is closest to, if any (its explanation).
    pub because: Option<i32>,
}

impl Pick {
    /// A pick scored `score`, explained by `because`.
    pub fn new(movie_id: i32, score: f32, because: Option<i32>) -> Pick {
        Pick {
            movie_id,
            score,
            because,
        }
    }
}

/// A user's recommendations by a model strategy, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Picks {
    /// The user.
    pub user_id: i32,
    /// The strategy used.
    pub strategy: Strategy,
    /// The model version the scores come from.
    pub model_version: String,
    /// Best first.
    pub items: Vec<Pick>,
}

impl Picks {
    /// [`MAGIC`] then the picks in `postcard` (varints, zigzag for signed numbers).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_extend(self, MAGIC.to_vec()).expect("picks always encode")
    }

    /// The picks in `raw`, `None` when `raw` is no encoded [`Picks`] (a JSON body, say).
    pub fn decode(raw: &[u8]) -> Option<Picks> {
        postcard::from_bytes(raw.strip_prefix(MAGIC)?).ok()
    }

    /// Whether `raw` holds picks rather than a JSON body.
    pub fn is_encoded(raw: &[u8]) -> bool {
        raw.starts_with(MAGIC)
    }

    /// The JSON of [`Picks::render`], byte for byte, written from the catalogue's titles and
    /// genres in place: no owned copy of a title, a genre list or a reason is made per read.
    pub fn render_json(&self, catalogue: &Catalogue) -> serde_json::Result<Vec<u8>> {
        let list = List {
            user_id: self.user_id,
            strategy: self.strategy.as_str(),
            model_version: Some(&self.model_version),
            items: self.items(catalogue).collect(),
        };
        let estimate = 96 + list.items.len() * 160;
        let mut out = Vec::with_capacity(estimate);
        serde_json::to_writer(&mut out, &list)?;
        Ok(out)
    }

    /// The response: each pick with its title and genres from `catalogue`, explained by the
    /// liked movie's title (a movie the catalogue lacks is left out, as at computation).
    pub fn render(&self, catalogue: &Catalogue) -> Recommendations {
        let items = self
            .items(catalogue)
            .map(|item| Recommendation {
                movie_id: item.movie_id,
                title: item.title.to_owned(),
                genres: item.genres.to_vec(),
                score: item.score,
                reason: item.reason.to_string(),
            })
            .collect();
        Recommendations {
            user_id: self.user_id,
            strategy: self.strategy.as_str().to_owned(),
            model_version: Some(self.model_version.clone()),
            items,
        }
    }

    /// Each pick the catalogue still has, with its title, genres and reason borrowed from it.
    fn items<'a>(&'a self, catalogue: &'a Catalogue) -> impl Iterator<Item = Item<'a>> {
        self.items.iter().filter_map(move |pick| {
            let movie = catalogue.get(pick.movie_id)?;
            Some(Item {
                movie_id: pick.movie_id,
                title: &movie.title,
                genres: &movie.genres,
                score: recommend::rounded(f64::from(pick.score)),
                reason: Reason(
                    pick.because
                        .and_then(|liked| catalogue.get(liked))
                        .map(|liked| liked.title.as_str()),
                ),
            })
        })
    }
}

/// [`Recommendations`] with borrowed fields: the same names in the same order, so the same
/// JSON (`render_json_is_the_json_of_render` checks it).
#[derive(Serialize)]
struct List<'a> {
    user_id: i32,
    strategy: &'a str,
    model_version: Option<&'a str>,
    items: Vec<Item<'a>>,
}

/// [`Recommendation`] with borrowed fields (see [`List`]).
#[derive(Serialize)]
struct Item<'a> {
    movie_id: i32,
    title: &'a str,
    genres: &'a [String],
    score: f64,
    reason: Reason<'a>,
}

/// A pick's reason: the title of the movie it came from, if any, in the response's words.
struct Reason<'a>(Option<&'a str>);

impl std::fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(title) => write!(f, "Because you liked {title}"),
            None => f.write_str(MATCHES),
        }
    }
}

impl Serialize for Reason<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The reason of a pick no liked movie explains.
const MATCHES: &str = "Matches your ratings";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::CatalogueMovie;

    fn catalogue() -> Catalogue {
        let movie = |id: i32, title: &str, genres: &[&str]| CatalogueMovie {
            id,
            title: title.into(),
            genres: genres.iter().map(|g| g.to_string()).collect(),
            genre_ids: vec![],
        };
        Catalogue::new(
            1,
            vec![
                movie(
                    1,
                    "Toy Story (1995)",
                    &["Animation", "Children's", "Comedy"],
                ),
                movie(50, "Star Wars (1977)", &["Action", "Sci-Fi"]),
                movie(61_999, "A \"quoted\" title", &[]),
            ],
        )
    }

    fn picks() -> Picks {
        Picks {
            user_id: 196,
            strategy: Strategy::Hybrid,
            model_version: "als-ease-20261201T051127Z-1fa5e89e".into(),
            items: vec![
                Pick::new(50, 1.234_567_8, Some(1)),
                Pick::new(61_999, -0.000_04, None),
                Pick::new(7, 0.5, Some(50)),
                Pick::new(1, 0.25, Some(404)),
            ],
        }
    }

    #[test]
    fn picks_round_trip_in_a_few_bytes_an_item() {
        let picks = picks();
        let encoded = picks.encode();
        assert!(Picks::is_encoded(&encoded));
        assert_eq!(Picks::decode(&encoded), Some(picks.clone()));
        let header = 4 + 2 + 1 + 1 + picks.model_version.len() + 1;
        assert!(
            encoded.len() <= header + 4 * 10,
            "{} bytes for four items",
            encoded.len()
        );
        assert_eq!(Picks::decode(b"{\"user_id\":1}"), None, "JSON is no picks");
        assert!(!Picks::is_encoded(b"{\"user_id\":1}"));
        assert_eq!(Picks::decode(&encoded[..encoded.len() - 1]), None);
    }

    /// What the computation rendered before picks were stored: the same struct, the score
    /// rounded to four places the way `recommend` rounds it. The JSON (and so the ETag) of a
    /// rendering from picks is byte for byte that.
    #[test]
    fn rendering_is_the_json_the_computation_wrote() {
        let catalogue = catalogue();
        let rendered = Picks::decode(&picks().encode()).unwrap().render(&catalogue);
        let expected = Recommendations {
            user_id: 196,
            strategy: "hybrid".into(),
            model_version: Some("als-ease-20261201T051127Z-1fa5e89e".into()),
            items: vec![
                Recommendation {
                    movie_id: 50,
                    title: "Star Wars (1977)".into(),
                    genres: vec!["Action".into(), "Sci-Fi".into()],
                    score: 1.2346,
                    reason: "Because you liked Toy Story (1995)".into(),
                },
                Recommendation {
                    movie_id: 61_999,
                    title: "A \"quoted\" title".into(),
                    genres: vec![],
                    score: -0.0,
                    reason: "Matches your ratings".into(),
                },
                Recommendation {
                    movie_id: 1,
                    title: "Toy Story (1995)".into(),
                    genres: vec!["Animation".into(), "Children's".into(), "Comedy".into()],
                    score: 0.25,
                    reason: "Matches your ratings".into(),
                },
            ],
        };
        assert_eq!(
            serde_json::to_string(&rendered).unwrap(),
            serde_json::to_string(&expected).unwrap(),
            "movie 7 is not in the catalogue; movie 404 explains nothing"
        );
    }

    /// The borrowed rendering is the owned one's JSON byte for byte (so the ETag too), also
    /// for a reason quoting a title that needs escaping and for a pick left out.
    #[test]
    fn render_json_is_the_json_of_render() {
        let catalogue = catalogue();
        let mut quoting = picks();
        quoting.items.push(Pick::new(50, 0.125, Some(61_999)));
        quoting.strategy = Strategy::Collaborative;
        let empty = Picks {
            items: vec![],
            ..picks()
        };
        for picks in [picks(), quoting, empty] {
            let owned = serde_json::to_vec(&picks.render(&catalogue)).unwrap();
            let borrowed = picks.render_json(&catalogue).unwrap();
            assert_eq!(
                String::from_utf8(borrowed).unwrap(),
                String::from_utf8(owned).unwrap()
            );
        }
        let liked_quoted = Picks {
            items: vec![Pick::new(1, 0.5, Some(61_999))],
            ..picks()
        };
        let json = String::from_utf8(liked_quoted.render_json(&catalogue).unwrap()).unwrap();
        assert!(
            json.contains(r#""reason":"Because you liked A \"quoted\" title""#),
            "{json}"
        );
    }
}
