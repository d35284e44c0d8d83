//! Reading a Redis Cluster's own view of itself (`CLUSTER NODES`, `CLUSTER INFO`), pure, so
//! that "which master may be killed" and "is every slot served again" are unit tested rather
//! than trusted. The I/O that feeds them is in [`crate::inject`].

/// Hash slots of a Redis Cluster.
pub const SLOTS: usize = 16384;

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The node's id.
    pub id: String,
    /// Its client port.
    pub port: u16,
    /// A master (possibly failed).
    pub master: bool,
    /// Flagged `fail`, `fail?`, `noaddr` or `handshake`: not serving.
    pub failing: bool,
    /// The slot ranges it serves (inclusive); slots being migrated (`[...]`) are left out.
    pub slots: Vec<(u16, u16)>,
}

/// The nodes of a `CLUSTER NODES` answer; lines that cannot be read are skipped.
pub fn parse_nodes(text: &str) -> Vec<Node> {
    text.lines().filter_map(parse_node).collect()
}

fn parse_node(line: &str) -> Option<Node> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 8 {
        return None;
    }
    // `ip:port@cport[,hostname]`
    let address = fields[1].split(['@', ',']).next()?;
    let port = address.rsplit_once(':')?.1.parse().ok()?;
    let flags: Vec<&str> = fields[2].split(',').collect();
    let slots = fields[8..]
        .iter()
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => {
                let slot = s.parse().ok()?;
                Some((slot, slot))
            }
        })
        .collect();
    Some(Node {
        id: fields[0].to_owned(),
        port,
        master: flags.contains(&"master"),
        failing: flags
            .iter()
            .any(|f| matches!(*f, "fail" | "fail?" | "noaddr" | "handshake")),
        slots,
    })
}

/// Whether `CLUSTER INFO` says `cluster_state:ok`.
pub fn state_ok(info: &str) -> bool {
    info.lines().any(|line| line.trim() == "cluster_state:ok")
}

/// Whether every slot is served by a master that is not failing and is not `dead` (the id of
/// a node known to be down, which the others may not have noticed yet).
pub fn all_slots_served(nodes: &[Node], dead: Option<&str>) -> bool {
    let mut served = vec![false; SLOTS];
    for node in nodes
        .iter()
        .filter(|n| n.master && !n.failing && Some(n.id.as_str()) != dead)
    {
        for &(from, to) in &node.slots {
            let to = usize::from(to).min(SLOTS - 1);
            if let Some(range) = served.get_mut(usize::from(from)..=to) {
                range.fill(true);
            }
        }
    }
    served.iter().all(|s| *s)
}

/// The masters that serve slots and are not failing, lowest port first: the candidates for
/// a kill.
pub fn live_masters(nodes: &[Node]) -> Vec<&Node> {
    let mut masters: Vec<&Node> = nodes
        .iter()
        .filter(|n| n.master && !n.failing && !n.slots.is_empty())
        .collect();
    masters.sort_by_key(|n| n.port);
    masters
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
a1 127.0.0.1:7101@17101 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:7102@17102 master - 0 1700000000000 2 connected 5461-10922
a3 127.0.0.1:7103@17103 master - 0 1700000000000 3 connected 10923-16383
b1 127.0.0.1:7104@17104 slave a3 0 1700000000000 3 connected
b2 127.0.0.1:7105@17105 slave a1 0 1700000000000 1 connected
b3 127.0.0.1:7106@17106 slave a2 0 1700000000000 2 connected
";

    #[test]
    fn reads_nodes_and_finds_the_masters() {
        let nodes = parse_nodes(NODES);
        assert_eq!(nodes.len(), 6);
        assert_eq!(nodes[1].slots, vec![(5461, 10922)]);
        let masters: Vec<u16> = live_masters(&nodes).iter().map(|n| n.port).collect();
        assert_eq!(masters, vec![7101, 7102, 7103]);
        assert!(all_slots_served(&nodes, None));
    }

    #[test]
    fn a_killed_master_leaves_its_slots_unserved_until_a_replica_takes_them() {
        // Just killed: the others have not noticed yet, but the node is known dead.
        let nodes = parse_nodes(NODES);
        assert!(!all_slots_served(&nodes, Some("a2")));
        // Noticed: flagged fail, its replica not yet promoted.
        let failed = NODES.replace(
            "master - 0 1700000000000 2",
            "master,fail - 0 1700000000000 2",
        );
        assert!(!all_slots_served(&parse_nodes(&failed), None));
        // Failed over: the replica is a master with the slots.
        let promoted = failed.replace("5461-10922\n", "\n").replace(
            "b3 127.0.0.1:7106@17106 slave a2 0 1700000000000 2 connected",
            "b3 127.0.0.1:7106@17106 master - 0 1700000000000 4 connected 5461-10922",
        );
        let nodes = parse_nodes(&promoted);
        assert!(all_slots_served(&nodes, Some("a2")));
        let masters: Vec<u16> = live_masters(&nodes).iter().map(|n| n.port).collect();
        assert_eq!(masters, vec![7101, 7103, 7106]);
    }

    #[test]
    fn single_slots_migrations_and_hostnames() {
        let nodes = parse_nodes(
            "x 127.0.0.1:7101@17101,host master - 0 0 1 connected 0-16382 16383 [5->-y]\n",
        );
        assert_eq!(nodes[0].port, 7101);
        assert_eq!(nodes[0].slots, vec![(0, 16382), (16383, 16383)]);
        assert!(all_slots_served(&nodes, None));
        assert!(state_ok(
            "cluster_state:ok\r\ncluster_slots_assigned:16384\r\n"
        ));
        assert!(!state_ok("cluster_state:fail\r\n"));
    }
}
