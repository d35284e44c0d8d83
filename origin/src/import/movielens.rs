//! Reading the MovieLens 100K files as RecBole ships them (`scripts/fetch-data.sh`).
//!
//! Three tab-separated files with a typed header line (`name:type`): `ml-100k.inter`
//! (`user_id`, `item_id`, `rating`, `timestamp`), `ml-100k.item` (`item_id`, `movie_title`,
//! `release_year`, `class`: space-separated genres) and `ml-100k.user` (`user_id`, ...).
//! Columns are found by name, not position. The data is small (2 MB), so it is parsed and
//! validated entirely before the database is touched: a bad file never leaves a half import
//! behind, and its errors name the file and line.
//!
//! MovieLens data: F. M. Harper and J. A. Konstan, "The MovieLens Datasets: History and
//! Context", ACM TiiS 5(4):19, 2015; non-commercial use.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};

use super::GENRES;

/// The data set's name in the `imports` table.
pub(super) const DATASET: &str = "movielens-100k";

const FILES: [&str; 3] = ["ml-100k.inter", "ml-100k.item", "ml-100k.user"];

/// One movie of `ml-100k.item`.
#[derive(Debug, Clone)]
pub(super) struct Movie {
    pub id: i32,
    /// Without the trailing ` (1995)` that some titles carry.
    pub title: String,
    pub year: Option<i16>,
    /// Indexes into `Data::genres`.
    pub genres: Vec<usize>,
}

/// One rating of `ml-100k.inter`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rating {
    pub user: i32,
    pub movie: i32,
    /// 1 = 0.5 stars ... 10 = 5 stars.
    pub half_stars: u8,
    /// Unix seconds.
    pub at: i64,
}

/// The whole data set, validated.
#[derive(Debug, Clone)]
pub(super) struct Data {
    /// sha256 (hex) over the three files.
    pub fingerprint: String,
    /// The canonical 19 genres first, then any other genre the files name.
    pub genres: Vec<String>,
    pub movies: Vec<Movie>,
    pub users: Vec<i32>,
    pub ratings: Vec<Rating>,
}

/// Reads and validates the three files in `dir`.
pub(super) async fn load(dir: &Path) -> Result<Data> {
    let mut contents = Vec::with_capacity(FILES.len());
    for name in FILES {
        let path = dir.join(name);
        let bytes = tokio::fs::read(&path).await.with_context(|| {
            format!(
                "reading {} (run scripts/fetch-data.sh to download MovieLens 100K)",
                path.display()
            )
        })?;
        contents.push((name, bytes));
    }
    tokio::task::spawn_blocking(move || parse(&contents))
        .await
        .context("parsing MovieLens: task failed")?
}

/// sha256 over each file's name, length and bytes, in a fixed order.
fn fingerprint(files: &[(&str, Vec<u8>)]) -> String {
    let mut h = Sha256::new();
    for (name, bytes) in files {
        h.update(name.as_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    hex::encode(h.finalize())
}

fn parse(files: &[(&str, Vec<u8>)]) -> Result<Data> {
    let text = |i: usize| -> Result<&str> {
        let (name, bytes) = &files[i];
        std::str::from_utf8(bytes).with_context(|| format!("{name} is not UTF-8"))
    };
    let (inter, item, user) = (text(0)?, text(1)?, text(2)?);

    let mut genres: Vec<String> = GENRES.iter().map(|g| (*g).to_owned()).collect();
    let movies = parse_items(item, &mut genres)?;
    let users = parse_users(user)?;
    let ratings = parse_inter(inter, &movies, &users)?;
    Ok(Data {
        fingerprint: fingerprint(files),
        genres,
        movies,
        users,
        ratings,
    })
}

/// The fields of one data line, with its 1-based line number.
type Line<'a> = (usize, Vec<&'a str>);

/// The lines of a file after its header, and the index of each wanted column.
fn table<'a, const N: usize>(
    file: &str,
    text: &'a str,
    wanted: [&str; N],
) -> Result<([usize; N], impl Iterator<Item = Line<'a>>)> {
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else {
        bail!("{file} is empty")
    };
    let names: Vec<&str> = header
        .split('\t')
        .map(|f| f.split(':').next().unwrap_or(f).trim())
        .collect();
    let mut index = [0; N];
    for (slot, want) in index.iter_mut().zip(wanted) {
        *slot = names
            .iter()
            .position(|n| *n == want)
            .with_context(|| format!("{file}: no `{want}` column in the header `{header}`"))?;
    }
    let rows = lines.filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| {
        (
            i + 1,
            l.trim_end_matches('\r').split('\t').collect::<Vec<_>>(),
        )
    });
    Ok((index, rows))
}

fn field<'a>(file: &str, line: usize, row: &[&'a str], col: usize) -> Result<&'a str> {
    row.get(col)
        .copied()
        .with_context(|| format!("{file} line {line}: only {} fields", row.len()))
}

fn id(file: &str, line: usize, raw: &str) -> Result<i32> {
    match raw.trim().parse::<i32>() {
        Ok(v) if v > 0 => Ok(v),
        _ => bail!("{file} line {line}: `{raw}` is not a positive integer id"),
    }
}

/// A plausible release year, or `None` (`unknown`, empty, junk).
fn year(raw: &str) -> Option<i16> {
    let raw = raw.trim();
    if raw.len() != 4 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<i16>()
        .ok()
        .filter(|y| (1850..=2100).contains(y))
}

/// Splits a trailing ` (1995)` off a title: MovieLens titles carry the year, and RecBole's
/// export sometimes leaves it there (`Land Before Time III: ... (1995)`).
fn split_title_year(title: &str) -> (&str, Option<i16>) {
    let t = title.trim();
    if let Some(open) = t.strip_suffix(')').and_then(|s| s.rfind('('))
        && let Some(y) = year(&t[open + 1..t.len() - 1])
        && let rest = t[..open].trim_end()
        && !rest.is_empty()
    {
        return (rest, Some(y));
    }
    (t, None)
}

fn parse_items(text: &str, genres: &mut Vec<String>) -> Result<Vec<Movie>> {
    const FILE: &str = "ml-100k.item";
    let ([c_id, c_title, c_year, c_class], rows) = table(
        FILE,
        text,
        ["item_id", "movie_title", "release_year", "class"],
    )?;
    let mut index: HashMap<String, usize> = genres
        .iter()
        .enumerate()
        .map(|(i, g)| (g.clone(), i))
        .collect();
    let mut seen = HashSet::new();
    let mut movies = Vec::new();
    for (line, row) in rows {
        let id = id(FILE, line, field(FILE, line, &row, c_id)?)?;
        ensure!(
            seen.insert(id),
            "{FILE} line {line}: movie {id} appears twice"
        );
        let (title, title_year) = split_title_year(field(FILE, line, &row, c_title)?);
        ensure!(
            !title.is_empty(),
            "{FILE} line {line}: movie {id} has no title"
        );
        let year = year(field(FILE, line, &row, c_year)?).or(title_year);
        let mut movie_genres = Vec::new();
        for name in row.get(c_class).copied().unwrap_or("").split_whitespace() {
            let next = index.len();
            let g = *index.entry(name.to_owned()).or_insert(next);
            if g == genres.len() {
                genres.push(name.to_owned());
            }
            if !movie_genres.contains(&g) {
                movie_genres.push(g);
            }
        }
        movies.push(Movie {
            id,
            title: title.to_owned(),
            year,
            genres: movie_genres,
        });
    }
    ensure!(!movies.is_empty(), "{FILE} holds no movies");
    Ok(movies)
}

fn parse_users(text: &str) -> Result<Vec<i32>> {
    const FILE: &str = "ml-100k.user";
    let ([c_id], rows) = table(FILE, text, ["user_id"])?;
    let mut seen = HashSet::new();
    let mut users = Vec::new();
    for (line, row) in rows {
        let id = id(FILE, line, field(FILE, line, &row, c_id)?)?;
        ensure!(
            seen.insert(id),
            "{FILE} line {line}: user {id} appears twice"
        );
        users.push(id);
    }
    ensure!(!users.is_empty(), "{FILE} holds no users");
    Ok(users)
}

fn parse_inter(text: &str, movies: &[Movie], users: &[i32]) -> Result<Vec<Rating>> {
    const FILE: &str = "ml-100k.inter";
    let ([c_user, c_item, c_rating, c_time], rows) =
        table(FILE, text, ["user_id", "item_id", "rating", "timestamp"])?;
    let movie_ids: HashSet<i32> = movies.iter().map(|m| m.id).collect();
    let user_ids: HashSet<i32> = users.iter().copied().collect();
    let mut pairs = HashSet::new();
    let mut ratings = Vec::with_capacity(100_000);
    for (line, row) in rows {
        let user = id(FILE, line, field(FILE, line, &row, c_user)?)?;
        let movie = id(FILE, line, field(FILE, line, &row, c_item)?)?;
        ensure!(
            user_ids.contains(&user),
            "{FILE} line {line}: unknown user {user}"
        );
        ensure!(
            movie_ids.contains(&movie),
            "{FILE} line {line}: unknown movie {movie}"
        );
        ensure!(
            pairs.insert((user, movie)),
            "{FILE} line {line}: user {user} rates movie {movie} twice"
        );
        let raw = field(FILE, line, &row, c_rating)?.trim();
        let half = raw
            .parse::<f64>()
            .ok()
            .map(|r| r * 2.0)
            .filter(|h| h.fract() == 0.0 && (1.0..=10.0).contains(h));
        let Some(half) = half else {
            bail!("{FILE} line {line}: rating `{raw}` is not 0.5 to 5 in steps of 0.5")
        };
        let raw = field(FILE, line, &row, c_time)?.trim();
        let at = match raw.parse::<f64>() {
            Ok(t) if t.is_finite() && t.abs() < 1e11 => t.floor() as i64,
            _ => bail!("{FILE} line {line}: timestamp `{raw}` is not Unix seconds"),
        };
        ratings.push(Rating {
            user,
            movie,
            half_stars: half as u8,
            at,
        });
    }
    ensure!(!ratings.is_empty(), "{FILE} holds no ratings");
    Ok(ratings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_lose_their_year() {
        assert_eq!(split_title_year("Toy Story"), ("Toy Story", None));
        assert_eq!(
            split_title_year("Toy Story (1995)"),
            ("Toy Story", Some(1995))
        );
        assert_eq!(split_title_year("Seven (Se7en)"), ("Seven (Se7en)", None));
        assert_eq!(split_title_year("(1995)"), ("(1995)", None));
        assert_eq!(year("unkonwn"), None);
        assert_eq!(year("V"), None);
        assert_eq!(year(""), None);
        assert_eq!(year("1937"), Some(1937));
    }

    #[test]
    fn parses_a_small_data_set() {
        let files = vec![
            (
                "ml-100k.inter",
                b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
                  1\t2\t3\t881250949\n2\t1\t4.5\t881250950\n"
                    .to_vec(),
            ),
            (
                "ml-100k.item",
                b"item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n\
                  1\tToy Story\t1995\tAnimation Children's Comedy\n\
                  2\tOdd One (1995)\tV\tNoir-ish Comedy Comedy\n"
                    .to_vec(),
            ),
            (
                "ml-100k.user",
                b"user_id:token\tage:token\n1\t24\n2\t53\n".to_vec(),
            ),
        ];
        let data = parse(&files).unwrap();
        assert_eq!(data.genres.len(), GENRES.len() + 1);
        assert_eq!(data.genres.last().unwrap(), "Noir-ish");
        assert_eq!(data.movies[0].genres.len(), 3);
        assert_eq!(data.movies[1].title, "Odd One");
        assert_eq!(data.movies[1].year, Some(1995));
        assert_eq!(data.movies[1].genres.len(), 2);
        assert_eq!(data.ratings[1].half_stars, 9);
        assert_eq!(data.users, vec![1, 2]);
        assert_eq!(data.fingerprint.len(), 64);

        let mut bad = files.clone();
        bad[0].1.extend_from_slice(b"1\t2\t5\t881250951\n");
        let err = format!("{:#}", parse(&bad).unwrap_err());
        assert!(err.contains("line 4") && err.contains("twice"), "{err}");
    }
}
