//! Similar movies ("people who loved this also loved"), precomputed at training time on a
//! catalogue small enough for a dense item × item count ([`crate::blend::DENSE_ITEM_LIMIT`]).
//!
//! For a movie `i`, every other movie `j` scores `co(i, j) / (likes(j) + SHRINK)`: of the
//! users who loved `j` (rated it at least [`LIKED`]), the share who loved `i` too, shrunk
//! towards zero when few loved `j`. Dividing by `j`'s own likes is what keeps the blockbusters
//! every rater has seen from being everyone's neighbour: Toy Story's neighbours by plain
//! co-occurrence, by the cosine of ALS factors or by EASE's weights are Star Wars, Independence
//! Day and the other 1996 hits its raters also rated; by this score they are Beauty and the
//! Beast, Aladdin, Cinderella, Dumbo, The Lion King, Snow White, Pinocchio. A dislike (below
//! [`LIKED`]) counts for neither movie.
//!
//! Each movie keeps its best [`Neighbours::k`]; serving cuts that list. Above the dense limit
//! the origin falls back to the cosine of the ALS item factors.

use crate::data::Row;

/// The lowest rating that counts as loving a movie.
pub const LIKED: f32 = 4.0;

/// The shrinkage of the score's denominator: a movie loved by few scores low whatever it is
/// co-loved with.
pub const SHRINK: f32 = 20.0;

/// Every movie's nearest movies, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    n_items: usize,
    k: usize,
    /// `n_items × k` (item, score), each movie's list padded with [`PAD`].
    lists: Vec<(u32, f32)>,
}

/// A padding entry's item (a movie with fewer than `k` co-loved movies).
const PAD: u32 = u32::MAX;

impl Neighbours {
    /// The best `k` neighbours of each of `n_items` movies from per-user rows
    /// `(item, rating)`. Costs the sum over users of their liked movies squared, and 4·n²
    /// bytes while it counts.
    pub fn train(rows: &[Row], n_items: usize, k: usize) -> Neighbours {
        let mut co = vec![0u32; n_items * n_items];
        let mut likes = vec![0u32; n_items];
        let mut liked = Vec::new();
        for row in rows {
            liked.clear();
            liked.extend(
                row.iter()
                    .filter(|(i, r)| *r >= LIKED && (*i as usize) < n_items)
                    .map(|(i, _)| *i as usize),
            );
            for &a in &liked {
                likes[a] += 1;
                let line = &mut co[a * n_items..(a + 1) * n_items];
                for &b in &liked {
                    line[b] += 1;
                }
            }
        }
        let mut lists = Vec::with_capacity(n_items * k);
        let mut scored: Vec<(u32, f32)> = Vec::with_capacity(n_items);
        for i in 0..n_items {
            scored.clear();
            let line = &co[i * n_items..(i + 1) * n_items];
            scored.extend(
                line.iter()
                    .zip(&likes)
                    .enumerate()
                    .filter(|(j, (c, _))| *j != i && **c > 0)
                    .map(|(j, (c, l))| (j as u32, *c as f32 / (*l as f32 + SHRINK))),
            );
            let by_score = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
            if scored.len() > k {
                scored.select_nth_unstable_by(k, by_score);
                scored.truncate(k);
            }
            scored.sort_unstable_by(by_score);
            lists.extend_from_slice(&scored);
            lists.extend(std::iter::repeat_n((PAD, 0.0), k - scored.len()));
        }
        Neighbours { n_items, k, lists }
    }

    /// Movies.
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// Neighbours kept per movie.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The best `n` (at most [`Neighbours::k`]) neighbours of `item` with their score, best
    /// first; empty for an item out of range or loved by nobody.
    pub fn get(&self, item: u32, n: usize) -> Vec<(u32, f32)> {
        let item = item as usize;
        if item >= self.n_items {
            return Vec::new();
        }
        self.lists[item * self.k..(item + 1) * self.k]
            .iter()
            .take_while(|(j, _)| *j != PAD)
            .take(n)
            .copied()
            .collect()
    }

    /// Little-endian: `n_items`, `k` (u32), then each movie's `k` (item u32, score f32).
    /// For a PostgreSQL BYTEA.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.lists.len() * 8);
        out.extend_from_slice(&(self.n_items as u32).to_le_bytes());
        out.extend_from_slice(&(self.k as u32).to_le_bytes());
        for (item, score) in &self.lists {
            out.extend_from_slice(&item.to_le_bytes());
            out.extend_from_slice(&score.to_le_bytes());
        }
        out
    }

    /// What [`Neighbours::to_bytes`] wrote; `None` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<Neighbours> {
        let (n_items, rest) = bytes.split_first_chunk::<4>()?;
        let (k, rest) = rest.split_first_chunk::<4>()?;
        let (n_items, k) = (
            u32::from_le_bytes(*n_items) as usize,
            u32::from_le_bytes(*k) as usize,
        );
        if rest.len() != n_items.checked_mul(k)?.checked_mul(8)? {
            return None;
        }
        let lists = rest
            .chunks_exact(8)
            .map(|c| {
                (
                    u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                    f32::from_le_bytes([c[4], c[5], c[6], c[7]]),
                )
            })
            .collect();
        Some(Neighbours { n_items, k, lists })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items 0 and 1 are loved together by a few; item 2 is loved by everyone, with 0 or 1.
    fn rows() -> Vec<Row> {
        let mut rows = Vec::new();
        for u in 0..30 {
            let mut row = vec![(2, 5.0)];
            if u < 6 {
                row.extend([(0, 5.0), (1, 4.0)]);
            } else if u < 10 {
                row.push((0, 4.5));
            }
            // A dislike of item 3 with item 0's fans: never a neighbour.
            if u < 8 {
                row.push((3, 1.0));
            }
            rows.push(row);
        }
        rows
    }

    #[test]
    fn the_share_of_a_movies_fans_beats_the_blockbuster_everyone_loves() {
        let neighbours = Neighbours::train(&rows(), 4, 3);
        let of_0 = neighbours.get(0, 3);
        // Item 1: 6 of its 6 fans love 0 → 6/26; item 2: 10 of its 30 → 10/50.
        assert_eq!(of_0.iter().map(|(j, _)| *j).collect::<Vec<_>>(), [1, 2]);
        assert!((of_0[0].1 - 6.0 / 26.0).abs() < 1e-6);
        assert!((of_0[1].1 - 10.0 / 50.0).abs() < 1e-6);
        assert_eq!(neighbours.get(0, 1).len(), 1);
        assert!(neighbours.get(3, 3).is_empty(), "only disliked");
        assert!(neighbours.get(9, 3).is_empty(), "out of range");
    }

    #[test]
    fn bytes_round_trip() {
        let neighbours = Neighbours::train(&rows(), 4, 2);
        let bytes = neighbours.to_bytes();
        assert_eq!(bytes.len(), 8 + 4 * 2 * 8);
        assert_eq!(Neighbours::from_bytes(&bytes), Some(neighbours));
        assert_eq!(Neighbours::from_bytes(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Neighbours::from_bytes(&[]), None);
    }
}
