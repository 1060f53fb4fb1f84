//! Client records: wire (`paxlog.v1.Record`) ⇄ stored (`partition::codec::Record`).

use crate::partition::codec::Record;
use paxlog_proto::v1 as pb;

/// A wire record as stored; a zero timestamp becomes `now_ms` (the broker's append time).
pub fn record_from_wire(r: pb::Record, now_ms: i64) -> Record {
    Record {
        key: r.key,
        value: r.value,
        headers: r.headers.into_iter().map(|h| (h.key, h.value)).collect(),
        timestamp_ms: if r.timestamp_ms == 0 { now_ms } else { r.timestamp_ms },
    }
}

/// A stored record at `offset`, for the wire.
pub fn record_to_wire(offset: u64, r: Record) -> pb::StoredRecord {
    pb::StoredRecord {
        offset,
        record: Some(pb::Record {
            key: r.key,
            value: r.value,
            headers: r.headers.into_iter().map(|(key, value)| pb::Header { key, value }).collect(),
            timestamp_ms: r.timestamp_ms,
        }),
    }
}
