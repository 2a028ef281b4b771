use super::*;
use crate::{Delta, Layered, MemState, StateRead};

#[test]
fn due_entries_come_out_in_height_order_and_later_ones_stay() {
    let base = MemState::default();
    let mut d = Delta::default();
    let mut s = Layered::new(&base, &mut d);
    for (h, r) in [(5u64, b"b"), (3, b"a"), (9, b"c"), (5, b"a")] {
        s.put_raw(queue_key(b"q/", h, r), vec![h as u8]);
    }
    let due = take_due(&mut s, b"q/", 5, 100).unwrap();
    let got: Vec<(u64, Vec<u8>)> = due.into_iter().map(|e| (e.height, e.rest)).collect();
    assert_eq!(
        got,
        vec![(3, b"a".to_vec()), (5, b"a".to_vec()), (5, b"b".to_vec())]
    );
    assert!(take_due(&mut s, b"q/", 5, 100).unwrap().is_empty());
    assert_eq!(s.prefix_raw(b"q/", b"", 10).unwrap().len(), 1);
}
