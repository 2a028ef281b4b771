use super::*;

fn mem(pairs: &[(&str, &str)]) -> MemState {
    MemState(
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
    )
}

#[test]
fn overlay_reads_see_their_own_writes_and_deletes() {
    let base = mem(&[("a/1", "x"), ("a/2", "y")]);
    let mut d = Delta::default();
    let mut l = Layered::new(&base, &mut d);
    l.put_raw(b"a/3".to_vec(), b"z".to_vec());
    l.delete(b"a/1".to_vec());
    assert_eq!(l.get_raw(b"a/1").unwrap(), None);
    assert_eq!(l.get_raw(b"a/3").unwrap(), Some(b"z".to_vec()));
    let keys: Vec<_> = l
        .prefix_raw(b"a/", b"", 10)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![b"a/2".to_vec(), b"a/3".to_vec()]);
}

#[test]
fn overlay_prefix_scans_match_a_merged_map_for_every_limit() {
    let base = mem(&[
        ("p/1", "1"),
        ("p/3", "3"),
        ("p/5", "5"),
        ("p/7", "7"),
        ("q/1", "q"),
    ]);
    let mut d = Delta::default();
    {
        let mut l = Layered::new(&base, &mut d);
        l.delete(b"p/1".to_vec());
        l.put_raw(b"p/2".to_vec(), b"2".to_vec());
        l.put_raw(b"p/9".to_vec(), b"9".to_vec());
        l.delete(b"p/5".to_vec());
    }
    let mut merged = base.clone();
    merged.apply(d.clone());
    for limit in 0..8 {
        for start in ["", "p/2", "p/4", "p/8"] {
            let l = Layered::new(&base, &mut d);
            let got = l.prefix_raw(b"p/", start.as_bytes(), limit).unwrap();
            let want = merged.prefix_raw(b"p/", start.as_bytes(), limit).unwrap();
            assert_eq!(got, want, "limit {limit} start {start}");
        }
    }
}
