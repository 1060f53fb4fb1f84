//! Real three-node clusters: processes, RocksDB and gRPC on loopback.

mod harness;
mod smoke;
