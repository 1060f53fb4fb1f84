use super::*;
use proptest::prelude::*;

fn record(key: &'static [u8], value: &'static [u8], timestamp_ms: i64) -> Record {
    Record {
        key: Bytes::from_static(key),
        value: Bytes::from_static(value),
        headers: Vec::new(),
        timestamp_ms,
    }
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn arb_record() -> impl Strategy<Value = Record> {
    (
        arb_bytes(40),
        arb_bytes(300),
        proptest::collection::vec((".{0,12}", arb_bytes(20)), 0..4),
        any::<i64>(),
    )
        .prop_map(|(key, value, headers, timestamp_ms)| Record {
            key,
            value,
            headers,
            timestamp_ms,
        })
}

fn arb_command() -> impl Strategy<Value = PartitionCommand> {
    let producer = proptest::option::of((any::<u64>(), any::<u32>(), any::<u32>()).prop_map(
        |(producer_id, epoch, base_sequence)| ProducerSeq {
            producer_id,
            epoch,
            base_sequence,
        },
    ));
    let append = (producer, proptest::collection::vec(arb_record(), 0..8)).prop_map(
        |(producer, records)| PartitionCommand::Append(AppendBatch { producer, records }),
    );
    prop_oneof![
        6 => append,
        1 => any::<u64>().prop_map(|up_to_offset| PartitionCommand::Trim { up_to_offset }),
        1 => Just(PartitionCommand::Barrier),
        1 => arb_bytes(64).prop_map(PartitionCommand::Group),
    ]
}

proptest! {
    #[test]
    fn commands_round_trip(command in arb_command()) {
        let encoded = command.encode();
        prop_assert_eq!(encoded.len(), command.encoded_len());
        prop_assert_eq!(PartitionCommand::decode(&encoded), Ok(command.clone()));
        prop_assert_eq!(PartitionCommand::decode_bytes(encoded), Ok(command));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = PartitionCommand::decode(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        // Past the version check, so the fuzzing reaches the record parser.
        let mut input = vec![VERSION, TAG_APPEND];
        input.extend_from_slice(&bytes);
        let _ = PartitionCommand::decode(&input);
    }

    #[test]
    fn every_strict_prefix_is_rejected(command in arb_command()) {
        let encoded = command.encode();
        for len in 0..encoded.len() {
            prop_assert!(PartitionCommand::decode(&encoded[..len]).is_err(), "prefix of {len} bytes");
        }
    }

    #[test]
    fn flipped_bytes_never_panic(command in arb_command(), at in any::<usize>(), bit in 0u8..8) {
        let mut encoded = command.encode().to_vec();
        if !encoded.is_empty() {
            let at = at % encoded.len();
            encoded[at] ^= 1 << bit;
        }
        let _ = PartitionCommand::decode(&encoded);
    }

    #[test]
    fn varints_round_trip(value in any::<u64>()) {
        let mut out = BytesMut::new();
        put_varint(&mut out, value);
        prop_assert_eq!(out.len(), varint_len(value));
        let mut reader = Reader { buf: out.freeze(), pos: 0 };
        prop_assert_eq!(reader.varint("test"), Ok(value));
    }

    #[test]
    fn zigzag_round_trips(value in any::<i64>()) {
        prop_assert_eq!(unzigzag(zigzag(value)), value);
    }
}

#[test]
fn encoding_is_compact_and_sizes_add_up() {
    let batch = AppendBatch {
        producer: None,
        records: vec![
            record(b"k", b"hello", 1_700_000_000_000),
            record(b"", b"", 0),
        ],
    };
    let sizes: Vec<usize> = batch.records.iter().map(Record::encoded_len).collect();
    // length(1) + timestamp(6) + key(1+1) + value(1+5) + headers(1)
    assert_eq!(sizes, vec![16, 5]);
    assert_eq!(batch.max_record_len(), 16);
    assert_eq!(batch.encoded_len(), 1 + 1 + 16 + 5);
    let command = PartitionCommand::Append(batch);
    assert_eq!(command.encode().len(), 2 + 23);
}

#[test]
fn decoded_values_share_the_input_buffer() {
    let command = PartitionCommand::Append(AppendBatch {
        producer: None,
        records: vec![record(b"key", b"value", 5)],
    });
    let encoded = command.encode();
    let range = encoded.as_ptr_range();
    let PartitionCommand::Append(batch) =
        PartitionCommand::decode_bytes(encoded.clone()).expect("decode")
    else {
        panic!("an append decodes as an append");
    };
    assert!(
        range.contains(&batch.records[0].value.as_ptr()),
        "value was copied"
    );
}

#[test]
fn malformed_inputs_say_what_is_wrong() {
    assert_eq!(
        PartitionCommand::decode(&[]),
        Err(CodecError::Truncated { what: "version" })
    );
    assert_eq!(
        PartitionCommand::decode(&[9, 1]),
        Err(CodecError::UnsupportedVersion(9))
    );
    assert_eq!(
        PartitionCommand::decode(&[VERSION, 7]),
        Err(CodecError::UnknownCommand(7))
    );
    assert_eq!(
        PartitionCommand::decode(&[VERSION, TAG_APPEND, 0b10, 0]),
        Err(CodecError::UnknownFlags(0b10))
    );
    assert_eq!(
        PartitionCommand::decode(&[VERSION, TAG_APPEND, 0, 0, 0]),
        Err(CodecError::TrailingBytes(1))
    );
    // A count of 2^63 records in a 3-byte input must fail, not allocate.
    let mut huge = vec![VERSION, TAG_APPEND, 0];
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert!(matches!(
        PartitionCommand::decode(&huge),
        Err(CodecError::Truncated { .. })
    ));
    let overflow = [
        VERSION, TAG_APPEND, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
    ];
    assert_eq!(
        PartitionCommand::decode(&overflow),
        Err(CodecError::VarintOverflow)
    );
    // A record whose declared length exceeds its fields.
    let padded = [VERSION, TAG_APPEND, 0, 1, 5, 0, 0, 0, 0, 0];
    assert_eq!(
        PartitionCommand::decode(&padded),
        Err(CodecError::RecordLength {
            declared: 5,
            used: 4
        })
    );
}
