//! The Merkle tree used for state hashes, trace roots, op roots and dataset roots.
//!
//! Construction (BLAKE3 throughout):
//! * a leaf value is a 32-byte digest `v`; its node is `H(0x00 || v)`;
//! * an internal node is `H(0x01 || left || right)`;
//! * levels are built left to right by pairing `(0,1), (2,3), ...`; an odd last node is
//!   promoted unchanged to the next level (no duplication, so `[a, b, c]` and
//!   `[a, b, c, c]` have different roots);
//! * the root of zero leaves is `H(0x02)`; the root of one leaf is its leaf node.
//!
//! A proof lists the sibling digests from the leaf level up, skipping levels where the
//! node was promoted; the verifier needs the leaf index and the leaf count.

use serde::{Deserialize, Serialize};

/// A 32-byte digest.
pub type Hash = [u8; 32];

/// Leaf node `H(0x00 || v)`.
pub fn leaf_node(v: &Hash) -> Hash {
    // One-shot `blake3::hash` of a stack buffer: the same digest as a `Hasher` fed the
    // parts, without the `Hasher`'s set-up (a third of the time for inputs this short).
    let mut buf = [0u8; 33];
    buf[1..].copy_from_slice(v);
    *blake3::hash(&buf).as_bytes()
}

/// Internal node `H(0x01 || l || r)`.
pub fn internal_node(l: &Hash, r: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(l);
    buf[33..].copy_from_slice(r);
    *blake3::hash(&buf).as_bytes()
}

/// Root of the empty tree, `H(0x02)`.
pub fn empty_root() -> Hash {
    *blake3::hash(&[0x02]).as_bytes()
}

fn next_level(level: &[Hash]) -> Vec<Hash> {
    level
        .chunks(2)
        .map(|p| match p {
            [l, r] => internal_node(l, r),
            [x] => *x,
            _ => empty_root(),
        })
        .collect()
}

/// Merkle root over leaf values.
pub fn root(leaves: &[Hash]) -> Hash {
    root_of_nodes(leaves.iter().map(leaf_node).collect())
}

/// Merkle root over leaf *nodes* (`leaf_node(v)` each): a party that knows
/// some leaves only by their node (withheld values) can still check a root.
pub fn root_of_nodes(nodes: Vec<Hash>) -> Hash {
    if nodes.is_empty() {
        return empty_root();
    }
    let mut level = nodes;
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

/// Inclusion proof of one leaf.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// Leaf index.
    pub index: u64,
    /// Number of leaves in the tree.
    pub leaf_count: u64,
    /// Sibling digests, leaf level first (levels where the node is promoted have none).
    #[serde(with = "hex_vec")]
    pub siblings: Vec<Hash>,
}

/// Proof for leaf `index`, or `None` if out of range.
pub fn proof(leaves: &[Hash], index: usize) -> Option<Proof> {
    proof_of_nodes(leaves.iter().map(leaf_node).collect(), index)
}

/// Proof for leaf `index` from leaf *nodes* (see [`root_of_nodes`]): the
/// proof needs only the other leaves' nodes, never their values.
pub fn proof_of_nodes(nodes: Vec<Hash>, index: usize) -> Option<Proof> {
    Tree::from_nodes(nodes).proof(index)
}

/// Every level of a tree, for many proofs out of one build.
#[derive(Clone, Debug)]
pub struct Tree {
    /// Level 0 is the leaf nodes; the last level is the root alone.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// The tree over leaf nodes (`leaf_node(v)` each).
    pub fn from_nodes(nodes: Vec<Hash>) -> Tree {
        let mut levels = vec![nodes];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let next = levels.last().map(|l| next_level(l)).unwrap_or_default();
            levels.push(next);
        }
        Tree { levels }
    }

    /// The root (of zero leaves: [`empty_root`]).
    pub fn root(&self) -> Hash {
        self.levels
            .last()
            .and_then(|l| l.first().copied())
            .unwrap_or_else(empty_root)
    }

    /// Proof for leaf `index`, or `None` if out of range.
    pub fn proof(&self, index: usize) -> Option<Proof> {
        let leaf_count = self.levels.first().map_or(0, Vec::len);
        if index >= leaf_count {
            return None;
        }
        let mut idx = index;
        let mut siblings = Vec::new();
        for level in &self.levels[..self.levels.len() - 1] {
            if let Some(s) = level.get(idx ^ 1) {
                siblings.push(*s);
            }
            idx /= 2;
        }
        Some(Proof {
            index: index as u64,
            leaf_count: leaf_count as u64,
            siblings,
        })
    }
}

/// Check that `leaf` is at `proof.index` of a tree with root `root`.
pub fn verify(root: &Hash, leaf: &Hash, proof: &Proof) -> bool {
    if proof.index >= proof.leaf_count {
        return false;
    }
    let mut h = leaf_node(leaf);
    let (mut idx, mut n) = (proof.index, proof.leaf_count);
    let mut sibs = proof.siblings.iter();
    while n > 1 {
        let sib = idx ^ 1;
        if sib < n {
            let Some(s) = sibs.next() else {
                return false;
            };
            h = if idx % 2 == 0 {
                internal_node(&h, s)
            } else {
                internal_node(s, &h)
            };
        }
        idx /= 2;
        n = n.div_ceil(2);
    }
    sibs.next().is_none() && &h == root
}

/// Serde helper: `[u8; 32]` as a hex string.
pub mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};
    /// Serialize as lower-case hex.
    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }
    /// Parse 64 hex digits.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        super::parse_hex32(&s).map_err(serde::de::Error::custom)
    }
}

/// Parse 64 hex digits into a hash.
pub fn parse_hex32(s: &str) -> Result<Hash, String> {
    let v = hex::decode(s).map_err(|e| format!("bad hex digest {s:?}: {e}"))?;
    v.try_into()
        .map_err(|_| format!("digest {s:?} is not 32 bytes"))
}

mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.iter()
            .map(|s| super::parse_hex32(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| *blake3::hash(&[i as u8]).as_bytes())
            .collect()
    }

    #[test]
    fn every_leaf_of_every_tree_size_up_to_33_has_a_valid_proof() {
        for n in 1..=33 {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let p = proof(&l, i).unwrap();
                assert!(verify(&r, &l[i], &p), "n={n} i={i}");
                let wrong = *blake3::hash(b"x").as_bytes();
                assert!(!verify(&r, &wrong, &p));
            }
        }
    }

    #[test]
    fn odd_nodes_are_promoted_not_duplicated() {
        let l = leaves(3);
        let mut l4 = l.clone();
        l4.push(l[2]);
        assert_ne!(root(&l), root(&l4));
        assert_eq!(
            root(&l),
            internal_node(
                &internal_node(&leaf_node(&l[0]), &leaf_node(&l[1])),
                &leaf_node(&l[2])
            )
        );
    }

    #[test]
    fn node_hashes_are_blake3_of_the_tagged_concatenation() {
        let l = leaves(2);
        let mut h = blake3::Hasher::new();
        h.update(&[0x00]);
        h.update(&l[0]);
        assert_eq!(leaf_node(&l[0]), *h.finalize().as_bytes());
        let mut h = blake3::Hasher::new();
        h.update(&[0x01]);
        h.update(&l[0]);
        h.update(&l[1]);
        assert_eq!(internal_node(&l[0], &l[1]), *h.finalize().as_bytes());
    }

    #[test]
    fn proofs_from_leaf_nodes_match_proofs_from_values() {
        for n in 1..=33 {
            let l = leaves(n);
            let nodes: Vec<Hash> = l.iter().map(leaf_node).collect();
            let tree = Tree::from_nodes(nodes.clone());
            assert_eq!(tree.root(), root(&l));
            assert_eq!(root_of_nodes(nodes), root(&l));
            for i in 0..n {
                assert_eq!(tree.proof(i), proof(&l, i), "n={n} i={i}");
            }
            assert_eq!(tree.proof(n), None);
        }
        assert_eq!(Tree::from_nodes(vec![]).root(), empty_root());
    }

    #[test]
    fn a_proof_with_a_lying_leaf_count_is_rejected() {
        let l = leaves(5);
        let r = root(&l);
        let mut p = proof(&l, 4).unwrap();
        p.leaf_count = 8;
        assert!(!verify(&r, &l[4], &p));
    }
}
