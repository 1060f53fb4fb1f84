//! Parsing the peer list: `1=127.0.0.1:7001,2=127.0.0.1:7002,3=[::1]:7003`.

use super::{ConfigError, NodeId};
use std::collections::BTreeMap;

/// Parses `id=host:port` pairs separated by commas (spaces around items are ignored). An
/// empty string is an empty list. Rejects id 0, duplicate ids, duplicate addresses, empty
/// items and addresses without a valid port.
pub fn parse_peers(input: &str) -> Result<BTreeMap<NodeId, String>, ConfigError> {
    let fail = |reason: String| ConfigError::InvalidPeers {
        input: input.to_owned(),
        reason,
    };
    let mut peers = BTreeMap::new();
    if input.trim().is_empty() {
        return Ok(peers);
    }
    for item in input.split(',').map(str::trim) {
        let Some((id, address)) = item.split_once('=') else {
            return Err(fail(format!("item {item:?} has no '='")));
        };
        let id = parse_id(id.trim()).map_err(&fail)?;
        let address = parse_peer_address(address.trim()).map_err(&fail)?;
        insert(&mut peers, id, address).map_err(&fail)?;
    }
    Ok(peers)
}

/// Converts the config file's `[peers]` table, whose keys are strings.
pub(super) fn from_table(
    table: BTreeMap<String, String>,
) -> Result<BTreeMap<NodeId, String>, ConfigError> {
    let mut peers = BTreeMap::new();
    for (id, address) in &table {
        let fail = |reason: String| ConfigError::InvalidPeers {
            input: format!("[peers] {id} = {address:?}"),
            reason,
        };
        let id = parse_id(id.trim()).map_err(fail)?;
        let address = parse_peer_address(address.trim()).map_err(fail)?;
        insert(&mut peers, id, address).map_err(fail)?;
    }
    Ok(peers)
}

/// Checks a peer address: `host:port` with a non-empty host (name, IPv4, or `[IPv6]`) and a
/// port from 1 to 65535. Hosts are not resolved here: DNS may not be ready at start.
pub fn parse_peer_address(address: &str) -> Result<String, String> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!(
            "address {address:?} has no port (expected host:port)"
        ));
    };
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.is_empty() || (host.contains(':') && !bracketed) || host.contains(char::is_whitespace) {
        return Err(format!(
            "address {address:?} has an invalid host (IPv6 goes in brackets: [::1]:7001)"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(address.to_owned()),
        _ => Err(format!(
            "address {address:?} has an invalid port {port:?} (expected 1-65535)"
        )),
    }
}

fn parse_id(id: &str) -> Result<NodeId, String> {
    match id.parse::<NodeId>() {
        Ok(0) => Err("node id 0 is reserved; ids start at 1".to_owned()),
        Ok(id) => Ok(id),
        Err(_) => Err(format!("node id {id:?} is not a positive integer")),
    }
}

fn insert(peers: &mut BTreeMap<NodeId, String>, id: NodeId, address: String) -> Result<(), String> {
    if peers.contains_key(&id) {
        return Err(format!("node {id} is listed twice"));
    }
    if let Some((other, _)) = peers.iter().find(|(_, a)| **a == address) {
        return Err(format!(
            "address {address} is listed for both node {other} and node {id}"
        ));
    }
    peers.insert(id, address);
    Ok(())
}
