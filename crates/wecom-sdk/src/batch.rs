//! How a caller's `DecryptData` items become batch frames: bounded in items and bytes, spread over the
//! workers, and put back in the caller's order.
//!
//! A batch is one worker's work, so a large call is cut into several batches that the slots take in
//! parallel; a small one stays whole (below [`MIN_SPREAD_ITEMS`] per worker the frame overhead would
//! outweigh the parallelism). An item too large for a frame of its own is refused here, before it
//! reaches a worker.

use crate::protocol::{DecryptItem, FRAME_OVERHEAD, MAX_FRAME};
use crate::SdkError;

/// Items per batch frame at most.
pub const MAX_BATCH_ITEMS: usize = 256;
/// A call is spread over the workers only in batches of at least this many items.
pub const MIN_SPREAD_ITEMS: usize = 32;
/// Bytes of a batch request frame at most. Half a frame: the answer (plaintexts, normally smaller
/// than their base64 ciphertexts) then fits a frame too; when it does not, the worker refuses the
/// batch and the supervisor sends its items one by one.
pub const MAX_BATCH_BYTES: usize = MAX_FRAME / 2;
/// Bytes of a batch frame besides its items (frame overhead and the item count).
const BATCH_OVERHEAD: usize = FRAME_OVERHEAD + 4;

/// Refuses an item that could not travel in a frame of its own.
pub(crate) fn check_item_size(item: &DecryptItem) -> Result<(), SdkError> {
    if BATCH_OVERHEAD + item.wire_len() > MAX_BATCH_BYTES {
        return Err(SdkError::InvalidArgument(format!(
            "encrypt_msg of {} bytes is too large for the worker protocol (at most {} bytes)",
            item.encrypt_msg.len(),
            MAX_BATCH_BYTES - BATCH_OVERHEAD - 8 - item.encrypt_key.len()
        )));
    }
    Ok(())
}

/// A call's items cut into batches, with the items refused up front kept aside by position.
pub(crate) struct BatchPlan {
    pub batches: Vec<Vec<DecryptItem>>,
    /// (position in the call, why), ascending.
    refused: Vec<(usize, SdkError)>,
    total: usize,
}

impl BatchPlan {
    pub(crate) fn new<K: AsRef<[u8]>, M: AsRef<[u8]>>(items: &[(K, M)], workers: usize) -> Self {
        let per_batch = items
            .len()
            .div_ceil(workers.max(1))
            .clamp(MIN_SPREAD_ITEMS, MAX_BATCH_ITEMS);
        let mut plan = BatchPlan {
            batches: Vec::new(),
            refused: Vec::new(),
            total: items.len(),
        };
        let mut current: Vec<DecryptItem> = Vec::new();
        let mut bytes = BATCH_OVERHEAD;
        for (i, (key, msg)) in items.iter().enumerate() {
            let item = DecryptItem {
                encrypt_key: key.as_ref().to_vec(),
                encrypt_msg: msg.as_ref().to_vec(),
            };
            if let Err(e) = check_item_size(&item) {
                plan.refused.push((i, e));
                continue;
            }
            let len = item.wire_len();
            if !current.is_empty() && (current.len() == per_batch || bytes + len > MAX_BATCH_BYTES)
            {
                plan.batches.push(std::mem::take(&mut current));
                bytes = BATCH_OVERHEAD;
            }
            bytes += len;
            current.push(item);
        }
        if !current.is_empty() {
            plan.batches.push(current);
        }
        plan
    }

    /// The results of [`BatchPlan::batches`], concatenated, merged with the refused items into the
    /// caller's order.
    pub(crate) fn merge(
        self,
        results: Vec<Result<Vec<u8>, SdkError>>,
    ) -> Vec<Result<Vec<u8>, SdkError>> {
        let mut results = results.into_iter();
        let mut refused = self.refused.into_iter().peekable();
        (0..self.total)
            .map(|i| match refused.next_if(|(at, _)| *at == i) {
                Some((_, e)) => Err(e),
                None => results.next().unwrap_or(Err(SdkError::Closed)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize, msg_len: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| (format!("key-{i}").into_bytes(), vec![b'm'; msg_len]))
            .collect()
    }

    fn sizes(plan: &BatchPlan) -> Vec<usize> {
        plan.batches.iter().map(Vec::len).collect()
    }

    #[test]
    fn batches_spread_over_workers_within_bounds() {
        for (n, workers, want) in [
            (0, 2, vec![]),
            (1, 2, vec![1]),
            (40, 2, vec![32, 8]),
            (128, 2, vec![64, 64]),
            (128, 1, vec![128]),
            (600, 1, vec![256, 256, 88]),
            (100, 0, vec![100]),
        ] {
            let plan = BatchPlan::new(&items(n, 10), workers);
            assert_eq!(sizes(&plan), want, "{n} items on {workers} workers");
        }
    }

    #[test]
    fn a_batch_never_exceeds_the_byte_bound() {
        let big = MAX_BATCH_BYTES / 3;
        let plan = BatchPlan::new(&items(5, big), 1);
        assert_eq!(sizes(&plan), vec![2, 2, 1]);
        for b in &plan.batches {
            let bytes = BATCH_OVERHEAD + b.iter().map(DecryptItem::wire_len).sum::<usize>();
            assert!(bytes <= MAX_BATCH_BYTES);
        }
    }

    #[test]
    fn oversized_items_are_refused_in_place() {
        let mut input = items(4, 10);
        input[1].1 = vec![b'x'; MAX_BATCH_BYTES];
        let plan = BatchPlan::new(&input, 1);
        assert_eq!(sizes(&plan), vec![3]);
        let results = (0..3).map(|i| Ok(vec![i as u8])).collect();
        let merged = plan.merge(results);
        assert_eq!(merged.len(), 4);
        assert_eq!(merged[0].as_ref().unwrap(), &[0]);
        assert!(
            matches!(&merged[1], Err(SdkError::InvalidArgument(m)) if m.contains("too large")),
            "{:?}",
            merged[1]
        );
        assert_eq!(merged[2].as_ref().unwrap(), &[1]);
        assert_eq!(merged[3].as_ref().unwrap(), &[2]);
    }
}
