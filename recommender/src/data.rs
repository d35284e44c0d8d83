//! Interactions (user, item, rating) in compressed rows, indexed both ways, with dense
//! indices `0..n_users` and `0..n_items` (the caller maps its ids to them).

/// One user's or one item's interactions: (other side's index, rating).
pub type Row = Vec<(u32, f32)>;

/// The training data.
#[derive(Debug, Clone)]
pub struct Interactions {
    /// Number of users (rows of `by_user`).
    pub n_users: usize,
    /// Number of items (rows of `by_item`).
    pub n_items: usize,
    /// Per user: (item, rating).
    pub by_user: Vec<Row>,
    /// Per item: (user, rating).
    pub by_item: Vec<Row>,
}

impl Interactions {
    /// Builds both indexes from triples; indices must be below `n_users` / `n_items`.
    pub fn from_triples(n_users: usize, n_items: usize, triples: &[(u32, u32, f32)]) -> Self {
        let mut by_user = vec![Vec::new(); n_users];
        let mut by_item = vec![Vec::new(); n_items];
        for &(u, i, r) in triples {
            by_user[u as usize].push((i, r));
            by_item[i as usize].push((u, r));
        }
        Interactions {
            n_users,
            n_items,
            by_user,
            by_item,
        }
    }

    /// Builds from per-user rows.
    pub fn from_user_rows(n_items: usize, by_user: Vec<Row>) -> Self {
        let mut by_item = vec![Vec::new(); n_items];
        for (u, row) in by_user.iter().enumerate() {
            for &(i, r) in row {
                by_item[i as usize].push((u as u32, r));
            }
        }
        Interactions {
            n_users: by_user.len(),
            n_items,
            by_user,
            by_item,
        }
    }

    /// Number of interactions.
    pub fn len(&self) -> usize {
        self.by_user.iter().map(Vec::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Interactions per item (popularity).
    pub fn item_counts(&self) -> Vec<u32> {
        self.by_item.iter().map(|r| r.len() as u32).collect()
    }
}
