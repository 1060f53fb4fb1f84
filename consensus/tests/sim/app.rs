//! The application state machine of a simulated node: the list of applied values.
//!
//! It keeps every value (no hashing) so that any disagreement can be pinned to a slot, and
//! its snapshots serialize that whole list, so a replica that installs a snapshot ends up
//! with exactly the state the sender had, which the checker then compares slot by slot.

use bytes::{BufMut, Bytes, BytesMut};
use paxlog_consensus::{MemStorage, Slot, Snapshot, Storage, Value};

/// Applied values, slot `i + 1` at index `i`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct App {
    values: Vec<Value>,
}

impl App {
    /// The last applied slot (0 when nothing was applied).
    pub fn applied(&self) -> Slot {
        self.values.len() as Slot
    }

    /// All applied values, in slot order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The value applied at `slot`.
    pub fn value(&self, slot: Slot) -> Option<&Value> {
        slot.checked_sub(1)
            .and_then(|i| self.values.get(i as usize))
    }

    /// Applies the value of `slot`, which must directly follow the last applied one: the
    /// driver contract promises decided slots strictly in order, without gaps.
    pub fn apply(&mut self, slot: Slot, value: Value) -> Result<(), String> {
        if slot != self.applied() + 1 {
            return Err(format!(
                "decided slot {slot} handed out after slot {}: not strictly in order",
                self.applied()
            ));
        }
        self.values.push(value);
        Ok(())
    }

    /// Serializes the state covering slots `1..=up_to`.
    pub fn snapshot(&self, up_to: Slot) -> Bytes {
        let mut buf = BytesMut::new();
        for v in &self.values[..up_to as usize] {
            match v {
                Value::Noop => buf.put_u8(0),
                Value::Data(b) => {
                    buf.put_u8(1);
                    buf.put_u32(b.len() as u32);
                    buf.put_slice(b);
                }
            }
        }
        buf.freeze()
    }

    /// Replaces the state with a snapshot's. A snapshot may only move the state forward.
    pub fn install(&mut self, snap: &Snapshot) -> Result<(), String> {
        if snap.slot <= self.applied() {
            return Err(format!(
                "snapshot at slot {} installed over applied slot {}: state would go back",
                snap.slot,
                self.applied()
            ));
        }
        let values = decode(&snap.data)?;
        if values.len() as Slot != snap.slot {
            return Err(format!(
                "snapshot claims slot {} but holds {} values",
                snap.slot,
                values.len()
            ));
        }
        self.values = values;
        Ok(())
    }

    /// What the application rebuilds on restart (driver contract, rule 4): the stored
    /// snapshot, then the stored entries up to the stored decided index, which must all be
    /// there.
    pub fn rebuild(storage: &MemStorage) -> Result<App, String> {
        let init = storage.initial_state().map_err(|e| e.to_string())?;
        let mut app = App::default();
        if let Some(snap) = &init.snapshot {
            app.install(snap)?;
        }
        let from = app.applied() + 1;
        if init.decided >= from {
            let entries = storage
                .entries(from, init.decided)
                .map_err(|e| e.to_string())?;
            for (slot, entry) in entries {
                app.apply(slot, entry.value)
                    .map_err(|e| format!("stored log has a gap: {e}"))?;
            }
        }
        if app.applied() < init.decided {
            return Err(format!(
                "storage says slots up to {} are decided but holds entries only up to {}",
                init.decided,
                app.applied()
            ));
        }
        Ok(app)
    }
}

fn decode(mut data: &[u8]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    while let Some((&tag, rest)) = data.split_first() {
        data = rest;
        match tag {
            0 => out.push(Value::Noop),
            1 => {
                let (len, rest) = data
                    .split_first_chunk::<4>()
                    .ok_or("snapshot: cut length")?;
                let len = u32::from_be_bytes(*len) as usize;
                if rest.len() < len {
                    return Err("snapshot: cut value".into());
                }
                out.push(Value::Data(Bytes::copy_from_slice(&rest[..len])));
                data = &rest[len..];
            }
            t => return Err(format!("snapshot: bad tag {t}")),
        }
    }
    Ok(out)
}
